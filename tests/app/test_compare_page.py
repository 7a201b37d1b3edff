"""The Compare page on a seeded workspace: empty state; the runs table; selecting two runs
draws the curves chart, the side-by-side outputs (as text) and the config diff; CSV export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import worker
from backend.store import Store
from studio import state
from tests.support.seed_runs import seed_runs

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "compare.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def seeded(ws, n=5) -> list[str]:
    store = Store.open(ws.db_path)
    try:
        return seed_runs(ws, n, steps=150, store=store)
    finally:
        store.close()


def test_empty_workspace_says_what_to_do(ws):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No training runs yet" in i.value for i in at.info)


def test_select_two_runs_shows_chart_outputs_and_diff(ws):
    ids = seeded(ws)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert len(table) == 5 and table["best_eval_loss"].is_monotonic_increasing
    assert not [
        c
        for c in at.get("plotly_chart")
        if "by step" in json.loads(c.proto.spec)["layout"]["title"]["text"]
    ]

    at.session_state[state.COMPARE_TABLE] = {"selection": {"rows": [0, 1], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    picked = table["run_id"].tolist()[:2]
    assert at.session_state[state.SELECTED_RUNS] == picked

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    curves = [s for s in specs if s["layout"]["title"]["text"].startswith("loss by step")]
    assert curves, [s["layout"]["title"]["text"] for s in specs]
    lines = [t for t in curves[0]["data"] if t.get("mode") == "lines"]
    assert len(lines) == 2
    assert curves[0]["layout"]["xaxis"]["title"]["text"] == "optimiser step (steps)"
    assert curves[0]["layout"]["yaxis"]["title"]["text"] == "loss (nats/token)"
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any(t.startswith("Sweep:") for t in titles)  # parallel coordinates
    assert any(t.startswith("best_eval_loss against") for t in titles)  # scatter

    # side by side: the same prompts, each run's answer shown verbatim as text
    codes = [c.value for c in at.code]
    for run_id in picked:
        assert any(v.startswith(f"[{run_id[-7:]}]") and "<b>as text</b>" in v for v in codes)
    assert any("How do I move a task" in t.value for t in at.text)
    # config diff of the two runs: the swept fields differ
    diff = at.dataframe[-1].value
    assert set(diff["field"]) >= {"learning_rate", "seed"}
    assert set(ids) >= set(picked)


def test_filters_and_csv_export(ws):
    seeded(ws, 4)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.text_input[0].set_value("run0002").run()
    assert not at.exception
    assert at.dataframe[0].value["run_id"].str.endswith("run0002").all()
    assert len(at.dataframe[0].value) == 1
    button = at.get("download_button")[0]
    assert button.proto.label == "Download table (CSV)"
