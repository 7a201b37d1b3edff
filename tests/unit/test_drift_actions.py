"""The monitoring actions (backend/drift/actions.py): a role without the permission changes
nothing and leaves no audit row; an allowed role leaves exactly one audit row naming it; and a
double submission (twice in a row, or two callers at once) gives one result and AlreadyDone.
The ingestion loop's pass applies the trigger rules and audits an auto-approval."""

from __future__ import annotations

import threading

import pytest

from backend.action import AlreadyDone
from backend.auth import Actor, PermissionDenied
from backend.drift import actions, checks, plans, triggers, watch
from backend.drift.synthetic import sample
from backend.ingest.loop import Ingestor
from backend.jobs import queue, worker
from backend.store import monitoring as mon
from backend.store import production
from backend.store.audit import rows as audit_rows
from backend.store.datasets import list_versions, resolve_version
from tests.unit.test_monitoring import FAST, jsonl, seed_reference, shell

LEAD = Actor("lee", "lead")
OTHER_LEAD = Actor("lou", "lead")
REFUSED = (Actor("rita", "reviewer"), Actor("ann", "analyst"))


def audit(store) -> list[dict]:
    return list(reversed(audit_rows(store).to_dict("records")))  # oldest first


def group_jobs(ws, group_id: str) -> list:
    return [j for j in queue.list_jobs(ws) if getattr(j, "group_id", None) == group_id]


@pytest.fixture
def monitor(store, ws):
    seed_reference(store)
    return actions.create_monitor(shell(store, ws), "prod", reference="support", config=FAST)


@pytest.fixture
def fake_model(ws):
    """A folder that passes for the demo model: the review step's score job can be queued
    (it never runs here)."""
    path = ws.models / "tiny-llama"
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


def _check(store, ws, monitor, seed: int) -> str:
    """A check over a new batch of 12 shifted prompts, recorded as submitted (no job)."""
    batch = actions.ingest(
        shell(store, ws), "prod", jsonl(sample(12, seed=seed, shifted=True)), f"w{seed}.jsonl"
    )
    check_id = mon.new_id("chk")
    assert mon.record_check(
        store,
        check_id=check_id,
        monitor_id=monitor["id"],
        job_id=None,
        reference_version_id=monitor["reference_version_id"],
        batch_ids=[batch["id"]],
        window_start=batch["window_start"],
        window_end=batch["window_end"],
        n_reference=120,
        n_window=batch["n_records"],
    )
    return check_id


def make_plan(store, ws, monitor, seed: int = 3) -> str:
    """A proposed plan, as the trigger rules leave one after a drifted check (no job run);
    an open alert is resolved by a clean check first."""
    if mon.get_monitor(store, monitor["id"])["state"] == "alerting":
        clean = _check(store, ws, monitor, seed + 1000)
        mon.apply_verdict(
            store, clean, monitor["id"], drifted=False, methods=[], message="", steps=[]
        )
    out = mon.apply_verdict(
        store,
        _check(store, ws, monitor, seed),
        monitor["id"],
        drifted=True,
        methods=["vocabulary"],
        message="prod: drift",
        steps=plans.proposed_steps(12, 12),
    )
    assert out["plan_id"], out
    return out["plan_id"]


