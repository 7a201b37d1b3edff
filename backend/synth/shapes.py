"""The row shapes an import understands, each turned into the studio's chat example
({"messages", "topic", "tools"}), and the explicit column mapping for any other columns.

    messages        {"messages": [{role, content, tool_calls?, tool_call_id?, name?}], "tools"?}
    sharegpt        {"conversations": [{"from": "human"|"gpt"|"system"|"tool", "value"}], "system"?}
    prompt          {"prompt", "completion"} (text, or lists of chat turns), "system"?
    alpaca          {"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}

A row's shape is told by its columns, in that order. A mapping ({"prompt": "question",
"completion": "answer"}: studio field <- your column) renames columns first; the other
columns stay as they are. Pure functions: backend/synth/importers.py reads the files.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from backend.examples import message_problem

SHAPES = ("messages", "sharegpt", "prompt", "alpaca")
FIELDS = (
    "messages",
    "conversations",
    "prompt",
    "completion",
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "topic",
    "tools",
)
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "function_response": "tool",
    "ipython": "tool",
    "function_call": "assistant",  # the value holds the call: {"name", "arguments"}
}
NEEDS = (
    "needs a 'messages' column, 'prompt' and 'completion', 'instruction' and 'output' "
    "(Alpaca) or 'conversations' (ShareGPT), or a column mapping"
)


def parse_mapping(text: str | dict | None) -> dict[str, str]:
    """A mapping from `--map prompt=question,completion=answer` (or a dict): field -> column.

    >>> parse_mapping("prompt=question, completion=answer")
    {'prompt': 'question', 'completion': 'answer'}
    """
    if not text:
        return {}
    pairs = (
        text.items()
        if isinstance(text, dict)
        else (
            part.split("=", 1) if "=" in part else (part, "")
            for part in text.split(",")
            if part.strip()
        )
    )
    out: dict[str, str] = {}
    for field, column in pairs:
        field, column = str(field).strip(), str(column).strip()
        if field not in FIELDS:
            raise ValueError(
                f"mapping names an unknown field {field!r}; fields: {', '.join(FIELDS)}"
            )
        if not column:
            raise ValueError(f"mapping for {field!r} names no column (write {field}=COLUMN)")
        out[field] = column
    return out


def apply_mapping(row: dict, mapping: dict[str, str]) -> dict:
    """`row` with each mapped column under its studio field name (the column must exist)."""
    if not mapping:
        return row
    missing = [c for c in mapping.values() if c not in row]
    if missing:
        raise KeyError(f"mapped column {missing[0]!r} is not in the row")
    renamed = {c for c in mapping.values()}
    out = {k: v for k, v in row.items() if k not in renamed}
    for field, column in mapping.items():
        out[field] = row[column]
    return out


def shape_of(row: Any) -> str | None:
    """The shape a row's columns say it has, or None."""
    if not isinstance(row, dict):
        return None
    if row.get("messages") is not None:
        return "messages"
    if row.get("conversations") is not None:
        return "sharegpt"
    if "prompt" in row and "completion" in row:
        return "prompt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    return None


def _plain(value: Any) -> Any:
    """A JSON text cell (CSV, Parquet string columns) as its value; numpy arrays as lists."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return json.loads(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _text(value: Any) -> Any:
    """Text content; OpenAI content parts that are all text are joined."""
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" for p in value
    ):
        return "".join(str(p.get("text", "")) for p in value)
    return value


def _call(value: Any) -> dict:
    """One tool call in OpenAI's shape, from it or from {"name", "arguments"}."""
    if isinstance(value, dict) and "function" in value:
        return {**value, "type": value.get("type", "function")}
    if isinstance(value, dict):
        args = value.get("arguments", value.get("parameters", {}))
        return {"type": "function", "function": {"name": value.get("name"), "arguments": args}}
    return {"function": None}


def _turn(m: Any) -> Any:
    """A chat turn with only the keys the studio keeps (content "" for a bare tool call)."""
    if not isinstance(m, dict):
        return m
    content = m.get("content")
    if type(content) is str and len(m) == 2 and "role" in m:
        return {"role": m["role"], "content": content}
    turn = {"role": m.get("role"), "content": _text(content)}
    calls = _plain(m.get("tool_calls"))
    if calls is not None:
        turn["tool_calls"] = [_call(c) for c in calls] if isinstance(calls, list) else calls
        if turn["content"] is None:
            turn["content"] = ""
    for key in ("tool_call_id", "name"):
        if m.get(key) is not None:
            turn[key] = m[key]
    return turn


