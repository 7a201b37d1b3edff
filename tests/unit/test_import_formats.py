"""Formats people already have: one sample shaped like a real public dataset per format and
row shape (a JSON array in messages format with tool calls, Alpaca, ShareGPT with a function
call, CSV through a column mapping, conversational prompt/completion Parquet, a DatasetDict
folder, a hub name offline), read in chunks and stored in bulk."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone, Ctx
from backend.config import Settings
from backend.examples import canonical_json, content_ids, turns_json, version_hash
from backend.store import datasets as dstore
from backend.synth import readers
from backend.synth.import_actions import export_version, import_file
from backend.synth.importers import ImportFileError, preview

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_CHAT = {  # OpenAI / TRL messages with tools, as function-calling sets publish them
    "messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Is it raining in Lyon?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"rain": true, "c": 11}'},
        {"role": "assistant", "content": "Yes, it is raining in Lyon (11 °C)."},
    ],
    "tools": [WEATHER_TOOL],
}
PLAIN_CHAT = {
    "messages": [
        {"role": "user", "content": "How do I archive a board?"},
        {"role": "assistant", "content": "Open the board menu and pick Archive."},
    ]
}
ALPACA = [  # tatsu-lab/alpaca rows, and LLaMA-Factory's system/history columns
    {
        "instruction": "Give three tips for staying healthy.",
        "input": "",
        "output": "1. Eat a balanced diet.\n2. Exercise.\n3. Sleep well.",
    },
    {
        "instruction": "Translate to French.",
        "input": "Good morning",
        "output": "Bonjour",
        "system": "You are a translator.",
        "history": [["Translate to German: Hello", "Hallo"]],
    },
]
SHAREGPT = [  # ShareGPT / OpenHermes rows; the second as LLaMA-Factory's tool-calling ShareGPT
    {
        "id": "identity_0",
        "conversations": [
            {"from": "system", "value": "You are a helpful assistant."},
            {"from": "human", "value": "What is a sprint?"},
            {"from": "gpt", "value": "A fixed period in which a team finishes planned work."},
            {"from": "human", "value": "How long?"},
            {"from": "gpt", "value": "Usually two weeks."},
        ],
    },
    {
        "conversations": [
            {"from": "human", "value": "Weather in Oslo?"},
            {
                "from": "function_call",
                "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
            },
            {"from": "observation", "value": '{"rain": false}'},
            {"from": "gpt", "value": "No rain in Oslo right now."},
        ],
        "tools": json.dumps([WEATHER_TOOL]),
    },
]


@pytest.fixture
def ctx(ws, store) -> Ctx:
    return Ctx(store=store, ws=ws, settings=Settings(), actor=None)


def roles(store, version: dict) -> list[list[str]]:
    return [
        [m["role"] for m in e["messages"]] for e in dstore.version_examples(store, version["id"])
    ]


def test_json_array_in_messages_format_keeps_tools_through_versions_and_exports(
    ctx, store, tmp_path
):
    src = tmp_path / "tool_chats.json"
    src.write_text(json.dumps([TOOL_CHAT, PLAIN_CHAT], indent=2))  # pretty-printed, many lines
    v = import_file(ctx, "tools", src)
    assert v["n_examples"] == 2
    first, second = dstore.version_examples(store, v["id"])
    assert first["tools"] == [WEATHER_TOOL] and second["tools"] is None
    call = first["messages"][2]
    assert call["tool_calls"][0]["function"]["name"] == "get_weather" and call["content"] == ""
    assert first["messages"][3] == {
        "role": "tool",
        "content": '{"rain": true, "c": 11}',
        "tool_call_id": "call_1",
    }
    # an edit elsewhere makes a new version that keeps the tool example as it was
    from backend.synth.version_actions import edit_example

    edited = [PLAIN_CHAT["messages"][0], {"role": "assistant", "content": "Board menu > Archive."}]
    v2 = edit_example(ctx, "tools", second["id"], edited)
    kept = dstore.version_examples(store, v2["id"])[0]
    assert kept["id"] == first["id"] and kept["tools"] == [WEATHER_TOOL]
    out = export_version(ctx, "tools", "messages-jsonl", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in open(out["path"])]
    assert rows[0]["tools"] == [WEATHER_TOOL] and rows[0]["messages"][3]["role"] == "tool"
    assert "tools" not in rows[1]
    # tools are part of the content: the same turns with other tools are another example
    other = {**TOOL_CHAT, "tools": [{**WEATHER_TOOL, "function": {"name": "w2"}}]}
    (tmp_path / "other.json").write_text(json.dumps([other]))
    v3 = import_file(ctx, "tools", tmp_path / "other.json")
    assert dstore.version_examples(store, v3["id"])[0]["id"] != first["id"]


def test_json_array_errors_name_the_line_each_element_starts_on(ctx, store, tmp_path):
    bad = {"messages": [{"role": "user", "content": "no answer"}]}
    src = tmp_path / "arr.json"
    src.write_text(json.dumps([PLAIN_CHAT, bad], indent=1))
    with pytest.raises(ImportFileError) as err:
        import_file(ctx, "arr", src)
    starts = [n for n, line in enumerate(src.read_text().splitlines(), 1) if line == " {"]
    start = starts[1]  # the line the second element starts on
    assert f"line {start}: no assistant turn" in str(err.value)
    src.write_text('[{"messages": [] },\n {"broken": ')
    with pytest.raises(ImportFileError, match="line 2: invalid JSON"):
        import_file(ctx, "arr", src)
    tool_first = {"messages": [{"role": "tool", "content": "x"}, *PLAIN_CHAT["messages"]]}
    src.write_text(json.dumps([tool_first]))
    with pytest.raises(ImportFileError, match="does not follow an assistant turn that calls"):
        import_file(ctx, "arr", src)
    assert store.scalar("SELECT count(*) FROM examples") == 0


def test_alpaca_with_system_and_history(ctx, store, tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps(ALPACA, indent=4))
    v = import_file(ctx, "alpaca", src)
    a, b = dstore.version_examples(store, v["id"])
    assert a["messages"] == [
        {"role": "user", "content": ALPACA[0]["instruction"]},
        {"role": "assistant", "content": ALPACA[0]["output"]},
    ]
    assert [m["role"] for m in b["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert b["messages"][3]["content"] == "Translate to French.\n\nGood morning"


def test_sharegpt_roles_are_mapped_and_function_calls_become_tool_calls(ctx, store, tmp_path):
    src = tmp_path / "sharegpt.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in SHAREGPT))
    v = import_file(ctx, "sharegpt", src)
    assert roles(store, v) == [
        ["system", "user", "assistant", "user", "assistant"],
        ["user", "assistant", "tool", "assistant"],
    ]
    tool_ex = dstore.version_examples(store, v["id"])[1]
    assert tool_ex["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Oslo"},
    }
    assert tool_ex["tools"] == [WEATHER_TOOL]
    src.write_text(json.dumps({"conversations": [{"from": "narrator", "value": "x"}]}) + "\n")
    with pytest.raises(ImportFileError, match="line 1: conversations: speaker 'narrator'"):
        import_file(ctx, "sharegpt", src)


def test_csv_through_a_column_mapping_with_preview_and_cli(ctx, ws, store, tmp_path):
    src = tmp_path / "faq.csv"
    pd.DataFrame(
        {
            "question": ["Where are invoices?", "Can I undo an archive?"],
            "answer": ["Billing > Invoices.", "Yes, from Archived boards."],
            "category": ["billing", "boards"],
        }
    ).to_csv(src, index=False)
    with pytest.raises(ImportFileError, match="line 2: needs a 'messages' column"):
        import_file(ctx, "faq", src)
    mapping = "prompt=question,completion=answer,topic=category"
    seen = preview(src, mapping=mapping, rows=1)
    assert seen["shape"] == "prompt" and seen["columns"] == ["question", "answer", "category"]
    assert len(seen["rows"]) == 1 and seen["rows"][0]["line"] == 2
    assert seen["rows"][0]["example"]["messages"][1]["content"] == "Billing > Invoices."
    assert (
        preview(src)["shape"] is None and "needs a 'messages'" in preview(src)["rows"][0]["problem"]
    )
    with pytest.raises(ValueError, match="unknown field 'answer'"):
        preview(src, mapping="answer=question")
    with pytest.raises(ImportFileError, match="mapped column 'reply' is not in the row"):
        import_file(ctx, "faq", src, mapping="prompt=question,completion=reply")
    v = import_file(ctx, "faq", src, mapping=mapping)
    items = dstore.version_examples(store, v["id"])
    assert [e["topic"] for e in items] == ["billing", "boards"]
    store.close()  # the CLI opens the database itself
    from backend.cli import app

    r = CliRunner().invoke(app, ["dataset", "import", "faq2", str(src), "--map", mapping, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n_examples"] == 2
    r = CliRunner().invoke(app, ["dataset", "import", "faq3", str(src), "--map", "question"])
    assert r.exit_code == 1 and "unknown field 'question'" in r.output


def test_parquet_prompt_completion_and_dataset_dict_split(ctx, store, tmp_path):
    from datasets import Dataset, DatasetDict

    # TRL's conversational prompt/completion, as trl-lib datasets hold it
    rows = [
        {
            "prompt": [{"role": "user", "content": "What color is the sky?"}],
            "completion": [{"role": "assistant", "content": "It is blue."}],
        }
    ]
    pq = tmp_path / "train-00000-of-00001.parquet"
    pd.DataFrame(rows).to_parquet(pq)
    v = import_file(ctx, "pc", pq)
    assert roles(store, v) == [["user", "assistant"]]
    folder = tmp_path / "dd"
    DatasetDict(
        {"train": Dataset.from_list([PLAIN_CHAT]), "test": Dataset.from_list(ALPACA[:1])}
    ).save_to_disk(str(folder))
    v = import_file(ctx, "dd", folder, split="test")
    assert v["n_examples"] == 1 and roles(store, v) == [["user", "assistant"]]
    with pytest.raises(ImportFileError, match="without a 'dev' split"):
        import_file(ctx, "dd", folder, split="dev")


def test_a_hub_dataset_by_name_says_it_needs_the_network_offline(ctx, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ImportFileError, match="needs the network") as err:
        import_file(ctx, "hub", "hf:tatsu-lab/alpaca", split="train")
    assert "'tatsu-lab/alpaca'" in str(err.value)


def test_a_file_is_read_and_stored_in_chunks(ctx, store, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_ROWS", 3)
    seen = []
    real = readers.read_jsonl

    def spy(path, chunk):
        for rows in real(path, chunk):
            seen.append(len(rows))
            yield rows

    monkeypatch.setattr(readers, "read_jsonl", spy)
    rows = []
    for i in range(10):
        q = {"role": "user", "content": f"question {i % 7}"}  # 7 distinct: 3 repeats
        rows.append({"messages": [q, {"role": "assistant", "content": f"answer {i % 7}"}]})
    src = tmp_path / "many.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    v = import_file(ctx, "many", src)
    assert seen == [3, 3, 3, 1]
    assert v["n_examples"] == 7 and v["duplicates_dropped"] == 3
    items = dstore.version_examples(store, v["id"])
    assert [e["messages"][0]["content"] for e in items] == [f"question {i}" for i in range(7)]
    assert v["hash"] == version_hash(content_ids(rows))
    stored = store.scalar("SELECT count(*) FROM examples")
    with pytest.raises(AlreadyDone):
        import_file(ctx, "many", src)
    # chunks are committed as they are read; a row found flawed later takes them all back
    answer = {"role": "assistant", "content": "A new answer."}
    bad = [{"messages": [{"role": "user", "content": f"new {n}"}, answer]} for n in range(7)]
    bad.append({"messages": [{"role": "user", "content": "no answer"}]})
    src.write_text("".join(json.dumps(r) + "\n" for r in bad))
    seen.clear()
    with pytest.raises(ImportFileError, match="line 8: no assistant turn"):
        import_file(ctx, "many", src)
    assert seen == [3, 3, 2]  # two chunks were stored before the flawed row was read
    assert store.scalar("SELECT count(*) FROM examples") == stored
    assert store.scalar("SELECT count(*) FROM import_stage") == 0
    pending = "SELECT count(*) FROM version_examples WHERE version_id NOT IN"
    assert store.scalar(pending + " (SELECT id FROM dataset_versions)") == 0
    # the import let the write-ahead log grow while it wrote, and put the setting back
    assert store.scalar("SELECT current_setting('checkpoint_threshold')") == "16.0 MiB"


def test_orjson_turns_are_byte_for_byte_the_canonical_json():
    for start in range(0, 0x110000, 0x800):
        text = "".join(chr(c) for c in range(start, start + 0x800) if not 0xD800 <= c < 0xE000)
        turns = [{"role": "user", "content": text + '"\\/'}]
        assert turns_json(turns) == canonical_json(turns).encode(), hex(start)