def at_once(*calls):
    """Run the calls on threads released together; [(result, error)] in call order."""
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i, call):
        barrier.wait(timeout=10)
        try:
            out[i] = (call(), None)
        except Exception as exc:  # collected for the test to inspect
            out[i] = (None, exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def one_result_one_already_done(outcomes) -> object:
    results = [r for r, e in outcomes if e is None]
    errors = [e for r, e in outcomes if e is not None]
    assert len(results) == 1 and len(errors) == 1, outcomes
    assert isinstance(errors[0], AlreadyDone), repr(errors[0])
    assert "already" in str(errors[0])
    return results[0]


# (a) refusals --------------------------------------------------------------------------------


def test_each_action_refuses_a_role_without_the_permission(store, ws, monitor, tmp_path):
    plan_id = make_plan(store, ws, monitor)
    actions.ingest(shell(store, ws), "prod", jsonl(sample(12, seed=40)), "waiting.jsonl")
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "new.jsonl").write_bytes(jsonl(sample(3, seed=41)))
    calls = {
        "create monitor": lambda c: actions.create_monitor(c, "other", reference="support"),
        "settings": lambda c: actions.set_config(c, "prod", {**FAST, "min_window": 5}),
        "ingest": lambda c: actions.ingest(c, "prod", jsonl(sample(3, seed=42)), "x.jsonl"),
        "scan folder": lambda c: watch.scan_folder(c, "prod", folder),
        "check": lambda c: actions.run_check(c, "prod", start_worker=False),
        "approve": lambda c: actions.approve_plan(c, plan_id, start_worker=False),
        "reject": lambda c: actions.reject_plan(c, plan_id),
        "trigger rules": lambda c: actions.apply_rules(c),
    }
    before = (audit(store), production.batches(store), mon.checks(store))
    for who in REFUSED:
        for what, call in calls.items():
            with pytest.raises(PermissionDenied, match=f"{who.username} \\({who.role}\\)"):
                call(shell(store, ws, who))
                pytest.fail(f"{what} was allowed for a {who.role}")
    assert (audit(store), production.batches(store), mon.checks(store)) == before
    assert [m["name"] for m in mon.list_monitors(store)] == ["prod"]
    assert mon.get_monitor(store, "prod")["config"]["min_window"] == 10
    assert mon.get_plan(store, plan_id)["state"] == "proposed"
    assert queue.job_ids(ws) == []


# (b) one audit row naming the actor ----------------------------------------------------------


def test_each_action_writes_one_audit_row_naming_the_actor(store, ws, monitor, tmp_path):
    approve_id = make_plan(store, ws, monitor, 5)
    lead = shell(store, ws, LEAD)
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "new.jsonl").write_bytes(jsonl(sample(12, seed=44)))
    calls = {
        "monitor.create": lambda: actions.create_monitor(lead, "second", reference="support"),
        "monitor.settings": lambda: actions.set_config(lead, "second", {"min_window": 5}),
        "monitor.ingest": lambda: actions.ingest(lead, "prod", jsonl(sample(3, seed=43)), "x"),
        "monitor.check": lambda: actions.run_check(lead, "prod", start_worker=False),
        "plan.approve": lambda: actions.approve_plan(lead, approve_id, start_worker=False),
    }
    for name, call in calls.items():
        n = len(audit(store))
        if name == "monitor.check":  # the folder's batch makes the window big enough
            assert len(watch.scan_folder(lead, "prod", folder)[0]) == 1
            assert [(r["actor"], r["action"]) for r in audit(store)[n:]] == [
                ("lee", "monitor.ingest")
            ]
            n += 1
        call()
        assert [(r["actor"], r["action"]) for r in audit(store)[n:]] == [("lee", name)], name
    # rejecting: a fresh plan (the monitor's alert resolved first)
    reject_id = make_plan(store, ws, monitor, 7)
    n = len(audit(store))
    assert actions.reject_plan(lead, reject_id)["state"] == "rejected"
    assert [(r["actor"], r["action"], r["target"]) for r in audit(store)[n:]] == [
        ("lee", "plan.reject", reject_id)
    ]
    check = [r for r in audit(store) if r["action"] == "monitor.check"][0]
    assert '"kind": "drift"' in check["detail"] and '"n_window": 15' in check["detail"]


# (c) double submissions ----------------------------------------------------------------------


def test_approving_a_plan_twice_queues_one_job(store, ws, monitor, fake_model):
    plan_id = make_plan(store, ws, monitor)
    plan = actions.approve_plan(shell(store, ws, LEAD), plan_id, start_worker=False)
    assert plan["state"] == "approved" and plan["steps"][0]["state"] == "queued"
    with pytest.raises(AlreadyDone, match=f"plan {plan_id} is already approved"):
        actions.approve_plan(shell(store, ws, OTHER_LEAD), plan_id, start_worker=False)
    assert [j.kind for j in group_jobs(ws, plan_id)] == ["score"]
    assert [r["actor"] for r in audit(store) if r["action"] == "plan.approve"] == ["lee"]
    assert mon.get_plan(store, plan_id)["approved_by"] == "lee"
    with pytest.raises(ValueError, match="only a proposed plan can be rejected"):
        actions.reject_plan(shell(store, ws, LEAD), plan_id)


