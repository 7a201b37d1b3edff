"""The Monitoring page: empty state, a monitor with reports drawn as charts, the terms that
moved, an alert, and a plan approved with one click."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.drift import checks, triggers
from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.store import Store
from backend.store import monitoring as mon
from tests.unit.test_monitoring import FAST, jsonl, seed_reference

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
        checks.ingest_bytes(store, None, jsonl(rows), name)
        job = checks.submit_check(store, ws, "prod")["job_id"]
        run_inline(ws, job)
        ingest_all(store, ws)
        triggers.evaluate(store, ws)
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
    store.close()
    assert plan["state"] == "approved"
    # no model in this workspace: the review step says so rather than failing
    assert plan["steps"][0]["state"] == "blocked" and "no model" in plan["steps"][0]["reason"]
