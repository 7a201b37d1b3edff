"""Importing public preference data: a real-shaped HH-RLHF file with the handful of bad rows such
sets carry (an empty chosen, chosen == rejected, a missing field, a line cut short, a line that
is not UTF-8). By default one invalid row stores nothing; `--skip-invalid` (and the page's
checkbox) stores the valid rows and keeps each skipped row's line and reason beside the version.
Files and uploads are read in chunks up to the import limit and refused by name past it."""

from __future__ import annotations

import io
import json

import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone
from backend.auth import Actor
from backend.cli import app
from backend.prefs import actions
from backend.prefs import export as E
from backend.store import prefs as S
from backend.store.audit import rows as audit_rows

LEE = Actor("lee", "lead")


def hh(question: str, answer: str, before: str = "") -> str:
    """One HH-RLHF transcript, as the public set writes it."""
    return f"{before}\n\nHuman: {question}\n\nAssistant: {answer}"


GOOD = [
    {
        "chosen": hh("How do I reset my password?", "Open Settings > Security > Reset."),
        "rejected": hh("How do I reset my password?", "I don't know."),
    },
    {
        "chosen": hh("Export my board", "Board menu > Export > CSV.", hh("Hi", "Hello!")),
        "rejected": hh("Export my board", "Boards cannot be exported.", hh("Hi", "Hello!")),
    },
    {
        "chosen": hh("Can I undo a delete?", "Yes: Trash > Restore within 30 days."),
        "rejected": hh("Can I undo a delete?", "No, deletes are final."),
    },
]


def real_shaped(path):
    """Three good rows and the bad rows public sets carry, one JSON object a line."""
    lines = [
        json.dumps(GOOD[0]),
        json.dumps({"chosen": "", "rejected": hh("Hi", "Hello")}),  # 2: empty chosen
        json.dumps(GOOD[1]),
        json.dumps({"chosen": hh("Same?", "Same."), "rejected": hh("Same?", "Same.")}),  # 4
        json.dumps({"chosen": hh("Where is the rest?", "Here.")}),  # 5: no rejected
        json.dumps(GOOD[2])[:40],  # 6: a line cut short
        "",
        json.dumps(GOOD[2]),
    ]
    data = "\n".join(lines).encode() + b"\n\xff\xfe not text\n"  # 9: not UTF-8
    path.write_bytes(data)
    return path


def test_default_is_all_or_nothing_and_names_every_bad_line(tmp_path):
    with pytest.raises(E.InvalidPairs) as err:
        E.read_import(real_shaped(tmp_path / "hh.jsonl"), "hh-rlhf")
    message = str(err.value)
    assert message.startswith("4 of 8 rows are invalid, nothing was stored")
    for line, why in (
        (2, "transcript does not start"),
        (5, "needs 'chosen' and 'rejected'"),
        (6, "not JSON"),
        (9, "not UTF-8 text"),
    ):
        assert f"hh.jsonl line {line}: {why}" in message
    assert "skip invalid rows to store the valid ones" in message


def test_skip_invalid_keeps_the_valid_rows_and_reports_the_others(tmp_path):
    got = E.read_import(real_shaped(tmp_path / "hh.jsonl"), "hh-rlhf", skip_invalid=True)
    assert len(got.pairs) == 3 and got.dropped == {"identical": 1}
    assert [n for n, _ in got.invalid] == [2, 5, 6, 9]
    assert [p["origin"]["line"] for p in got.pairs] == [1, 3, 8]
    report = got.report()
    assert (report["invalid"], report["dropped"], report["more"]) == (4, 1, 0)
    assert [(r["line"], bool(r.get("invalid"))) for r in report["rows"]] == [
        (2, True),
        (4, False),
        (5, True),
        (6, True),
        (9, True),
    ]
    assert report["rows"][1]["reason"] == "chosen and rejected are identical"
    with pytest.raises(E.InvalidPairs, match="nothing was stored"):  # no valid row at all
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"chosen": ""}\nnot json\n')
        E.read_import(bad, "hh-rlhf", skip_invalid=True)


