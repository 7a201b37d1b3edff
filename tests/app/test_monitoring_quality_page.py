"""The Monitoring page draws quality reports (window NLL / entropy against the training-time
line and threshold) apart from the drift charts, with the run and counts under them."""

from __future__ import annotations

from backend.drift.synthetic import sample
from backend.ingest.jobs import ingest_all
from backend.store import Store
from backend.store import drift_quality as dq
from backend.store import monitoring as mon
from tests.app.test_monitoring_page import run_page
from tests.unit.test_monitoring import FAST, ingest, jsonl, rules, seed_reference, submit


def test_quality_charts(ws, run_inline):
    store = Store.open(ws.db_path)
    seed_reference(store)
    mon.create_monitor(store, "prod", reference="support", config=FAST)
    ingest(store, ws, jsonl(sample(40, seed=2)), "calm")
    job = submit(store, ws)["job_id"]
    run_inline(ws, job)
    ingest_all(store, ws)
    check = mon.checks(store)[0]
    details = {
        "training_mean": 2.0,
        "margin": 0.25,
        "baseline_source": "held-out",
        "run_id": "train-abc",
        "model": "tiny-llama+train-abc",
    }
    dq.add_reports(
        store,
        check,
        [
            {
                "method": "quality_nll",
                "statistic": 3.1,
                "threshold": 2.5,
                "verdict": "drift",
                "n_reference": 6,
                "n_window": 40,
                "details": details,
            },
            {
                "method": "quality_entropy",
                "statistic": 4.0,
                "threshold": 5.0,
                "verdict": "ok",
                "n_reference": 6,
                "n_window": 40,
                "details": {**details, "training_mean": 4.0},
            },
        ],
    )
    fired = rules(store, ws)
    store.close()
    assert len(fired) == 1 and "quality_nll" in fired[0]["message"]

    at = run_page()
    charts = at.get("plotly_chart")
    assert len(charts) == 4  # vocabulary, length, then NLL and entropy against training time
    assert any(
        "Run train-abc scored on 40 window responses against 6 held-out" in c.value
        for c in at.caption
    )
