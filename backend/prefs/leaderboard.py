"""Bradley-Terry ratings of runs and models from every comparison, with bootstrap intervals and
a win-rate matrix.

The model: P(i beats j) = p_i / (p_i + p_j). Strengths are fitted with Hunter's MM algorithm
(p_i <- W_i / sum_j n_ij / (p_i + p_j)); a tie counts half a win to each side; both-bad and
inconsistent verdicts count for nobody. A small prior (`prior` virtual ties between every two
sources) keeps a source that never won finite. Ratings are shown on the Elo scale:
1000 + 400 log10(p_i / geometric mean of p).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from backend.prefs.pairs import pairwise_outcomes

Outcome = tuple[str, str, float]  # (source i, source j, score of i: 1 win, 0.5 tie, 0 loss)


def _tables(groups: list[list[Outcome]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    k = len(index)
    games, wins = np.zeros((k, k)), np.zeros(k)
    for group in groups:
        for a, b, s in group:
            i, j = index[a], index[b]
            games[i, j] += 1
            games[j, i] += 1
            wins[i] += s
            wins[j] += 1 - s
    return games, wins


def fit(
    games: np.ndarray,
    wins: np.ndarray,
    *,
    prior: float = 0.1,
    max_iter: int = 2000,
    tol: float = 1e-10,
) -> np.ndarray:
    """Bradley-Terry strengths (geometric mean 1) by MM from a games matrix and win totals."""
    k = len(wins)
    if k == 0:
        return np.zeros(0)
    g = games + prior * (1 - np.eye(k))
    w = wins + prior * (k - 1) / 2
    p = np.ones(k)
    for _ in range(max_iter):
        denom = (g / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, w / np.where(denom > 0, denom, 1), p)
        new /= math.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < tol:
            return new
        p = new
    return p


def elo(p: np.ndarray) -> np.ndarray:
    return 1000 + 400 * np.log10(p)


def outcome_groups(rows: list[dict]) -> list[list[Outcome]]:
    """The outcomes of each judgement (latest per item and annotator), one group each."""
    groups = [pairwise_outcomes(r["responses"], r["verdict"], r.get("ranking")) for r in rows]
    return [g for g in groups if g]


def leaderboard(
    groups: list[list[Outcome]],
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
    prior: float = 0.1,
) -> dict[str, Any]:
    """Ratings with bootstrap intervals (judgements resampled with replacement) and the
    win-rate matrix (row's share of points against column, ties half)."""
    players = sorted({s for g in groups for a, b, _ in g for s in (a, b)})
    index = {s: i for i, s in enumerate(players)}
    games, wins = _tables(groups, index)
    p = fit(games, wins, prior=prior)
    rating = elo(p)
    low = high = rating
    if groups and n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, len(players)))
        for b in range(n_boot):
            pick = rng.integers(0, len(groups), len(groups))
            bg, bw = _tables([groups[i] for i in pick], index)
            boots[b] = elo(fit(bg, bw, prior=prior))
        q = (1 - level) / 2
        low, high = np.quantile(boots, q, axis=0), np.quantile(boots, 1 - q, axis=0)
    points = np.zeros((len(players), len(players)))
    for g in groups:
        for a, b, s in g:
            points[index[a], index[b]] += s
            points[index[b], index[a]] += 1 - s
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(games > 0, points / np.where(games > 0, games, 1), np.nan)
    table = [
        {
            "source": s,
            "rating": round(float(rating[i]), 1),
            "ci_low": round(float(low[i]), 1),
            "ci_high": round(float(high[i]), 1),
            "comparisons": int(games[i].sum()),
            "points": round(float(points[i].sum()), 1),
            "win_rate": round(float(points[i].sum() / games[i].sum()), 4)
            if games[i].sum()
            else None,
        }
        for i, s in enumerate(players)
    ]
    table.sort(key=lambda r: -r["rating"])
    matrix = {
        a: {
            b: (None if math.isnan(share[i, j]) else round(float(share[i, j]), 4))
            for j, b in enumerate(players)
            if j != i
        }
        for i, a in enumerate(players)
    }
    return {
        "ratings": table,
        "win_rate": matrix,
        "judgements": len(groups),
        "level": level,
        "n_boot": n_boot,
    }
