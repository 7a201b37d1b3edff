"""The human QC sample: a random share of every generated batch marked for review.

The share defaults to 7% and must lie between 5% and 10%; at least one example of a non-empty
batch is sampled. The draw is seeded (by the job) so a resumed job marks the same examples.
"""

from __future__ import annotations

import math
import random

DEFAULT_SHARE = 0.07
MIN_SHARE, MAX_SHARE = 0.05, 0.10


def check_share(share: float) -> float:
    if not MIN_SHARE <= share <= MAX_SHARE:
        raise ValueError(
            f"QC share {share:.0%} is outside the allowed {MIN_SHARE:.0%}-{MAX_SHARE:.0%}"
        )
    return share


def qc_sample(ids: list[str], share: float = DEFAULT_SHARE, *, seed: int | str = 0) -> list[str]:
    """A seeded random subset of `ids` of size ceil(share * n) (at least 1 when n > 0).

    >>> len(qc_sample([str(i) for i in range(100)], 0.07))
    7
    """
    check_share(share)
    if not ids:
        return []
    k = max(1, math.ceil(round(share * len(ids), 6)))
    chosen = set(random.Random(str(seed)).sample(range(len(ids)), k))
    return [ids[i] for i in sorted(chosen)]
