"""Agreement between analysts, and between the judge and the analysts.

Cohen's kappa for two raters, Fleiss' kappa for a fixed number of raters per item, and
Krippendorff's alpha (nominal) for any number of raters with gaps, which suits overlap
assignment best. Each report comes with ties (labels A, B, tie, both_bad) and without ties
(only items every rater decided A or B).

>>> round(cohen_kappa(["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15,
...                   ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15), 3)
0.4
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

DECISIVE = {"A", "B"}


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same items, in order."""
    if len(a) != len(b):
        raise ValueError(f"two raters need the same items: {len(a)} vs {len(b)} labels")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e == 1:
        return 1.0 if p_o == 1 else math.nan
    return (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from a table: one row per item, one column per category, each cell the
    number of raters who chose it; every row must sum to the same number of raters."""
    if not counts:
        return math.nan
    totals = {sum(row) for row in counts}
    if len(totals) != 1:
        raise ValueError(
            f"Fleiss' kappa needs the same number of raters per item; got {sorted(totals)}"
        )
    m = totals.pop()
    if m < 2:
        raise ValueError("Fleiss' kappa needs two or more raters per item")
    n_items = len(counts)
    p_bar = sum((sum(c * c for c in row) - m) / (m * (m - 1)) for row in counts) / n_items
    shares = [sum(row[j] for row in counts) / (n_items * m) for j in range(len(counts[0]))]
    p_e = sum(p * p for p in shares)
    if p_e == 1:
        return 1.0 if p_bar == 1 else math.nan
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal labels. Each unit is the list of labels it received
    (missing ratings simply absent); units with fewer than two labels are not pairable."""
    coincidence: Counter = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            coincidence[(values[i], values[j])] += 1.0 / (m - 1)
    n_c: Counter = Counter()
    for (c, _), v in coincidence.items():
        n_c[c] += v
    n = sum(n_c.values())
    if n <= 1:
        return math.nan
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n - 1)
    if expected == 0:
        return 1.0 if observed == 0 else math.nan
    return 1.0 - observed / expected


def label(row: dict) -> str:
    """What is compared between annotators: a pair's verdict, or a ranking's whole order
    (two rankings agree only when they order every response alike).

    >>> label({"verdict": "ranking", "ranking": [2, 0, 1]})
    'ranking 2>0>1'
    """
    if row["verdict"] == "ranking" and row.get("ranking"):
        return "ranking " + ">".join(str(i) for i in row["ranking"])
    return row["verdict"]


def _labels_by_item(rows: list[dict]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["item_id"], {})[r["annotator"]] = label(r)
    return out


def _clean(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 4)


def annotator_agreement(rows: list[dict], *, ties: bool = True) -> dict[str, Any]:
    """Inter-annotator agreement over items judged by two or more analysts.

    rows: {item_id, annotator, verdict, ranking} (latest per analyst); rankings are compared
    by their whole order (`label`). Without ties, only items where every analyst answered A
    or B count.
    """
    items = {k: v for k, v in _labels_by_item(rows).items() if len(v) >= 2}
    if not ties:
        items = {k: v for k, v in items.items() if set(v.values()) <= DECISIVE}
    analysts = sorted({a for v in items.values() for a in v})
    pairs = []
    for x, y in itertools.combinations(analysts, 2):
        shared = [v for v in items.values() if x in v and y in v]
        if shared:
            pairs.append(
                {
                    "analysts": [x, y],
                    "items": len(shared),
                    "agreement": _clean(sum(v[x] == v[y] for v in shared) / len(shared)),
                    "cohen_kappa": _clean(
                        cohen_kappa([v[x] for v in shared], [v[y] for v in shared])
                    ),
                }
            )
    units = [list(v.values()) for v in items.values()]
    categories = sorted({c for u in units for c in u})
    fleiss = None
    sizes = Counter(len(u) for u in units)
    if sizes:
        m = sizes.most_common(1)[0][0]
        table = [[Counter(u)[c] for c in categories] for u in units if len(u) == m]
        fleiss = {"raters": m, "items": len(table), "kappa": _clean(fleiss_kappa(table))}
    agree = [len(set(u)) == 1 for u in units]
    return {
        "ties": ties,
        "items": len(units),
        "analysts": analysts,
        "agreement": _clean(sum(agree) / len(agree)) if agree else None,
        "pairs": pairs,
        "fleiss": fleiss,
        "krippendorff_alpha": _clean(krippendorff_alpha(units)) if units else None,
    }


def judge_human_agreement(
    human: list[dict], judge: list[dict], *, ties: bool = True
) -> dict[str, Any]:
    """The judge against the analysts' majority on the items both judged. Items where the
    analysts have no majority are left out; inconsistent judge verdicts are counted, not
    compared."""
    majority: dict[str, str] = {}
    for item, labels in _labels_by_item(human).items():
        top, count = Counter(labels.values()).most_common(1)[0]
        if count * 2 > len(labels):
            majority[item] = top
    verdicts = {r["item_id"]: label(r) for r in judge}
    both = [i for i in verdicts if i in majority]
    inconsistent = sum(verdicts[i] == "inconsistent" for i in both)
    both = [i for i in both if verdicts[i] != "inconsistent"]
    if not ties:
        both = [i for i in both if verdicts[i] in DECISIVE and majority[i] in DECISIVE]
    h, j = [majority[i] for i in both], [verdicts[i] for i in both]
    return {
        "ties": ties,
        "items": len(both),
        "inconsistent": inconsistent,
        "agreement": _clean(sum(x == y for x, y in zip(h, j, strict=True)) / len(both))
        if both
        else None,
        "cohen_kappa": _clean(cohen_kappa(h, j)) if both else None,
    }
