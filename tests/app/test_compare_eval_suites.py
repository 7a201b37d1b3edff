"""The Compare page's Eval suites section: the leaderboard shows each target's mean with its
95% interval, and the per-prompt view puts the prompt where two targets differ most first;
with no training runs at all the section still shows."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.store import Store
from backend.store.evals import ingest_results, insert_suite

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "compare.py")


def seed(ws) -> None:
    rows = [{"prompt": f"q{i}", "reference": f"r{i}", "criteria": {}} for i in range(3)]
    results = [
        {
            "suite_id": "faq-v1",
            "target": t,
            "idx": i,
            "output": f"{t} says {i}",
            "latency_s": 0.1,
            "completion_tokens": 5,
            "scores": {"exact": s},
        }
        for t, scores in (("base:tiny", [0.0, 0.0, 1.0]), ("run-a", [1.0, 0.0, 1.0]))
        for i, s in enumerate(scores)
    ]
    store = Store.open(ws.db_path)
    try:

        def write(cur):
            insert_suite(cur, "faq", rows, source="file:faq.jsonl", content_hash="h", actor="t")
            cur.execute(
                "INSERT INTO jobs (id, kind, spec, state, created) VALUES"
                " ('eval-1', 'eval', '{}', 'succeeded', now())"
            )
            ingest_results(cur, "eval-1", "".join(json.dumps(r) + "\n" for r in results).encode())

        store.write(write)
    finally:
        store.close()


def test_leaderboard_and_prompt_diff_without_training_runs(ws):
    seed(ws)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    board = at.dataframe[0].value
    mine = board[board["target"] == "run-a"].iloc[0]
    assert mine["mean"] == 2 / 3 and mine["n"] == 3
    assert mine["ci_low"] < mine["mean"] < mine["ci_high"]
    assert at.selectbox(key="compare_eval_a").value == "base:tiny"
    first = at.expander[0].label
    assert first.startswith("#0  difference +1"), first
    texts = [t.value for t in at.text]
    assert "q0" in texts


def test_rating_an_answer_in_the_app(ws):
    seed(ws)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.selectbox(key="compare_eval_rate_target").set_value("run-a")
    at.number_input(key="compare_eval_rate_idx").set_value(2)
    at.slider(key="compare_eval_rate_score").set_value(8)
    at.button[-1].click()  # the form's submit button
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Rated answer #2 of run-a: 8" in s.value for s in at.success)
    store = Store.open(ws.db_path)
    try:
        from backend.store.evals import ratings

        assert [
            (r["target"], r["idx"], r["score"], r["source"]) for r in ratings(store, "faq-v1")
        ] == [("run-a", 2, 8.0, "in-app")]
    finally:
        store.close()