def test_two_leads_approving_at_once_queue_one_job(store, ws, monitor, fake_model):
    plan_id = make_plan(store, ws, monitor)
    plan = one_result_one_already_done(
        at_once(
            lambda: actions.approve_plan(shell(store, ws, LEAD), plan_id, start_worker=False),
            lambda: actions.approve_plan(shell(store, ws, OTHER_LEAD), plan_id, start_worker=False),
        )
    )
    assert plan["state"] == "approved"
    jobs = group_jobs(ws, plan_id)
    assert len(jobs) == 1 and jobs[0].id == plan["steps"][0]["job_id"]
    approvals = [r["actor"] for r in audit(store) if r["action"] == "plan.approve"]
    assert approvals == [plan["approved_by"]]
    assert not [p for p in ws.jobs.iterdir() if p.name.startswith(".")]  # no staged leftover
    assert len(list_versions(store, "prod-drift")) == 1  # the review data, stored once


def test_rejecting_twice_and_at_once(store, ws, monitor):
    plan_id = make_plan(store, ws, monitor)
    actions.reject_plan(shell(store, ws, LEAD), plan_id)
    with pytest.raises(AlreadyDone, match="already rejected"):
        actions.reject_plan(shell(store, ws, LEAD), plan_id)
    with pytest.raises(ValueError, match="only a proposed plan can be approved"):
        actions.approve_plan(shell(store, ws, LEAD), plan_id)
    other = make_plan(store, ws, monitor, 9)
    one_result_one_already_done(
        at_once(
            lambda: actions.reject_plan(shell(store, ws, LEAD), other),
            lambda: actions.reject_plan(shell(store, ws, OTHER_LEAD), other),
        )
    )
    assert len([r for r in audit(store) if r["action"] == "plan.reject"]) == 2


def test_the_same_file_twice_is_one_batch(store, ws, monitor):
    data = jsonl(sample(5, seed=1))
    actions.ingest(shell(store, ws, LEAD), "prod", data, "a.jsonl")
    with pytest.raises(AlreadyDone, match="already ingested"):
        actions.ingest(shell(store, ws, LEAD), "prod", data, "again.jsonl")
    other = jsonl(sample(5, seed=2))
    one_result_one_already_done(
        at_once(
            lambda: actions.ingest(shell(store, ws, LEAD), "prod", other, "b.jsonl"),
            lambda: actions.ingest(shell(store, ws, OTHER_LEAD), "prod", other, "b2.jsonl"),
        )
    )
    assert len(production.batches(store)) == 2
    assert len([r for r in audit(store) if r["action"] == "monitor.ingest"]) == 2


def test_two_checks_of_one_window_queue_one_drift_job(store, ws, monitor, monkeypatch):
    actions.ingest(shell(store, ws), "prod", jsonl(sample(12, seed=1)), "a.jsonl")
    prepare, barrier = checks.prepare, threading.Barrier(2)

    def both_read_the_window(*args, **kw):  # neither has taken the batches yet
        inputs = prepare(*args, **kw)
        barrier.wait(timeout=10)
        return inputs

    monkeypatch.setattr(checks, "prepare", both_read_the_window)
    sub = one_result_one_already_done(
        at_once(
            lambda: actions.run_check(shell(store, ws, LEAD), "prod", start_worker=False),
            lambda: actions.run_check(shell(store, ws, OTHER_LEAD), "prod", start_worker=False),
        )
    )
    assert [c["id"] for c in mon.checks(store)] == [sub["check_id"]]
    assert [j for j in queue.job_ids(ws)] == [sub["job_id"]]
    assert len([r for r in audit(store) if r["action"] == "monitor.check"]) == 1
    assert sorted(p.name for p in (ws.root / "monitoring").iterdir()) == [sub["check_id"]]
    monkeypatch.undo()
    assert "skipped" in actions.run_check(shell(store, ws, LEAD), "prod", start_worker=False)


def test_creating_a_monitor_twice(store, ws, monitor):
    with pytest.raises(AlreadyDone, match="already exists"):
        actions.create_monitor(shell(store, ws, LEAD), "prod", reference="support")
    one_result_one_already_done(
        at_once(
            lambda: actions.create_monitor(shell(store, ws, LEAD), "twin", reference="support"),
            lambda: actions.create_monitor(
                shell(store, ws, OTHER_LEAD), "twin", reference="support"
            ),
        )
    )
    assert [m["name"] for m in mon.list_monitors(store)] == ["prod", "twin"]


