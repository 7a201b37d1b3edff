"""Monitors end to end on a real store and real job folders, through the monitoring actions:
ingest, drift job, trigger rules (exactly one plan per crossing), approval queueing the review
scoring and then the training."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor
from backend.config import Settings
from backend.drift import actions, triggers, watch
from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.jobs.kinds import KINDS
from backend.store import monitoring as mon
from backend.store import production
from backend.store.datasets import add_version, create_dataset

# vocabulary + length only: no embedding model, so a check runs in about a second
FAST = {
    "classifier": {"enabled": False},
    "mmd": {"enabled": False},
    "topics": {"enabled": False},
    "min_window": 10,
}


def seed_reference(store, n=120):
    create_dataset(store, "support")
    add_version(
        store,
        "support",
        [
            {
                "messages": [
                    {"role": "user", "content": r["text"]},
                    {"role": "assistant", "content": f"Here is how: step {i}."},
                ],
                "topic": r["topic"],
            }
            for i, r in enumerate(sample(n, seed=11))
        ],
    )


def jsonl(rows, responses=True):
    return "".join(
        json.dumps(
            {
                "prompt": r["text"],
                **({"response": "We will look into it."} if responses else {}),
                "timestamp": f"2026-05-0{1 + i % 5}T10:00:00",
            }
        )
        + "\n"
        for i, r in enumerate(rows)
    ).encode()


def shell(store, ws, actor: Actor | None = None) -> Ctx:
    """An action context on this test's store (actor None: the trusted shell)."""
    return Ctx(store, ws, Settings(), actor)


def ingest(store, ws, data, name, monitor=None):
    return actions.ingest(shell(store, ws), monitor, data, name)


def submit(store, ws, monitor="prod", **kw):
    """Queue a check without starting a worker (the test runs its jobs in-process)."""
    return actions.run_check(shell(store, ws), monitor, start_worker=False, **kw)


def rules(store, ws):
    """The trigger rules, as the ingestion loop applies them."""
    return actions.apply_rules(shell(store, ws, actions.SYSTEM))


def run_check(store, ws, run_inline, monitor="prod"):
    sub = submit(store, ws, monitor)
    assert "job_id" in sub, sub
    assert run_inline(ws, sub["job_id"]).state == "succeeded"
    ingest_all(store, ws)
    return sub, rules(store, ws)


@pytest.fixture
def monitor(store, ws):
    seed_reference(store)
    return actions.create_monitor(shell(store, ws), "prod", reference="support", config=FAST)


def test_ingest_parses_jsonl_csv_and_rejects_bad_rows(store, ws, monitor, tmp_path):
    b = ingest(store, ws, jsonl(sample(5, seed=1)), "a.jsonl")
    assert b["n_records"] == 5 and b["n_responses"] == 5
    assert str(b["window_start"]) == "2026-05-01 10:00:00"
    assert str(b["window_end"]) == "2026-05-05 10:00:00"
    csv = b"question,answer\nhow do I pay?,like this\nwhere is my board?,\n"
    b2 = ingest(store, ws, csv, "b.csv", monitor="prod")
    assert (b2["n_records"], b2["n_responses"]) == (2, 1)
    with pytest.raises(AlreadyDone, match="already ingested"):
        ingest(store, ws, csv, "again.csv")
    with pytest.raises(ValueError, match=r"c.jsonl:2: no prompt"):
        ingest(store, ws, b'{"prompt": "ok"}\n{"response": "x"}\n', "c.jsonl")
    with pytest.raises(ValueError, match=r"d.jsonl:1: not valid JSON"):
        ingest(store, ws, b"{nope\n", "d.jsonl")
    assert len(production.batches(store)) == 2  # the bad files stored nothing
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "x.jsonl").write_bytes(jsonl(sample(3, seed=9)))
    (folder / "bad.csv").write_text("nothing,here\n1,2\n")
    new, errors = watch.scan_folder(shell(store, ws), monitor["id"], folder)
    assert len(new) == 1 and len(errors) == 1 and "bad.csv:2" in errors[0]
    assert watch.scan_folder(shell(store, ws), monitor["id"], folder)[0] == []  # seen before


def test_small_window_waits(store, ws, monitor):
    ingest(store, ws, jsonl(sample(4, seed=1)), "a.jsonl")
    assert "skipped" in submit(store, ws)