def _sharegpt_turn(m: Any) -> dict:
    if not isinstance(m, dict):
        return {"role": None, "content": None}
    who = m.get("from", m.get("role"))
    value = m.get("value", m.get("content"))
    role = SHAREGPT_ROLES.get(str(who).lower()) if who is not None else None
    if role is None:
        raise ValueError(
            f"speaker {who!r} is unknown; expected one of {', '.join(sorted(SHAREGPT_ROLES))}"
        )
    if str(who).lower() == "function_call":
        call = _plain(value)
        calls = call if isinstance(call, list) else [call]
        return {"role": "assistant", "content": "", "tool_calls": [_call(c) for c in calls]}
    return {"role": role, "content": value}


def _system(row: dict) -> list[dict]:
    system = row.get("system")
    return [{"role": "system", "content": system}] if isinstance(system, str) and system else []


def _turns(value: Any, role: str) -> list[dict] | None:
    value = _plain(value)
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return [_turn(m) for m in value]
    return None


def _messages(row: dict, shape: str) -> tuple[list | None, str | None]:
    if shape == "messages":
        messages = row["messages"]
        if isinstance(messages, str):
            try:
                messages = _plain(messages) if messages[:1] == "[" else json.loads(messages)
            except ValueError:
                return None, "messages is not valid JSON"
        messages = _plain(messages)
        if not isinstance(messages, list):
            return messages, None
        return [_turn(m) for m in messages], None
    if shape == "sharegpt":
        conv = _plain(row["conversations"])
        if not isinstance(conv, list):
            return None, "conversations is not a list of {from, value} turns"
        try:
            turns = [_sharegpt_turn(m) for m in conv]
        except ValueError as exc:
            return None, f"conversations: {exc}"
        has_system = turns and turns[0]["role"] == "system"
        return ([] if has_system else _system(row)) + turns, None
    if shape == "prompt":
        prompt, completion = _turns(row["prompt"], "user"), _turns(row["completion"], "assistant")
        if prompt is None or completion is None:
            return None, "prompt and completion must be text or lists of chat turns"
        return _system(row) + prompt + completion, None
    instruction, extra, output = row["instruction"], row.get("input"), row["output"]
    if not isinstance(instruction, str) or not isinstance(output, str):
        return None, "instruction and output must be text"
    user = instruction + (f"\n\n{extra}" if isinstance(extra, str) and extra.strip() else "")
    past: list[dict] = []
    for pair in _plain(row.get("history")) or []:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            return None, "history must be a list of [instruction, response] pairs"
        past += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return _system(row) + past + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": output},
    ], None


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def row_to_example(
    row: Any, mapping: dict[str, str] | None = None
) -> tuple[dict | None, str | None]:
    """One input row to {"messages", "topic", "tools"}, or the reason it cannot be one.

    >>> row_to_example({"instruction": "Add 2+2", "input": "", "output": "4"})[0]["messages"]
    [{'role': 'user', 'content': 'Add 2+2'}, {'role': 'assistant', 'content': '4'}]
    """
    if not isinstance(row, dict):
        return None, "not an object"
    if mapping:
        try:
            row = apply_mapping(row, mapping)
        except KeyError as exc:
            return None, str(exc.args[0])
    shape = shape_of(row)
    if shape is None:
        cols = ", ".join(sorted(map(str, row))) or "none"
        return None, f"{NEEDS} (found: {cols})"
    messages, why = _messages(row, shape)
    if why:
        return None, why
    problem = message_problem(messages)
    if problem:
        return None, problem
    topic = row.get("topic")
    tools = _plain(row.get("tools"))
    if _missing(tools) or tools == []:
        tools = None
    elif not isinstance(tools, list):
        return None, "tools is not a list of tool definitions"
    return {
        "messages": messages,
        "topic": None if _missing(topic) else str(topic),
        "tools": tools,
    }, None
