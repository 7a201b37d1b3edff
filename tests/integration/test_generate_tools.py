"""`ftstudio generate --tools FILE.json` against the loopback OpenAI-compatible server: the
tools reach the prompt and the response schema, tool-calling conversations are kept with their
tools (a call whose arguments do not fit is rejected, saying why), and the dataset's export
keeps them. A bad tools file is refused before anything is queued."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.slow

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
            },
        },
    }
]
CITIES = ["Paris", "Oslo", "Rome", "Lima", "Kyoto", "Cairo"]


def weather_responder(body: dict) -> dict:
    """A tool-using conversation per prompt; the third of each topic calls with bad
    arguments (no city)."""
    prompt = body["messages"][-1]["content"]
    topic = re.search(r"Topic of this example: (.+)", prompt)[1].strip()
    n = int(re.search(r"example number (\d+)", prompt)[1])
    city = CITIES[(n + len(topic)) % len(CITIES)]
    args = {"town": city} if n == 3 else {"city": city}
    reading = f"{10 + n + len(topic)} C and {'sunny' if n % 2 else 'raining'}"
    return {
        "turns": [
            {
                "user": f"For my {topic} trip, what is the weather in {city} today (case {n})?",
                "tool_calls": [
                    {"name": "get_weather", "arguments": json.dumps(args), "result": reading}
                ],
                "assistant": f"Right now {city} has {reading}, so plan your {topic} day for it.",
            }
        ]
    }


def cli(ws, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FTSTUDIO_WORKSPACE": str(ws.root)}
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_generate_with_tools_keeps_calls_results_and_tools(ws, tmp_path):
    from backend.store import Store
    from backend.store import datasets as dstore
    from backend.store import synth as sstore

    tools_file = tmp_path / "tools.json"
    tools_file.write_text(json.dumps({"tools": TOOLS}))
    with OpenAIServer() as srv:
        srv.responder = weather_responder
        proc = cli(
            ws,
            *("generate", "--dataset", "trips", "--provider", "openai"),
            *("--base-url", srv.base_url, "--model", "m", "--tools", str(tools_file)),
            *("--topics", "hiking,museums", "--per-topic", "3", "--concurrency", "2", "--json"),
        )
        sent = list(srv.requests)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["state"] == "succeeded", out
    assert out["report"]["generated"] == 4 and out["report"]["rejected"] == 2, out["report"]
    schema = sent[0]["response_format"]["json_schema"]["schema"]
    assert "tool_calls" in schema["properties"]["turns"]["items"]["required"]
    assert '"get_weather"' in sent[0]["messages"][-1]["content"]

    store = Store.open(ws.db_path)
    try:
        rejects = sstore.rejects(store, job_id=out["job"])
        assert {r["item"] for r in rejects} == {"hiking/2", "museums/2"}
        assert all("do not fit get_weather's parameters" in r["reason"] for r in rejects)
        examples = dstore.version_examples(store, out["version_id"])
        assert len(examples) == out["report"]["kept"] >= 3
        for e in examples:
            assert e["tools"] == TOOLS
            roles = [m["role"] for m in e["messages"]]
            assert roles == ["user", "assistant", "tool", "assistant"]
            call = e["messages"][1]["tool_calls"][0]
            assert call["function"]["name"] == "get_weather"
            assert set(call["function"]["arguments"]) == {"city"}
            assert e["messages"][2]["tool_call_id"] == call["id"]
    finally:
        store.close()

    exported = tmp_path / "trips.jsonl"
    proc = cli(
        ws, "dataset", "export", "trips", "--format", "messages-jsonl", "--out", str(exported)
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(rows) == len(examples)
    assert all(r["tools"] == TOOLS and r["messages"][1]["tool_calls"] for r in rows)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[{", "not JSON"),
        ('{"tools": {"name": "f"}}', "tools is not a list of function definitions"),
        ('[{"type": "function", "function": {"name": "a b"}}]', "function name 'a b'"),
    ],
)
def test_a_bad_tools_file_is_refused_naming_it(ws, tmp_path, content, says):
    from typer.testing import CliRunner

    from backend.cli import app

    bad = tmp_path / "tools.json"
    bad.write_text(content)
    args = ["generate", "--dataset", "trips", "--model", "m", "--tools", str(bad)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"--tools {bad}" in result.output and says in result.output, result.output
    assert not ws.jobs.exists() or not any(ws.jobs.iterdir())  # nothing queued
