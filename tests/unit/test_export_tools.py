"""Exports of tool-calling conversations: messages JSONL, Parquet and HF folders give back
the very turns (calls with arguments as objects or as text, results, tools) through
`datasets`, plain conversations beside them unchanged, and the studio imports its own Parquet
and HF exports back into the same examples."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.store import datasets as dstore
from backend.synth.exporters import SUFFIX
from backend.synth.import_actions import export_version, import_file
from tests.integration.test_train_tools import PLAIN, TOOLS, _task, _weather

EXAMPLES = [_weather("Paris", "18 C and sunny"), PLAIN, _task("billing")]


def _load(fmt: str, path: str):
    from datasets import load_dataset, load_from_disk

    if fmt == "hf":
        return [dict(r) for r in load_from_disk(path)]
    if fmt == "parquet":
        return [dict(r) for r in load_dataset("parquet", data_files=path, split="train")]
    return [json.loads(line) for line in open(path, encoding="utf-8")]


@pytest.mark.parametrize("fmt", ["messages-jsonl", "parquet", "hf"])
def test_exports_give_back_the_turns_and_tools(ws, store, tmp_path, fmt):
    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    src = tmp_path / "chats.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    v = import_file(ctx, "tools", src)
    stored = dstore.version_examples(store, v["id"])
    out = export_version(ctx, "tools", fmt, ws.exports / ("tools" + SUFFIX.get(fmt, "")))
    rows = _load(fmt, str(out["path"]))
    assert [r["messages"] for r in rows] == [e["messages"] for e in stored]
    tools = [r.get("tools") for r in rows]
    tools = [json.loads(t) if isinstance(t, str) else t for t in tools]
    assert tools == [TOOLS, None, TOOLS]
    assert "tool_calls" not in rows[1]["messages"][1]  # no null padding on plain turns
    assert rows[2]["messages"][1]["tool_calls"][0]["function"]["arguments"] == (
        '{"query": "billing", "limit": 1}'
    )
    if fmt != "messages-jsonl":  # the studio reads its own export back as the same examples
        again = import_file(ctx, "again", out["path"])
        assert [e["id"] for e in dstore.version_examples(store, again["id"])] == [
            e["id"] for e in stored
        ]
