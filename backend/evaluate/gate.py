"""The promotion gate, as pure functions: a run becomes a candidate only when it beats the
reference (the base model, or the project's promoted run) on every chosen suite and scorer by
at least the chosen margin. Latency and tokens count lower as better.

A rule is written `SUITE:SCORER:MARGIN` (the margin in the scorer's units, e.g. 0.02 of
ROUGE-L, 0.5 of a 1-10 judge score); the drift retraining plans read the same rules from
FTSTUDIO_PROMOTION_GATE (comma-separated) before they promote a retrained run.

    >>> decide({("faq", "rouge_l"): 0.61}, {("faq", "rouge_l"): 0.55},
    ...        [Rule("faq", "rouge_l", 0.05)])["passed"]
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backend.evaluate.scorers import LOWER_IS_BETTER, SCORERS


class GateError(ValueError):
    """A rule that cannot be read, or a gate that cannot be decided (missing figures)."""


@dataclass(frozen=True)
class Rule:
    suite: str
    scorer: str
    margin: float = 0.0


def parse_rules(text: str | list[str]) -> list[Rule]:
    """Rules from `SUITE:SCORER[:MARGIN]` items (a list, or one comma-separated string).

    >>> parse_rules("faq:rouge_l:0.02, faq:judge")[1]
    Rule(suite='faq', scorer='judge', margin=0.0)
    """
    items = text.split(",") if isinstance(text, str) else text
    rules = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise GateError(f"gate rule {item!r}: write SUITE:SCORER[:MARGIN]")
        if parts[1] not in SCORERS:
            raise GateError(f"gate rule {item!r}: unknown scorer {parts[1]!r}")
        try:
            margin = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise GateError(f"gate rule {item!r}: margin {parts[2]!r} is not a number") from None
        rules.append(Rule(parts[0], parts[1], margin))
    if not rules:
        raise GateError("name at least one gate rule SUITE:SCORER[:MARGIN]")
    return rules


def decide(
    candidate: dict[tuple[str, str], float | None],
    reference: dict[tuple[str, str], float | None],
    rules: list[Rule],
) -> dict[str, Any]:
    """Whether the candidate's means beat the reference's by each rule's margin. Returns
    {"passed", "checks": [{suite, scorer, margin, candidate, reference, gain, passed}]};
    a figure missing on either side fails its check and says so."""
    checks = []
    for rule in rules:
        key = (rule.suite, rule.scorer)
        mine, theirs = candidate.get(key), reference.get(key)
        check: dict[str, Any] = {**asdict(rule), "candidate": mine, "reference": theirs}
        if mine is None or theirs is None:
            side = "the run" if mine is None else "the reference"
            check.update(
                gain=None, passed=False, why=f"{side} has no {rule.scorer} on {rule.suite}"
            )
        else:
            gain = theirs - mine if rule.scorer in LOWER_IS_BETTER else mine - theirs
            check.update(gain=gain, passed=gain >= rule.margin)
        checks.append(check)
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