def test_a_trigger_creates_exactly_one_plan(store, ws, monitor, run_inline):
    ingest(store, ws, jsonl(sample(60, seed=2)), "same.jsonl")
    _, fired = run_check(store, ws, run_inline)
    assert fired == [] and mon.plans(store) == []
    reps = mon.reports(store, monitor["id"])
    assert {r["method"]: r["verdict"] for r in reps} == {"vocabulary": "ok", "length": "ok"}
    assert str(reps[0]["window_start"]) == "2026-05-01 10:00:00"

    for seed in (3, 4):  # two drifting checks in a row: one crossing
        ingest(store, ws, jsonl(sample(60, seed=seed, shifted=True)), f"{seed}")
        _, fired = run_check(store, ws, run_inline)
        assert len(fired) == (1 if seed == 3 else 0)
    assert len(mon.plans(store)) == 1 and len(mon.alerts(store)) == 1
    alert = mon.alerts(store)[0]
    assert alert["state"] == "open" and alert["n_checks"] == 2
    assert set(alert["methods"]) == {"vocabulary", "length"}
    assert mon.get_monitor(store, "prod")["state"] == "alerting"
    assert mon.plans(store)[0]["state"] == "proposed"

    ingest(store, ws, jsonl(sample(60, seed=5)), "calm.jsonl")
    run_check(store, ws, run_inline)
    assert mon.alerts(store)[0]["state"] == "resolved"
    ingest(store, ws, jsonl(sample(60, seed=6, shifted=True)), "again.jsonl")
    _, fired = run_check(store, ws, run_inline)
    assert len(fired) == 1 and len(mon.plans(store)) == 2  # a second crossing, a second plan
    # a check evaluated once is never evaluated again
    assert rules(store, ws) == [] and triggers.evaluate(store) == []


def test_approved_plan_queues_review_then_training(
    store, ws, monitor, run_inline, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # jobs run inline
    ingest(store, ws, jsonl(sample(30, seed=7, shifted=True)), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    lead = shell(store, ws, Actor("lead", "lead"))
    plan = actions.approve_plan(lead, fired[0]["plan_id"], start_worker=False)
    review, train = plan["steps"]
    assert plan["state"] == "approved" and plan["approved_by"] == "lead"
    assert review["state"] == "queued" and train["state"] == "waiting"
    status = queue.get(ws, review["job_id"])
    assert (status.kind, status.state) == ("score", "queued")
    with pytest.raises(AlreadyDone, match="already approved"):
        actions.approve_plan(shell(store, ws), plan["id"], start_worker=False)
    with pytest.raises(ValueError, match="only a proposed plan can be rejected"):
        actions.reject_plan(shell(store, ws), plan["id"])

    assert run_inline(ws, review["job_id"]).state == "succeeded"
    ingest_all(store, ws)
    plan = triggers.advance(shell(store, ws, actions.SYSTEM))[0]
    review = plan["steps"][0]
    assert review["state"] == "in review" and review["n_flagged"] == 20

    from backend.review import actions as review_actions
    from backend.review.verdicts import Verdict
    from backend.store import review as rv

    for item in rv.batch_items(store, review["batch_id"]):
        review_actions.record_verdict(
            shell(store, ws),
            review["batch_id"],
            Verdict(example_id=item["example_id"], reviewer="ann", verdict="accept"),
        )
    applied = review_actions.apply_batch(shell(store, ws), review["batch_id"])
    plan = triggers.advance(shell(store, ws, actions.SYSTEM))[0]
    train = plan["steps"][1]
    assert plan["state"] == "done" and train["state"] == "queued"
    assert train["version_id"] == applied["version"]["id"]
    status = queue.get(ws, train["job_id"])
    assert (status.kind, status.state) == ("train", "queued")
    assert status.submitted_by == "lead"  # on behalf of whoever approved the plan
    _, spec = queue.read_spec(ws.job_dir(train["job_id"]))
    assert spec["dataset_version_id"] == applied["version"]["id"]
    lines = open(spec["data_path"]).read().splitlines()
    assert len(lines) == applied["version"]["n_examples"] >= 20


def test_unregistered_kind_blocks_the_step(store, ws, monitor, run_inline, monkeypatch):
    monkeypatch.delitem(KINDS, "train")
    actions.set_config(shell(store, ws), "prod", {**FAST, "auto_approve": True})
    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True), responses=False), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    plan = mon.get_plan(store, fired[0]["plan_id"])
    assert plan["state"] == "approved" and plan["auto_approved"]
    review, train = plan["steps"]
    assert review["state"] == "blocked" and "no responses" in review["reason"]
    assert train["state"] == "blocked" and "`train` job kind is not registered" in train["reason"]
    assert plan["approved_by"] == "auto-approve"


def test_cli_create_ingest_check(store, ws, tmp_path):
    from backend.cli import app

    seed_reference(store)
    store.close()  # the CLI opens the database itself
    runner = CliRunner()
    r = runner.invoke(app, ["monitor", "create", "prod", "--reference", "support", "--json"])
    assert r.exit_code == 0, r.output
    path = tmp_path / "calm.jsonl"
    path.write_bytes(jsonl(sample(40, seed=2)))
    r = runner.invoke(app, ["monitor", "ingest", str(path)])
    assert r.exit_code == 0 and "40 prompts" in r.output, r.output
    r = runner.invoke(app, ["monitor", "ingest", str(path)])
    assert r.exit_code == 1 and "already ingested" in r.output
    r = runner.invoke(app, ["monitor", "ingest", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 1 and "cannot read" in r.output
    r = runner.invoke(app, ["monitor", "check", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["alerts"] == [] and len(out["checks"][0]["reports"]) == 5
