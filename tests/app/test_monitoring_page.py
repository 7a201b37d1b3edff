"""The Monitoring page: empty state, a monitor with reports drawn as charts, the terms that
moved, an alert, and a plan approved with one click."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.store import Store
from backend.store import monitoring as mon
from backend.store.audit import rows as audit_rows
from tests.unit.test_monitoring import FAST, ingest, jsonl, rules, seed_reference, submit

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "monitoring.py")


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_state(ws):
    at = run_page()
    assert any("No datasets yet" in i.value for i in at.info)
    assert [m.value for m in at.metric][:2] == ["0", "0"]


def test_reports_alert_and_one_click_approval(ws, run_inline):
    store = Store.open(ws.db_path)
    seed_reference(store)
    mon.create_monitor(store, "prod", reference="support", config=FAST)
    for name, rows in [("calm", sample(40, seed=2)), ("shift", sample(40, seed=3, shifted=True))]:
        ingest(store, ws, jsonl(rows), name)
        job = submit(store, ws)["job_id"]
        run_inline(ws, job)
        ingest_all(store, ws)
        rules(store, ws)
    plan_id = mon.plans(store)[0]["id"]
    store.close()

    at = run_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Monitors"] == "1" and metrics["Open alerts"] == "1"
    assert metrics["Plans to approve"] == "1" and metrics["Prompts received"] == "80"
    assert len(at.get("plotly_chart")) == 2  # vocabulary and length over time
    terms = next(d.value for d in at.dataframe if "term" in d.value.columns)
    assert {"api", "webhook", "our"} & set(terms["term"])
    alerts = next(d.value for d in at.dataframe if "message" in d.value.columns)
    assert list(alerts["state"]) == ["open"]

    at.button(key=f"approve_{plan_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store.open(ws.db_path)
    plan = mon.get_plan(store, plan_id)
    audit = audit_rows(store, action="plan.").to_dict("records")
    store.close()
    assert plan["state"] == "approved"
    # no model in this workspace: the review step says so rather than failing
    assert plan["steps"][0]["state"] == "blocked" and "no model" in plan["steps"][0]["reason"]
    assert [(r["actor"], r["action"]) for r in audit] == [("local", "plan.approve")]


def test_drawing_the_page_runs_no_trigger_rule(ws, run_inline):
    """A finished, unevaluated drift check stays unevaluated however often the page draws:
    no alert, plan or audit row appears until the ingestion loop applies the rules."""
    store = Store.open(ws.db_path)
    seed_reference(store)
    mon.create_monitor(store, "prod", reference="support", config=FAST)
    ingest(store, ws, jsonl(sample(40, seed=3, shifted=True)), "shift")
    sub = submit(store, ws)
    run_inline(ws, sub["job_id"])
    ingest_all(store, ws)
    before = len(audit_rows(store))
    store.close()

    for _ in range(2):
        at = run_page()
        assert {m.label: m.value for m in at.metric}["Open alerts"] == "0"
    store = Store.open(ws.db_path)
    try:
        assert mon.alerts(store) == [] and mon.plans(store) == []
        assert [c["evaluated"] for c in mon.checks(store)] == [None]
        assert len(audit_rows(store)) == before
        assert len(rules(store, ws)) == 1  # the loop's rules see it, once
    finally:
        store.close()
