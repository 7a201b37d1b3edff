"""Parsing generator output into validated examples, and the recipe's plan."""

from __future__ import annotations

import json

import pytest

from backend.synth.parse import ParseError, extract_json, parse_output
from backend.synth.recipe import Recipe, build_prompt, output_schema, plan

CHAT = {
    "messages": [
        {"role": "user", "content": "How do I share?"},
        {"role": "assistant", "content": "Click Share."},
    ]
}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CHAT),
        "```json\n" + json.dumps(CHAT) + "\n```",
        "Sure, here it is: " + json.dumps(CHAT) + " Hope that helps!",
    ],
)
def test_extracts_json_in_its_usual_wrappings(text):
    msgs = parse_output(text, "messages", "Be brief.")
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[-1] == {"role": "assistant", "content": "Click Share."}


@pytest.mark.parametrize(
    "text,stage,reason",
    [
        ("", "parse", "empty output"),
        ("no json here", "parse", "no JSON object"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "validate", "at least 2"),
        (
            '{"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]}',
            "validate",
            "no assistant turn",
        ),
        (
            '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"},'
            ' {"role": "assistant", "content": "b"}]}',
            "validate",
            "start with a user",
        ),
        (
            '{"messages": [{"role": "user", "content": "q"}, '
            '{"role": "assistant", "content": ""}]}',
            "validate",
            "at least 1 character",
        ),
        ('{"answer": "x"}', "validate", "messages"),
    ],
)
def test_bad_outputs_say_why(text, stage, reason):
    with pytest.raises(ParseError) as err:
        parse_output(text, "messages")
    assert err.value.stage == stage and reason in err.value.reason


def test_prompt_completion_format():
    msgs = parse_output('{"prompt": "Where?", "completion": "Here."}', "prompt-completion")
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    with pytest.raises(ParseError, match="completion"):
        parse_output('{"prompt": "Where?"}', "prompt-completion")
    assert output_schema("prompt-completion")["required"] == ["prompt", "completion"]


def test_extract_json_skips_non_objects():
    assert extract_json('[1, 2] then {"a": {"b": 1}}') == {"a": {"b": 1}}


def test_plan_is_stable_and_covers_topics():
    r = Recipe(topics=["billing", "Billing", " gantt "], per_topic=3, seed=4)
    assert r.topics == ["billing", "gantt"]
    items = plan(r)
    assert [i.key for i in items][:4] == ["billing/0", "billing/1", "billing/2", "gantt/0"]
    assert [i.model_dump() for i in plan(r)] == [i.model_dump() for i in items]
    prompt = build_prompt(r, items[3])[-1]["content"]
    assert "Topic of this example: gantt" in prompt and "JSON" in prompt
    assert len(plan(Recipe(per_topic=2))) == 2  # no topics: one general topic
