"""Flagging policies, verdict resolution, applying verdicts, and agreement statistics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.review import flagging as fl
from backend.review import verdicts as vd

SCORES = {f"e{i:02d}": float(i) for i in range(20)}


def test_top_k_threshold_percentile():
    top = fl.flag(SCORES, fl.FlagPolicy(kind="top_k", value=3))
    assert top == [("e19", 19.0), ("e18", 18.0), ("e17", 17.0)]
    thr = fl.flag(SCORES, fl.FlagPolicy(kind="threshold", value=17.5))
    assert [i for i, _ in thr] == ["e19", "e18"]
    pct = fl.flag(SCORES, fl.FlagPolicy(kind="percentile", value=90))
    assert [i for i, _ in pct] == ["e19", "e18"]  # 90th percentile of 0..19 is 17.1
    assert fl.cut_value(SCORES, fl.FlagPolicy(kind="percentile", value=90)) == pytest.approx(17.1)
    assert fl.cut_value(SCORES, fl.FlagPolicy(kind="top_k", value=3)) == 17.0


def test_ties_break_by_id_and_qc_comes_from_the_rest():
    tied = {"b": 1.0, "a": 1.0, "c": 0.5}
    assert fl.flag(tied, fl.FlagPolicy(kind="top_k", value=1)) == [("a", 1.0)]
    ids = sorted(SCORES)
    qc = fl.qc_extra(ids, {"e19"}, 0.05, seed="x")
    assert len(qc) == 1 and "e19" not in qc
    assert qc == fl.qc_extra(ids, {"e19"}, 0.05, seed="x")
    assert fl.qc_extra(ids, set(), 0.0) == []


def test_bad_policies_are_refused():
    with pytest.raises(ValidationError, match="whole number"):
        fl.FlagPolicy(kind="top_k", value=2.5)
    with pytest.raises(ValidationError, match="0-100"):
        fl.FlagPolicy(kind="percentile", value=120)
    with pytest.raises(ValidationError, match="5% and 10%"):
        fl.FlagPolicy(qc_share=0.02)


def test_resolve_majority_and_cautious_ties():
    v = [{"verdict": "accept", "reviewer": "a"}, {"verdict": "reject", "reviewer": "b"}]
    assert vd.resolve(v)["verdict"] == "reject"
    v.append({"verdict": "accept", "reviewer": "c"})
    assert vd.resolve(v) == {"verdict": "accept", "reviewers": ["a", "b", "c"]}
    fix = [
        {"verdict": "correct", "reviewer": "a", "corrected": "old", "updated": "1"},
        {"verdict": "correct", "reviewer": "b", "corrected": "new", "updated": "2"},
    ]
    assert vd.resolve(fix)["corrected"] == "new"


def test_apply_decisions_keeps_drops_and_corrects_with_parent():
    msgs = lambda t: [{"role": "user", "content": "q"}, {"role": "assistant", "content": t}]  # noqa: E731
    exs = [
        {"id": "1", "messages": msgs("a")},
        {"id": "2", "messages": msgs("b")},
        {"id": "3", "messages": msgs("c")},
        {"id": "4", "messages": msgs("d")},
    ]
    dec = {
        "1": {"verdict": "accept", "reviewers": ["x"]},
        "2": {"verdict": "reject", "reviewers": ["x"]},
        "3": {"verdict": "correct", "corrected": "C!", "reviewers": ["x", "y"]},
    }
    out, counts = vd.apply_decisions(exs, dec, batch_id="rb-1")
    assert [e["messages"][-1]["content"] for e in out] == ["a", "C!", "d"]
    assert out[1]["parent_id"] == "3" and out[1]["origin"]["reviewers"] == ["x", "y"]
    assert exs[2]["messages"][-1]["content"] == "c"  # the original is untouched
    assert counts == {"accepted": 1, "rejected": 1, "corrected": 1, "unreviewed": 1}


def test_verdict_schema():
    with pytest.raises(ValidationError, match="corrected response"):
        vd.Verdict(example_id="1", reviewer="r", verdict="correct")
    with pytest.raises(ValidationError, match="unknown issue"):
        vd.Verdict(example_id="1", reviewer="r", verdict="reject", categories=["nope"])


def test_kappas_against_known_values():
    a = ["y", "y", "n", "n", "y", "n", "y", "y", "n", "y"]
    b = ["y", "n", "n", "n", "y", "n", "y", "y", "y", "y"]
    # po = 0.8, pe = (6*6 + 4*4)/100 = 0.52 -> kappa = 0.28/0.48
    assert vd.cohen_kappa(a, b) == pytest.approx(0.28 / 0.48)
    assert vd.fleiss_kappa(list(zip(a, b, strict=True))) == pytest.approx(0.5833, abs=1e-3)
    assert vd.cohen_kappa([], []) is None
    assert vd.fleiss_kappa([["y"]]) is None
    # Fleiss' classic example (Wikipedia, 10 items x 14 raters) gives 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    items = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert vd.fleiss_kappa(items) == pytest.approx(0.210, abs=1e-3)
