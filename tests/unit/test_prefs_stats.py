"""Agreement statistics against published worked examples; Bradley-Terry on simulated data."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from backend.prefs.agreement import (
    annotator_agreement,
    cohen_kappa,
    fleiss_kappa,
    judge_human_agreement,
    krippendorff_alpha,
)
from backend.prefs.leaderboard import _tables, fit, leaderboard
from backend.prefs.pairs import assign, build_items, combine


def test_cohen_kappa_wikipedia_example():
    # 50 proposals: both yes 20, A yes / B no 5, A no / B yes 10, both no 15 -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_perfect_and_chance():
    assert cohen_kappa(["A", "B", "A"], ["A", "B", "A"]) == pytest.approx(1.0)
    # p_o = 0.5, p_e = 0.5 -> 0
    assert cohen_kappa(["A", "A", "B", "B"], ["A", "B", "A", "B"]) == pytest.approx(0.0)


def test_fleiss_kappa_wikipedia_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
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
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)


def test_fleiss_kappa_rejects_uneven_rows():
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 0], [1, 2]])


def test_krippendorff_alpha_nominal_worked_example():
    # Krippendorff, "Computing Krippendorff's alpha-reliability" (2011): 4 observers, 12 units
    # with missing values; nominal alpha = 0.743
    n = None
    obs = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    units = [[v for v in col if v is not None] for col in zip(*obs, strict=True)]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)


def _rows(labels: dict[str, list[str]]) -> list[dict]:
    return [
        {"item_id": f"i{k}", "annotator": who, "verdict": v}
        for who, vs in labels.items()
        for k, v in enumerate(vs)
    ]


def test_annotator_agreement_with_and_without_ties():
    rows = _rows(
        {"ann": ["A", "B", "A", "tie", "A", "B"], "bob": ["A", "B", "B", "tie", "A", "tie"]}
    )
    with_ties = annotator_agreement(rows, ties=True)
    assert with_ties["items"] == 6
    # hand computed: p_o = 4/6; marginals ann A3 B2 tie1, bob A2 B2 tie2 -> p_e = 12/36
    assert with_ties["pairs"][0]["cohen_kappa"] == pytest.approx(
        (4 / 6 - 1 / 3) / (2 / 3), abs=1e-4
    )
    without = annotator_agreement(rows, ties=False)
    assert without["items"] == 4  # items 3 and 5 had a tie from someone
    # p_o = 3/4; ann A3 B1, bob A2 B2 -> p_e = (6 + 2) / 16 = 0.5 -> kappa 0.5
    assert without["pairs"][0]["cohen_kappa"] == pytest.approx(0.5)
    assert without["fleiss"]["raters"] == 2


def test_judge_human_agreement_counts_inconsistent_apart():
    human = _rows({"ann": ["A", "B", "A", "tie"], "bob": ["A", "B", "B", "tie"]})
    judge = [
        {"item_id": "i0", "verdict": "A"},
        {"item_id": "i1", "verdict": "inconsistent"},
        {"item_id": "i2", "verdict": "A"},
        {"item_id": "i3", "verdict": "B"},
    ]
    out = judge_human_agreement(human, judge, ties=True)
    # i2 has no human majority; i1 is inconsistent; compared: i0 (A=A), i3 (tie vs B)
    assert out["items"] == 2 and out["inconsistent"] == 1
    assert out["agreement"] == pytest.approx(0.5)
    assert judge_human_agreement(human, judge, ties=False)["items"] == 1


def test_combine_swapped_verdicts():
    assert combine("A", "B") == "A"  # B with positions swapped is the same response
    assert combine("A", "A") == "inconsistent"  # position bias: always the first one
    assert combine("tie", "tie") == "tie"
    assert combine("B", "tie") == "inconsistent"


def test_build_items_blind_and_randomized_and_assignment_overlap():
    outputs = {s: {f"p{i}": f"{s} says {i}" for i in range(40)} for s in ("r1", "r2", "r3")}
    items = build_items(outputs, mode="pairwise", seed=3)
    assert len(items) == 40
    firsts = [it["responses"][0]["source"] for it in items]
    assert len(set(firsts)) == 3  # every source appears in position A somewhere
    assert build_items(outputs, mode="pairwise", seed=3) == items  # reproducible
    ranking = build_items(outputs, mode="ranking", seed=3)
    assert all(len(it["responses"]) == 3 for it in ranking)
    plan = assign(100, ["ann", "bob", "cat"], overlap=0.3, seed=0)
    per_item: dict[int, int] = {}
    for i, _ in plan:
        per_item[i] = per_item.get(i, 0) + 1
    assert len(per_item) == 100
    assert sum(v >= 2 for v in per_item.values()) == 30
    with pytest.raises(ValueError, match="two or more sources"):
        build_items({"r1": {"p": "x"}})


def _simulate(strengths: dict[str, float], n: int, seed: int) -> list[list[tuple]]:
    rng = random.Random(seed)
    names = list(strengths)
    groups = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        pa = strengths[a] / (strengths[a] + strengths[b])
        groups.append([(a, b, 1.0 if rng.random() < pa else 0.0)])
    return groups


def test_bradley_terry_recovers_known_strengths():
    truth = {"base": 1.0, "sft": 2.0, "dpo": 4.0, "endpoint": 8.0}
    groups = _simulate(truth, 4000, seed=1)
    index = {s: i for i, s in enumerate(sorted(truth))}
    games, wins = _tables(groups, index)
    p = fit(games, wins, prior=0.01)
    est = {s: p[i] for s, i in index.items()}
    for a in truth:
        for b in truth:
            assert est[a] / est[b] == pytest.approx(truth[a] / truth[b], rel=0.2)
    board = leaderboard(groups, n_boot=50, seed=0)
    assert [r["source"] for r in board["ratings"]] == ["endpoint", "dpo", "sft", "base"]
    top = board["ratings"][0]
    assert top["ci_low"] <= top["rating"] <= top["ci_high"]
    # true Elo gap between neighbours: 400 log10(2) ~ 120; the interval should be informative
    assert top["ci_high"] - top["ci_low"] < 120
    assert board["win_rate"]["endpoint"]["base"] > 0.8


def test_bradley_terry_keeps_a_never_winning_source_finite():
    groups = [[("a", "b", 1.0)]] * 10
    board = leaderboard(groups, n_boot=20)
    assert all(math.isfinite(r["rating"]) for r in board["ratings"])
    assert board["ratings"][0]["source"] == "a"
    assert np.isfinite(board["ratings"][1]["ci_low"])
