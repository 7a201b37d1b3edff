"""The Review page: empty state, histogram with the cut, creating a batch, the in-app queue
(accept / reject / correct into a new version) and the rounds chart."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.review import actions, stats
from backend.store import Store
from backend.store import review as rstore
from tests.support.seed_review import scored_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "review.py")


def _seed(ws, n: int = 12) -> list[str]:
    store = Store.open(ws.db_path)
    _, ids = scored_dataset(
        store,
        n=n,
        job_id="job-score-1",
        methods=("nll", "entropy"),
        score=lambda i: i / 3,
        answer="<b>a{i}</b>",
    )
    store.close()
    return ids


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_workspace_says_what_to_do(ws):
    at = _run()
    assert at.title[0].value == "Review"
    assert "No datasets yet" in at.info[0].value


def test_flag_review_here_and_apply(ws):
    ids = _seed(ws)
    at = _run()
    assert at.metric[0].value == "12"
    assert not any("Score the dataset first" in i.value for i in at.info)
    assert at.get("plotly_chart"), "the Flag tab draws the histogram"
    at.number_input(key="flag_value_top_k").set_value(3.0)
    [b for b in at.button if b.label == "Create review batch"][0].click()
    at.run()
    assert not at.exception
    store = Store.open(ws.db_path)
    try:
        batch = rstore.latest_batch(store, "support")
        items = rstore.batch_items(store, batch["id"])
    finally:
        store.close()
    st.cache_resource.clear()
    assert [i["example_id"] for i in items if i["reason"] == "flagged"] == ids[::-1][:3]

    at = _run()
    at.text_input(key="reviewer").set_value("ana")
    at.run()
    texts = [t.value for t in at.text]
    assert "<b>a11</b>" in texts  # model text shown as text, least certain first
    verdicts = ["reject", "correct", "accept"]
    for verdict in verdicts:
        radio = [r for r in at.radio if r.label == "Verdict"][0]
        radio.set_value(verdict)
        if verdict == "correct":
            [t for t in at.text_area if t.label.startswith("Corrected")][0].set_value("fixed")
        [b for b in at.button if b.label == "Submit and next"][0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    store = Store.open(ws.db_path)
    try:
        got = sorted(r["verdict"] for r in rstore.reviews(store, batch["id"]))
        assert got[:3] == ["accept", "correct", "reject"]
        applied = actions.apply_batch(Ctx(store, ws, Settings()), batch["id"])
        assert applied["counts"]["rejected"] == 1 and applied["counts"]["corrected"] == 1
        assert applied["version"]["n_examples"] == 11
        assert stats.rounds(store, "support")[0]["n_flagged"] == 3
    finally:
        store.close()
    st.cache_resource.clear()
    at = _run()
    assert at.get("plotly_chart") and len(at.get("plotly_chart")) >= 2  # histogram + rounds


def test_score_tab_defaults_to_the_newest_adapter_and_rounds_show_the_share_moving(ws):
    from backend.review.flagging import FlagPolicy
    from tests.unit.test_review_loop import seed_run

    ids = _seed(ws)
    adapter = ws.runs / "run-7" / "adapter"
    adapter.mkdir(parents=True)
    store = Store.open(ws.db_path)
    try:
        seed_run(store, "run-7", str(ws.models / "tiny-llama"), adapter)
        batch = actions.create_batch(
            Ctx(store, ws, Settings()),
            "support",
            "job-score-1",
            FlagPolicy(kind="top_k", value=4, qc_share=0),
        )
        ver = rstore.get_batch(store, batch["id"])["version_id"]
        rows = "".join(
            json.dumps(
                {
                    "example_id": e,
                    "method": "nll",
                    "model": "tiny+run-7",
                    "score": i / 6,
                    "version_id": ver,
                    "dataset": "support",
                    "round": 2,
                }
            )
            + "\n"
            for i, e in enumerate(ids[:8])
        )
        with store.transaction() as cur:
            rstore.insert_scores(cur, "job-score-2", rows.encode())
    finally:
        store.close()
    st.cache_resource.clear()
    at = _run()
    radio = at.radio(key="review_adapter")
    assert radio.label == "Score with" and radio.value == "newest"
    texts = [t.value for t in at.text]
    assert any("Scoring with adapter:" in t and "newest succeeded run run-7" in t for t in texts), (
        texts
    )
    radio.set_value("base").run()
    assert not at.exception
    assert any("base model only (base only was asked for)" in t.value for t in at.text)
    # round 1: 4 of 12 at or above the cut (score 8/3); round 2's re-score: none of 8 is
    moved = [m for m in at.metric if m.label.startswith("Above the first cut")]
    assert moved and moved[0].value == "0%" and moved[0].delta == "-33.3 pts"
