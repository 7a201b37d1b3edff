"""Flagging policies: which scored examples go to reviewers, plus the random QC sample.

Pure functions over {example_id: score}; higher scores mean less certain. Three policies:
`top_k` (the k highest), `threshold` (score >= value) and `percentile` (score >= the value-th
percentile). Ties at the cut are broken by example id so a policy always picks the same set.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from backend.synth.qc import qc_sample


class FlagPolicy(BaseModel):
    kind: Literal["top_k", "threshold", "percentile"] = Field(
        "top_k",
        description="top_k: the k least certain; threshold: score at or above a value; "
        "percentile: at or above the given percentile of the scores.",
    )
    value: float = Field(20, description="k, the score threshold, or the percentile (0-100).")
    qc_share: float = Field(
        0.05,
        ge=0,
        le=0.10,
        description="Share of the rest added as a random QC sample (0, or 5%-10%).",
    )

    @model_validator(mode="after")
    def _check(self) -> FlagPolicy:
        if self.kind == "top_k" and (self.value < 0 or self.value != int(self.value)):
            raise ValueError(f"top_k needs a whole number k >= 0, got {self.value}")
        if self.kind == "percentile" and not 0 <= self.value <= 100:
            raise ValueError(f"percentile must lie in 0-100, got {self.value}")
        if 0 < self.qc_share < 0.05:
            raise ValueError(f"QC share {self.qc_share:.0%} must be 0 or between 5% and 10%")
        return self


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def percentile_value(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (as numpy's default).

    >>> percentile_value([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not values:
        raise ValueError("no scores to take a percentile of")
    xs = sorted(values)
    pos = (len(xs) - 1) * pct / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def cut_value(scores: dict[str, float], policy: FlagPolicy) -> float | None:
    """The score at the cut line (drawn on the histogram); None when nothing is flagged."""
    if not scores:
        return None
    if policy.kind == "threshold":
        return policy.value
    if policy.kind == "percentile":
        return percentile_value(list(scores.values()), policy.value)
    k = int(policy.value)
    ranked = _ranked(scores)
    return ranked[min(k, len(ranked)) - 1][1] if k > 0 else None


def flag(scores: dict[str, float], policy: FlagPolicy) -> list[tuple[str, float]]:
    """The flagged (example_id, score) pairs, least certain first."""
    ranked = _ranked(scores)
    if policy.kind == "top_k":
        return ranked[: int(policy.value)]
    cut = cut_value(scores, policy)
    return [(i, s) for i, s in ranked if cut is not None and s >= cut]


def qc_extra(ids: list[str], flagged: set[str], share: float, *, seed: int | str = 0) -> list[str]:
    """A seeded random QC sample of the examples that were not flagged."""
    rest = [i for i in ids if i not in flagged]
    if share <= 0 or not rest:
        return []
    return qc_sample(rest, share, seed=seed)


def share_at_or_above(scores: list[float], cut: float | None) -> float:
    """Share of scores at or above `cut` (the flagged share under a fixed line)."""
    if not scores or cut is None:
        return 0.0
    return sum(1 for s in scores if s >= cut) / len(scores)


def batch_items(
    scores: dict[str, float],
    policy: FlagPolicy,
    pending_qc: list[str],
    *,
    seed: int | str,
) -> tuple[list[tuple[str, float | None, str]], int, int]:
    """A review batch's items in review order, each (example_id, score, 'flagged' | 'qc'),
    with the flagged and QC counts. The QC sample is the version's pending QC examples that
    were not flagged, else a seeded random share of the rest."""
    flagged = flag(scores, policy)
    flagged_ids = {i for i, _ in flagged}
    qc = [i for i in pending_qc if i not in flagged_ids] or qc_extra(
        sorted(scores), flagged_ids, policy.qc_share, seed=seed
    )
    items = [(i, s, "flagged") for i, s in flagged] + [(i, scores.get(i), "qc") for i in qc]
    return items, len(flagged), len(qc)
