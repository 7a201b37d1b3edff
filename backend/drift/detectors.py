"""Drift detectors: pure functions from two samples (reference, window) to a `DriftResult` with
statistic, threshold and verdict.

Where a statistic has a finite-sample bias (a Jensen-Shannon distance between two samples of one
distribution is never 0), the threshold comes from a permutation baseline: the same statistic on
random splits of the pooled data, so the false-alarm rate is about `alpha` whatever the sizes.
Embeddings come from `backend.drift.embed`; these functions take arrays and lists only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


@dataclass
class DriftResult:
    method: str
    statistic: float
    threshold: float
    verdict: str  # "drift" | "ok"
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _result(method: str, statistic: float, threshold: float, **details: Any) -> DriftResult:
    verdict = "drift" if statistic > threshold else "ok"
    return DriftResult(method, float(statistic), float(threshold), verdict, details)


def tokenize(text: str) -> list[str]:
    """Lower-cased words; apostrophes inside a word are kept.

    >>> tokenize("Can't log in to the Board_view!")
    ["can't", 'log', 'in', 'to', 'the', 'board', 'view']
    """
    return _WORD.findall(text.lower())


def js_distance(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count or share vectors.

    >>> js_distance([1, 0], [0, 1])
    1.0
    >>> round(js_distance([1, 1], [2, 0]), 4)   # JSD = 0.3113 bits, distance = its root
    0.5579
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    return float(math.sqrt(max(_jsd_terms(p, q).sum(), 0.0)))


def _jsd_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each coordinate's share of the JS divergence (bits); they sum to the divergence."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.where(p > 0, p * np.log2(p / m), 0.0)
        tq = np.where(q > 0, q * np.log2(q / m), 0.0)
    return (tp + tq) / 2


def permutation_null(
    stat: Callable[[np.ndarray, np.ndarray], float],
    n_a: int,
    n: int,
    *,
    n_permutations: int,
    seed: int = 0,
) -> np.ndarray:
    """The statistic on `n_permutations` random splits of `n` pooled items into n_a + (n - n_a)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_permutations)
    for i in range(n_permutations):
        perm = rng.permutation(n)
        out[i] = stat(perm[:n_a], perm[n_a:])
    return out


def _perm_threshold(null: np.ndarray, alpha: float) -> float:
    return float(np.quantile(null, 1 - alpha, method="higher"))


def _p_value(null: np.ndarray, observed: float) -> float:
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


# vocabulary ----------------------------------------------------------------------------------


def vocabulary_drift(
    reference: Sequence[str],
    window: Sequence[str],
    *,
    alpha: float = 0.01,
    min_distance: float = 0.05,
    n_permutations: int = 200,
    top_terms: int = 15,
    seed: int = 0,
) -> DriftResult:
    """JS distance between the unigram distributions, with the terms that moved most."""
    from scipy import sparse

    docs = [Counter(tokenize(t)) for t in [*reference, *window]]
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, counts in enumerate(docs):
        for term, c in counts.items():
            rows.append(i)
            cols.append(vocab.setdefault(term, len(vocab)))
            vals.append(c)
    if not vocab:
        return _result("vocabulary", 0.0, max(min_distance, 1e-9), note="no words on either side")
    x = sparse.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)), dtype=float)
    n_ref = len(reference)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        pa, pb = np.asarray(x[a].sum(0)).ravel(), np.asarray(x[b].sum(0)).ravel()
        if pa.sum() == 0 or pb.sum() == 0:
            return 1.0 if pa.sum() != pb.sum() else 0.0
        return js_distance(pa, pb)

    ref_idx, win_idx = np.arange(n_ref), np.arange(n_ref, len(docs))
    observed = stat(ref_idx, win_idx)
    null = permutation_null(stat, n_ref, len(docs), n_permutations=n_permutations, seed=seed)
    cr, cw = np.asarray(x[ref_idx].sum(0)).ravel(), np.asarray(x[win_idx].sum(0)).ravel()
    p, q = cr / max(cr.sum(), 1), cw / max(cw.sum(), 1)
    contrib = _jsd_terms(p, q)
    names = np.array(list(vocab))
    moved = [
        {
            "term": str(names[j]),
            "reference_share": float(p[j]),
            "window_share": float(q[j]),
            "change": float(q[j] - p[j]),
            "contribution": float(contrib[j]),
        }
        for j in np.argsort(-contrib)[:top_terms]
    ]
    return _result(
        "vocabulary",
        observed,
        max(_perm_threshold(null, alpha), min_distance),
        p_value=_p_value(null, observed),
        null_mean=float(null.mean()),
        vocabulary=len(vocab),
        reference_tokens=int(cr.sum()),
        window_tokens=int(cw.sum()),
        moved_terms=moved,
    )


# prompt length -------------------------------------------------------------------------------


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    >>> ks_statistic([1, 2, 3], [4, 5, 6])
    1.0
    >>> ks_statistic([1, 2, 3, 4], [3, 4, 5, 6])
    0.5
    """
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Asymptotic KS critical value c(alpha) * sqrt((n + m) / (n m)).

    >>> round(ks_critical(100, 100, 0.05), 4)   # c(0.05) = 1.3581
    0.1921
    """
    return math.sqrt(-0.5 * math.log(alpha / 2)) * math.sqrt((n + m) / (n * m))


