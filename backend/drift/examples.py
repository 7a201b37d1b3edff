"""What a check's quality report scores, shared by the model-side scores (quality.py) and the
LLM judge (judging.py): the window's answered prompts as chat examples, the newest run's
held-out split as the training-time side, a seeded sample of each, and `Prepared`, the jobs a
side needs before the check's action queues them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.store.datasets import version_examples
from backend.store.db import Store
from backend.train.sft import split


@dataclass
class Prepared:
    """The jobs one quality side of a check needs (`kind` jobs: a baseline unless a finished
    or queued one is reused, then the window) and the row that records them once queued
    (`row` lacks the job ids the action fills in)."""

    kind: str
    window_spec: dict[str, Any]
    baseline_spec: dict[str, Any] | None
    row: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)  # what the check's answer reports


def sample(rows: list[dict], cap: int, seed: int) -> list[dict]:
    """At most `cap` rows, a seeded sample in their original order."""
    if len(rows) <= cap:
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), cap))
    return [rows[i] for i in keep]


def window_examples(answered: list[dict], cap: int, seed: int) -> list[dict]:
    """Production records that came with a response, as scoreable chat examples (at most
    `cap`, a seeded sample), each id naming its batch and position."""
    rows = [
        {
            "id": f"{r['batch_id']}:{r['position']}",
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ],
        }
        for r in answered
    ]
    return sample(rows, cap, seed)


def has_answer(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") for m in messages
    )


def training_examples(store: Store, run: dict) -> tuple[list[dict], str]:
    """The run's held-out split as the trainer drew it (same file, fraction and seed), or its
    training rows when it held none out; ({id, messages} rows, 'held-out' | 'training')."""
    cfg = json.loads(run["config"] or run["spec"] or "{}")
    path = Path(cfg.get("data_path") or "")
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    elif cfg.get("dataset_version_id"):
        rows = version_examples(store, cfg["dataset_version_id"])
    else:
        raise ValueError(
            f"run {run['id']}: its data file {path} is gone and it names no dataset version"
        )
    rows = [{"messages": r["messages"]} for r in rows if has_answer(r.get("messages"))]
    train, held = split(rows, float(cfg.get("eval_split") or 0), int(cfg.get("seed", 42)))
    chosen, source = (held, "held-out") if held else (train, "training")
    return [{"id": str(i), **r} for i, r in enumerate(chosen)], source
