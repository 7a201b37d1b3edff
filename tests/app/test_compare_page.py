"""The Compare page on a seeded workspace: empty state; the runs table; selecting two runs
draws the curves chart, the side-by-side outputs (as text) and the config diff; CSV export;
runs of different kinds (method, dataset version) are never ranked together; the page
follows runs and jobs (live)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import worker
from backend.store import Store
from studio import state
from tests.support.seed_runs import run_id_for, seed_runs, train_spec, write_run

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

    picked = table["run_id"].tolist()[:2]
    at.multiselect(key="compare_runs").set_value(picked).run()
    assert not at.exception, [e.value for e in at.exception]
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
    at.text_input(key="compare_search").set_value("run0002").run()
    assert not at.exception
    assert at.dataframe[0].value["run_id"].str.endswith("run0002").all()
    assert len(at.dataframe[0].value) == 1
    button = at.get("download_button")[0]
    assert button.proto.label == "Download table (CSV)"


def seed_kinds(ws) -> dict[str, list[str]]:
    """Three kinds: SFT on tasklane-support (a sweep), DPO on prefs-a (a sweep), and SFT on
    billing (the newest)."""
    import time

    out: dict[str, list[str]] = {}
    now = time.time()
    plan = [
        ("SFT on tasklane-support", {}, "sweep-sft", 3),
        ("DPO on prefs-a", {"method": "dpo", "dataset": "prefs-a"}, "sweep-dpo", 2),
        ("SFT on billing", {"dataset": "billing"}, None, 2),
    ]
    n = 0
    for kind, overrides, group, count in plan:
        for i in range(count):
            spec = train_spec(2 if overrides.get("method") else i, max_steps=40, **overrides)
            if overrides.get("method") == "dpo":
                spec["seed"] = 100 + i
            run_id = run_id_for(n, prefix="k")
            write_run(ws, run_id, spec, steps=40, group_id=group, start=now - 3600 + n * 60)
            out.setdefault(kind, []).append(run_id)
            n += 1
    store = Store.open(ws.db_path)
    try:
        from backend.ingest.jobs import ingest_all

        assert not ingest_all(store, ws).errors
    finally:
        store.close()
    return out


def test_kinds_are_ranked_apart_and_best_says_at_what(ws):
    by_kind = seed_kinds(ws)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "live:runs,jobs" in at.session_state  # the page redraws when runs or jobs change
    kind = at.selectbox(key="compare_kind")
    # the newest kind first; "all kinds" keeps them apart
    assert kind.value == "SFT on billing"
    assert kind.options == [
        "SFT on billing",
        "DPO on prefs-a",
        "SFT on tasklane-support",
        "all kinds (kept apart)",
    ]
    assert len(at.dataframe[0].value) == 2  # only that kind's runs

    kind.set_value("SFT on tasklane-support").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert set(table["run_id"]) == set(by_kind["SFT on tasklane-support"])
    labels = [m.label for m in at.metric]
    assert "Lowest SFT eval loss on tasklane-support" in labels, labels

    # all kinds: one best per kind, each saying what it is best at; never one shared rank
    kind.set_value("all kinds (kept apart)").run()
    assert not at.exception, [e.value for e in at.exception]
    best = at.dataframe[0].value
    assert sorted(best["best_at"]) == [
        "lowest DPO eval loss on prefs-a",
        "lowest SFT eval loss on billing",
        "lowest SFT eval loss on tasklane-support",
    ]
    table = at.dataframe[1].value
    assert [k for k, _ in itertools.groupby(table["kind"])] == sorted(set(table["kind"]))

    # the sweep view shows one sweep (the newest by default), never a mix
    sweep = at.selectbox(key="compare_sweep")
    assert set(sweep.options) == {"sweep-sft", "sweep-dpo"}
    sweep.set_value("sweep-sft").run()
    assert not at.exception, [e.value for e in at.exception]
    ranked = at.dataframe[-1].value
    assert set(ranked["run_id"]) <= set(by_kind["SFT on tasklane-support"])
    assert any("lowest SFT eval loss on tasklane-support" in c.value for c in at.caption)
