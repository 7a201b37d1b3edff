"""Turn a generator's text into a validated training example, or say why it cannot.

Structured output usually arrives as clean JSON; prompt-JSON fallbacks may wrap it in code
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
    model_config = ConfigDict(extra="forbid")
    messages: list[Turn] = Field(min_length=2)


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


def to_messages(data: dict, fmt: str, system_prompt: str = "") -> list[dict]:
    """Validate a parsed object against the recipe's format and return chat messages."""
    try:
        if fmt == "prompt-completion":
            pc = PromptCompletionOutput.model_validate(data)
            turns = [
                {"role": "user", "content": pc.prompt.strip()},
                {"role": "assistant", "content": pc.completion.strip()},
            ]
        else:
            chat = ChatOutput.model_validate(data)
            turns = [{"role": t.role, "content": t.content.strip()} for t in chat.messages]
    except ValidationError as exc:
        raise ParseError("validate", _pydantic_reason(exc)) from None
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + turns
    problem = message_problem(messages)
    if problem:
        raise ParseError("validate", problem)
    if turns[0]["role"] != "user":
        raise ParseError("validate", "the conversation does not start with a user turn")
    return messages


def parse_output(text: str, fmt: str, system_prompt: str = "") -> list[dict]:
    """Text from the generator to validated chat messages; raises ParseError."""
    return to_messages(extract_json(text), fmt, system_prompt)
