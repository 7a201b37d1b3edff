"""Trigger rules: from finished drift checks to alerts and retraining plans, and approved plans
moved on. They run in the dashboard's ingestion loop after each ingest pass (and in
`ftstudio monitor check`) through `actions.apply_rules`, never while a page draws.

A monitor is `ok` or `alerting`. A check that finds drift on an `ok` monitor is a crossing: it
records ONE alert and ONE plan and turns the monitor `alerting`; further drifting checks only
count against the open alert; a clean check resolves it (backend/store/monitoring.py
`apply_verdict`, one transaction that also marks the check evaluated, so a check never fires
twice). A plan that could not run (no responses to review, no model, a job kind missing:
`plans.blocker`) is not proposed; the alert carries the reason and what would unblock it, and
the first drifting check after that which can run proposes the plan.

`advance_plan` moves an approved plan on: score job done -> review batch; batch applied
(or nothing flagged) -> the train job, queued on behalf of whoever approved the plan.
"""

from __future__ import annotations

from collections.abc import Callable

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor
from backend.config import Settings
from backend.drift import judging, plans, promotion, quality
from backend.drift.monitors import config_of
from backend.review import actions as review_actions
from backend.review.flagging import FlagPolicy
from backend.store import monitoring as mon
from backend.store import production
from backend.store import review as rv
from backend.store.datasets import resolve_version
from backend.store.db import Store
from backend.train import actions as train_actions
from backend.workspace import Workspace

ENDED_BADLY = ("failed", "cancelled", "interrupted")


def evaluate(store: Store, ws: Workspace, settings: Settings) -> list[dict]:
    """Apply the rules to every finished, unevaluated check; return the alerts that fired
    ({id, monitor, message, plan_id, no_plan}): a crossing, or a plan proposed now for an
    open alert that had none. A plan that could not run is not proposed: the alert says why
    (`no_plan`: reason, what would unblock it)."""
    fired = []
    for check in mon.finished_unevaluated(store):
        if check["job_state"] != "succeeded":
            mon.fail_check(store, check["id"], check["job_error"] or check["job_state"])
            continue
        if quality.pending(store, check) or judging.pending(store, check):
            continue  # its quality jobs are still running: evaluate once they end
        quality.report(store, check)
        judging.report(store, check)
        m = mon.get_monitor(store, check["monitor_id"])
        reps = mon.reports(store, check_id=check["id"])
        drift = [r["method"] for r in reps if r["verdict"] == "drift"]
        worse = [r for r in drift if r in quality.METHODS]  # a quality crossing fires alone
        drifted = len(drift) - len(worse) >= config_of(m).min_methods or bool(worse)
        message = (
            f"{m['name']}: {len(drift)} of {len(reps)} methods found drift "
            f"({', '.join(drift)}) in {check['n_window']} prompts"
        )
        steps = plans.proposed_steps(
            check["n_window"], production.responses_in_check(store, check["id"]), check["id"]
        )
        out = mon.apply_verdict(
            store,
            check["id"],
            m["id"],
            drifted=drifted,
            methods=drift,
            message=message,
            steps=steps,
            no_plan=plans.blocker(store, ws, settings, check["id"]) if drifted else None,
        )
        if out and (out["opened"] or out["plan_id"]):
            alert = mon.get_alert(store, out["alert_id"])
            fired.append(
                {
                    "id": out["alert_id"],
                    "monitor": m["name"],
                    "message": message,
                    "plan_id": out["plan_id"],
                    "no_plan": alert["no_plan_reason"],
                    "unblock": alert["no_plan_unblock"],
                }
            )
    return fired


def _move(
    store: Store, plan_id: str, ready: Callable[[dict], bool], change: Callable[[dict], dict]
) -> dict | None:
    """Re-read the plan in one transaction and, when `ready(plan)` still holds, save
    `change(plan)` ({state?, steps?}); None when another caller moved it first."""

    def txn(cur) -> dict | None:
        plan = mon.get_plan(store, plan_id)
        if plan["state"] != "approved" or not ready(plan):
            return None
        return mon.save_plan(store, plan_id, **change(plan))

    return store.write(txn)


def _on_behalf(ctx: Ctx, plan: dict) -> Ctx:
    """The plan's next steps act for whoever approved it (the jobs and audit rows name them;
    approving needs approve_plan, held by the roles that launch jobs and edit data)."""
    approver = plan.get("approved_by")
    return Ctx(ctx.store, ctx.ws, ctx.settings, Actor(approver, "lead") if approver else None)


