"""Turn a generator's text into a validated training example, or say why it cannot.

The chat shape asked of the generator is a list of {user, assistant} pairs, so no output
that honours the schema can have its roles out of order; the older free list of `messages` is
still read (and checked) for endpoints that ignore the schema. With a recipe's tools, a pair
may carry tool calls with their results; each call must name a recipe tool and its arguments
must fit that tool's parameters (JSON schema). Structured output usually
arrives as clean JSON; prompt-JSON fallbacks may wrap it in code
fences or prose, so the first balanced JSON object is extracted. Validation is pydantic.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.examples import message_problem

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


class ParseError(ValueError):
    """The output is not a usable example; `stage` is 'parse' or 'validate'."""

    def __init__(self, stage: str, reason: str):
        self.stage, self.reason = stage, reason
        super().__init__(f"{stage}: {reason}")


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class ChatOutput(BaseModel):
    """The older free list of turns, still read from endpoints that answer in prose-JSON."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Turn] = Field(min_length=2)


class ToolUse(BaseModel):
    """One tool call inside a turn pair: the tool, its arguments (a JSON object, as text or
    as an object) and the result the tool returned."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: str | dict
    result: str = Field(min_length=1)


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    tool_calls: list[ToolUse] = Field(default_factory=list)
    assistant: str = Field(min_length=1)


class PairsOutput(BaseModel):
    """What the response schema asks for (backend/synth/recipe.py `output_schema`): turn
    pairs, so roles cannot come out of order."""

    model_config = ConfigDict(extra="forbid")
    turns: list[Pair] = Field(min_length=1)


class PromptCompletionOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1)
    completion: str = Field(min_length=1)


def extract_json(text: str) -> dict:
    """The first JSON object in `text` (bare, fenced, or inside prose).

    >>> extract_json('Sure! ```json\\n{"a": 1}\\n```')
    {'a': 1}
    """
    if text is None or not text.strip():
        raise ParseError("parse", "empty output")
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    for cand in candidates:
        try:
            value = json.loads(cand)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ParseError("parse", "no JSON object found in the output")


def _pydantic_reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(object)'}: {e['msg']}" for e in exc.errors()[:3]
    )


def _arguments(use: ToolUse, tools: dict[str, dict], where: str) -> dict:
    """A call's arguments as an object, checked against its tool's parameters."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    if use.name not in tools:
        known = ", ".join(tools) or "none"
        raise ParseError("validate", f"{where}: calls {use.name!r}, not a recipe tool ({known})")
    args = use.arguments
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise ParseError("validate", f"{where}.arguments: not JSON") from None
    if not isinstance(args, dict):
        raise ParseError("validate", f"{where}.arguments: not a JSON object")
    params = tools[use.name].get("parameters") or {"type": "object"}
    error = best_match(Draft202012Validator(params).iter_errors(args))
    if error is not None:
        raise ParseError(
            "validate", f"{where}.arguments do not fit {use.name}'s parameters: {error.message}"
        )
    return args


def _pair_turns(pairs: list[Pair], tools: list[dict] | None) -> list[dict]:
    """Turn pairs as chat turns: user, then (when the pair calls tools) an assistant turn
    with the calls and one `tool` turn per result, then the reply."""
    by_name = {t["function"]["name"]: t["function"] for t in tools or []}
    turns: list[dict] = []
    for k, p in enumerate(pairs):
        turns.append({"role": "user", "content": p.user.strip()})
        if p.tool_calls:
            calls, results = [], []
            for j, use in enumerate(p.tool_calls):
                args = _arguments(use, by_name, f"turns.{k}.tool_calls.{j}")
                cid = f"call_{k + 1}_{j + 1}"
                fn = {"name": use.name, "arguments": args}
                calls.append({"id": cid, "type": "function", "function": fn})
                results.append(
                    {
                        "role": "tool",
                        "tool_call_id": cid,
                        "name": use.name,
                        "content": use.result.strip(),
                    }
                )
            turns += [{"role": "assistant", "content": "", "tool_calls": calls}, *results]
        turns.append({"role": "assistant", "content": p.assistant.strip()})
    return turns


def to_messages(
    data: dict, fmt: str, system_prompt: str = "", tools: list[dict] | None = None
) -> list[dict]:
    """Validate a parsed object against the recipe's format (and its `tools`: each call must
    name one and fit its parameters) and return chat messages."""
    try:
        if fmt == "prompt-completion":
            pc = PromptCompletionOutput.model_validate(data)
            turns = [
                {"role": "user", "content": pc.prompt.strip()},
                {"role": "assistant", "content": pc.completion.strip()},
            ]
        elif "messages" in data:
            chat = ChatOutput.model_validate(data)
            turns = [{"role": t.role, "content": t.content.strip()} for t in chat.messages]
        elif "turns" in data:
            turns = _pair_turns(PairsOutput.model_validate(data).turns, tools)
        else:
            keys = ", ".join(map(str, data)) or "none"
            raise ParseError(
                "validate",
                f"expected 'turns' (user/assistant pairs) or 'messages'; found keys: {keys}",
            )
    except ValidationError as exc:
        raise ParseError("validate", _pydantic_reason(exc)) from None
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + turns
    problem = message_problem(messages)
    if problem:
        raise ParseError("validate", problem)
    if turns[0]["role"] != "user":
        raise ParseError("validate", "the conversation does not start with a user turn")
    return messages


def parse_output(
    text: str, fmt: str, system_prompt: str = "", tools: list[dict] | None = None
) -> list[dict]:
    """Text from the generator to validated chat messages; raises ParseError."""
    return to_messages(extract_json(text), fmt, system_prompt, tools)
