"""A dataset recipe (what to generate) and the plan it expands to (one item per request).

The recipe is stored with the dataset in the database and copied into a generate job's spec.
It never holds secrets: the endpoint key is read from Settings when the job runs.
Each plan item has a stable key ("billing/3") so a resumed job skips what it already did.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMATS = ("messages", "prompt-completion")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names


def tools_problem(tools: Any) -> str | None:
    """Why `tools` is not a list of OpenAI function definitions, or None.

    >>> tools_problem([{"type": "function", "function": {"name": "get_weather"}}])
    >>> tools_problem([{"type": "function", "function": {"name": "get weather"}}])
    "tool 1: function name 'get weather' is not 1-64 letters, digits, '_' or '-'"
    """
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(tools, list):
        return "tools is not a list of function definitions"
    seen: set[str] = set()
    for i, tool in enumerate(tools, 1):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function":
            return f'tool {i} is not {{"type": "function", "function": {{"name": ...}}}}'
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            return f"tool {i}: function name {name!r} is not 1-64 letters, digits, '_' or '-'"
        if name in seen:
            return f"tool {i}: function name {name!r} is given twice"
        seen.add(name)
        params = fn.get("parameters", {"type": "object"})
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            return f"tool {i} ({name}): parameters is not a JSON schema of an object"
        try:
            validator_for(params).check_schema(params)
        except SchemaError as exc:
            return f"tool {i} ({name}): parameters is not a valid JSON schema: {exc.message}"
    return None


class SeedExample(BaseModel):
    """A hand-written example the generator should imitate."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(description="What the user asks.")
    assistant: str = Field(description="The answer we want.")