def psi(expected: Sequence[float], actual: Sequence[float], bins: int = 10) -> float:
    """Population stability index over the reference's quantile bins (0.1 small, 0.25 large).

    >>> psi([1, 2, 3, 4] * 10, [1, 2, 3, 4] * 5)
    0.0
    """
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    ce = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    pe = np.clip(ce / ce.sum(), 1e-4, None)
    pa = np.clip(ca / ca.sum(), 1e-4, None)
    return round(float(np.sum((pa - pe) * np.log(pa / pe))), 10)


def length_shift(
    reference: Sequence[str],
    window: Sequence[str],
    *,
    alpha: float = 0.01,
    min_statistic: float = 0.1,
) -> DriftResult:
    """KS test on prompt lengths in words, PSI beside it."""
    lr = [len(tokenize(t)) for t in reference]
    lw = [len(tokenize(t)) for t in window]
    d = ks_statistic(lr, lw)
    threshold = max(ks_critical(len(lr), len(lw), alpha), min_statistic)
    return _result(
        "length",
        d,
        threshold,
        psi=psi(lr, lw),
        unit="words",
        reference_mean=float(np.mean(lr)),
        window_mean=float(np.mean(lw)),
        reference_median=float(np.median(lr)),
        window_median=float(np.median(lw)),
    )


# topic mix -----------------------------------------------------------------------------------


def topic_shift(
    reference: Sequence[str],
    window: Sequence[str],
    *,
    alpha: float = 0.01,
    min_distance: float = 0.05,
    n_permutations: int = 200,
    seed: int = 0,
    names: dict[str, str] | None = None,
) -> DriftResult:
    """JS distance between topic (or cluster) shares; chi-square test beside it.

    `reference` and `window` are one label per text; `names` gives labels a readable name.
    """
    from scipy.stats import chi2

    labels = sorted({*reference, *window})
    index = {t: i for i, t in enumerate(labels)}
    codes = np.array([index[t] for t in [*reference, *window]])
    k, n_ref = len(labels), len(reference)

    def shares(idx: np.ndarray) -> np.ndarray:
        return np.bincount(codes[idx], minlength=k).astype(float)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        return js_distance(shares(a), shares(b))

    ref_idx, win_idx = np.arange(n_ref), np.arange(n_ref, len(codes))
    cr, cw = shares(ref_idx), shares(win_idx)
    observed = stat(ref_idx, win_idx)
    null = permutation_null(stat, n_ref, len(codes), n_permutations=n_permutations, seed=seed)
    chi, dof = chi_square(cr, cw)
    pr, pw = cr / cr.sum(), cw / cw.sum()
    topics = sorted(
        (
            {
                "topic": (names or {}).get(t, t),
                "label": t,
                "reference_share": float(pr[i]),
                "window_share": float(pw[i]),
                "change": float(pw[i] - pr[i]),
            }
            for i, t in enumerate(labels)
        ),
        key=lambda r: -abs(r["change"]),
    )
    return _result(
        "topics",
        observed,
        max(_perm_threshold(null, alpha), min_distance),
        p_value=_p_value(null, observed),
        chi_square=chi,
        dof=dof,
        chi_square_p=float(chi2.sf(chi, dof)) if dof else 1.0,
        topics=topics,
    )


def chi_square(a: Sequence[float], b: Sequence[float]) -> tuple[float, int]:
    """Pearson chi-square of a 2 x k contingency table (empty columns dropped) and its dof.

    >>> chi_square([10, 10], [10, 10])
    (0.0, 1)
    >>> chi_square([20, 0], [0, 20])
    (40.0, 1)
    """
    table = np.array([a, b], dtype=float)
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(np.sum((table - expected) ** 2 / expected)), int(table.shape[1] - 1)


def kmeans(x: np.ndarray, k: int, *, iters: int = 50, seed: int = 0) -> np.ndarray:
    """k-means++ centroids of the rows of `x` (k is capped at the number of distinct rows)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(np.unique(x, axis=0))))
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(x[rng.choice(len(x), p=d / d.sum())])
    c = np.array(centres)
    for _ in range(iters):
        assign = assign_clusters(x, c)
        new = np.array([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def assign_clusters(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for each row."""
    return np.argmin(_sqdist(x, centres), axis=1)


def centre_distance(x: np.ndarray, centres: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row to its assigned centre."""
    return np.sqrt(np.maximum(((x - centres[assign]) ** 2).sum(1), 0))


# embeddings: adversarial validation and MMD --------------------------------------------------


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; ties count half.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> roc_auc([0.5, 0.5], [0, 1])
    0.5
    """
    from scipy.stats import rankdata

    s, y = np.asarray(scores, float), np.asarray(labels, int)
    ranks = rankdata(s)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iters: int = 25) -> np.ndarray:
    """L2-penalised logistic regression by Newton steps; returns weights with the bias last."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return w


def cv_auc(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, l2: float = 1.0, seed: int = 0
) -> float:
    """Out-of-fold ROC AUC of a logistic regression telling y=1 rows from y=0 rows."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for cls in (0, 1):  # stratified folds
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % folds
    scores = np.empty(len(y))
    for f in range(folds):
        test = fold == f
        if not test.any():
            continue
        w = fit_logistic(x[~test], y[~test], l2=l2)
        scores[test] = x[test] @ w[:-1] + w[-1]
    return roc_auc(scores, y)


