"""The Monitoring page is live: with the page open on its Drift tab (from the URL), a file
dropped in the monitor's watched folder is ingested by the dashboard, a drift check job runs in
the worker, and when it ends the report, and then the alert, appear with no reload and no click.
Prints the seconds from the job's end to the view showing its report."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    from backend.drift.synthetic import sample
    from backend.store import Store
    from backend.store import monitoring as mon
    from backend.workspace import Workspace
    from tests.unit.test_monitoring import FAST, jsonl, seed_reference

    ws = Workspace(tmp_path_factory.mktemp("e2e-monitoring") / "workspace").ensure()
    (ws.models / "tiny-llama").mkdir()  # no demo-model job: the worker is free for the check
    inbox = ws.root / "incoming"
    inbox.mkdir()
    store = Store.open(ws.db_path)
    try:
        seed_reference(store)
        mon.create_monitor(store, "prod", reference="support", config=FAST, watch_dir=str(inbox))
    finally:
        store.close()
    server = Dashboard(ws.root, env_extra={"FTSTUDIO_WATCH_INTERVAL_S": "1"})
    yield server, ws, inbox, jsonl(sample(40, seed=3, shifted=True), responses=False)
    server.stop()


def _drift_job(ws) -> dict | None:
    for path in ws.root.glob("jobs/*/status.json"):
        status = json.loads(path.read_text())
        if status.get("kind") == "drift":
            return status
    return None


def test_a_drift_check_shows_its_report_without_a_reload(watched, page):
    server, ws, inbox, batch = watched
    page.goto(server.url + "/monitoring?monitoring_tab=Drift")
    expect(page.get_by_role("heading", name="Monitoring")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("No drift reports yet")).to_be_visible(timeout=30_000)
    page.evaluate("window.__sameDocument = true")  # a reload would drop this

    (inbox / "tuesday.jsonl").write_bytes(batch)  # the dashboard's folder watch takes it
    report = page.get_by_text("Terms that moved most (latest check)")
    deadline = time.time() + 240
    while time.time() < deadline and not report.count():
        time.sleep(0.1)
    seen = time.time()
    assert report.count(), "the drift report never appeared"
    job = _drift_job(ws)
    assert job and job["state"] == "succeeded" and job["finished"], job
    lag = seen - job["finished"]
    sys.stdout.write(f"\ndrift job end -> Monitoring view updated: {lag:.1f} s\n")
    assert page.evaluate("window.__sameDocument === true")  # no reload happened
    assert "monitoring_tab=Drift" in page.url  # still on the tab the URL named
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible(timeout=30_000)
    assert lag < 30, lag

    # the trigger rules open the alert after the same pass: its count follows, still no reload
    open_alerts = page.locator('[data-testid="stMetric"]').filter(has_text="Open alerts")
    expect(open_alerts).to_contain_text("1", timeout=30_000)
    page.get_by_role("tab", name="Alerts and retraining").click()
    expect(page.get_by_text("No retraining plan: the drifted prompts came without")).to_be_visible(
        timeout=30_000
    )
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Acknowledged by local at")).to_be_visible(timeout=30_000)
    assert "monitoring_tab=Alerts" in page.url  # the action kept the tab
    assert page.evaluate("window.__sameDocument === true")

    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text(re.compile(r"Alert \S+ resolved\."))).to_be_visible(timeout=30_000)
    expect(open_alerts).to_contain_text("0", timeout=30_000)
    assert "monitoring_tab=Alerts" in page.url
    assert page.evaluate("window.__sameDocument === true")
