"""Imports: every supported shape loads; each bad file is rejected whole, naming its bad rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.store import datasets as dstore
from backend.synth.actions import import_file, seed_demo_dataset
from backend.synth.demo import DEMO_DATASET
from backend.synth.importers import ImportFileError, read_examples

GOOD = {
    "messages": [
        {"role": "user", "content": "How do I export?"},
        {"role": "assistant", "content": "Use ... > Export > CSV."},
    ]
}


@pytest.fixture
def ctx(ws, store) -> Ctx:
    return Ctx(store=store, ws=ws, settings=Settings(), actor=None)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_csv_parquet_and_hf_folder_import(ctx, store, tmp_path):
    from datasets import Dataset

    j = write_jsonl(tmp_path / "a.jsonl", [GOOD, {**GOOD, "topic": "exports"}])
    v = import_file(ctx, "mine", j)
    assert v["number"] == 1 and v["n_examples"] == 1  # the same conversation twice is one
    c = tmp_path / "b.csv"
    pd.DataFrame(
        {
            "prompt": ["Where are invoices?"],
            "completion": ["Billing > Invoices."],
            "system": ["Be brief."],
            "topic": ["billing"],
        }
    ).to_csv(c, index=False)
    v = import_file(ctx, "mine", c)
    items = dstore.version_examples(store, v["id"])
    assert [m["role"] for m in items[0]["messages"]] == ["system", "user", "assistant"]
    assert items[0]["topic"] == "billing" and items[0]["origin"]["file"] == "b.csv"
    p = tmp_path / "c.parquet"
    pd.DataFrame({"messages": [json.dumps(GOOD["messages"])]}).to_parquet(p)
    assert import_file(ctx, "mine", p)["n_examples"] == 1
    hf = tmp_path / "hf"
    Dataset.from_list(
        [
            GOOD,
            GOOD
            | {
                "messages": GOOD["messages"][:1]
                + [{"role": "assistant", "content": "Other answer."}]
            },
        ]
    ).save_to_disk(str(hf))
    assert import_file(ctx, "mine", hf)["n_examples"] == 2
    assert [v["number"] for v in dstore.list_versions(store, "mine")] == [1, 2, 3, 4]


def _bad_files(tmp_path):
    ok = json.dumps(GOOD) + "\n"
    files = {
        "invalid.jsonl": ok + "{not json\n" + ok,
        "wrong_columns.jsonl": ok + json.dumps({"question": "a", "answer": "b"}) + "\n",
        "empty.jsonl": "",
        "blank_lines.jsonl": "\n\n  \n",
        "no_assistant.jsonl": ok
        + json.dumps({"messages": [{"role": "user", "content": "hi"}]})
        + "\n",
        "bad_role.jsonl": json.dumps(
            {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}
        ),
        "empty_turn.jsonl": json.dumps(
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}
        ),
        "array.jsonl": "[1, 2, 3]\n",
        "wrong_columns.csv": "question,answer\nhi,there\n",
        "unknown.txt": "hello",
    }
    out = {}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        out[name] = tmp_path / name
    (tmp_path / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    out["binary.jsonl"] = tmp_path / "binary.jsonl"
    (tmp_path / "latin1.jsonl").write_bytes(
        ok.encode()
        + json.dumps({"messages": [{"role": "user", "content": "x"}]})
        .encode()
        .replace(b'"x"', b'"caf\xe9"')
        + b"\n"
    )
    out["latin1.jsonl"] = tmp_path / "latin1.jsonl"
    huge = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a" * 10_000_000},
        ]
    }
    (tmp_path / "huge_line.jsonl").write_text(ok + json.dumps(huge) + "\n")
    out["huge_line.jsonl"] = tmp_path / "huge_line.jsonl"
    pd.DataFrame({"messages": ['[{"role": "user", "content": "q"}]']}).to_parquet(
        tmp_path / "no_answer.parquet"
    )
    out["no_answer.parquet"] = tmp_path / "no_answer.parquet"
    (tmp_path / "not_a_dataset").mkdir()
    out["not_a_dataset"] = tmp_path / "not_a_dataset"
    return out


EXPECT = {
    "invalid.jsonl": "line 2: invalid JSON",
    "wrong_columns.jsonl": "line 2: needs a 'messages'",
    "empty.jsonl": "empty",
    "blank_lines.jsonl": "no rows",
    "no_assistant.jsonl": "line 2: no assistant turn",
    "bad_role.jsonl": "line 1: turn 1 has role 'robot'",
    "empty_turn.jsonl": "line 1: turn 1 (user) is empty",
    "array.jsonl": "line 1: not an object",
    "wrong_columns.csv": "line 2: needs a 'messages'",
    "unknown.txt": "unknown file type",
    "binary.jsonl": "looks binary",
    "latin1.jsonl": "line 2: not UTF-8",
    "huge_line.jsonl": "line 2: line is longer than 1 MB",
    "no_answer.parquet": "row 1: no assistant turn",
    "not_a_dataset": "not a HF save_to_disk",
}


def test_bad_files_are_rejected_whole_naming_rows(ctx, store, tmp_path):
    dstore.create_dataset(store, "target")
    files = _bad_files(tmp_path)
    assert set(files) == set(EXPECT)
    for name, path in files.items():
        with pytest.raises(ImportFileError) as err:
            import_file(ctx, "target", path)
        assert EXPECT[name] in str(err.value), (name, str(err.value))
    assert store.scalar("SELECT count(*) FROM examples") == 0
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0


def test_first_rows_named_and_counted(tmp_path):
    rows = [GOOD] + [{"messages": []}] * 8
    with pytest.raises(ImportFileError, match=r"8 of 9 rows .* line 2: .*line 6.*and 3 more"):
        read_examples(write_jsonl(tmp_path / "many.jsonl", rows))


def test_demo_dataset_seeds_once(ctx, store):
    first = seed_demo_dataset(ctx)
    assert first is not None and first["n_examples"] >= 35
    assert seed_demo_dataset(ctx) is None
    ds = dstore.get_dataset(store, DEMO_DATASET)
    assert ds["recipe"]["topics"]
    topics = {e["topic"] for e in dstore.version_examples(store, first["id"])}
    assert {
        "gantt chart",
        "permissions",
        "billing",
        "integrations",
        "notifications",
        "exports",
    } <= topics
