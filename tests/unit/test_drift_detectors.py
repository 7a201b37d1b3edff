"""Drift statistics against values worked out by hand, and the verdicts on real samples: none on
two samples of one distribution, drift on a shifted one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.drift import detectors as d
from backend.drift.job import detect
from backend.drift.monitors import MonitorConfig, parse_config
from backend.drift.synthetic import sample


def texts(rows):
    return [r["text"] for r in rows]


def test_js_distance_by_hand():
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    # KL(p|m) = 1/2 log2(2/3) + 1/2 log2(2) = 0.20752, KL(q|m) = log2(4/3) = 0.41504
    jsd = 0.5 * (0.5 * math.log2(2 / 3) + 0.5) + 0.5 * math.log2(4 / 3)
    assert d.js_distance([1, 1], [2, 0]) == pytest.approx(math.sqrt(jsd), abs=1e-12)
    assert d.js_distance([3, 5, 2], [3, 5, 2]) == 0.0
    assert d.js_distance([1, 0], [0, 1]) == 1.0


def test_vocabulary_distance_and_moved_terms_by_hand():
    # reference counts a:2 b:2, window a:2 c:2 -> p = (.5, .5, 0), q = (.5, 0, .5), m = (.5,
    # .25, .25); each of b and c adds 1/2 * 1/2 * log2(2) = 0.25 bits; distance = sqrt(0.5)
    r = d.vocabulary_drift(["a b", "A b!"], ["a c", "c a"], n_permutations=20, top_terms=3)
    assert r.statistic == pytest.approx(math.sqrt(0.5))
    moved = {m["term"]: m for m in r.details["moved_terms"]}
    assert moved["b"]["contribution"] == pytest.approx(0.25)
    assert moved["c"]["change"] == pytest.approx(0.5)
    assert moved["a"]["contribution"] == pytest.approx(0.0)
    assert r.details["moved_terms"][-1]["term"] == "a"


def test_ks_psi_and_chi_square_by_hand():
    assert d.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    # c(0.01) = sqrt(-ln(0.005) / 2) = 1.62762
    assert d.ks_critical(50, 200, 0.01) == pytest.approx(1.62762 * math.sqrt(250 / 10000), rel=1e-5)
    # table [[10, 10], [20, 0]]: expected [[15, 5], [15, 5]] -> 2 * (25/15 + 25/5) = 13.333
    chi, dof = d.chi_square([10, 10], [20, 0])
    assert (chi, dof) == (pytest.approx(40 / 3), 1)
    assert d.psi([1, 2, 3, 4] * 10, [1, 2, 3, 4] * 5) == 0.0
    assert d.psi([1, 2, 3, 4] * 10, [4] * 20) > 0.25


def test_topic_shift_by_hand():
    r = d.topic_shift(["x"] * 10 + ["y"] * 10, ["x"] * 20, n_permutations=50)
    assert r.statistic == pytest.approx(d.js_distance([1, 1], [2, 0]))
    assert r.details["chi_square"] == pytest.approx(40 / 3)
    top = r.details["topics"][0]
    assert abs(top["change"]) == pytest.approx(0.5)


def test_roc_auc_mmd_and_bandwidth_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 1 + 2 of 4
    assert d.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert d.roc_auc([0.3, 0.3, 0.3, 0.3], [0, 1, 0, 1]) == 0.5
    # x = (0, 0), y = (1, 1), bandwidth 1: k_xx = k_yy = 1, k_xy = e^-1/2 -> 2 - 2 e^-1/2
    x, y = np.array([[0.0], [0.0]]), np.array([[1.0], [1.0]])
    assert d.mmd2(x, y, 1.0) == pytest.approx(2 - 2 * math.exp(-0.5))
    assert d.median_bandwidth(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])) == 5.0


def test_logistic_regression_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x @ [1.5, -2.0, 0.5] + 0.3 + rng.normal(size=200) > 0).astype(int)
    w = d.fit_logistic(x, y, l2=2.0)
    ref = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(x, y)
    np.testing.assert_allclose(w[:-1], ref.coef_[0], atol=1e-4)
    assert w[-1] == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_classifier_auc_separates_shifted_gaussians_only():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(120, 8)), rng.normal(size=(80, 8))
    same = d.classifier_drift(a, b, dims=8)
    shifted = d.classifier_drift(a, b + 0.8, dims=8)
    assert same.verdict == "ok" and same.threshold >= 0.55
    assert shifted.verdict == "drift" and shifted.statistic > 0.8
    assert d.mmd_drift(a, b, n_permutations=100).verdict == "ok"
    assert d.mmd_drift(a, b + 0.8, n_permutations=100).verdict == "drift"


def test_cheap_methods_rarely_alarm_on_one_distribution():
    """20 pairs of same-distribution samples: at alpha = 0.01 at most one false alarm each."""
    cfg = MonitorConfig()
    alarms = {"vocabulary": 0, "length": 0, "topics": 0}
    for seed in range(20):
        ref, win = sample(150, seed=100 + seed), sample(40, seed=200 + seed)
        for r in (
            d.vocabulary_drift(texts(ref), texts(win), n_permutations=100, seed=seed),
            d.length_shift(texts(ref), texts(win), alpha=cfg.length.alpha),
            d.topic_shift(
                [x["topic"] for x in ref], [x["topic"] for x in win], n_permutations=100, seed=seed
            ),
        ):
            alarms[r.method] += r.verdict == "drift"
    assert all(n <= 1 for n in alarms.values()), alarms


@pytest.fixture(scope="module")
def real_checks():
    """Every method with the real all-MiniLM-L6-v2 embeddings, on one same and one shifted
    window against one reference."""
    ref = sample(200, seed=1)
    cfg = MonitorConfig()
    same = detect(texts(ref), texts(sample(60, seed=2)), cfg)
    shifted = detect(texts(ref), texts(sample(60, seed=3, shifted=True)), cfg)
    return same, shifted


def test_no_alert_on_one_distribution(real_checks):
    same, _ = real_checks
    assert [r.method for r in same] == ["vocabulary", "length", "classifier", "mmd", "topics"]
    assert {r.method: r.verdict for r in same} == dict.fromkeys(
        ["vocabulary", "length", "classifier", "mmd", "topics"], "ok"
    )


def test_alert_on_shifted_distribution(real_checks):
    _, shifted = real_checks
    verdicts = {r.method: r.verdict for r in shifted}
    assert verdicts == dict.fromkeys(verdicts, "drift"), verdicts
    by = {r.method: r for r in shifted}
    moved = [m["term"] for m in by["vocabulary"].details["moved_terms"]]
    assert "api" in moved or "webhook" in moved or "sso" in moved
    assert by["topics"].details["topics"][0]["label"] == "new"
    assert by["classifier"].statistic > by["classifier"].threshold >= 0.55


def test_config_defaults_and_bad_values():
    cfg = parse_config({"vocabulary": {"alpha": 0.05}, "auto_approve": True})
    assert cfg.vocabulary.alpha == 0.05 and cfg.mmd.alpha == 0.01 and cfg.auto_approve
    with pytest.raises(ValueError, match="auc_threshold"):
        parse_config({"classifier": {"auc_threshold": 0.4}})
    with pytest.raises(ValueError, match="colour"):
        parse_config({"colour": 1})
