"""Chat examples as plain data: their content ids, a version's content hash, and the rules a
trainable conversation meets.

Ground floor, used by the store (which keys `examples` by these ids) and by the generate job
(which must not import the store): both compute the same id for the same conversation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ROLES = ("system", "user", "assistant")
MAX_CONTENT_CHARS = 200_000


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: one text per value, for hashing."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def example_id(messages: list[dict]) -> str:
    """The content hash of a conversation (role and content of each turn, in order)."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    return hashlib.sha256(canonical_json(turns).encode()).hexdigest()


def version_hash(example_ids: list[str]) -> str:
    """The content hash of a version: its ordered example ids."""
    return hashlib.sha256("\n".join(example_ids).encode()).hexdigest()


def message_problem(messages: Any) -> str | None:
    """Why `messages` is not a trainable chat example, or None when it is.

    >>> message_problem([{"role": "user", "content": "hi"}])
    'no assistant turn'
    """
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content}"
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return f"turn {i + 1} is not an object with role and content"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            return f"turn {i + 1} has role {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"turn {i + 1} ({role}) content is not text"
        if not content.strip():
            return f"turn {i + 1} ({role}) is empty"
        if len(content) > MAX_CONTENT_CHARS:
            return f"turn {i + 1} ({role}) is longer than {MAX_CONTENT_CHARS} characters"
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        return "no user turn"
    if "assistant" not in roles:
        return "no assistant turn"
    if roles[-1] != "assistant":
        return "the last turn is not from the assistant"
    if "system" in roles[1:]:
        return "a system turn may only come first"
    return None


def content_ids(examples: list[Any]) -> list[str] | None:
    """The ids a version of `examples` would hold (first occurrence kept, order kept), or None
    when any example is invalid (storing them would be refused anyway).

    >>> turns = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    >>> len(content_ids([{"messages": turns}, {"messages": turns}]))
    1
    """
    ids: list[str] = []
    seen: set[str] = set()
    for ex in examples:
        messages = ex.get("messages") if isinstance(ex, dict) else None
        if message_problem(messages) is not None:
            return None
        eid = example_id(messages)
        if eid not in seen:
            seen.add(eid)
            ids.append(eid)
    return ids
