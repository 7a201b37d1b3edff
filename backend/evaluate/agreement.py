"""How far an eval suite's LLM judge agrees with people, per rubric: Spearman's rho and
Kendall's tau-b between the judge's 1-10 scores and the people's (mean per answer), and
Cohen's kappa (backend.prefs.agreement) between the two on three bands (1-3 poor, 4-7 fair,
8-10 good), one pair per human rating. Pure functions over plain rows.

    >>> round(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 3)
    1.0
    >>> round(kendall_tau_b([1, 2, 3], [3, 2, 1]), 3)
    -1.0
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from backend.prefs.agreement import cohen_kappa

MIN_ITEMS = 3  # fewer rated answers than this: no correlation is reported


def _ranks(xs: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va and vb else math.nan


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties averaged); NaN when either is constant."""
    if len(a) != len(b) or len(a) < 2:
        return math.nan
    return _pearson(_ranks(a), _ranks(b))


def kendall_tau_b(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b, which corrects for ties on either side."""
    n = len(a)
    if n != len(b) or n < 2:
        return math.nan
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else math.nan


def band(score: float) -> str:
    """A 1-10 score's band: poor (1-3), fair (4-7) or good (8-10)."""
    return "poor" if score < 3.5 else "fair" if score < 7.5 else "good"


def _clean(x: float) -> float | None:
    return None if x is None or math.isnan(x) else x


def judge_agreement(judged: list[dict], rated: list[dict]) -> list[dict[str, Any]]:
    """Per rubric: n answers both rated and judged, n human ratings, Spearman, Kendall and
    Cohen's kappa (banded). `judged` rows are {target, idx, rubric, score}; `rated` rows
    {target, idx, rater, score}."""
    judge = {(j["target"], j["idx"]): j for j in judged if j.get("score") is not None}
    by_rubric: dict[str, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rated:
        key = (r["target"], r["idx"])
        if key in judge:
            by_rubric[judge[key]["rubric"]][key].append(float(r["score"]))
    out = []
    for rubric, answers in sorted(by_rubric.items()):
        keys = sorted(answers)
        js = [float(judge[k]["score"]) for k in keys]
        hs = [sum(answers[k]) / len(answers[k]) for k in keys]
        pairs_j = [band(judge[k]["score"]) for k in keys for _ in answers[k]]
        pairs_h = [band(s) for k in keys for s in answers[k]]
        enough = len(keys) >= MIN_ITEMS
        out.append(
            {
                "rubric": rubric,
                "n_answers": len(keys),
                "n_ratings": len(pairs_h),
                "spearman": _clean(spearman(js, hs)) if enough else None,
                "kendall": _clean(kendall_tau_b(js, hs)) if enough else None,
                "kappa": _clean(cohen_kappa(pairs_j, pairs_h)) if pairs_h else None,
            }
        )
    return out
