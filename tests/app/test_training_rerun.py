"""The Training page's Re-run panel: a re-run shows its largest per-step loss difference from
the original and the package versions that differed; the Re-run button goes through the
action and shows its refusal (here: the seeded run's data file is gone)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import worker
from backend.store import Store
from backend.store.lineage import record_rerun
from tests.support.seed_runs import seed_runs

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "training.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def test_rerun_panel_compares_curves_and_the_button_reports_a_refusal(ws):
    store = Store.open(ws.db_path)
    try:
        first, second = seed_runs(ws, 2, steps=5, store=store)
        store.write(lambda cur: record_rerun(cur, second, first, ["trl 1.15.0 -> 1.16.0"]))
        curves = {
            r: store.rows("SELECT step, value FROM metrics WHERE job_id = ? AND name = 'loss'", [r])
            for r in (first, second)
        }
    finally:
        store.close()
    a = {r["step"]: r["value"] for r in curves[first]}
    b = {r["step"]: r["value"] for r in curves[second]}
    expected = max(abs(a[s] - b[s]) for s in a.keys() & b.keys())

    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["tab"] = "run"
    at.session_state["training_run"] = second
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Re-run of"] == first
    assert metrics["Largest per-step loss difference"] == f"{expected:.2g}"
    assert any("trl 1.15.0 -> 1.16.0" in w.value for w in at.warning)

    at.button(key="training_rerun").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("dataset" in e.value for e in at.error), [e.value for e in at.error]
