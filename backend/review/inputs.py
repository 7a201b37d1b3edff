"""What a scoring or judging job reads: the examples of a dataset version written to a file
under the workspace (a job never opens the database), the adapter to score with, and the job
spec. Used by the review actions (backend/review/actions.py) before they queue the job.

The LLM judge (job kind `quality-judge`, backend/drift/judge.py) rates each example from 1 to
10 through any OpenAI-compatible endpoint; its scores are stored as method `judge_flaw` =
10 - rating, so they flag like nll and entropy (higher is worse). The endpoint and key come
from Settings when the job runs; no key is ever written into a spec.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.jsonl import write_jsonl
from backend.store import datasets as ds
from backend.store import review as rstore
from backend.store.db import Store
from backend.workspace import Workspace

JUDGE_METHOD = "judge_flaw"


@dataclass
class AdapterChoice:
    """Which adapter a scoring run uses, and why (shown on the page and by the CLI)."""

    path: str | None
    run_id: str | None
    reason: str

    def describe(self) -> str:
        return (
            f"adapter: {self.path} ({self.reason})"
            if self.path
            else f"adapter: none, base model only ({self.reason})"
        )


def choose_adapter(
    store: Store,
    model_path: str,
    *,
    adapter_path: str | None = None,
    base_only: bool = False,
    root: Path | None = None,
) -> AdapterChoice:
    """The adapter to score with: the one given, none when `base_only`, else the newest
    succeeded run's adapter on this base model (the loop re-scores with the newest adapter)."""
    if adapter_path and base_only:
        raise ValueError("give an adapter folder or base only, not both")
    if base_only:
        return AdapterChoice(None, None, "base only was asked for")
    if adapter_path:
        if not Path(adapter_path).is_dir():
            raise ValueError(f"adapter folder {adapter_path} does not exist")
        return AdapterChoice(str(adapter_path), None, "given")
    newest = rstore.newest_adapter(store, model_path, root=root)
    if newest is None:
        return AdapterChoice(None, None, f"no succeeded run on {Path(model_path).name} yet")
    return AdapterChoice(
        newest["adapter_path"],
        newest["run_id"],
        f"newest succeeded run {newest['run_id']} on this base model",
    )


def review_inputs(
    store: Store,
    ws: Workspace,
    dataset: str,
    *,
    version: str | int | None = None,
    only_unreviewed: bool = False,
) -> tuple[Path, int, dict, int]:
    """Write a dataset version's examples ({id, messages} lines) to a file under the
    workspace for a scoring or judging job. With `only_unreviewed`, examples a reviewer
    already judged in an earlier batch are left out (the loop re-scores what is left).
    Returns (path, example count, version row, round)."""
    ver = ds.resolve_version(store, dataset, version)
    skip = rstore.reviewed_ids(store, dataset) if only_unreviewed else set()
    rows = [e for e in ds.version_examples(store, ver["id"]) if e["id"] not in skip]
    if not rows:
        raise ValueError(
            f"dataset {dataset!r} v{ver['number']} has no "
            f"{'unreviewed ' if skip else ''}examples to score"
        )
    inputs = ws.root / "review" / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    path = inputs / f"{ver['id']}-{uuid.uuid4().hex[:6]}.jsonl"
    write_jsonl(path, ({"id": e["id"], "messages": e["messages"]} for e in rows))
    return path, len(rows), ver, len(rstore.batches(store, dataset)) + 1


def prepare_spec(
    store: Store,
    ws: Workspace,
    dataset: str,
    model_path: str,
    *,
    adapter_path: str | None = None,
    version: str | int | None = None,
    batch_size: int = 16,
    only_unreviewed: bool = False,
) -> tuple[dict, int, dict]:
    """The `score` job spec over a dataset version (examples written by `review_inputs`).
    Returns (spec, example count, version row)."""
    path, n, ver, rnd = review_inputs(
        store, ws, dataset, version=version, only_unreviewed=only_unreviewed
    )
    spec = {
        "examples_path": str(path),
        "model_path": str(Path(model_path).resolve()),
        "adapter_path": str(Path(adapter_path).resolve()) if adapter_path else None,
        "dataset": dataset,
        "version_id": ver["id"],
        "round": rnd,
        "batch_size": batch_size,
    }
    return spec, n, ver


def prepare_judge_spec(
    store: Store,
    ws: Workspace,
    dataset: str,
    judge_model: str,
    *,
    settings: Settings | None = None,
    version: str | int | None = None,
    only_unreviewed: bool = False,
    criteria: str | None = None,
    base_url: str | None = None,
    concurrency: int = 8,
) -> tuple[dict, int, dict]:
    """The `quality-judge` job spec over a dataset version. Raises ValueError when no
    judge model is named or no endpoint is configured. Returns (spec, count, version row)."""
    judge_model = (judge_model or "").strip()
    if not judge_model:
        raise ValueError("name the judge model (the model id at the endpoint)")
    if not (base_url or (settings or Settings()).openai_base_url):
        raise ValueError(
            "no judge endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY) in Settings, "
            "or give a base URL"
        )
    path, n, ver, rnd = review_inputs(
        store, ws, dataset, version=version, only_unreviewed=only_unreviewed
    )
    spec: dict[str, Any] = {
        "examples_path": str(path),
        "model": judge_model,
        "method": JUDGE_METHOD,
        "dataset": dataset,
        "version_id": ver["id"],
        "round": rnd,
        "concurrency": concurrency,
    }
    if criteria and criteria.strip():
        spec["criteria"] = criteria.strip()
    if base_url:
        spec["base_url"] = base_url
    return spec, n, ver
