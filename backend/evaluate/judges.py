"""The LLM judges of an eval suite: pointwise (a rubric, a score from 1 to 10) and pairwise
against a baseline's answer, asked in both orders so a judge that favours the first (or the
second) position cancels out. Prompt builders and reply parsers only; the eval job sends them.

    >>> parse_score('{"score": 7, "reason": "clear"}')
    (7.0, 'clear')
    >>> pairwise_score("A", "B")  # the target won as A, then again as B
    1.0
"""

from __future__ import annotations

import json
import re

DEFAULT_RUBRIC = (
    "Score how well the response answers the user: correct, complete, concise and helpful. "
    "10 is a perfect answer, 1 is useless or wrong."
)
POINTWISE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "reason": {"type": "string"},
    },
    "required": ["winner", "reason"],
    "additionalProperties": False,
}


class JudgeReplyError(ValueError):
    """A judge reply that holds no score or verdict."""


def rubric_of(row: dict, default: str = DEFAULT_RUBRIC) -> str:
    """The row's own rubric (criteria.rubric), else the suite's default."""
    return str((row.get("criteria") or {}).get("rubric") or default)


def pointwise_prompt(row: dict, output: str, rubric: str) -> list[dict]:
    ref = row.get("reference")
    extra = f"\n\n[Reference answer]\n{ref}" if ref else ""
    return [
        {
            "role": "system",
            "content": "You are a strict evaluator. Reply with JSON only: "
            '{"score": <integer 1-10>, "reason": "<one sentence>"}.',
        },
        {
            "role": "user",
            "content": f"[Rubric]\n{rubric}\n\n[Prompt]\n{row['prompt']}{extra}\n\n"
            f"[Response]\n{output}\n\nScore the response.",
        },
    ]


def pairwise_prompt(row: dict, first: str, second: str, rubric: str) -> list[dict]:
    return [
        {
            "role": "system",
            "content": "You compare two responses. Reply with JSON only: "
            '{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}.',
        },
        {
            "role": "user",
            "content": f"[Rubric]\n{rubric}\n\n[Prompt]\n{row['prompt']}\n\n"
            f"[Response A]\n{first}\n\n[Response B]\n{second}\n\nWhich response is better?",
        },
    ]


def _json(text: str | None) -> dict:
    if not text or not text.strip():
        raise JudgeReplyError("empty reply")
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0) if match else text)
    except ValueError:
        raise JudgeReplyError(f"reply is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise JudgeReplyError(f"reply is not a JSON object: {text[:80]!r}")
    return data


def parse_score(text: str | None) -> tuple[float, str]:
    """(score 1-10, reason) from a pointwise reply; JudgeReplyError when it has none."""
    data = _json(text)
    try:
        value = float(data.get("score"))
    except (TypeError, ValueError):
        raise JudgeReplyError(f"score {data.get('score')!r} is not a number") from None
    if not 1 <= value <= 10:
        raise JudgeReplyError(f"score {value:g} is outside 1-10")
    return value, str(data.get("reason") or "")


def parse_winner(text: str | None) -> str:
    """ "A", "B" or "tie" from a pairwise reply."""
    data = _json(text)
    winner = str(data.get("winner", data.get("verdict", ""))).strip()
    norm = {"a": "A", "b": "B", "tie": "tie"}.get(winner.lower())
    if norm is None:
        raise JudgeReplyError(f"winner {winner!r} is not A, B or tie")
    return norm


def pairwise_score(target_first: str, target_second: str) -> float:
    """The target's share of wins over both orders: the target is A in the first ask and B
    in the second; a win counts 1, a tie 1/2. 0.5 means no better than the baseline."""
    won = {"A": 1.0, "tie": 0.5, "B": 0.0}[target_first]
    won += {"B": 1.0, "tie": 0.5, "A": 0.0}[target_second]
    return won / 2
