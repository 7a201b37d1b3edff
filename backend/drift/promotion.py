"""A retraining plan's last word: its run is promoted only through the promotion gate.

With FTSTUDIO_PROMOTION_GATE set (SUITE:SCORER:MARGIN, comma-separated), a plan whose train
job succeeded moves on in two passes of the trigger rules (`advance`):
  1. an `eval` job per gate suite answers it with the new run and the reference (the
     project's promoted run, else the run's base model), on the scorers the rules name;
  2. when those jobs succeeded, the gate (backend.evaluate.actions.gate_run, promote=True)
     decides: the run becomes the project's promoted run, or is recorded as refused.
The train step keeps `gate` = {state: evaluating | promoted | refused | blocked, jobs, ...}.
Without the setting, a plan promotes nothing.
"""

from __future__ import annotations

from typing import Any

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor
from backend.evaluate import actions as eval_actions
from backend.evaluate.gate import parse_rules
from backend.store import evals
from backend.store import monitoring as mon
from backend.store.runs import get_run

ENDED_BADLY = ("failed", "cancelled", "interrupted")


def _on_behalf(ctx: Ctx, plan: dict) -> Ctx:
    approver = plan.get("approved_by")
    return Ctx(ctx.store, ctx.ws, ctx.settings, Actor(approver, "lead") if approver else None)


def _save_gate(ctx: Ctx, plan_id: str, before: Any, gate: dict) -> dict | None:
    """Save the train step's gate when it is still `before` (one caller wins)."""

    def txn(cur) -> dict | None:
        plan = mon.get_plan(ctx.store, plan_id)
        review, train = plan["steps"]
        if train.get("gate") != before:
            return None
        return mon.save_plan(ctx.store, plan_id, steps=[review, {**train, "gate": gate}])

    return ctx.store.write(txn)


def _queue_evals(ctx: Ctx, plan: dict, run_id: str, rules: list) -> dict:
    run = get_run(ctx.store, run_id)
    with ctx.store.transaction() as cur:
        current = evals.promoted_run(cur, run["dataset"] or "(no dataset)")
    reference = current if current and current != run_id else f"base:{run['base_model']}"
    jobs = []
    for suite in dict.fromkeys(r.suite for r in rules):
        scorers = [r.scorer for r in rules if r.suite == suite]
        jobs.append(
            eval_actions.run_suite(_on_behalf(ctx, plan), suite, [run_id, reference], scorers)
        )
    return {"state": "evaluating", "run_id": run_id, "against": reference, "jobs": jobs}


def advance_plan(ctx: Ctx, plan: dict) -> dict | None:
    """One move of a done plan's gate; the new gate, or None when nothing moved."""
    rules_text = ctx.settings.promotion_gate
    review, train = plan["steps"]
    run_id = train.get("job_id")
    gate = train.get("gate")
    if not rules_text or not run_id or (gate or {}).get("state") not in (None, "evaluating"):
        return None
    if mon.job_state(ctx.store, run_id) != "succeeded":
        return None
    try:
        rules = parse_rules(rules_text)
        if gate is None:
            new = _queue_evals(ctx, plan, run_id, rules)
        else:
            states = [mon.job_state(ctx.store, j) for j in gate["jobs"]]
            if any(s in ENDED_BADLY for s in states):
                new = {**gate, "state": "blocked", "reason": f"an eval job ended: {states}"}
            elif all(s == "succeeded" for s in states):
                try:
                    d = eval_actions.gate_run(
                        _on_behalf(ctx, plan), run_id, rules_text, promote=True
                    )
                    new = {**gate, "state": d["status"], "checks": d["checks"]}
                except AlreadyDone:
                    new = {**gate, "state": "promoted"}
            else:
                return None
    except ValueError as exc:  # a bad rule, a suite that does not exist, a refused target
        new = {**(gate or {}), "state": "blocked", "reason": str(exc)}
    saved = _save_gate(ctx, plan["id"], gate, new)
    return new if saved else None


def advance(ctx: Ctx) -> list[dict]:
    """`advance_plan` over every done plan whose run has not been gated yet."""
    if not ctx.settings.promotion_gate:
        return []
    moved = []
    for plan in mon.plans(ctx.store, state="done"):
        if len(plan["steps"]) == 2 and (gate := advance_plan(ctx, plan)) is not None:
            moved.append(gate)
    return moved
