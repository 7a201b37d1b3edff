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
from backend.drift import actions, plans, triggers, watch
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


def fake_model_at(ws):
    """A folder that passes for the demo model, so a plan has a model to score with (its
    score job is queued, never run)."""
    path = ws.models / "tiny-llama"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


@pytest.fixture
def fake_model(ws):
    return fake_model_at(ws)


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


def test_a_trigger_creates_exactly_one_plan(store, ws, monitor, run_inline, fake_model):
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
    assert rules(store, ws) == [] and triggers.evaluate(store, ws, Settings()) == []


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


def test_a_plan_without_responses_is_not_proposed_the_alert_says_why(
    store, ws, monitor, run_inline, fake_model
):
    """Prompts without responses: nothing to review or train on, so no plan is offered (not
    even to an auto-approving monitor); the alert carries the reason and what would unblock
    it. The next drifting window that comes with responses proposes the plan."""
    actions.set_config(shell(store, ws), "prod", {**FAST, "auto_approve": True})
    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True), responses=False), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    assert [(f["plan_id"], f["monitor"]) for f in fired] == [(None, "prod")]
    assert "without responses" in fired[0]["no_plan"] and "`response` field" in fired[0]["unblock"]
    assert mon.plans(store) == []
    (alert,) = mon.alerts(store)
    assert alert["state"] == "open" and alert["plan_id"] is None
    assert alert["no_plan_reason"] == plans.NO_RESPONSES[0]
    assert alert["no_plan_unblock"] == plans.NO_RESPONSES[1]
    assert mon.summary(store)["plans_waiting"] == 0

    ingest(store, ws, jsonl(sample(30, seed=9, shifted=True)), "answered.jsonl")
    _, fired = run_check(store, ws, run_inline)  # still drifting, now with responses
    (plan,) = mon.plans(store)
    assert fired[0]["plan_id"] == plan["id"] and plan["alert_id"] == alert["id"]
    assert plan["state"] == "approved" and plan["approved_by"] == "auto-approve"
    assert plan["steps"][0]["state"] == "queued"  # it runs: the review's score job
    (alert,) = mon.alerts(store)
    assert alert["plan_id"] == plan["id"] and alert["no_plan_reason"] is None


@pytest.mark.parametrize("missing", ["model", "train"])
def test_a_plan_that_cannot_run_names_what_would_unblock_it(
    store, ws, monitor, run_inline, monkeypatch, missing
):
    if missing == "train":
        fake_model_at(ws)
        monkeypatch.delitem(KINDS, "train")
    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True)), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    assert fired[0]["plan_id"] is None and mon.plans(store) == []
    (alert,) = mon.alerts(store)
    want = plans.NO_MODEL if missing == "model" else plans.unregistered("train")
    assert (alert["no_plan_reason"], alert["no_plan_unblock"]) == want


def test_unregistered_kind_blocks_a_plan_proposed_before(
    store, ws, monitor, run_inline, fake_model, monkeypatch
):
    """A plan proposed while it could run, approved after the `train` kind went away: the
    approval still blocks the step and says why."""
    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True)), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    monkeypatch.delitem(KINDS, "train")
    plan = actions.approve_plan(shell(store, ws), fired[0]["plan_id"], start_worker=False)
    review, train = plan["steps"]
    assert review["state"] == "queued"
    assert train["state"] == "blocked" and "`train` job kind is not registered" in train["reason"]


