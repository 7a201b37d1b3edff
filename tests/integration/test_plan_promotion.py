"""A retraining plan promotes its run only through the gate (FTSTUDIO_PROMOTION_GATE): once
its train job succeeded, the trigger rules queue an eval job of the gate's suite on the run
and its base model, then gate the run on the results and promote it when it passes, or
record it as refused; without the setting nothing is promoted."""

from __future__ import annotations

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.drift import promotion, triggers
from backend.evaluate.actions import create_suite
from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.store import evals
from backend.store import monitoring as mon
from backend.store.datasets import add_version, create_dataset
from backend.train.actions import start_run
from tests.integration.test_train_job import fields, write_data

pytestmark = pytest.mark.slow


def _plan(store, run_id: str, plan_id: str) -> None:
    create_dataset(store, "support")
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    add_version(store, "support", [{"messages": turns}])
    monitor = mon.create_monitor(store, "prod", reference="support")
    steps = [{"name": "review", "state": "done"}, {"name": "train", "state": "queued"}]
    steps[1]["job_id"] = run_id
    store.write(lambda cur: mon._propose(cur, plan_id, monitor["id"], "alert-1", steps))
    mon.save_plan(store, plan_id, state="done")


@pytest.mark.parametrize("margin, verdict", [(-1.0, "promoted"), (1.0, "refused")])
def test_a_plans_run_is_gated_before_promotion(
    ws, store, act, tiny_model_dir, run_inline, tmp_path, monkeypatch, margin, verdict
):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    spec = fields(tiny_model_dir, write_data(tmp_path / "d.jsonl"), max_steps=2, save_steps=2)
    run_id = start_run(act(), {**spec, "n_eval_prompts": 0}, start_worker=False)
    assert run_inline(ws, run_id).state == "succeeded"
    ingest_all(store, ws)
    create_suite(act(), "faq", [{"prompt": "How do I invite someone?", "reference": "Settings"}])
    _plan(store, run_id, "plan-1")

    assert promotion.advance(Ctx(store, ws, Settings(), None)) == []  # no gate set: no move
    monkeypatch.setenv("FTSTUDIO_PROMOTION_GATE", f"faq:rouge_l:{margin}")
    system = Ctx(store, ws, Settings(), None)
    triggers.advance(system)
    gate = mon.get_plan(store, "plan-1")["steps"][1]["gate"]
    assert gate["state"] == "evaluating" and gate["against"] == f"base:{tiny_model_dir}"
    [job] = gate["jobs"]
    assert promotion.advance(system) == []  # the eval job has not run yet
    assert run_inline(ws, job).state == "succeeded"
    ingest_all(store, ws)
    [moved] = promotion.advance(system)
    assert moved["state"] == verdict, moved
    assert mon.get_plan(store, "plan-1")["steps"][1]["gate"]["state"] == verdict
    promoted = [p["run_id"] for p in evals.promoted(store)]
    assert promoted == ([run_id] if verdict == "promoted" else [])
    assert promotion.advance(system) == []  # decided once
