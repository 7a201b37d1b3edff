"""`ftstudio prefs ...` and `ftstudio train --prefs` as a script would use them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from backend.cli import app
from backend.jobs import queue
from backend.store import Store
from backend.store import prefs as S

runner = CliRunner()

HH = [
    {
        "chosen": "\n\nHuman: Reset my password?\n\nAssistant: Settings > Security > Reset.",
        "rejected": "\n\nHuman: Reset my password?\n\nAssistant: No.",
    },
    {
        "chosen": "\n\nHuman: Export a board?\n\nAssistant: Board menu > Export.",
        "rejected": "\n\nHuman: Export a board?\n\nAssistant: You cannot.",
    },
]


def _seed_generations(ws):
    store = Store.open(ws.db_path)
    try:
        with store.transaction() as cur:
            for run, text in (("run-a", "good"), ("run-b", "bad")):
                cur.executemany(
                    "INSERT INTO generations VALUES (?, 1, ?, ?, NULL)",
                    [[run, f"q{i}", f"{text} {i}"] for i in range(6)],
                )
    finally:
        store.close()


def test_import_export_and_train_dpo_validation(ws, tmp_path):
    src = tmp_path / "hh.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in HH))
    result = runner.invoke(
        app, ["prefs", "import", "support", str(src), "--format", "hh-rlhf", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_pairs"] == 2
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["prefs", "export", "support", "--format", "dpo-jsonl", "--out", str(out), "--plain"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {
        "prompt": "Reset my password?",
        "chosen": "Settings > Security > Reset.",
        "rejected": "No.",
    }
    # a DPO run is validated and queued without waiting
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = runner.invoke(
        app,
        ["train", "--prefs", "support", "--base-model", str(model), "--max-steps", "2", "--detach"],
    )
    assert result.exit_code == 0, result.output
    (job,) = [j for j in queue.list_jobs(ws) if j.kind == "train"]
    spec = queue.read_spec(ws.job_dir(job.id))[1]
    assert spec["method"] == "dpo" and spec["dataset"] == "support"
    assert json.loads(open(spec["data_path"]).readline())["chosen"][0]["role"] == "assistant"


def test_bad_input_is_named(ws, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(HH[0]) + "\n" + json.dumps({"chosen": "x"}) + "\n")
    result = runner.invoke(app, ["prefs", "import", "p", str(src), "--format", "hh-rlhf"])
    assert result.exit_code == 2
    assert "bad.jsonl line 2: needs 'chosen' and 'rejected'" in result.stderr
    result = runner.invoke(app, ["train", "--prefs", "missing", "--base-model", str(tmp_path)])
    assert result.exit_code == 2 and "no preference set 'missing'" in result.stderr


def test_compare_rank_leaderboard_agreement_build(ws):
    _seed_generations(ws)
    result = runner.invoke(
        app,
        [
            "prefs",
            "compare",
            "cmp",
            "--source",
            "run-a",
            "--source",
            "run-b",
            "--analyst",
            "ann",
            "--analyst",
            "bob",
            "--overlap",
            "1.0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    store = Store.open(ws.db_path)
    try:
        cs = S.get_comparison_set(store, "cmp")
        for it in S.set_items(store, cs["id"]):
            good = "A" if it["responses"][0]["source"] == "run-a" else "B"
            for who in ("ann", "bob"):
                S.record_judgement(store, it["id"], who, good)
    finally:
        store.close()
    board = json.loads(
        runner.invoke(app, ["prefs", "leaderboard", "--json", "--n-boot", "20"]).stdout
    )
    assert [r["source"] for r in board["ratings"]] == ["run-a", "run-b"]
    assert board["win_rate"]["run-a"]["run-b"] == 1.0
    agree = json.loads(runner.invoke(app, ["prefs", "agreement", "--json"]).stdout)
    assert agree["analysts_with_ties"]["items"] == 6
    assert agree["analysts_with_ties"]["agreement"] == 1.0
    result = runner.invoke(app, ["prefs", "build", "from-cmp", "--from", "cmp", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_pairs"] == 6


def test_answer_needs_known_prompts(ws):
    result = runner.invoke(app, ["prefs", "answer", "--model", "m", "--prompts-from", "nope"])
    assert result.exit_code == 2 and "no generations for 'nope'" in result.stderr