def test_alerts_are_acknowledged_and_resolved_with_who_and_when(store, ws, monitor, run_inline):
    from backend.store.audit import rows as audit_rows

    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True), responses=False), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    alert_id = fired[0]["id"]
    lee, lou = Actor("lee", "lead"), Actor("lou", "lead")
    for refused in (Actor("ann", "analyst"), Actor("rita", "reviewer")):
        with pytest.raises(ValueError, match="may not"):
            actions.acknowledge_alert(shell(store, ws, refused), alert_id)
        with pytest.raises(ValueError, match="may not"):
            actions.resolve_alert(shell(store, ws, refused), alert_id)
    a = actions.acknowledge_alert(shell(store, ws, lee), alert_id)
    assert a["acknowledged_by"] == "lee" and a["acknowledged_at"] is not None
    assert a["state"] == "open"
    with pytest.raises(AlreadyDone, match="already acknowledged by lee"):
        actions.acknowledge_alert(shell(store, ws, lou), alert_id)
    a = actions.resolve_alert(shell(store, ws, lou), alert_id)
    assert (a["state"], a["resolved_by"]) == ("resolved", "lou") and a["resolved"] is not None
    assert mon.get_monitor(store, "prod")["state"] == "ok"
    with pytest.raises(AlreadyDone, match="already resolved by lou"):
        actions.resolve_alert(shell(store, ws, lee), alert_id)
    with pytest.raises(ValueError, match="no alert 'nope'"):
        actions.resolve_alert(shell(store, ws, lee), "nope")
    rows = audit_rows(store, action="monitor.alert").to_dict("records")
    assert sorted((r["actor"], r["action"], r["target"]) for r in rows) == [
        ("lee", "monitor.alert_ack", alert_id),
        ("lou", "monitor.alert_resolve", alert_id),
    ]
    # the monitor is ok again: the next drifting window is a new crossing, a new alert
    ingest(store, ws, jsonl(sample(30, seed=10, shifted=True), responses=False), "t.jsonl")
    _, fired = run_check(store, ws, run_inline)
    assert len(fired) == 1 and fired[0]["id"] != alert_id
    assert sorted(a["state"] for a in mon.alerts(store)) == ["open", "resolved"]


def test_cli_alerts_ack_and_resolve(store, ws, monitor, run_inline):
    from backend.cli import app

    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True), responses=False), "s.jsonl")
    _, fired = run_check(store, ws, run_inline)
    alert_id = fired[0]["id"]
    store.close()  # the CLI opens the database itself
    runner = CliRunner()
    r = runner.invoke(app, ["monitor", "alerts"])
    assert r.exit_code == 0 and alert_id in r.output and "not acknowledged" in r.output
    assert "no plan: the drifted prompts came without responses" in r.output
    r = runner.invoke(app, ["monitor", "ack", alert_id, "--actor", "lee"])
    assert r.exit_code == 2  # no free-text actor: the command acts as the shell user
    r = runner.invoke(app, ["monitor", "ack", alert_id])
    assert r.exit_code == 0 and f"alert {alert_id} acknowledged by shell at" in r.output, r.output
    r = runner.invoke(app, ["monitor", "ack", alert_id])
    assert r.exit_code == 0 and "already acknowledged by shell" in r.output, r.output
    r = runner.invoke(app, ["monitor", "resolve", alert_id])
    assert r.exit_code == 0 and "resolved by shell at" in r.output, r.output
    r = runner.invoke(app, ["monitor", "resolve", alert_id])
    assert r.exit_code == 0 and "already resolved" in r.output
    r = runner.invoke(app, ["monitor", "alerts", "--all", "--json"])
    (row,) = json.loads(r.output)
    assert (row["state"], row["acknowledged_by"], row["resolved_by"]) == (
        "resolved",
        "shell",
        "shell",
    )
    r = runner.invoke(app, ["monitor", "resolve", "alert-missing"])
    assert r.exit_code == 1 and "no alert 'alert-missing'" in r.output


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


def test_the_rules_redraw_the_drift_views_when_they_change_something(
    store, ws, monitor, run_inline
):
    """A crossing written by the trigger rules moves the `drift` counter the Monitoring page
    follows (after the ingest pass that already moved it for the reports), so the alert shows
    without a reload; a pass that changes nothing moves nothing; an acknowledgement does."""
    from backend.changes import CHANGES

    def drift() -> int:
        return CHANGES.snapshot(("drift",))[0]

    ingest(store, ws, jsonl(sample(30, seed=8, shifted=True), responses=False), "s.jsonl")
    sub = submit(store, ws)
    run_inline(ws, sub["job_id"])
    ingest_all(store, ws)
    before = drift()
    (fired,) = rules(store, ws)
    assert drift() > before
    before = drift()
    assert rules(store, ws) == [] and drift() == before
    actions.acknowledge_alert(shell(store, ws), fired["id"])
    assert drift() > before
