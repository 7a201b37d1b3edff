"""The verdict schema shared by Label Studio and the in-app queue, how several verdicts on one
example resolve, how verdicts apply to a version's examples, and reviewer agreement.

A verdict is accept (the example stays), reject (it leaves) or correct (a new example with the
corrected response replaces it and names it as its parent).
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field, model_validator

CATEGORIES = [
    "factual error",
    "off topic",
    "unsafe",
    "formatting",
    "incomplete",
    "tone",
    "prompt problem",
]
VERDICTS = ("accept", "reject", "correct")
# when reviewers split evenly, the more cautious verdict wins
_CAUTION = {"reject": 0, "correct": 1, "accept": 2}


class Verdict(BaseModel):
    example_id: str
    reviewer: str = Field(min_length=1)
    verdict: Literal["accept", "reject", "correct"]
    categories: list[str] = Field(default_factory=list)
    corrected: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Verdict:
        if self.verdict == "correct" and not (self.corrected or "").strip():
            raise ValueError("a 'correct' verdict needs the corrected response text")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"unknown issue categories {unknown}; known: {CATEGORIES}")
        return self


def resolve(verdicts: list[dict]) -> dict:
    """One decision from an example's verdicts: majority, ties to the cautious side; a
    correction takes the newest corrected text."""
    counts = Counter(v["verdict"] for v in verdicts)
    top = max(counts.values())
    winner = min((v for v, n in counts.items() if n == top), key=lambda v: _CAUTION[v])
    out = {"verdict": winner, "reviewers": sorted({v["reviewer"] for v in verdicts})}
    if winner == "correct":
        fixes = [v for v in verdicts if v["verdict"] == "correct" and v.get("corrected")]
        out["corrected"] = max(fixes, key=lambda v: str(v.get("updated") or ""))["corrected"]
    return out


def decide(reviews: list[dict]) -> dict[str, dict]:
    """example_id -> its decision (`resolve`) over a batch's stored verdicts."""
    by_example: dict[str, list[dict]] = {}
    for r in reviews:
        by_example.setdefault(r["example_id"], []).append(r)
    return {e: resolve(v) for e, v in by_example.items()}


def checked(row: dict) -> dict:
    """A verdict row (a pull's, a delivery's, the in-app queue's) checked against `Verdict`,
    with its verdict fields normalised; ValueError (pydantic's) names what is wrong."""
    v = Verdict.model_validate({k: row.get(k) for k in Verdict.model_fields})
    return {**row, **v.model_dump()}


def in_app_id(batch_id: str, example_id: str, reviewer: str) -> str:
    """The id of a reviewer's in-app verdict on an item: one per (batch, example, reviewer),
    so submitting again replaces it and two reviewers each keep their own."""
    key = f"{batch_id}|{example_id}|{reviewer}"
    return f"app:{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def corrected_messages(messages: list[dict], text: str) -> list[dict]:
    """The conversation with its last assistant turn replaced by `text`."""
    out = copy.deepcopy(messages)
    for msg in reversed(out):
        if msg.get("role") == "assistant":
            msg["content"] = text
            return out
    raise ValueError("example has no assistant turn to correct")


def apply_decisions(
    examples: list[dict], decisions: dict[str, dict], *, batch_id: str
) -> tuple[list[dict], dict[str, int]]:
    """The next version's examples: accepted and unreviewed stay, rejected leave, corrected are
    replaced in place by a new example naming its parent and its reviewers."""
    out, counts = [], Counter()
    for ex in examples:
        d = decisions.get(ex["id"])
        if d is None:
            out.append(_keep(ex))
            counts["unreviewed"] += 1
        elif d["verdict"] == "accept":
            out.append(_keep(ex))
            counts["accepted"] += 1
        elif d["verdict"] == "reject":
            counts["rejected"] += 1
        else:
            out.append(
                {
                    "messages": corrected_messages(ex["messages"], d["corrected"]),
                    "topic": ex.get("topic"),
                    "tools": ex.get("tools"),
                    "parent_id": ex["id"],
                    "origin": {"source": "review", "batch": batch_id, "reviewers": d["reviewers"]},
                }
            )
            counts["corrected"] += 1
    return out, dict(counts)


def _keep(ex: dict) -> dict:
    return {k: ex.get(k) for k in ("messages", "topic", "parent_id", "origin", "tools")}


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters over the same items; None with no items.

    >>> cohen_kappa(["accept", "reject", "accept"], ["accept", "reject", "accept"])
    1.0
    """
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    n = len(a)
    if n == 0:
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(a) | set(b)) / (n * n)
    return 1.0 if pe == 1 else (po - pe) / (1 - pe)


def fleiss_kappa(items: Iterable[list[str]]) -> float | None:
    """Fleiss' kappa over items each rated by two or more raters (counts may differ per item;
    each item's agreement uses its own rater count). None with fewer than one such item."""
    rows = [r for r in items if len(r) >= 2]
    if not rows:
        return None
    cats = sorted({c for r in rows for c in r})
    total = sum(len(r) for r in rows)
    p_j = {c: sum(r.count(c) for r in rows) / total for c in cats}
    p_i = [(sum(r.count(c) ** 2 for c in cats) - len(r)) / (len(r) * (len(r) - 1)) for r in rows]
    p_bar = sum(p_i) / len(rows)
    pe = sum(v * v for v in p_j.values())
    return 1.0 if pe == 1 else (p_bar - pe) / (1 - pe)
