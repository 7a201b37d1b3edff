"""Chat examples as plain data: their content ids, a version's content hash, and the rules a
trainable conversation meets.

Ground floor, used by the store (which keys `examples` by these ids) and by the generate job
(which must not import the store): both compute the same id for the same conversation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

ROLES = ("system", "user", "assistant", "tool")
MAX_CONTENT_CHARS = 200_000
TOOL_KEYS = ("tool_calls", "tool_call_id", "name")  # kept on a turn when present


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: one text per value, for hashing."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def clean_turn(m: dict) -> dict:
    """A turn as stored: role and content, plus tool_calls / tool_call_id / name when set
    (a tool-calling assistant turn's missing content becomes "").

    >>> clean_turn({"role": "user", "content": "hi", "weight": 1})
    {'role': 'user', 'content': 'hi'}
    """
    turn = {"role": m["role"], "content": m["content"] if m.get("content") is not None else ""}
    for key in TOOL_KEYS:
        if m.get(key) is not None:
            turn[key] = m[key]
    return turn


def call_text(call: dict) -> str:
    """One tool call as a reader sees it: the function's name and its JSON arguments.

    >>> call_text({"function": {"name": "get_weather", "arguments": {"city": "Paris"}}})
    'get_weather({"city": "Paris"})'
    """
    fn = (call.get("function") if isinstance(call, dict) else None) or {}
    args = fn.get("arguments", "{}")
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return f"{fn.get('name') or '?'}({text})"


def turn_label(m: dict) -> str:
    """Who speaks in a turn, for a reader: the role, and a tool turn's tool name.

    >>> turn_label({"role": "tool", "name": "get_weather", "content": "18 C"})
    'tool get_weather'
    """
    name = (m.get("name") or m.get("tool_call_id")) if m.get("role") == "tool" else None
    return f"{m.get('role')} {name}" if name else str(m.get("role"))


def turn_text(m: dict) -> str:
    """A turn's text for a reader (review, Label Studio): its content, then one line per
    tool call it makes.

    >>> turn_text({"role": "assistant", "content": "",
    ...            "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]})
    '-> tool call f({})'
    """
    lines = [m["content"]] if m.get("content") else []
    lines += [f"-> tool call {call_text(c)}" for c in m.get("tool_calls") or []]
    return "\n".join(lines)


def example_id(messages: list[dict], tools: list | None = None) -> str:
    """The content hash of a conversation (each turn's role, content and tool fields, in
    order, and the tools it may call). A conversation without tools hashes as it always did:
    role and content only."""
    turns = [clean_turn(m) for m in messages]
    if tools:
        both = canonical_json({"messages": turns, "tools": tools})
        return hashlib.sha256(both.encode()).hexdigest()
    return hashlib.sha256(turns_json(turns)).hexdigest()


def turns_json(turns: list[dict]) -> bytes:
    """`canonical_json` of cleaned turns, as UTF-8 bytes. Turns of only role and content (text)
    go through orjson, which writes the very same bytes for text (a test checks every code
    point) several times faster: the bulk import hashes a million of these."""
    if all(len(t) == 2 for t in turns):
        return orjson.dumps(turns, option=orjson.OPT_SORT_KEYS)
    return canonical_json(turns).encode()


def version_hash(example_ids: list[str]) -> str:
    """The content hash of a version: its ordered example ids."""
    return hashlib.sha256("\n".join(example_ids).encode()).hexdigest()


def tool_calls_problem(calls: Any) -> str | None:
    """Why `calls` is not a list of OpenAI-style tool calls, or None.

    >>> tool_calls_problem([{"type": "function", "function": {"name": "f", "arguments": "{}"}}])
    >>> tool_calls_problem([{"function": {}}])
    'tool call 1 has no function name'
    """
    if not isinstance(calls, list) or not calls:
        return "tool_calls is not a non-empty list"
    for j, call in enumerate(calls, 1):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"tool call {j} has no function name"
        if not isinstance(fn.get("arguments", "{}"), str | dict):
            return f"tool call {j} arguments are not a JSON object or text"
    return None


def _turn_problem(i: int, m: Any, previous: dict | None) -> str | None:
    if not isinstance(m, dict):
        return f"turn {i} is not an object with role and content"
    role, content = m.get("role"), m.get("content")
    if role not in ROLES:
        return f"turn {i} has role {role!r}; expected one of {', '.join(ROLES)}"
    calls = m.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            return f"turn {i} ({role}) has tool_calls; only assistant turns call tools"
        why = tool_calls_problem(calls)
        if why:
            return f"turn {i} (assistant): {why}"
        if content is None:
            return None
    if role == "tool" and not (
        previous and (previous.get("role") == "tool" or previous.get("tool_calls"))
    ):
        return f"turn {i} (tool) does not follow an assistant turn that calls a tool"
    if not isinstance(content, str):
        return f"turn {i} ({role}) content is not text"
    if not content.strip() and calls is None:
        return f"turn {i} ({role}) is empty"
    if len(content) > MAX_CONTENT_CHARS:
        return f"turn {i} ({role}) is longer than {MAX_CONTENT_CHARS} characters"
    return None


_PLAIN_ROLES = frozenset(("system", "user", "assistant"))


def message_problem(messages: Any) -> str | None:
    """Why `messages` is not a trainable chat example, or None when it is. Tool use follows
    OpenAI's shape: an assistant turn with `tool_calls` (its content may be empty), then
    `tool` turns with the results.

    >>> message_problem([{"role": "user", "content": "hi"}])
    'no assistant turn'
    """
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content}"
    previous = None
    for i, m in enumerate(messages, 1):
        content = m.get("content") if type(m) is dict else None
        plain = (  # the common turn, checked fast: a million-row import checks millions
            type(content) is str
            and len(m) == 2
            and m.get("role") in _PLAIN_ROLES
            and len(content) <= MAX_CONTENT_CHARS
            and content.strip()
        )
        if not plain:
            why = _turn_problem(i, m, previous)
            if why:
                return why
        previous = m
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


def stored_form(ex: Any, *, checked: bool = False) -> tuple[dict | None, str | None]:
    """An example as the store keeps it (id, messages as canonical JSON text, topic,
    parent_id, origin, tools as canonical JSON text), or why it cannot be kept. `checked`:
    the messages already passed `message_problem` and hold clean turns (the importer's)."""
    if not isinstance(ex, dict):
        return None, "not an object"
    messages = ex.get("messages")
    if not checked:
        problem = message_problem(messages)
        if problem:
            return None, problem
        messages = [clean_turn(m) for m in messages]
    topic, origin, tools = ex.get("topic"), ex.get("origin"), ex.get("tools") or None
    if topic is not None and not isinstance(topic, str):
        return None, "topic is not text"
    if origin is not None and not isinstance(origin, dict):
        return None, "origin is not an object"
    if tools is not None and not isinstance(tools, list):
        return None, "tools is not a list of tool definitions"
    text = turns_json(messages)
    eid = example_id(messages, tools) if tools else hashlib.sha256(text).hexdigest()
    return {
        "id": eid,
        "messages": text.decode(),  # a compact copy: orjson's bytes keep a 4 KiB buffer
        "topic": topic,
        "parent_id": ex.get("parent_id"),
        "origin": origin,
        "tools": canonical_json(tools) if tools else None,
    }, None


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
        eid = example_id(messages, ex.get("tools"))
        if eid not in seen:
            seen.add(eid)
            ids.append(eid)
    return ids
