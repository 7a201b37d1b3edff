"""Quality signals from the model side: how surprised the newest run is by production responses,
against how surprised it was by its own held-out data.

With each drift check the submitter queues `score` jobs (backend.review.scoring; one per side,
the job never opens DuckDB): the window's prompts that came with responses, and once per run
that run's held-out split (its training rows when it held none out). When both have finished,
`settle` writes two drift_reports rows for the check:
  quality_nll      statistic = mean response NLL on the window (nats/token),
                   threshold = training-time mean x (1 + margin);
  quality_entropy  the same for the mean predictive entropy.
A report over its threshold has verdict `drift` and fires the same alert and plan as drift.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from backend.auth import Actor
from backend.drift.monitors import QualityConfig
from backend.jobs import queue
from backend.jobs.kinds import SpecError
from backend.jsonl import write_jsonl
from backend.store import monitoring as mon
from backend.store.db import Store
from backend.workspace import Workspace

SCORE_METHODS = {"quality_nll": "nll", "quality_entropy": "entropy"}
METHODS = {**SCORE_METHODS, "quality_judge": "judge"}  # every quality report (judge.py)


def _sample(rows: list[dict], cap: int, seed: int) -> list[dict]:
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
    return _sample(rows, cap, seed)


def _has_answer(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") for m in messages
    )


def training_examples(store: Store, run: dict) -> tuple[list[dict], str]:
    """The run's held-out split as the trainer drew it (same file, fraction and seed), or its
    training rows when it held none out; ({id, messages} rows, 'held-out' | 'training')."""
    from backend.store.datasets import version_examples
    from backend.train.sft import split

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
    rows = [{"messages": r["messages"]} for r in rows if _has_answer(r.get("messages"))]
    train, held = split(rows, float(cfg.get("eval_split") or 0), int(cfg.get("seed", 42)))
    chosen, source = (held, "held-out") if held else (train, "training")
    return [{"id": str(i), **r} for i, r in enumerate(chosen)], source


def _spec(path: Path, run: dict, max_length: int) -> dict:
    return {
        "examples_path": str(path),
        "model_path": run["base_model"],
        "adapter_path": run["adapter_path"],
        "max_length": max_length,
    }


def submit(
    store: Store,
    ws: Workspace,
    monitor: dict,
    check_id: str,
    records: list[dict],
    cfg: QualityConfig,
    *,
    seed: int = 0,
    actor: Actor | None = None,
) -> dict:
    """Queue the score jobs of a check's quality report. Returns {"quality_jobs": [...]} or
    {"quality": why none} (no run yet, too few responses, ...); never fails the drift check."""
    from backend.drift.triggers import last_run
    from backend.review.scoring import model_label

    if not cfg.enabled:
        return {"quality": "quality scoring is off for this monitor"}
    answered = [r for r in records if r.get("response")]
    if len(answered) < cfg.min_responses:
        return {
            "quality": f"{len(answered)} prompts came with responses; a quality report "
            f"needs {cfg.min_responses}"
        }
    run = last_run(store)
    if run is None:
        return {
            "quality": "no trained run yet: quality is measured against a run's "
            "training-time scores"
        }
    folder = ws.root / "monitoring" / check_id
    window = window_examples(answered, cfg.max_examples, seed)
    max_length = int(json.loads(run["config"] or "{}").get("max_length") or 1024)
    jobs = []
    try:
        base = mon.reusable_baseline(store, run["id"])
        if base is None:
            examples, source = training_examples(store, run)
            if not examples:
                return {"quality": f"run {run['id']} has no examples with answers to compare"}
            examples = _sample(examples, cfg.max_examples, seed)
            path = ws.root / "monitoring" / f"baseline-{run['id']}" / "examples.jsonl"
            write_jsonl(path, examples)
            base = {
                "baseline_job_id": queue.submit(
                    ws, "score", _spec(path, run, max_length), group_id=check_id, actor=actor
                ),
                "baseline_source": source,
                "n_baseline": len(examples),
            }
            jobs.append(base["baseline_job_id"])
        write_jsonl(folder / "quality_window.jsonl", window)
        window_job = queue.submit(
            ws,
            "score",
            _spec(folder / "quality_window.jsonl", run, max_length),
            group_id=check_id,
            actor=actor,
        )
        jobs.append(window_job)
    except (SpecError, ValueError, OSError) as exc:
        for job_id in jobs:
            queue.cancel(ws, job_id, actor=None)  # ours, queued a moment ago
        return {"quality": f"not scored: {exc}"}
    mon.record_quality(
        store,
        check_id=check_id,
        monitor_id=monitor["id"],
        run_id=run["id"],
        model=model_label(run["base_model"], run["adapter_path"]),
        window_job_id=window_job,
        baseline_job_id=base["baseline_job_id"],
        baseline_source=base["baseline_source"],
        n_window=len(window),
        n_baseline=base["n_baseline"],
        margin=cfg.margin,
    )
    return {"quality_jobs": jobs, "quality_run": run["id"]}


def settle(store: Store, check: dict) -> str:
    """'pending' while a quality score or judge job of the check is unfinished; otherwise write
    its quality reports (when a side's jobs succeeded) and return 'done' ('none': no jobs)."""
    from backend.drift import judge

    q = mon.quality_of(store, check["id"])
    if q is not None and any(
        s not in mon.FINISHED for s in (q["window_state"], q["baseline_state"])
    ):
        return "pending"
    judged = judge.settle(store, check)
    if judged == "pending":
        return "pending"
    if q is None:
        return judged
    states = (q["window_state"], q["baseline_state"])
    if states != ("succeeded", "succeeded"):
        return "done"  # the drift verdicts stand alone; the failed job says why on Jobs
    window, base = (
        mon.score_means(store, q["window_job_id"]),
        mon.score_means(store, q["baseline_job_id"]),
    )
    rows = []
    for method, key in SCORE_METHODS.items():
        if key not in window or key not in base:
            continue
        threshold = base[key]["mean"] * (1 + q["margin"])
        rows.append(
            {
                "method": method,
                "statistic": window[key]["mean"],
                "threshold": threshold,
                "verdict": "drift" if window[key]["mean"] > threshold else "ok",
                "n_reference": base[key]["n"],
                "n_window": window[key]["n"],
                "details": {
                    "training_mean": base[key]["mean"],
                    "margin": q["margin"],
                    "baseline_source": q["baseline_source"],
                    "run_id": q["run_id"],
                    "model": q["model"],
                    "window_job": q["window_job_id"],
                    "baseline_job": q["baseline_job_id"],
                    "unit": "nats per response token",
                },
            }
        )
    mon.add_reports(store, check, rows)
    return "done"
