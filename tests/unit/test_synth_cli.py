"""`ftstudio dataset ...` through the real typer app, in-process."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from backend.cli import app

runner = CliRunner()
ROW = {
    "messages": [
        {"role": "user", "content": "Where are invoices?"},
        {"role": "assistant", "content": "Billing > Invoices."},
    ]
}


def call(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_dataset_commands_end_to_end(ws, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ROW) + "\n")
    assert call("dataset", "create", "cli-ds").exit_code == 0
    assert call("dataset", "create", "cli-ds").exit_code == 1
    r = call("dataset", "import", "cli-ds", str(src), "--json")
    assert r.exit_code == 0, r.output
    src.write_text(
        json.dumps(ROW)
        + "\n"
        + json.dumps(
            {
                **ROW,
                "messages": [
                    ROW["messages"][0],
                    {"role": "assistant", "content": "Settings > Billing."},
                ],
            }
        )
        + "\n"
    )
    assert call("dataset", "import", "cli-ds", str(src)).exit_code == 0
    shown = json.loads(call("dataset", "show", "cli-ds", "--json").stdout)
    versions = shown["versions"]
    assert [v["examples"] for v in versions] == [1, 2]
    assert all({"id", "created", "examples", "hash"} <= set(v) for v in versions)
    assert versions[0]["created"] < versions[1]["created"]
    listed = json.loads(call("dataset", "list", "--json").stdout)
    assert listed[0]["name"] == "cli-ds" and listed[0]["examples"] == 2
    out = tmp_path / "out.jsonl"
    r = call(
        "dataset",
        "export",
        "cli-ds",
        "--format",
        "prompt-completion-jsonl",
        "--out",
        str(out),
        "--version",
        "1",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["completion"][0]["content"] == "Billing > Invoices."


def test_dataset_cli_errors_name_the_problem(ws, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    r = call("dataset", "import", "x", str(bad))
    assert r.exit_code == 1 and "line 1: no assistant turn" in r.output
    r = call("dataset", "show", "missing")
    assert r.exit_code == 1 and "missing" in r.output
    r = call("dataset", "export", "missing", "--format", "parquet", "--out", str(tmp_path / "p"))
    assert r.exit_code == 1


def test_import_skip_invalid_prints_each_skipped_line(ws, tmp_path):
    from tests.unit.test_synth_import import flawed_support_file

    path, good = flawed_support_file(tmp_path)
    r = call("dataset", "import", "support", str(path))
    assert r.exit_code == 1 and "nothing was imported" in r.output and "line 5" in r.output
    r = call("dataset", "import", "support", str(path), "--skip-invalid")
    assert r.exit_code == 0, r.output
    assert f"imported {good} examples into support v1" in r.output
    assert "skipped 3 invalid lines of support-export.jsonl:" in r.output
    assert "  line 5: invalid JSON" in r.output and "  line 12: no assistant turn" in r.output
    assert "  line 20: turn 1 has role 'customer'" in r.output
    shown = json.loads(call("dataset", "show", "support", "--json").stdout)
    [v] = shown["versions"]
    assert v["skipped"]["invalid"] == 3 and [r["line"] for r in v["skipped"]["rows"]] == [5, 12, 20]
