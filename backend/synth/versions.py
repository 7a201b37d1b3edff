"""What a new dataset version holds, worked out from an existing one: pure list operations on
a version's examples (dicts with id, messages, topic, parent_id, origin), and the recipe a
generation runs with. backend/synth/actions.py stores the results.
"""

from __future__ import annotations

from typing import Any

from backend.synth.recipe import Recipe


def with_edit(items: list[dict], example: str, messages: list[dict]) -> list[dict]:
    """`items` with `example` replaced by an edited copy that names it as its parent.

    >>> items = [{"id": "a", "messages": [], "origin": None}, {"id": "b", "origin": None}]
    >>> [e.get("parent_id") for e in with_edit(items, "a", [{"role": "user"}])]
    ['a', None]
    """
    return [
        {
            **e,
            "messages": messages,
            "parent_id": example,
            "origin": {**(e["origin"] or {}), "edited": True},
        }
        if e["id"] == example
        else e
        for e in items
    ]


def select(items: list[dict], wanted: list[str]) -> tuple[list[dict], list[str]]:
    """The examples of `items` whose ids are wanted, in their order there, and the wanted ids
    that are not there.

    >>> select([{"id": "a"}, {"id": "b"}], ["b", "z", "a"])
    ([{'id': 'a'}, {'id': 'b'}], ['z'])
    """
    have = {e["id"] for e in items}
    keep = set(wanted)
    return [e for e in items if e["id"] in keep], [i for i in wanted if i not in have]


def search_terms(text: str, topic: str | None) -> str:
    """A search in words, for a version's note.

    >>> search_terms("gantt", None)
    "text 'gantt'"
    """
    terms = [f"text {text!r}" if text else "", f"topic {topic!r}" if topic else ""]
    return " and ".join(t for t in terms if t)


def recipe_for(
    stored: dict | None, recipe: Recipe | dict | None, changes: dict[str, Any] | None
) -> tuple[Recipe, bool]:
    """The recipe a generation runs with: `recipe` (else the stored one) with the non-None
    `changes` laid over it; and whether the caller gave a recipe or changes at all.

    >>> r, given = recipe_for({"per_topic": 3}, None, {"per_topic": None, "model": "m"})
    >>> (r.per_topic, r.model, given)
    (3, 'm', True)
    """
    base = recipe if recipe is not None else (stored or {})
    data = base.model_dump(mode="json") if isinstance(base, Recipe) else dict(base)
    over = {k: v for k, v in (changes or {}).items() if v is not None}
    return Recipe.model_validate({**data, **over}), recipe is not None or bool(over)
