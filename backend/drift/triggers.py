"""Trigger rules: from finished drift checks to alerts and retraining plans.

A monitor is `ok` or `alerting`. A check that finds drift on an `ok` monitor is a crossing: it
records ONE alert and ONE plan and turns the monitor `alerting`; further drifting checks only
count against the open alert; a clean check resolves it. A plan has two steps:
  review  flag the window's prompts for review: a `score` job under the newest model, then a
          review batch of the least certain examples (Review page / Label Studio);
  train   a targeted fine-tune from the last run on the reviewed data: a `train` job queued
          as soon as the review batch is applied (or straight away when nothing was flagged).
`approve` (one click, or automatic per monitor) queues the review; `advance` moves each plan on.
A step whose job kind is not registered, or that lacks what it needs, is `blocked` with the
reason in the plan.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from backend.auth import Actor, require
from backend.drift import quality
from backend.jobs import queue
from backend.jobs.kinds import KINDS, SpecError, load
from backend.store import monitoring as mon
from backend.store import users
from backend.store.datasets import (
    DatasetNotFound,
    add_version,
    create_dataset,
    resolve_version,
    write_version_jsonl,
)
from backend.store.db import Store
from backend.workspace import Workspace

FLAG_TOP_K = 20  # prompts sent to reviewers per plan (the least certain ones)


def _steps(check: dict, n_resp: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "review",
            "kind": "score",
            "state": "proposed",
            "what": f"flag the window's prompts for review ({n_resp} of {check['n_window']} came "
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


# The Monitoring page (one thread per browser session) and the dashboard's folder watch both
# apply the rules; one at a time in a process, so a check never fires twice.
_RULES = threading.RLock()


def evaluate(store: Store, ws: Workspace) -> list[dict]:
    """Apply the trigger rules to every finished, unevaluated check; return new alerts."""
    with _RULES:
        return _evaluate(store, ws)


def _evaluate(store: Store, ws: Workspace) -> list[dict]:
    fired = []
    for check in mon.finished_unevaluated(store):
        m = mon.get_monitor(store, check["monitor_id"])
        if check["job_state"] != "succeeded":
            with store.transaction() as cur:  # its batches go back into the next window
                cur.execute(
                    "UPDATE drift_checks SET evaluated = ?, error = ? WHERE id = ?",
                    [mon.now(), check["job_error"] or check["job_state"], check["id"]],
                )
                cur.execute(
                    "UPDATE production_batches SET check_id = NULL WHERE check_id = ?",
                    [check["id"]],
                )
            continue
        if quality.settle(store, check) == "pending":
            continue  # its quality score jobs are still running: evaluate once they end
        reps = mon.reports(store, check_id=check["id"])
        drift = [r["method"] for r in reps if r["verdict"] == "drift"]
        worse = [r for r in drift if r in quality.METHODS]  # a quality crossing fires alone
        drifted = len(drift) - len(worse) >= m["config"].min_methods or bool(worse)
        alert = plan_id = None
        with store.transaction() as cur:
            state = cur.execute("SELECT state FROM monitors WHERE id = ?", [m["id"]]).fetchone()[0]
            open_id = cur.execute(
                "SELECT id FROM alerts WHERE monitor_id = ? AND state = 'open'", [m["id"]]
            ).fetchone()
            if drifted and state == "ok":
                alert = mon._id("alert")
                message = (
                    f"{m['name']}: {len(drift)} of {len(reps)} methods found drift "
                    f"({', '.join(drift)}) in {check['n_window']} prompts"
                )
                cur.execute(
                    "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,NULL)",
                    [alert, m["id"], check["id"], json.dumps(drift), message, "open", 1, mon.now()],
                )
                n_resp = cur.execute(
                    "SELECT coalesce(sum(n_responses), 0) FROM"
                    " production_batches WHERE check_id = ?",
                    [check["id"]],
                ).fetchone()[0]
                plan_id = mon._id("plan")
                cur.execute(
                    "INSERT INTO retraining_plans VALUES (?,?,?,?,false,NULL,NULL,?,?,?)",
                    [
                        plan_id,
                        m["id"],
                        alert,
                        "proposed",
                        json.dumps(_steps(check, int(n_resp))),
                        mon.now(),
                        mon.now(),
                    ],
                )
                cur.execute("UPDATE monitors SET state = 'alerting' WHERE id = ?", [m["id"]])
                fired.append(
                    {"id": alert, "monitor": m["name"], "message": message, "plan_id": plan_id}
                )
            elif drifted and open_id:
                alert = open_id[0]
                cur.execute("UPDATE alerts SET n_checks = n_checks + 1 WHERE id = ?", [alert])
            elif not drifted and state == "alerting":
                cur.execute(
                    "UPDATE alerts SET state = 'resolved', resolved = ? WHERE"
                    " monitor_id = ? AND state = 'open'",
                    [mon.now(), m["id"]],
                )
                cur.execute("UPDATE monitors SET state = 'ok' WHERE id = ?", [m["id"]])
            cur.execute(
                "UPDATE drift_checks SET evaluated = ?, n_drift = ?, drifted = ?,"
                " alert_id = ? WHERE id = ?",
                [mon.now(), len(drift), drifted, alert, check["id"]],
            )
        if plan_id and m["config"].auto_approve:
            approve(store, ws, plan_id, actor="auto-approve", auto=True)
    return fired


def _blocked(step: dict, reason: str) -> dict:
    return {**step, "state": "blocked", "reason": reason}


def last_run(store: Store) -> dict | None:
    """The newest succeeded training run that left an adapter."""
    rows = store.rows(
        "SELECT r.id, r.base_model, r.adapter_path, r.merged_path, r.config, j.spec FROM runs r"
        " JOIN jobs j ON j.id = r.id WHERE j.state = 'succeeded' AND r.adapter_path IS NOT NULL"
        " ORDER BY j.finished DESC LIMIT 1"
    )
    return rows[0] if rows else None


def _base_model(store: Store, ws: Workspace) -> tuple[str | None, str | None, dict | None]:
    """(model_path, adapter_path, last run) for scoring and training."""
    run = last_run(store)
    if run:
        return run["base_model"], run["adapter_path"], run
    from backend.config import Settings

    local = Settings().local_model_dir
    for path in (local, ws.models / "tiny-llama"):
        if path and (Path(path) / "config.json").exists():
            return str(path), None, None
    return None, None, None


def _review_dataset(store: Store, monitor: dict, plan: dict) -> dict | None:
    """A new version of `<monitor>-drift` holding the alert's window prompts with responses."""
    alert = store.rows("SELECT check_id FROM alerts WHERE id = ?", [plan["alert_id"]])[0]
    rows = store.rows(
        "SELECT r.* FROM production_records r JOIN production_batches b"
        " ON b.id = r.batch_id WHERE b.check_id = ? AND r.response IS NOT NULL"
        " ORDER BY r.batch_id, r.position",
        [alert["check_id"]],
    )
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


