"""The Monitoring page: empty state, a monitor with reports drawn as charts, the terms that
moved, an alert, and a plan approved with one click."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.store import Store
from backend.store import monitoring as mon
from backend.store.audit import rows as audit_rows
from tests.unit.test_monitoring import (
    FAST,
    fake_model_at,
    ingest,
    jsonl,
    rules,
    seed_reference,
    submit,
)

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


def test_reports_alert_and_one_click_approval(ws, run_inline, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)  # the job waits
    fake_model_at(ws)  # a model to score with: the plan can run, so it is proposed
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
    assert plan["state"] == "approved" and plan["approved_by"] == "local"
    assert plan["steps"][0]["state"] == "queued"  # the review's score job
    assert [(r["actor"], r["action"]) for r in audit] == [("local", "plan.approve")]
    assert any("Plan approved" in s.value for s in at.success)


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


LEE = ("lee", "lead")
ALERTS = "Alerts and retraining"
EVIL = "[click](http://evil.example) **bold**"


def lead_page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = LEE
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _alert_without_plan(ws, run_inline, name="prod") -> str:
    """A drifted window of prompts without responses: an alert, and no plan."""
    store = Store.open(ws.db_path)
    try:
        seed_reference(store)
        mon.create_monitor(store, name, reference="support", config=FAST)
        rows = jsonl(sample(40, seed=3, shifted=True), responses=False)
        ingest(store, ws, rows, "shift", monitor=name)
        run_inline(ws, submit(store, ws, monitor=name)["job_id"])
        ingest_all(store, ws)
        (fired,) = rules(store, ws)
        assert fired["plan_id"] is None
        return fired["id"]
    finally:
        store.close()


def _markdown_bodies(at: AppTest) -> list[str]:
    """Everything the page drew as markdown (where a link or an image could render)."""
    kinds = ("markdown", "caption", "success", "info", "warning", "error", "subheader", "title")
    return [e.value for kind in kinds for e in getattr(at, kind)]


def test_an_alert_without_a_plan_says_why_and_is_acknowledged_and_resolved(ws, run_inline):
    alert_id = _alert_without_plan(ws, run_inline)
    at = lead_page(monitoring_tab=ALERTS)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Open alerts"] == "1" and metrics["Plans to approve"] == "0"
    assert not [b for b in at.button if b.key and b.key.startswith("approve_")]
    (warning,) = [w.value for w in at.warning if "No retraining plan" in w.value]
    assert "came without responses" in warning
    assert "To unblock it: ingest production prompts together with their responses" in warning

    at.button(key=f"monitoring_ack_{alert_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["monitoring_tab"] == ALERTS  # the action kept the tab
    assert any(f"Alert {alert_id} acknowledged" in s.value for s in at.success)
    assert any("Acknowledged by lee at" in c.value for c in at.caption)
    assert at.button(key=f"monitoring_ack_{alert_id}").disabled

    # someone else resolves it meanwhile: this page's Resolve answers "already", as info
    store = Store.open(ws.db_path)
    try:
        from backend.action import Ctx
        from backend.auth import Actor
        from backend.config import Settings
        from backend.drift import actions

        actions.resolve_alert(Ctx(store, ws, Settings(), Actor("lou", "lead")), alert_id)
    finally:
        store.close()
    at.button(key=f"monitoring_resolve_{alert_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("already resolved by lou" in i.value for i in at.info), [i.value for i in at.info]
    assert at.session_state["monitoring_tab"] == ALERTS
    assert {m.label: m.value for m in at.metric}["Open alerts"] == "0"
    table = next(d.value for d in at.dataframe if "resolved_by" in d.value.columns)
    row = table.iloc[0]
    assert (row["state"], row["acknowledged_by"], row["resolved_by"]) == ("resolved", "lee", "lou")
    store = Store.open(ws.db_path)
    try:
        audit = audit_rows(store, action="monitor.alert").to_dict("records")
    finally:
        store.close()
    assert sorted((r["actor"], r["action"]) for r in audit) == [
        ("lee", "monitor.alert_ack"),
        ("lou", "monitor.alert_resolve"),
    ]


def test_tab_and_monitor_come_from_the_url_and_a_new_monitor_is_shown(ws, run_inline):
    _alert_without_plan(ws, run_inline, name="alpha")
    store = Store.open(ws.db_path)
    try:
        mon.create_monitor(store, "beta", reference="support", config=FAST)
    finally:
        store.close()
    at = lead_page(monitoring_tab="Drift", monitoring_monitor="alpha")
    assert at.session_state["monitoring_tab"] == "Drift"
    assert at.selectbox(key="monitoring_monitor").value == "alpha"
    assert len(at.get("plotly_chart")) == 2  # alpha has reports
    at.selectbox(key="monitoring_monitor").set_value("beta").run()
    assert any("no drift reports yet" in c.value for c in at.caption)
    assert at.session_state["monitoring_tab"] == "Drift"

    at = lead_page(monitoring_tab="Monitors")
    at.text_input(key="monitoring_new_name").set_value("gamma")
    at.button(key="FormSubmitter:new_monitor-Create monitor").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Monitor gamma created" in s.value for s in at.success)
    assert at.selectbox(key="monitoring_monitor").value == "gamma"  # the new one is shown
    assert at.session_state["monitoring_tab"] == "Monitors"
    at.text_input(key="monitoring_new_name").set_value("gamma")
    at.button(key="FormSubmitter:new_monitor-Create monitor").click().run()
    assert any("already exists" in i.value for i in at.info), [i.value for i in at.info]


def test_monitor_names_prompts_and_responses_are_drawn_as_text(ws, run_inline):
    _alert_without_plan(ws, run_inline, name=EVIL)
    store = Store.open(ws.db_path)
    try:
        evil_rows = b'{"prompt": "![img](http://evil.example/x.png) hi", "response": "<b>x</b>"}\n'
        ingest(store, ws, evil_rows, "evil.jsonl", monitor=EVIL)
    finally:
        store.close()
    for tab in ("Monitors", "Production data", "Drift", ALERTS):
        at = lead_page(monitoring_tab=tab)
        bodies = _markdown_bodies(at)
        assert not [b for b in bodies if "](http" in b or "<b>" in b], (tab, bodies)
        if tab == ALERTS:
            assert any("\\[click\\]" in b for b in bodies)  # the name, escaped
            assert any(EVIL in t.value for t in at.text)  # the alert's message, as text
        if tab == "Production data":
            prompts = next(d.value for d in at.dataframe if "prompt" in d.value.columns)
            assert prompts.iloc[0]["prompt"].startswith("![img](http")  # a table: plain text


def test_an_upload_over_the_limit_is_refused_by_name_without_storing(ws, run_inline, monkeypatch):
    from backend.drift import checks

    _alert_without_plan(ws, run_inline)
    monkeypatch.setattr(checks, "MAX_BATCH_BYTES", 2048)
    at = lead_page(monitoring_tab="Production data")
    big = jsonl(sample(40, seed=5))
    assert len(big) > 2048
    at.file_uploader(key="monitoring_upload").set_value(("big.jsonl", big, "application/json"))
    at.run()
    at.button(key=[b.key for b in at.button if b.label == "Ingest batch"][0]).click().run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = [e.value for e in at.error]
    assert "big.jsonl is over the 2 KiB limit for a production batch" in error
    assert {m.label: m.value for m in at.metric}["Prompts received"] == "40"  # nothing added
    assert at.session_state["monitoring_tab"] == "Production data"


def test_check_every_monitor_now_says_what_it_did_as_text(ws, run_inline, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda ws, **kw: False)
    _alert_without_plan(ws, run_inline, name=EVIL)
    at = lead_page(monitoring_tab="Production data")
    at.button(key=[b.key for b in at.button if b.label == "Check every monitor now"][0]).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(t.value.startswith(f"{EVIL}: skipped (0 new prompts") for t in at.text), [
        t.value for t in at.text
    ]
    assert at.session_state["monitoring_tab"] == "Production data"
