"""Imports: every supported shape loads; each bad file is rejected whole, naming its bad rows."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.store import datasets as dstore
from backend.synth.actions import seed_demo_dataset
from backend.synth.demo import DEMO_DATASET
from backend.synth.import_actions import import_file
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


def flawed_support_file(tmp_path):
    """The Tasklane sample with three flawed lines among its real ones (lines 5, 12 and 20):
    a torn line, a conversation without an answer, and a turn with an unknown role."""
    from backend.synth.demo import SAMPLE

    lines = SAMPLE.read_text().splitlines()
    bad = {
        5: '{"messages": [{"role": "user", "content": "Where is the Gantt',
        12: json.dumps({"messages": [{"role": "user", "content": "Can I pay yearly?"}]}),
        20: json.dumps(
            {
                "messages": [
                    {"role": "customer", "content": "Who can see my board?"},
                    {"role": "assistant", "content": "Members of the workspace."},
                ]
            }
        ),
    }
    out = []
    for n in range(1, len(lines) + len(bad) + 1):
        out.append(bad[n] if n in bad else lines.pop(0))
    path = tmp_path / "support-export.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path, len(out) - len(bad)


def test_flawed_rows_stop_the_import_unless_skipped_and_are_kept_beside_the_version(
    ctx, store, tmp_path
):
    path, good = flawed_support_file(tmp_path)
    with pytest.raises(
        ImportFileError, match="3 of .* line 5: invalid JSON.*line 12: no assistant"
    ):
        import_file(ctx, "support", path)
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0

    v = import_file(ctx, "support", path, skip_invalid=True)
    assert v["n_examples"] == good
    skipped = v["skipped"]
    assert skipped["file"] == "support-export.jsonl" and skipped["unit"] == "line"
    assert skipped["invalid"] == 3
    assert [r["line"] for r in skipped["rows"]] == [5, 12, 20]
    reasons = [r["reason"] for r in skipped["rows"]]
    assert "invalid JSON" in reasons[0] and "no assistant turn" in reasons[1]
    assert "role 'customer'" in reasons[2]
    # kept beside the version, for the Versions tab and `dataset show`
    [stored] = dstore.list_versions(store, "support")
    assert stored["skipped"] == skipped and "skipped 3 invalid lines" in stored["note"]
    # the same file again is the same content: no second version
    from backend.action import AlreadyDone

    with pytest.raises(AlreadyDone):
        import_file(ctx, "support", path, skip_invalid=True)


def test_a_csv_with_flawed_rows_and_a_file_with_no_valid_row(ctx, store, tmp_path):
    c = tmp_path / "pairs.csv"
    pd.DataFrame(
        {
            "prompt": ["Where are invoices?", "", "How do I export?"],
            "completion": ["Billing > Invoices.", "An answer to nothing.", "Export > CSV."],
        }
    ).to_csv(c, index=False)
    v = import_file(ctx, "pairs", c, skip_invalid=True)
    assert v["n_examples"] == 2 and [r["line"] for r in v["skipped"]["rows"]] == [3]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": []}, {"question": "?"}])
    with pytest.raises(ImportFileError, match="none of its 2 rows is valid"):
        import_file(ctx, "pairs", bad, skip_invalid=True)
    with pytest.raises(ImportFileError, match="looks binary"):  # unreadable files stay refused
        import_file(ctx, "pairs", _bad_files(tmp_path)["binary.jsonl"], skip_invalid=True)
    assert len(dstore.list_versions(store, "pairs")) == 1


class Endless(io.RawIOBase):
    """An upload stream of valid JSONL lines that never ends, counting what was read."""

    def __init__(self):
        self.read_bytes = 0
        self.line = (json.dumps(GOOD) + "\n").encode()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = len(buf)
        data = (self.line * (n // len(self.line) + 1))[:n]
        buf[:n] = data
        self.read_bytes += n
        return n


def test_an_upload_is_streamed_to_disk_and_stopped_at_the_cap(ctx, store):
    from backend.security import UploadError
    from backend.synth.import_actions import import_upload

    stream = Endless()
    with pytest.raises(UploadError) as err:
        import_upload(ctx, "up", "huge.jsonl", io.BufferedReader(stream), max_bytes=3 * 2**20)
    assert "huge.jsonl" in str(err.value) and "3 MiB upload limit" in str(err.value)
    assert stream.read_bytes <= 3 * 2**20 + 2 * 8192  # never read far past the cap
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0
    # an upload that says its size is refused before a byte is read
    sized = io.BytesIO(json.dumps(GOOD).encode())
    sized.size = 10 * 2**20
    with pytest.raises(UploadError, match="big.jsonl: larger than the 1 MiB upload limit"):
        import_upload(ctx, "up", "big.jsonl", sized, max_bytes=2**20)
    assert sized.tell() == 0
    # under the cap it is imported from the stream
    small = io.BytesIO((json.dumps(GOOD) + "\n").encode() * 3)
    assert import_upload(ctx, "up", "small.jsonl", small, max_bytes=2**20)["n_examples"] == 1