def _acting(actor: Actor | str) -> tuple[Actor | None, str]:
    """(signed-in actor or None for the trusted shell, the name to record)."""
    if isinstance(actor, Actor):
        return actor, actor.username
    return None, actor


def approve(
    store: Store, ws: Workspace, plan_id: str, *, actor: Actor | str = "lead", auto: bool = False
) -> dict:
    """Approve a proposed plan: queue its review step (the `score` job); the train step is
    queued by `advance` once the review is done. A signed-in `actor` must hold approve_plan
    (a plain name is the trusted shell's label, e.g. the CLI's --actor); audited."""
    who, name = _acting(actor)
    require(who, "approve_plan")
    plan = mon.get_plan(store, plan_id)
    if plan["state"] != "proposed":
        raise ValueError(f"plan {plan_id} is {plan['state']}; only a proposed plan can be approved")
    monitor = mon.get_monitor(store, plan["monitor_id"])
    steps = plan["steps"]
    review, train = steps[0], steps[1]
    for s in (review, train):
        if s["kind"] not in KINDS:
            steps[steps.index(s)] = _blocked(
                s, f"the `{s['kind']}` job kind is not registered in backend/jobs/kinds.py"
            )
    review, train = steps
    if review["state"] != "blocked":
        steps[0] = _queue_review(store, ws, monitor, plan, review, actor=who)
    if steps[0]["state"] == "blocked" and train["state"] != "blocked":
        steps[1] = _blocked(train, "waits for the review step, which is blocked")
    elif train["state"] != "blocked":
        steps[1] = {
            **train,
            "state": "waiting",
            "reason": "queued when the review batch is applied",
        }
    mon.save_plan(
        store, plan_id, state="approved", steps=steps, approved_by=name, auto_approved=auto
    )
    users.audit(
        store,
        who or Actor(name, "shell"),
        "plan.approve",
        plan_id,
        {"auto": auto, "monitor": monitor["name"]},
    )
    return advance_plan(store, ws, plan_id)