def _review_batch(ctx: Ctx, plan: dict) -> dict:
    """The review step once its score job succeeded: the review action's batch of the least
    certain examples (flagging the same run again answers that same batch)."""
    review = plan["steps"][0]
    policy = FlagPolicy(kind="top_k", value=plans.FLAG_TOP_K)
    try:
        batch = review_actions.create_batch(
            _on_behalf(ctx, plan), review["dataset"], review["job_id"], policy
        )
    except AlreadyDone as exc:
        batch = {**exc.result, "n_flagged": rv.n_flagged(ctx.store, exc.result["id"])}
    return {
        **review,
        "state": "in review",
        "batch_id": batch["id"],
        "n_flagged": batch["n_flagged"],
    }


def _reviewed_version(store: Store, review: dict) -> dict | None:
    """The version the train step trains on, once the review is over (None: not yet)."""
    batch = rv.get_batch(store, review["batch_id"])
    if batch["applied_version_id"]:
        return resolve_version(store, review["dataset"], batch["applied_version_id"])
    if not review.get("n_flagged"):
        return resolve_version(store, review["dataset"], review["version_id"])
    return None


def start_train(ctx: Ctx, spec: dict, plan_id: str) -> str:
    """Queue a plan's train job as `ctx.actor` through the training action (validated and
    preflighted there; audited `plan.train`)."""
    return train_actions.start_run(ctx, spec, group_id=plan_id, name="plan.train")


def _queue_train(ctx: Ctx, plan_id: str, version: dict) -> dict | None:
    """Claim the waiting train step (one caller wins), then queue the train job on behalf of
    whoever approved the plan and record it (or why it is blocked)."""

    def claim(plan: dict) -> dict:
        review, train = plan["steps"]
        return {"steps": [{**review, "state": "done"}, {**train, "state": "starting"}]}

    plan = _move(ctx.store, plan_id, lambda p: p["steps"][1]["state"] == "waiting", claim)
    if plan is None:
        return None
    train = plan["steps"][1]
    try:
        spec = plans.train_spec(ctx.store, ctx.ws, ctx.settings, plan, version)
        job_id = start_train(_on_behalf(ctx, plan), spec, plan_id)
        train = {
            **train,
            "state": "queued",
            "job_id": job_id,
            "version_id": version["id"],
            "base_model": spec["base_model"],
        }
        state = "done"
    except Exception as exc:  # a spec, preflight or permission error: the plan says why
        train, state = plans.blocked(train, str(exc)), None
    steps = [plan["steps"][0], train]
    return _move(
        ctx.store,
        plan_id,
        lambda p: p["steps"][1]["state"] == "starting",
        lambda p: {"steps": steps, "state": state},
    )


def advance_plan(ctx: Ctx, plan_id: str) -> dict:
    """Move an approved plan on: score job done -> review batch; batch applied -> train job.
    Each move re-reads the plan in its transaction, so two callers never move it twice."""
    store = ctx.store
    plan = mon.get_plan(store, plan_id)
    if plan["state"] != "approved":
        return plan
    review = plan["steps"][0]
    if review["state"] == "queued":
        state = mon.job_state(store, review["job_id"])
        still = lambda p: p["steps"][0]["state"] == "queued"  # noqa: E731
        if state == "succeeded":
            done = _review_batch(ctx, plan)  # its own transaction, before the plan moves
            plan = _move(store, plan_id, still, lambda p: {"steps": [done, p["steps"][1]]}) or plan
        elif state in ENDED_BADLY:
            why = f"the score job {review['job_id']} {state}"
            plan = (
                _move(
                    store,
                    plan_id,
                    still,
                    lambda p: {"steps": [plans.blocked(p["steps"][0], why), p["steps"][1]]},
                )
                or plan
            )
    review, train = plan["steps"]
    if review["state"] == "in review" and train["state"] == "waiting":
        version = _reviewed_version(store, review)
        if version is not None:
            plan = _queue_train(ctx, plan_id, version) or plan
    return mon.get_plan(store, plan_id)


def advance(ctx: Ctx) -> list[dict]:
    """`advance_plan` over every approved plan; then the promotion gate of every done plan
    whose run finished (backend.drift.promotion, when FTSTUDIO_PROMOTION_GATE is set)."""
    moved = [advance_plan(ctx, p["id"]) for p in mon.plans(ctx.store, state="approved")]
    promotion.advance(ctx)
    return moved