def test_the_train_step_is_queued_once(store, ws, monitor, tiny_model_dir, monkeypatch):
    """Two rule passes moving the same plan at once queue ONE training run."""
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)
    plan_id = make_plan(store, ws, monitor)
    plan = actions.approve_plan(shell(store, ws, LEAD), plan_id, start_worker=False)
    review = plan["steps"][0]
    assert review["state"] == "queued" and review["version_id"]
    version = resolve_version(store, review["dataset"], review["version_id"])
    mon.save_plan(
        store,
        plan_id,
        steps=[{**review, "state": "in review", "n_flagged": 0}, plan["steps"][1]],
    )
    system = shell(store, ws, actions.SYSTEM)
    outcomes = at_once(
        lambda: triggers._queue_train(system, plan_id, version),
        lambda: triggers._queue_train(system, plan_id, version),
    )
    assert [e for _, e in outcomes] == [None, None]
    assert sorted(r is None for r, _ in outcomes) == [False, True]  # one moved it
    plan = mon.get_plan(store, plan_id)
    train = plan["steps"][1]
    assert plan["state"] == "done" and train["state"] == "queued", train
    jobs = [j for j in group_jobs(ws, plan_id) if j.kind == "train"]
    assert [j.id for j in jobs] == [train["job_id"]] and jobs[0].submitted_by == "lee"
    trains = [r for r in audit(store) if r["action"] == "plan.train"]
    assert [(r["actor"], r["target"]) for r in trains] == [("lee", version["id"])]
    assert triggers.advance_plan(system, plan_id)["state"] == "done"  # nothing more
    assert len(group_jobs(ws, plan_id)) == 2  # the review's score job and the train job


# the ingestion loop applies the rules ----------------------------------------------------


def test_an_ingest_pass_applies_the_rules_and_audits_auto_approval(
    store, ws, monitor, run_inline, fake_model, monkeypatch
):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # the score job waits
    actions.set_config(shell(store, ws, LEAD), "prod", {**FAST, "auto_approve": True})
    actions.ingest(shell(store, ws), "prod", jsonl(sample(30, seed=8, shifted=True)), "s")
    sub = actions.run_check(shell(store, ws), "prod", start_worker=False)
    assert run_inline(ws, sub["job_id"]).state == "succeeded"
    assert mon.alerts(store) == []  # nothing ingested, nothing evaluated yet
    Ingestor(store, ws).tick()
    (plan,) = mon.plans(store)
    assert len(mon.alerts(store)) == 1
    assert plan["state"] == "approved" and plan["auto_approved"]
    assert plan["approved_by"] == "auto-approve"
    rows = [r for r in audit(store) if r["action"].startswith("plan.")]
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("auto-approve", "plan.approve", plan["id"])
    ]
    assert '"auto": true' in rows[0]["detail"]
    rules_rows = lambda: [r for r in audit(store) if r["action"].startswith(("plan.", "monitor."))]  # noqa: E731
    n = len(rules_rows())
    Ingestor(store, ws).tick()  # evaluated once: nothing new (the score job's launch is logged)
    assert len(mon.plans(store)) == 1 and len(rules_rows()) == n


def test_two_leads_acknowledging_or_resolving_at_once_give_one_result(store, ws, monitor):
    make_plan(store, ws, monitor)
    (alert,) = mon.alerts(store, state="open")
    acked = one_result_one_already_done(
        at_once(
            lambda: actions.acknowledge_alert(shell(store, ws, LEAD), alert["id"]),
            lambda: actions.acknowledge_alert(shell(store, ws, OTHER_LEAD), alert["id"]),
        )
    )
    assert mon.get_alert(store, alert["id"])["acknowledged_by"] == acked["acknowledged_by"]
    resolved = one_result_one_already_done(
        at_once(
            lambda: actions.resolve_alert(shell(store, ws, LEAD), alert["id"]),
            lambda: actions.resolve_alert(shell(store, ws, OTHER_LEAD), alert["id"]),
        )
    )
    assert resolved["state"] == "resolved" and resolved["resolved_by"] in ("lee", "lou")
    rows = [r for r in audit(store) if r["action"].startswith("monitor.alert_")]
    assert [r["action"] for r in rows] == ["monitor.alert_ack", "monitor.alert_resolve"]
