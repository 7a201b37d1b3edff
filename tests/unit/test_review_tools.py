"""Tool-calling examples in review: Label Studio tasks and the in-app queue show the calls and
the tools' results as text, and applying a batch keeps each example's tools."""

from __future__ import annotations

import json

from backend.action import Ctx
from backend.config import Settings
from backend.review import actions
from backend.review.labelstudio import split_prompt, task_payload
from backend.store import datasets as ds
from backend.store import review as rstore
from tests.support.seed_review import flagged_batch

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def weather(city: str, reading: str, args_as_text: bool = False) -> dict:
    args = {"city": city}
    call = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "arguments": json.dumps(args) if args_as_text else args,
        },
    }
    return {
        "messages": [
            {"role": "system", "content": "You can look up the weather."},
            {"role": "user", "content": f"Weather in {city}?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "get_weather", "content": reading},
            {"role": "assistant", "content": f"{city}: {reading}."},
        ],
        "tools": TOOLS,
    }


def test_task_shows_tool_calls_and_results_as_text():
    item = {
        "example_id": "e1",
        "messages": weather("Paris", "18 C, sunny")["messages"],
        "score": 1.2,
        "reason": "flagged",
    }
    data = task_payload(item, "rb-1", "tiny")["data"]
    assert data["instruction"] == (
        "[system]\nYou can look up the weather.\n\n"
        "[user]\nWeather in Paris?\n\n"
        '[assistant]\n-> tool call get_weather({"city": "Paris"})\n\n'
        "[tool get_weather]\n18 C, sunny"
    )
    assert data["response"] == "Paris: 18 C, sunny."


def test_a_last_turn_that_calls_a_tool_shows_the_call_as_the_response():
    call = {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    messages = [
        {"role": "user", "content": "Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
    ]
    prompt, response = split_prompt(messages)
    assert prompt == "[user]\nOslo?"
    assert response == 'Checking.\n-> tool call get_weather({"city": "Oslo"})'


def tool_batch(store) -> tuple[dict, list[str]]:
    """A dataset of tool-calling examples, scored and flagged (the top 2)."""
    ds.create_dataset(store, "weather")
    cities = ["Paris", "Oslo", "Rome"]
    ver = ds.add_version(
        store, "weather", [weather(c, f"{i} C", i == 1) for i, c in enumerate(cities)]
    )
    ids = [e["id"] for e in ds.version_examples(store, ver["id"])]
    rows = "".join(
        json.dumps(
            {
                "example_id": e,
                "method": "nll",
                "model": "tiny",
                "score": 1.0 + i,
                "version_id": ver["id"],
                "dataset": "weather",
            }
        )
        + "\n"
        for i, e in enumerate(ids)
    )
    with store.transaction() as cur:
        rstore.insert_scores(cur, "score-w", rows.encode())
    return flagged_batch(store, "weather", "score-w", 2), ids


def test_applying_a_batch_keeps_each_examples_tools(ws, store):
    from backend.review.verdicts import Verdict

    batch, ids = tool_batch(store)
    ctx = Ctx(store, ws, Settings())
    items = rstore.batch_items(store, batch["id"])
    actions.record_verdict(
        ctx,
        batch["id"],
        Verdict(example_id=items[0]["example_id"], reviewer="ana", verdict="accept"),
    )
    actions.record_verdict(
        ctx,
        batch["id"],
        Verdict(
            example_id=items[1]["example_id"],
            reviewer="ana",
            verdict="correct",
            corrected="It is warm.",
        ),
    )
    applied = actions.apply_batch(ctx, batch["id"])
    assert applied["counts"] == {"accepted": 1, "corrected": 1, "unreviewed": 1}
    new = ds.version_examples(store, applied["version"]["id"])
    assert all(e["tools"] == TOOLS for e in new)
    kept = {e["id"] for e in new}
    assert items[0]["example_id"] in kept  # the same example, not a copy without its tools
    corrected = next(e for e in new if e["parent_id"] == items[1]["example_id"])
    assert corrected["messages"][-1]["content"] == "It is warm."
    assert corrected["messages"][2]["tool_calls"][0]["function"]["name"] == "get_weather"
