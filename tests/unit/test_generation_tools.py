"""Generation with tools: a recipe's OpenAI function definitions are checked, sent in the
prompt and in the response schema, and every output that honours the schema to the letter
(against the loopback server) is a valid conversation whose tool calls sit between a user turn
and the reply, each followed by its result. Calls that name no recipe tool or whose
arguments do not fit the tool's parameters are rejected with the place and the reason."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from pydantic import ValidationError

from backend.examples import message_problem
from backend.integrations.llm import OpenAIProvider
from backend.synth.parse import ParseError, parse_output
from backend.synth.recipe import Recipe, build_prompt, output_schema, plan
from tests.support.openai_server import OpenAIServer
from tests.unit.test_generation_schema import WORDS, instance

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "find_task",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                "required": ["query"],
            },
        },
    },
]
ARGS = {"get_weather": lambda w: {"city": w}, "find_task": lambda w: {"query": w, "limit": 2}}


def to_the_letter_with_arguments(rng: random.Random):
    """An endpoint that answers a random instance of the schema it was sent, its tool calls'
    arguments (free text in the schema) being a JSON object fit for the named tool."""

    def answer(body: dict) -> dict:
        value = instance(body["response_format"]["json_schema"]["schema"], rng)
        for pair in value["turns"]:
            for call in pair.get("tool_calls", []):
                call["arguments"] = json.dumps(ARGS[call["name"]](rng.choice(WORDS)))
        return value

    return answer


def test_every_output_of_the_tool_schema_is_a_valid_conversation():
    recipe = Recipe(topics=["weather", "tasks"], per_topic=12, tools=TOOLS, system_prompt="Help.")
    schema = output_schema(recipe.format, recipe.tools)
    pair = schema["properties"]["turns"]["items"]
    assert list(pair["properties"]) == ["user", "tool_calls", "assistant"]  # calls before reply
    assert pair["properties"]["tool_calls"]["items"]["properties"]["name"]["enum"] == [
        "get_weather",
        "find_task",
    ]
    prompts = [build_prompt(recipe, item) for item in plan(recipe)]
    assert '"name": "get_weather"' in prompts[0][1]["content"]
    with OpenAIServer() as srv:
        srv.responder = to_the_letter_with_arguments(random.Random(0))

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
    assert sent == [schema] * 24 and all(c.structured and not c.error for c in done)
    n_calls = 0
    for c in done:
        messages = parse_output(c.text, "messages", recipe.system_prompt, recipe.tools)
        assert message_problem(messages) is None
        for i, m in enumerate(messages):
            ids = [call["id"] for call in m.get("tool_calls") or []]
            if ids:  # each call answered by its result, in order, right after it
                results = messages[i + 1 : i + 1 + len(ids)]
                assert [r["tool_call_id"] for r in results] == ids
                assert all(r["role"] == "tool" for r in results)
                assert messages[i + 1 + len(ids)]["role"] == "assistant"
                n_calls += len(ids)
    assert n_calls > 10, "tool calls are representable and were made"


def _pair(call: dict) -> str:
    return json.dumps({"turns": [{"user": "Weather?", "tool_calls": [call], "assistant": "Ok."}]})


def test_a_valid_call_becomes_openai_shaped_turns():
    text = _pair({"name": "get_weather", "arguments": '{"city": "Paris"}', "result": "18 C"})
    assert parse_output(text, "messages", "", TOOLS) == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1_1", "name": "get_weather", "content": "18 C"},
        {"role": "assistant", "content": "Ok."},
    ]


@pytest.mark.parametrize(
    ("call", "tools", "reason"),
    [
        (
            {"name": "get_weather", "arguments": '{"town": "Paris"}', "result": "18 C"},
            TOOLS,
            "turns.0.tool_calls.0.arguments do not fit get_weather's parameters",
        ),
        (
            {"name": "get_weather", "arguments": "Paris", "result": "18 C"},
            TOOLS,
            "turns.0.tool_calls.0.arguments: not JSON",
        ),
        (
            {"name": "send_mail", "arguments": "{}", "result": "sent"},
            TOOLS,
            "turns.0.tool_calls.0: calls 'send_mail', not a recipe tool (get_weather, find_task)",
        ),
        (
            {"name": "get_weather", "arguments": '{"city": "Paris"}', "result": "18 C"},
            None,
            "not a recipe tool (none)",
        ),
        (
            {"name": "get_weather", "arguments": '{"city": "Paris"}', "result": " "},
            TOOLS,
            "is empty",
        ),
    ],
)
def test_bad_calls_are_rejected_with_where_and_why(call, tools, reason):
    with pytest.raises(ParseError) as info:
        parse_output(_pair(call), "messages", "", tools)
    assert info.value.stage == "validate" and reason in info.value.reason, info.value.reason


def test_a_recipe_checks_its_tools_and_keeps_its_old_shape_without_them():
    assert "tools" not in Recipe().model_dump(mode="json")  # stored recipes compare equal
    with pytest.raises(ValidationError, match="given twice"):
        Recipe(tools=[TOOLS[0], TOOLS[0]])
    with pytest.raises(ValidationError, match="tool 1 \\(f\\): parameters is not a valid"):
        Recipe(tools=[{"function": {"name": "f", "parameters": {"type": "object", "required": 1}}}])
    with pytest.raises(ValidationError, match="tools need the messages format"):
        Recipe(format="prompt-completion", tools=TOOLS)
    assert "tool_calls" not in json.dumps(output_schema("messages"))
