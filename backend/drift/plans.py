"""Retraining plans, step by step. A plan has two steps:
  review  flag the window's prompts for review: a `score` job under the newest model, then a
          review batch of the least certain examples (Review page / Label Studio);
  train   a targeted fine-tune from the last run on the reviewed data: a `train` job queued
          as soon as the review batch is applied (or straight away when nothing was flagged).
This module builds the steps and the jobs' specs (writing their input files); the actions
(approval) and the trigger rules (moving a plan on) queue the jobs and save the plan. A step
whose job kind is not registered, or that lacks what it needs, is `blocked` with the reason.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.jobs.kinds import KINDS
from backend.store import monitoring as mon
from backend.store import production
from backend.store.datasets import (
    DatasetNotFound,
    add_version,
    create_dataset,
    resolve_version,
    write_version_jsonl,
)
from backend.store.db import Store
from backend.train.config import METHODS
from backend.workspace import Workspace

FLAG_TOP_K = 20  # prompts sent to reviewers per plan (the least certain ones)


def proposed_steps(
    n_window: int, n_responses: int, check_id: str | None = None
) -> list[dict[str, Any]]:
    """The steps of a new plan for the drifted window of `n_window` prompts of check
    `check_id` (the window the review takes its prompts from)."""
    return [
        {
            "name": "review",
            "kind": "score",
            "state": "proposed",
            "check_id": check_id,
            "what": f"flag the window's prompts for review ({n_responses} of {n_window} came "
            "with responses): score them under the newest model, send the least certain "
            "to reviewers",
        },
        {
            "name": "train",
            "kind": "train",
            "state": "proposed",
            "what": "targeted fine-tune from the last run's adapter on the reviewed data",
        },
    ]


def blocked(step: dict, reason: str) -> dict:
    return {**step, "state": "blocked", "reason": reason}


# what stops a plan, and what would let it run (shown on the alert instead of a plan)
NO_RESPONSES = (
    "the drifted prompts came without responses, so there is nothing to review or train on",
    "ingest production prompts together with their responses (a `response` field per row, "
    "JSONL or CSV); the next drifting check then proposes a plan",
)
NO_MODEL = (
    "there is no model to score the prompts with",
    "train a run on the Training page, set FTSTUDIO_LOCAL_MODEL to a model folder, or build "
    "the demo model; the next drifting check then proposes a plan",
)


def unregistered(kind: str) -> tuple[str, str]:
    return (
        f"the `{kind}` job kind is not registered",
        f"register `{kind}` in backend/jobs/kinds.py (an install without training cannot retrain)",
    )


def blocker(
    store: Store, ws: Workspace, settings: Settings, check_id: str
) -> tuple[str, str] | None:
    """Why a plan for this check's window could not run, and what would unblock it; None
    when it can. The same conditions `approval` checks, asked before the plan is proposed, so
    a plan that would be blocked at once is never offered for approval."""
    for kind in ("score", "train"):
        if kind not in KINDS:
            return unregistered(kind)
    if not production.responses_in_check(store, check_id):
        return NO_RESPONSES
    if base_model(store, ws, settings)[0] is None:
        return NO_MODEL
    return None


def base_model(
    store: Store, ws: Workspace, settings: Settings
) -> tuple[str | None, str | None, dict | None]:
    """(model_path, adapter_path, last run) for scoring and training."""
    run = mon.last_run(store)
    if run:
        return run["base_model"], run["adapter_path"], run
    for path in (settings.local_model_dir, ws.models / "tiny-llama"):
        if path and (Path(path) / "config.json").exists():
            return str(path), None, None
    return None, None, None


def review_dataset(store: Store, monitor: dict, plan: dict) -> dict | None:
    """A new version of `<monitor>-drift` holding the alert's window prompts with responses
    (written in the caller's transaction: the approval's)."""
    check_id = plan["steps"][0].get("check_id") or mon.alert_check(store, plan["alert_id"])
    rows = production.answered_records(store, check_id)
    if not rows:
        return None
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{monitor['name']}-drift").strip("-.")[:80]
    try:
        resolve_version(store, name)
    except DatasetNotFound:
        try:
            create_dataset(store, name, recipe={"source": "drift", "monitor": monitor["name"]})
        except ValueError:
            pass  # exists without versions
    examples = [
        {
            "messages": [
                {"role": "user", "content": r["prompt"]},
                {"role": "assistant", "content": r["response"]},
            ],
            "origin": {
                "source": "production",
                "batch": r["batch_id"],
                "monitor": monitor["name"],
                "plan": plan["id"],
            },
        }
        for r in rows
    ]
    return add_version(store, name, examples, note=f"drift window of alert {plan['alert_id']}")


def approval(
    store: Store, ws: Workspace, settings: Settings, monitor: dict, plan: dict
) -> tuple[list[dict], dict | None]:
    """The plan's steps on approval and the review step's `score` spec (None when the review
    is blocked). Unregistered job kinds block their step."""
    steps = [
        blocked(s, f"the `{s['kind']}` job kind is not registered in backend/jobs/kinds.py")
        if s["kind"] not in KINDS
        else dict(s)
        for s in plan["steps"]
    ]
    if steps[0]["state"] == "blocked":
        return steps, None
    version = review_dataset(store, monitor, plan)
    if version is None:
        steps[0] = blocked(
            steps[0],
            "the drifted window has no responses to review; ingest prompts "
            "with their responses (a `response` field)",
        )
        return steps, None
    model_path, adapter_path, run = base_model(store, ws, settings)
    if model_path is None:
        steps[0] = blocked(
            steps[0],
            "no model to score with: train a run, set FTSTUDIO_LOCAL_MODEL, "
            "or build the demo model",
        )
        return steps, None
    data = ws.root / "monitoring" / plan["id"] / "review.jsonl"
    write_version_jsonl(store, version["id"], data)
    steps[0] |= {
        "dataset": version["dataset"],
        "version_id": version["id"],
        "run_id": run["id"] if run else None,
    }
    spec = {
        "examples_path": str(data),
        "model_path": model_path,
        "adapter_path": adapter_path,
        "dataset": version["dataset"],
        "version_id": version["id"],
    }
    return steps, spec


def train_waits(steps: list[dict]) -> list[dict]:
    """After the review step was queued (or blocked): the train step waits for it."""
    review, train = steps
    if train["state"] == "blocked":
        return steps
    if review["state"] == "blocked":
        return [review, blocked(train, "waits for the review step, which is blocked")]
    return [
        review,
        {**train, "state": "waiting", "reason": "queued when the review batch is applied"},
    ]


def train_spec(
    store: Store, ws: Workspace, settings: Settings, plan: dict, version: dict
) -> dict[str, Any]:
    """The train step's spec: the last run's settings, continued from its adapter on the
    reviewed version (written to a file under the plan's folder)."""
    cls = METHODS["sft"]  # the train step is an sft run: its fields, init_adapter included
    model_path, adapter_path, run = base_model(store, ws, settings)
    base: dict[str, Any] = {}
    if run:
        base = json.loads(run["config"] or run["spec"] or "{}")
    data = ws.root / "monitoring" / plan["id"] / f"train-{version['id']}.jsonl"
    write_version_jsonl(store, version["id"], data)
    spec = {
        **{k: v for k, v in base.items() if k in cls.model_fields},
        "base_model": (run or {}).get("merged_path") or model_path,
        "dataset": version["dataset"],
        "dataset_version_id": version["id"],
        "dataset_hash": version.get("hash"),
        "data_path": str(data),
        "method": "sft",
    }
    for field in ("init_adapter", "adapter_path", "resume_adapter"):
        if field in cls.model_fields and adapter_path:
            spec[field] = adapter_path
            spec["base_model"] = model_path
            break
    return spec