def _queue_review(
    store: Store,
    ws: Workspace,
    monitor: dict,
    plan: dict,
    step: dict,
    *,
    actor: Actor | None = None,
) -> dict:
    version = _review_dataset(store, monitor, plan)
    if version is None:
        return _blocked(
            step,
            "the drifted window has no responses to review; ingest prompts "
            "with their responses (a `response` field)",
        )
    model_path, adapter_path, run = _base_model(store, ws)
    if model_path is None:
        return _blocked(
            step,
            "no model to score with: train a run, set FTSTUDIO_LOCAL_MODEL, "
            "or build the demo model",
        )
    folder = ws.root / "monitoring" / plan["id"]
    data = folder / "review.jsonl"
    write_version_jsonl(store, version["id"], data)
    spec = {
        "examples_path": str(data),
        "model_path": model_path,
        "adapter_path": adapter_path,
        "dataset": version["dataset"],
        "version_id": version["id"],
    }
    try:
        job_id = queue.submit(ws, "score", spec, group_id=plan["id"], actor=actor)
    except SpecError as exc:
        return _blocked(step, str(exc))
    return {
        **step,
        "state": "queued",
        "job_id": job_id,
        "dataset": version["dataset"],
        "version_id": version["id"],
        "run_id": run["id"] if run else None,
    }


def _train_spec(store: Store, ws: Workspace, plan: dict, version: dict) -> dict:
    cls = load(KINDS["train"].spec)
    model_path, adapter_path, run = _base_model(store, ws)
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


def _queue_train(store: Store, ws: Workspace, plan: dict, step: dict, version: dict) -> dict:
    """Queue the plan's train step on behalf of whoever approved the plan (the job and the
    audit log name them; approving needs approve_plan, held by the roles that launch jobs)."""
    approver = plan.get("approved_by")
    actor = Actor(approver, "lead") if approver else None
    try:
        spec = _train_spec(store, ws, plan, version)
        job_id = queue.submit(ws, "train", spec, group_id=plan["id"], actor=actor)
    except (SpecError, ValueError) as exc:
        return _blocked(step, str(exc))
    return {
        **step,
        "state": "queued",
        "job_id": job_id,
        "version_id": version["id"],
        "base_model": spec["base_model"],
    }


def advance_plan(store: Store, ws: Workspace, plan_id: str) -> dict:
    """Move an approved plan on: score job done -> review batch; batch applied -> train job."""
    from backend.review.flagging import FlagPolicy
    from backend.store import review as rv

    plan = mon.get_plan(store, plan_id)
    if plan["state"] != "approved":
        return plan
    steps = plan["steps"]
    review, train = steps
    if review["state"] == "queued":
        state = store.scalar("SELECT state FROM jobs WHERE id = ?", [review["job_id"]])
        if state == "succeeded":
            batch = rv.create_batch(
                store,
                dataset=review["dataset"],
                score_job_id=review["job_id"],
                policy=FlagPolicy(kind="top_k", value=FLAG_TOP_K),
            )
            review = steps[0] = {
                **review,
                "state": "in review",
                "batch_id": batch["id"],
                "n_flagged": batch["n_flagged"],
            }
        elif state in ("failed", "cancelled", "interrupted"):
            review = steps[0] = _blocked(review, f"the score job {review['job_id']} {state}")
    if review["state"] == "in review" and train["state"] == "waiting":
        batch = rv.get_batch(store, review["batch_id"])
        version = None
        if batch["applied_version_id"]:
            version = resolve_version(store, review["dataset"], batch["applied_version_id"])
        elif not review.get("n_flagged"):
            version = resolve_version(store, review["dataset"], review["version_id"])
        if version is not None:
            steps[0] = {**review, "state": "done"}
            steps[1] = _queue_train(store, ws, plan, train, version)
    done = all(s["state"] in ("done", "queued") for s in steps) and steps[1]["state"] == "queued"
    return mon.save_plan(store, plan_id, steps=steps, state="done" if done else None)


def advance(store: Store, ws: Workspace) -> list[dict]:
    with _RULES:
        return [advance_plan(store, ws, p["id"]) for p in mon.plans(store, state="approved")]


def reject(store: Store, plan_id: str, *, actor: Actor | str = "lead") -> dict:
    who, name = _acting(actor)
    require(who, "approve_plan")
    plan = mon.get_plan(store, plan_id)
    if plan["state"] != "proposed":
        raise ValueError(f"plan {plan_id} is {plan['state']}; only a proposed plan can be rejected")
    saved = mon.save_plan(store, plan_id, state="rejected", approved_by=name)
    users.audit(store, who or Actor(name, "shell"), "plan.reject", plan_id)
    return saved
