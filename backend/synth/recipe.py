"""A dataset recipe (what to generate) and the plan it expands to (one item per request).

The recipe is stored with the dataset in the database and copied into a generate job's spec.
It never holds secrets: the endpoint key is read from Settings when the job runs.
Each plan item has a stable key ("billing/3") so a resumed job skips what it already did.
"""

from __future__ import annotations

import json
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FORMATS = ("messages", "prompt-completion")


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


def output_schema(fmt: str) -> dict:
    """The JSON schema asked of the generator (strict-mode compatible)."""
    if fmt == "prompt-completion":
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["prompt", "completion"],
            "properties": {"prompt": {"type": "string"}, "completion": {"type": "string"}},
        }
    turn = {
        "type": "object",
        "additionalProperties": False,
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": turn, "minItems": 2}},
    }


def _shape(fmt: str) -> str:
    if fmt == "prompt-completion":
        return '{"prompt": "<the user message>", "completion": "<the ideal answer>"}'
    return (
        '{"messages": [{"role": "user", "content": "..."}, '
        '{"role": "assistant", "content": "..."}]}'
    )


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
    lines.append(
        f"This is example number {item.index + 1} for this topic: make it different "
        "from the usual first question."
    )
    lines.append("Reply with one JSON object only, no prose, shaped like: " + _shape(recipe.format))
    return [
        {"role": "system", "content": "You reply with JSON only."},
        {"role": "user", "content": "\n".join(lines)},
    ]