def _pca(x: np.ndarray, dims: int) -> np.ndarray:
    """Standardised principal components (unsupervised, so no label leaks into the folds)."""
    xc = x - x.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    z = u[:, :dims] * s[:dims]
    return z / (z.std(0) + 1e-12)


def classifier_drift(
    reference: np.ndarray,
    window: np.ndarray,
    *,
    auc_threshold: float = 0.55,
    alpha: float = 0.01,
    small_sample: int = 1000,
    n_permutations: int = 50,
    folds: int = 5,
    dims: int = 32,
    seed: int = 0,
) -> DriftResult:
    """Adversarial validation: drift when a cross-validated domain classifier's AUC is high.

    With fewer than `small_sample` rows on a side, chance AUCs can pass 0.55, so the threshold is
    raised to the (1 - alpha) quantile of AUCs on shuffled labels.
    """
    x = _pca(np.vstack([reference, window]).astype(float), dims)
    y = np.r_[np.zeros(len(reference)), np.ones(len(window))].astype(int)
    folds = max(2, min(folds, len(reference), len(window)))
    auc = cv_auc(x, y, folds=folds, seed=seed)
    details: dict[str, Any] = {
        "folds": folds,
        "dims": int(x.shape[1]),
        "n_reference": len(reference),
        "n_window": len(window),
    }
    threshold = auc_threshold
    if min(len(reference), len(window)) < small_sample:
        rng = np.random.default_rng(seed + 1)
        null = np.array(
            [cv_auc(x, rng.permutation(y), folds=folds, seed=seed) for _ in range(n_permutations)]
        )
        threshold = max(auc_threshold, _perm_threshold(null, alpha))
        details.update(
            baseline="permutation",
            null_mean=float(null.mean()),
            null_quantile=_perm_threshold(null, alpha),
            p_value=_p_value(null, auc),
        )
    return _result("classifier", auc, threshold, **details)


def median_bandwidth(x: np.ndarray) -> float:
    """Median of the nonzero pairwise Euclidean distances (the median heuristic).

    >>> median_bandwidth(np.array([[0.0], [1.0], [3.0]]))
    2.0
    """
    d = np.sqrt(np.maximum(_sqdist(x, x), 0))
    d = d[np.triu_indices(len(x), 1)]
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1.0


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None]


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased squared MMD with k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)).

    >>> round(mmd2(np.array([[0.0], [0.0]]), np.array([[1.0], [1.0]]), 1.0), 4)  # 2 - 2e^-0.5
    0.7869
    """
    k = np.exp(-np.maximum(_sqdist(np.vstack([x, y]), np.vstack([x, y])), 0) / (2 * bandwidth**2))
    a = np.r_[np.ones(len(x)), np.zeros(len(y))][:, None]
    return float(_mmd2_from_kernel(k, a)[0])


def _mmd2_from_kernel(k: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each column of the 0/1 membership matrix `a` (1 = first sample)."""
    b = 1 - a
    n, m = a.sum(0), b.sum(0)
    diag = np.diag(k)[:, None]
    kxx = (np.einsum("ip,ip->p", a, k @ a) - (diag * a).sum(0)) / (n * (n - 1))
    kyy = (np.einsum("ip,ip->p", b, k @ b) - (diag * b).sum(0)) / (m * (m - 1))
    kxy = np.einsum("ip,ip->p", a, k @ b) / (n * m)
    return kxx + kyy - 2 * kxy


def mmd_drift(
    reference: np.ndarray,
    window: np.ndarray,
    *,
    alpha: float = 0.01,
    n_permutations: int = 200,
    seed: int = 0,
) -> DriftResult:
    """MMD^2 (RBF kernel, median heuristic) with a permutation p-value."""
    z = np.vstack([reference, window]).astype(float)
    bw = median_bandwidth(z)
    k = np.exp(-np.maximum(_sqdist(z, z), 0) / (2 * bw**2))
    n = len(reference)
    observed = float(_mmd2_from_kernel(k, np.r_[np.ones(n), np.zeros(len(window))][:, None])[0])
    rng = np.random.default_rng(seed)
    null = []
    for start in range(0, n_permutations, 50):
        cols = min(50, n_permutations - start)
        a = np.zeros((len(z), cols))
        for c in range(cols):
            a[rng.permutation(len(z))[:n], c] = 1
        null.append(_mmd2_from_kernel(k, a))
    null_arr = np.concatenate(null)
    return _result(
        "mmd",
        observed,
        _perm_threshold(null_arr, alpha),
        bandwidth=bw,
        p_value=_p_value(null_arr, observed),
        null_mean=float(null_arr.mean()),
    )
