"""Quality signals from the model side on the tiny model: a check scores the window's responses
under the newest run against that run's held-out data (score jobs, baseline scored once per
run); responses like the training answers stay under the threshold, unfamiliar ones cross it
and fire exactly one alert and plan, and the plan's train step starts from the run's adapter."""

from __future__ import annotations

import json

import pytest

from backend.drift import plans
from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.store import monitoring as mon
from backend.store.datasets import add_version, create_dataset
from backend.train import actions as train_actions
from backend.train.config import SFTRunConfig, preflight
from tests.integration.test_train_job import ANSWERS, fields, write_data
from tests.unit.test_monitoring import ingest, rules, shell, submit

pytestmark = pytest.mark.slow

# vocabulary and length only (no embedding model); the prompts never drift in these tests
CFG = {
    "classifier": {"enabled": False},
    "mmd": {"enabled": False},
    "topics": {"enabled": False},
    "min_window": 10,
    "quality": {"margin": 0.02},
}  # the tiny model learns ~0.3 nats: a small margin
NOISE = [
    "Purple elephants negotiate quarterly with seventeen saxophones underwater.",
    "Zinc marmalade orbits the cathedral whenever the violin forgets Tuesday.",
    "Gravel symphonies refund the lighthouse for every unopened umbrella.",
    "Velvet tractors annotate volcanoes during the accordion's lunch break.",
]


def window(answers, day, n=24):
    return "".join(
        json.dumps(
            {
                "prompt": f"Question {i % 4}: how do I do this?",
                "response": answers[i % 4],
                "timestamp": f"2026-06-{day:02d}T{i % 24:02d}:00:00",
            }
        )
        + "\n"
        for i in range(n)
    ).encode()


def check(store, ws, run_inline):
    sub = submit(store, ws)
    assert "job_id" in sub, sub
    for job in [sub["job_id"], *sub.get("quality_jobs", [])]:
        status = run_inline(ws, job)
        assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    return sub, rules(store, ws)


def train(store, ws, run_fields) -> str:
    """A training run queued through the training action (its jobs run inline here)."""
    return train_actions.start_run(shell(store, ws), run_fields)


def quality_reports(store, sub):
    return {
        r["method"]: r
        for r in mon.reports(store, check_id=sub["check_id"])
        if r["method"].startswith("quality_")
    }


def test_quality_crossing_fires_one_plan(
    store, ws, tiny_model_dir, run_inline, tmp_path, monkeypatch
):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # jobs run inline
    data = write_data(tmp_path / "data.jsonl")
    create_dataset(store, "support")
    add_version(store, "support", [json.loads(line) for line in data.read_text().splitlines()])
    mon.create_monitor(store, "prod", reference="support", config=CFG)

    ingest(store, ws, window(ANSWERS, 1), "early.jsonl")
    sub, fired = check(store, ws, run_inline)  # no run yet: drift only, with the reason
    assert "no trained run" in sub["quality"] and not sub.get("quality_jobs") and not fired

    run_id = train(
        store, ws, fields(tiny_model_dir, data, max_steps=24, eval_split=0.25, learning_rate=2e-2)
    )
    assert run_inline(ws, run_id).state == "succeeded"
    ingest_all(store, ws)

    ingest(store, ws, window(ANSWERS, 2), "same.jsonl")
    sub, fired = check(store, ws, run_inline)
    assert len(sub["quality_jobs"]) == 2 and sub["quality_run"] == run_id  # baseline + window
    same = quality_reports(store, sub)
    assert set(same) == {"quality_nll", "quality_entropy"}
    nll = same["quality_nll"]
    assert nll["details"]["baseline_source"] == "held-out" and nll["n_reference"] == 6
    assert nll["threshold"] == pytest.approx(nll["details"]["training_mean"] * 1.02)
    assert nll["verdict"] == "ok" and fired == [], (nll, fired)
    assert {
        r["method"]: r["verdict"]
        for r in mon.reports(store, check_id=sub["check_id"])
        if not r["method"].startswith("quality_")
    } == {"vocabulary": "ok", "length": "ok"}

    for day in (3, 4):  # unfamiliar answers to the same prompts, twice: one crossing
        ingest(store, ws, window(NOISE, day), f"noise{day}.jsonl")
        sub, fired = check(store, ws, run_inline)
        assert len(sub["quality_jobs"]) == 1  # the run's baseline is scored once
        rep = quality_reports(store, sub)["quality_nll"]
        assert rep["verdict"] == "drift" and rep["statistic"] > rep["threshold"], (
            rep["statistic"],
            rep["threshold"],
            nll["statistic"],
        )
        assert rep["details"]["training_mean"] == nll["details"]["training_mean"]
        assert len(fired) == (1 if day == 3 else 0)
    assert len(mon.plans(store)) == 1 and mon.alerts(store)[0]["n_checks"] == 2
    assert "quality_nll" in mon.alerts(store)[0]["methods"]

    # the plan's train step continues the run's adapter on the reviewed window
    plan = mon.plans(store)[0]
    version = add_version(
        store, "support", [json.loads(line) for line in data.read_text().splitlines()][:8]
    )
    spec = plans.train_spec(store, ws, shell(store, ws).settings, plan, version)
    assert spec["init_adapter"] == str(ws.runs / run_id / "adapter")
    assert spec["base_model"] == str(tiny_model_dir) and spec["method"] == "sft"
    preflight(SFTRunConfig(**spec))  # the adapter folder and its base are accepted