class Recipe(BaseModel):
    """What to generate. Every field's description is the help text on the Recipe form."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        "", description="The task in plain words: who asks what, and what a good answer does."
    )
    format: Literal["messages", "prompt-completion"] = Field(
        "messages", description="Chat `messages`, or prompt/completion pairs."
    )
    system_prompt: str = Field(
        "", description="System prompt put first in every example (empty: none)."
    )
    topics: list[str] = Field(
        default_factory=list,
        description="Topics or product features to cover, e.g. Gantt chart, permissions, billing.",
    )
    seed_examples: list[SeedExample] = Field(
        default_factory=list, description="A few examples to imitate."
    )
    per_topic: int = Field(5, ge=1, le=10_000, description="Examples to generate per topic.")
    tones: list[str] = Field(
        default_factory=lambda: ["friendly", "concise"],
        description="Tones the user's message may take.",
    )
    complexities: list[str] = Field(
        default_factory=lambda: ["simple", "detailed"], description="How involved the question is."
    )
    personas: list[str] = Field(
        default_factory=lambda: ["new user", "team admin"], description="Who is asking."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["English"], description="Languages of the conversation."
    )
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=16, le=8192, description="Most tokens per generated example.")
    provider: Literal["openai", "local"] = Field(
        "openai", description="OpenAI-compatible endpoint, or a local transformers model folder."
    )
    model: str = Field(
        "", description="Generator model: the endpoint's model name, or a local model folder."
    )
    seed: int = Field(0, description="Seed for the diversity draws; same seed, same plan.")
    tools: list[dict] = Field(
        default_factory=list,
        exclude_if=lambda tools: not tools,  # a recipe without tools reads as it always did
        description="Functions the assistant may call (OpenAI function definitions: "
        '{"type": "function", "function": {"name", "description", "parameters"}}). With '
        "tools, a generated turn may carry tool calls and the tools' results (messages "
        "format only).",
    )

    @field_validator("topics", "tones", "complexities", "personas", "languages")
    @classmethod
    def _clean(cls, values: list[str]) -> list[str]:
        out, seen = [], set()
        for v in values:
            v = v.strip()
            if v and v.lower() not in seen:
                seen.add(v.lower())
                out.append(v)
        return out

    @field_validator("tools")
    @classmethod
    def _tools(cls, tools: list[dict]) -> list[dict]:
        why = tools_problem(tools)
        if why:
            raise ValueError(why)
        return [{"type": "function", **t} for t in tools]

    @model_validator(mode="after")
    def _tools_need_messages(self) -> Recipe:
        if self.tools and self.format != "messages":
            raise ValueError("tools need the messages format (prompt-completion has no turns)")
        return self


class PlanItem(BaseModel):
    key: str
    topic: str
    index: int
    tone: str | None = None
    complexity: str | None = None
    persona: str | None = None
    language: str | None = None


def plan(recipe: Recipe) -> list[PlanItem]:
    """Expand a recipe into one item per example, with diversity knobs drawn by the seed."""
    topics = recipe.topics or ["general"]
    rng = random.Random(recipe.seed)
    items = []
    for topic in topics:
        for i in range(recipe.per_topic):
            items.append(
                PlanItem(
                    key=f"{topic}/{i}",
                    topic=topic,
                    index=i,
                    tone=rng.choice(recipe.tones) if recipe.tones else None,
                    complexity=rng.choice(recipe.complexities) if recipe.complexities else None,
                    persona=rng.choice(recipe.personas) if recipe.personas else None,
                    language=rng.choice(recipe.languages) if recipe.languages else None,
                )
            )
    return items


def output_schema(fmt: str, tools: list[dict] | None = None) -> dict:
    """The JSON schema asked of the generator (strict-mode compatible). With `tools`, each
    turn pair also carries the tool calls made before the reply (each with its result)."""
    if fmt == "prompt-completion":
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt", "completion"],
            "properties": {"prompt": {"type": "string"}, "completion": {"type": "string"}},
        }
    # turn pairs, not a free list of roles: every instance of this schema is a valid
    # conversation (user first, roles alternating, the assistant last); tool calls sit inside
    # a pair, between its user turn and its reply, so they cannot come out of order either
    props: dict[str, Any] = {"user": {"type": "string"}}
    if tools:
        call = {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "arguments", "result"],
            "properties": {
                "name": {"type": "string", "enum": [t["function"]["name"] for t in tools]},
                "arguments": {"type": "string", "description": "a JSON object, as text"},
                "result": {"type": "string", "description": "what the tool returned"},
            },
        }
        props["tool_calls"] = {"type": "array", "items": call}
    props["assistant"] = {"type": "string"}
    pair = {
        "type": "object",
        "additionalProperties": False,
        "required": list(props),
        "properties": props,
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["turns"],
        "properties": {"turns": {"type": "array", "items": pair, "minItems": 1}},
    }


def _shape(fmt: str, tools: bool = False) -> str:
    if fmt == "prompt-completion":
        return '{"prompt": "<the user message>", "completion": "<the ideal answer>"}'
    if tools:
        return (
            '{"turns": [{"user": "<the user message>", "tool_calls": [{"name": "<a tool>", '
            '"arguments": "<its arguments as a JSON object>", "result": "<what it returned>"}], '
            '"assistant": "<the reply>"}, ...]}'
        )
    return '{"turns": [{"user": "<the user message>", "assistant": "<the reply>"}, ...]}'


def build_prompt(recipe: Recipe, item: PlanItem) -> list[dict]:
    """The chat messages sent to the generator for one plan item."""
    lines = [
        "You write training data for a fine-tuned assistant.",
        f"Task: {recipe.task or 'helpful answers to user questions'}",
        f"Topic of this example: {item.topic}",
    ]
    knobs = {
        "Tone of the user": item.tone,
        "Complexity": item.complexity,
        "The user is": item.persona,
        "Language": item.language,
    }
    lines += [f"{k}: {v}" for k, v in knobs.items() if v]
    if recipe.system_prompt:
        lines.append(f"The assistant follows this system prompt: {recipe.system_prompt}")
    for i, ex in enumerate(recipe.seed_examples[:5], 1):
        lines.append(
            f"Example {i}: "
            + json.dumps({"user": ex.user, "assistant": ex.assistant}, ensure_ascii=False)
        )
    if recipe.tools:
        lines.append(
            "The assistant can call these tools (OpenAI function definitions): "
            + json.dumps(recipe.tools, ensure_ascii=False)
        )
        lines.append(
            "When a reply needs a tool, list the calls in that turn's tool_calls, each with "
            "the tool's name, its arguments as a JSON object in text, and the result the tool "
            "returned; the reply then uses the results. Otherwise leave tool_calls empty."
        )
    lines.append(
        f"This is example number {item.index + 1} for this topic: make it different "
        "from the usual first question."
    )
    lines.append(
        "Reply with one JSON object only, no prose, shaped like: "
        + _shape(recipe.format, bool(recipe.tools))
    )
    return [
        {"role": "system", "content": "You reply with JSON only."},
        {"role": "user", "content": "\n".join(lines)},
    ]
