"""The whole retraining loop on real jobs, in-process, on the tiny model: a trained run, a
monitor on the reference data, a shifted production batch with responses -> one alert and one
plan -> ONE approval -> the score job -> a review batch -> in-app verdicts, applied -> the
plan's train job starts from the last run's adapter, succeeds, and leaves a new run."""

from __future__ import annotations

import json

import pytest

from backend.auth import Actor
from backend.drift import actions, triggers
from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.review import actions as review_actions
from backend.review.verdicts import Verdict
from backend.store import monitoring as mon
from backend.store import review as rv
from backend.store.runs import get_run, list_runs
from tests.integration.test_monitoring_quality import train
from tests.integration.test_train_job import fields, losses, write_data
from tests.unit.test_monitoring import FAST, ingest, jsonl, rules, seed_reference, shell, submit

pytestmark = pytest.mark.slow


def _lora(adapter):
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def test_shifted_batch_to_retrained_run_from_one_approval(
    store, ws, tiny_model_dir, run_inline, tmp_path, monkeypatch
):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # jobs run inline
    # a run trained briefly on the tiny model (held-out split: the quality baseline)
    data = write_data(tmp_path / "data.jsonl")
    first = train(store, ws, fields(tiny_model_dir, data, max_steps=8, eval_split=0.25))
    assert run_inline(ws, first).state == "succeeded"
    ingest_all(store, ws)
    old_adapter = ws.runs / first / "adapter"
    assert mon.last_run(store)["id"] == first

    # a monitor on the reference dataset; a shifted batch with responses arrives
    seed_reference(store)
    mon.create_monitor(store, "prod", reference="support", config=FAST)
    batch = ingest(store, ws, jsonl(sample(30, seed=7, shifted=True)), "s.jsonl")
    assert batch["n_responses"] == 30

    sub = submit(store, ws)
    jobs = [sub["job_id"], *sub.get("quality_jobs", []), *sub.get("judge_jobs", [])]
    assert sub.get("quality_run") == first and sub.get("quality_jobs"), sub  # scored under it
    for job in jobs:
        status = run_inline(ws, job)
        assert status.state == "succeeded", (job, status.error)
    ingest_all(store, ws)
    fired = rules(store, ws)
    verdicts = {r["method"]: r["verdict"] for r in mon.reports(store, check_id=sub["check_id"])}
    assert verdicts["vocabulary"] == "drift" and verdicts["length"] == "drift", verdicts
    assert len(fired) == 1 and len(mon.alerts(store)) == 1 and len(mon.plans(store)) == 1
    plan_id = fired[0]["plan_id"]
    assert mon.get_plan(store, plan_id)["state"] == "proposed"
    assert rules(store, ws) == []  # evaluated once

    # ONE approval: the score job under the newest run is queued
    lead = shell(store, ws, Actor("lead", "lead"))
    plan = actions.approve_plan(lead, plan_id, start_worker=False)
    review, train_step = plan["steps"]
    assert plan["state"] == "approved" and review["state"] == "queued", plan
    assert train_step["state"] == "waiting" and review["run_id"] == first
    _, score_spec = queue.read_spec(ws.job_dir(review["job_id"]))
    assert score_spec["adapter_path"] == str(old_adapter)
    assert run_inline(ws, review["job_id"]).state == "succeeded"
    ingest_all(store, ws)

    # the score job's end turns into a review batch of the least certain examples
    system = shell(store, ws, actions.SYSTEM)  # the ingestion loop's rules
    plan = triggers.advance_plan(system, plan_id)
    review = plan["steps"][0]
    assert review["state"] == "in review" and review["n_flagged"] == 20, review
    items = rv.batch_items(store, review["batch_id"])
    assert [i["reason"] for i in items].count("flagged") == 20  # plus the QC sample

    # a reviewer's verdicts, in-app: one correction, one rejection, the rest accepted
    fixed = "Open Settings, then Billing, and download the invoice."
    for i, item in enumerate(items):
        kind = {0: "correct", 1: "reject"}.get(i, "accept")
        review_actions.record_verdict(
            shell(store, ws),
            review["batch_id"],
            Verdict(
                example_id=item["example_id"],
                reviewer="ann",
                verdict=kind,
                corrected=fixed if kind == "correct" else None,
            ),
        )
    assert triggers.advance_plan(system, plan_id)["steps"][1]["state"] == "waiting"
    applied = review_actions.apply_batch(shell(store, ws), review["batch_id"])
    assert applied["counts"].get("corrected") == 1 and applied["counts"].get("rejected") == 1, (
        applied["counts"]
    )

    # applying the batch queues the plan's train step from the last run's adapter
    plan = triggers.advance_plan(system, plan_id)
    review, train_step = plan["steps"]
    assert review["state"] == "done" and train_step["state"] == "queued", plan["steps"]
    assert plan["state"] == "done"
    assert train_step["version_id"] == applied["version"]["id"]
    _, spec = queue.read_spec(ws.job_dir(train_step["job_id"]))
    assert queue.get(ws, train_step["job_id"]).submitted_by == "lead"  # whoever approved the plan
    assert spec["init_adapter"] == str(old_adapter)
    assert spec["base_model"] == str(tiny_model_dir) and spec["method"] == "sft"
    lines = [json.loads(x) for x in open(spec["data_path"]).read().splitlines()]
    n_window = sum(applied["counts"].values())  # the window's distinct pairs
    assert len(lines) == applied["version"]["n_examples"] == n_window - 1  # less the rejected
    assert any(m["content"] == fixed for x in lines for m in x["messages"])

    # the retrain runs to the end and leaves a new run with its own adapter
    status = run_inline(ws, train_step["job_id"])
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    new = get_run(store, train_step["job_id"])
    assert new["state"] == "succeeded" and new["dataset_version_id"] == applied["version"]["id"]
    assert new["config"]["init_adapter"] == str(old_adapter)  # the run records where it began
    assert [r["id"] for r in list_runs(store)] == [first, train_step["job_id"]]
    assert mon.last_run(store)["id"] == train_step["job_id"]
    new_adapter = ws.runs / train_step["job_id"] / "adapter"
    assert (new_adapter / "adapter_config.json").exists()
    before, after = _lora(old_adapter), _lora(new_adapter)
    assert set(before) == set(after)
    assert any(not before[k].equal(after[k]) for k in before)  # it trained further
    assert losses(ws, train_step["job_id"])  # and logged its loss
    assert mon.get_plan(store, plan_id)["state"] == "done"