def test_the_action_stores_the_report_beside_the_version(ws, store, act, tmp_path):
    path = real_shaped(tmp_path / "hh.jsonl")
    with pytest.raises(ValueError, match="4 of 8 rows are invalid"):
        actions.import_preferences(act(), "hh", path, "hh-rlhf")
    assert S.list_preference_sets(store) == []  # all or nothing

    v = actions.import_preferences(act(), "hh", path, "hh-rlhf", skip_invalid=True)
    assert v["n_pairs"] == 3 and v["skipped"]["invalid"] == 4
    stored = S.resolve_preference_version(store, "hh")
    assert stored["skipped"] == v["skipped"]
    assert "4 invalid rows skipped" in stored["note"]
    (listed,) = S.list_preference_sets(store)
    assert listed["skipped_rows"] == 4
    (row,) = audit_rows(store, action="prefs.import").to_dict("records")
    assert json.loads(row["detail"])["skipped_invalid"] == 4
    with pytest.raises(AlreadyDone):  # the same valid rows again: no new version
        actions.import_preferences(act(), "hh", path, "hh-rlhf", skip_invalid=True)
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for r in GOOD[:2]))
    v2 = actions.import_preferences(act(), "hh", clean, "hh-rlhf")
    assert v2["skipped"] == {"invalid": 0, "dropped": 0, "rows": [], "more": 0}


def test_cli_skip_invalid_prints_each_skipped_row(ws, tmp_path):
    runner = CliRunner()
    path = real_shaped(tmp_path / "hh.jsonl")
    r = runner.invoke(app, ["prefs", "import", "hh", str(path), "--format", "hh-rlhf"])
    assert r.exit_code == 2 and "hh.jsonl line 5: needs 'chosen' and 'rejected'" in r.output
    r = runner.invoke(
        app, ["prefs", "import", "hh", str(path), "--format", "hh-rlhf", "--skip-invalid"]
    )
    assert r.exit_code == 0, r.output
    assert "hh v1: 3 pairs imported" in r.output
    assert "skipped 4 invalid rows (kept with the version):" in r.output
    for line in ("line 2: transcript does not start", "line 6: not JSON", "line 9: not UTF-8"):
        assert f"  {line}" in r.output
    r = runner.invoke(app, ["prefs", "skipped", "hh", "--json"])
    assert r.exit_code == 0, r.output
    kept = json.loads(r.output)
    assert [x["line"] for x in kept["rows"]] == [2, 4, 5, 6, 9]
    r = runner.invoke(app, ["prefs", "skipped", "hh"])
    assert "hh v1: 4 invalid rows skipped, 1 dropped" in r.output


class Endless(io.RawIOBase):
    """A stream that never ends, counting what was read from it."""

    def __init__(self, line: bytes):
        self.line, self.read_bytes = line, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = len(buf)
        chunk = (self.line * (n // len(self.line) + 1))[:n]
        buf[:n] = chunk
        self.read_bytes += n
        return n


def test_files_and_uploads_over_the_limit_are_refused_by_name_unread(
    ws, store, act, tmp_path, monkeypatch
):
    monkeypatch.setattr(E, "MAX_IMPORT_BYTES", 4096)
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps(GOOD[i % 3]) + "\n" for i in range(40)))
    with pytest.raises(ValueError, match=r"big.jsonl is [\d.]+ KiB, over the 4 KiB limit"):
        actions.import_preferences(act(), "hh", big, "hh-rlhf")
    stream = Endless((json.dumps(GOOD[0]) + "\n").encode())
    with pytest.raises(ValueError, match="upload.jsonl is over the 4 KiB limit"):
        actions.import_preferences(act(LEE), "hh", stream, "hh-rlhf", label="upload.jsonl")
    assert stream.read_bytes <= 4096 + (1 << 16)  # stopped at the limit: one chunk past it
    assert S.list_preference_sets(store) == []
    small = io.BytesIO((json.dumps(GOOD[0]) + "\n").encode())
    small.read()  # drawn and read once before: the import starts from its beginning
    assert actions.import_preferences(act(LEE), "hh", small, "hh-rlhf", label="s")["n_pairs"] == 1


def test_a_file_growing_past_the_limit_while_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "grow.jsonl"
    path.write_text(json.dumps(GOOD[0]) + "\n")
    real_open = open

    def growing(p, mode="r", *a, **k):  # the file grows between stat and read
        if str(p) == str(path):
            with real_open(path, "ab") as fh:
                fh.write((json.dumps(GOOD[1]) + "\n").encode() * 50)
        return real_open(p, mode, *a, **k)

    monkeypatch.setattr("builtins.open", growing)
    with pytest.raises(E.TooLarge, match="grow.jsonl is over the 1 KiB limit"):
        E.read_jsonl(path, limit=1024)


def test_store_keeps_no_report_for_a_built_version(ws, store):
    pairs, digest, _ = E.version_rows([{"prompt": "q", "chosen": "a", "rejected": "b"}])
    v = S.add_preference_version(store, "built", pairs, digest)
    assert v["skipped"] is None
    assert S.resolve_preference_version(store, "built")["skipped"] is None
