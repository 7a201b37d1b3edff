"""The judge's agreement with people: Spearman and Kendall tau-b match scipy's on tied and
untied data; per rubric, the judge's scores are set against people's ratings (rated in the app
or imported from a Label Studio export), and a rating of an answer that does not exist, or off
the 1-10 scale, is refused."""

from __future__ import annotations

import json
import random

import pytest
from scipy import stats

from backend.auth import Actor, PermissionDenied
from backend.evaluate.actions import import_ratings, judge_agreement, rate_answer
from backend.evaluate.agreement import band, kendall_tau_b, spearman
from backend.evaluate.suites import SuiteError
from backend.store.evals import ingest_results, insert_suite


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed):
    rng = random.Random(seed)
    a = [rng.randint(1, 10) for _ in range(30)]  # ties on purpose
    b = [x + rng.randint(-3, 3) for x in a]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)


def test_bands():
    assert [band(s) for s in (1, 3, 4, 7, 8, 10)] == ["poor"] * 2 + ["fair"] * 2 + ["good"] * 2


def seed(store):
    rows = [{"prompt": f"q{i}", "criteria": {"rubric": "tone"} if i >= 4 else {}} for i in range(6)]
    judge = [9, 2, 6, 8, 3, 7]
    results = [
        {"suite_id": "faq-v1", "target": "run-a", "idx": i, "output": "x", "scores": {"judge": s}}
        for i, s in enumerate(judge)
    ]

    def write(cur):
        insert_suite(cur, "faq", rows, source="file:faq.jsonl", content_hash="h", actor="t")
        cur.execute(
            "INSERT INTO jobs (id, kind, spec, state, created) VALUES"
            " ('eval-1', 'eval', '{}', 'succeeded', now())"
        )
        ingest_results(cur, "eval-1", "".join(json.dumps(r) + "\n" for r in results).encode())

    store.write(write)


def test_agreement_per_rubric_from_in_app_and_imported_ratings(store, act, ws):
    seed(store)
    ann = act(Actor("ann", "analyst"))
    for idx, score in ((0, 10), (1, 1), (2, 5), (3, 7)):  # same order as the judge
        rate_answer(ann, "faq", "run-a", idx, score)
    export = ws.root / "ratings.jsonl"
    export.write_text(
        "".join(
            json.dumps({"target": "run-a", "idx": i, "rater": "bo", "score": s}) + "\n"
            for i, s in ((0, 8), (1, 3), (4, 9), (5, 2))
        )
    )
    assert import_ratings(act(), "faq", export)["n"] == 4
    by = {r["rubric"]: r for r in judge_agreement(store, "faq")}
    default = next(k for k in by if k != "tone")
    d = by[default]
    assert (d["n_answers"], d["n_ratings"]) == (4, 6)
    # mean human ratings 9, 2, 5, 7 rank the answers exactly as the judge's 9, 2, 6, 8
    assert d["spearman"] == pytest.approx(1.0) and d["kendall"] == pytest.approx(1.0)
    assert -1 <= d["kappa"] <= 1
    tone = by["tone"]
    assert tone["n_answers"] == 2 and tone["spearman"] is None  # too few to correlate

    with pytest.raises(SuiteError, match="no answer #9 of run-a"):
        rate_answer(ann, "faq", "run-a", 9, 5)
    with pytest.raises(SuiteError, match="rate from 1 to 10"):
        rate_answer(ann, "faq", "run-a", 0, 11)
    with pytest.raises(PermissionDenied):
        rate_answer(act(Actor("rev", "reviewer")), "faq", "run-a", 0, 5)
    export.write_text('{"target": "run-a", "idx": 0, "rater": "x"}\n')
    with pytest.raises(SuiteError, match="ratings.jsonl line 1"):
        import_ratings(act(), "faq", export)
