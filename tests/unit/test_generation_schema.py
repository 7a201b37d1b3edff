"""Generation's response schema makes an invalid conversation unrepresentable: against an
endpoint that honours the schema to the letter (each answer a random instance of the schema
it was sent), every output of the turn-pair schema parses into a valid conversation, while
the older free list of roles comes back out of order most of the time."""

from __future__ import annotations

import asyncio
import json
import random

from backend.integrations.llm import OpenAIProvider
from backend.synth.parse import ParseError, parse_output
from backend.synth.recipe import Recipe, build_prompt, output_schema, plan
from tests.support.openai_server import OpenAIServer

FREE_ROLES = {  # the schema generation used to send: a free list of roles
    "type": "object",
    "additionalProperties": False,
    "required": ["messages"],
    "properties": {
        "messages": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["role", "content"],
                "properties": {
                    "role": {"type": "string", "enum": ["user", "assistant"]},
                    "content": {"type": "string"},
                },
            },
        }
    },
}
WORDS = "board task sprint invoice export label archive member filter calendar".split()


def instance(schema: dict, rng: random.Random):
    """A random value that satisfies `schema` to the letter (the strict-mode subset)."""
    kind = schema["type"]
    if kind == "object":
        return {k: instance(v, rng) for k, v in schema["properties"].items()}
    if kind == "array":
        low = schema.get("minItems", 0)
        return [instance(schema["items"], rng) for _ in range(rng.randint(low, low + 3))]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))


def outputs(schema: dict, n: int = 48) -> list[str]:
    rng = random.Random(0)

    def to_the_letter(body: dict) -> dict:
        return instance(body["response_format"]["json_schema"]["schema"], rng)

    recipe = Recipe(topics=["billing", "boards", "exports", "sprints"], per_topic=n // 4)
    prompts = [build_prompt(recipe, item) for item in plan(recipe)]
    with OpenAIServer() as srv:
        srv.responder = to_the_letter

        async def run():
            provider = OpenAIProvider(base_url=srv.base_url, api_key="x", model="m")
            try:
                return await provider.complete(
                    prompts, schema=schema, temperature=0.7, max_tokens=256
                )
            finally:
                await provider.aclose()

        done = asyncio.run(run())
        sent = [r["response_format"]["json_schema"]["schema"] for r in srv.requests]
    assert sent == [schema] * n and all(c.structured and not c.error for c in done)
    return [c.text for c in done]


def rejected(texts: list[str]) -> list[str]:
    reasons = []
    for text in texts:
        try:
            parse_output(text, "messages", "Be brief.")
        except ParseError as exc:
            reasons.append(exc.reason)
    return reasons


def test_every_output_of_the_turn_pair_schema_is_a_valid_conversation():
    texts = outputs(output_schema("messages"))
    assert rejected(texts) == []
    multi = [json.loads(t) for t in texts if len(json.loads(t)["turns"]) > 1]
    assert multi, "multi-turn conversations are representable too"
    roles = [m["role"] for m in parse_output(json.dumps(multi[0]), "messages", "Be brief.")]
    assert roles[:3] == ["system", "user", "assistant"] and roles[-1] == "assistant"


def test_the_free_list_of_roles_comes_back_out_of_order():
    reasons = rejected(outputs(FREE_ROLES))
    assert len(reasons) >= 24, reasons  # most of the 48 are not trainable
    assert any("start with a user" in r or "last turn" in r for r in reasons)
