"""Comparison sets: which responses are shown side by side, in which order, to whom.

Pure functions: the actions (backend/prefs/actions.py) check with them and `backend.store.prefs`
stores what they return. Sources are ids such as a run id, `base:<model>` or `endpoint:<model>`;
each maps prompts to its output. Items are blind (the page never shows a source) and positions
are randomized with a seed, so a set is reproducible.

>>> items = build_items({"r1": {"hi": "a"}, "r2": {"hi": "b"}}, mode="pairwise", seed=0)
>>> sorted(r["source"] for r in items[0]["responses"])
['r1', 'r2']
"""

from __future__ import annotations

import itertools
import random
from typing import Any

VERDICTS = ("A", "B", "tie", "both_bad")  # what an analyst may answer on a pair
JUDGE_VERDICTS = (*VERDICTS, "inconsistent")  # a judge that flips with the positions
DECISIVE = ("A", "B")
MODES = ("pairwise", "ranking")


def prompt_messages(prompt: Any) -> list[dict]:
    """A prompt as chat turns: a plain string becomes one user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and all(isinstance(m, dict) and "content" in m for m in prompt):
        return [{"role": m.get("role", "user"), "content": str(m["content"])} for m in prompt]
    raise ValueError("a prompt must be text or a list of {role, content} turns")


def prompt_text(messages: list[dict]) -> str:
    """The last user turn: the key that joins outputs of different sources."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return users[-1] if users else (messages[-1]["content"] if messages else "")


def build_items(
    outputs: dict[str, dict[str, str]],
    *,
    mode: str = "pairwise",
    seed: int = 0,
    prompts: list[str] | None = None,
    pairs_per_prompt: int | None = 1,
) -> list[dict]:
    """Items of a comparison set from the outputs of two or more sources.

    pairwise: for each prompt, `pairs_per_prompt` source pairs (None = every pair) drawn among
    the sources that answered it, positions shuffled. ranking: every source that answered, in a
    shuffled order (at least two). Prompts answered by fewer than two sources are left out.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    if len(outputs) < 2:
        raise ValueError(f"a comparison needs two or more sources; got {len(outputs)}")
    rng = random.Random(seed)
    if prompts is None:
        seen: dict[str, None] = {}
        for answers in outputs.values():
            seen.update(dict.fromkeys(answers))
        prompts = list(seen)
    items: list[dict] = []
    for prompt in prompts:
        answered = [s for s in outputs if prompt in outputs[s]]
        if len(answered) < 2:
            continue
        if mode == "ranking":
            groups = [answered]
        else:
            combos = list(itertools.combinations(answered, 2))
            rng.shuffle(combos)
            groups = [list(c) for c in combos[: pairs_per_prompt or len(combos)]]
        for group in groups:
            group = list(group)
            rng.shuffle(group)  # blind: position says nothing about the source
            items.append(
                {
                    "prompt": prompt_messages(prompt),
                    "responses": [{"source": s, "text": outputs[s][prompt]} for s in group],
                }
            )
    return items


def assign(
    n_items: int, analysts: list[str], *, overlap: float = 0.2, raters: int = 2, seed: int = 0
) -> list[tuple[int, str]]:
    """(item index, analyst) pairs: every item to one analyst, in turn, and a share `overlap`
    of the items to `raters` different analysts, so agreement can be measured.

    >>> sorted(assign(4, ["ann", "bob"], overlap=0.5, seed=1))
    [(0, 'ann'), (1, 'ann'), (1, 'bob'), (2, 'ann'), (2, 'bob'), (3, 'bob')]
    """
    analysts = [a.strip() for a in analysts if a.strip()]
    if not analysts:
        raise ValueError("name at least one analyst")
    if len(set(analysts)) != len(analysts):
        raise ValueError("an analyst is named twice")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be a share between 0 and 1; got {overlap}")
    rng = random.Random(seed)
    shared = set(rng.sample(range(n_items), round(n_items * overlap))) if n_items else set()
    k = min(max(raters, 1), len(analysts))
    out: list[tuple[int, str]] = []
    turn = 0
    for i in range(n_items):
        width = k if i in shared else 1
        for j in range(width):
            out.append((i, analysts[(turn + j) % len(analysts)]))
        turn += 1
    return out


def swap(verdict: str) -> str:
    """A verdict given with the positions swapped, read back in the original positions."""
    return {"A": "B", "B": "A"}.get(verdict, verdict)


def combine(first: str, second_swapped: str) -> str:
    """The judge's verdict from two passes (the second with positions swapped): the same
    verdict both times stands; anything else is 'inconsistent' and counts for nobody."""
    second = swap(second_swapped)
    return first if first == second else "inconsistent"


def check_verdict(
    verdict: str, n_responses: int, ranking: list[int] | None = None, judge: bool = False
) -> None:
    """Raise ValueError naming what is wrong with a verdict for an item."""
    allowed = JUDGE_VERDICTS if judge else VERDICTS
    if verdict == "ranking":
        if ranking is None or sorted(ranking) != list(range(n_responses)):
            raise ValueError(
                f"a ranking must order each of the {n_responses} responses once "
                f"(indices 0..{n_responses - 1}); got {ranking}"
            )
        return
    if verdict not in allowed:
        raise ValueError(f"verdict {verdict!r} is unknown; use one of {', '.join(allowed)}")
    if n_responses != 2:
        raise ValueError(
            f"verdict {verdict!r} is for pairs; this item has {n_responses} "
            "responses: give a ranking"
        )


def pairwise_outcomes(
    responses: list[dict], verdict: str, ranking: list[int] | None
) -> list[tuple[str, str, float]]:
    """(source i, source j, score of i) for every pair a judgement decides: 1 win, 0.5 tie.
    Both-bad and inconsistent verdicts decide nothing; a ranking decides every pair in it."""
    if verdict == "ranking" and ranking:
        order = [responses[i]["source"] for i in ranking]
        return [
            (order[i], order[j], 1.0) for i in range(len(order)) for j in range(i + 1, len(order))
        ]
    if len(responses) != 2:
        return []
    a, b = responses[0]["source"], responses[1]["source"]
    return {"A": [(a, b, 1.0)], "B": [(a, b, 0.0)], "tie": [(a, b, 0.5)]}.get(verdict, [])
