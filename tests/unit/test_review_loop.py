"""The review loop: scoring defaults to the newest succeeded run's adapter on the same base model
(the CLI and the page say which, and allow base only), re-scoring leaves out what reviewers
already judged, and the rounds table shows the flagged share moving."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.review import actions, inputs, stats
from backend.review.flagging import FlagPolicy
from backend.review.verdicts import Verdict
from backend.store import datasets as ds
from backend.store import review as rstore

T0 = datetime(2026, 1, 1, 12, 0, 0)


def seed_run(
    store,
    run_id: str,
    base_model: str,
    adapter: Path | None,
    *,
    state: str = "succeeded",
    minutes: int = 0,
) -> None:
    """A finished train job and its run row, as ingestion leaves them."""
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO jobs (id, kind, spec, state, created, finished) VALUES"
            " (?, 'train', '{}', ?, ?, ?)",
            [run_id, state, T0, T0 + timedelta(minutes=minutes)],
        )
        cur.execute(
            "INSERT INTO runs (id, method, base_model, adapter_path, state) VALUES"
            " (?, 'sft', ?, ?, ?)",
            [run_id, base_model, str(adapter) if adapter else None, state],
        )


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A real LoRA adapter for the tiny model, with non-zero weights (so it changes scores)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    lora = get_peft_model(
        model,
        LoraConfig(
            r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        ),
    )
    out = tmp_path_factory.mktemp("runs") / "run-b" / "adapter"
    lora.save_pretrained(out)
    return out


def test_newest_succeeded_run_on_the_same_base_model_wins(store, tmp_path):
    base = str(tmp_path / "models" / "tiny-llama")
    dirs = {name: tmp_path / "runs" / name / "adapter" for name in "abcdef"}
    for name in "abce":
        dirs[name].mkdir(parents=True)
    seed_run(store, "a", base, dirs["a"], minutes=1)
    seed_run(store, "b", base, dirs["b"], minutes=2)  # the answer
    seed_run(store, "c", base, dirs["c"], state="failed", minutes=3)
    seed_run(store, "d", base, dirs["d"], minutes=4)  # its adapter folder was deleted
    seed_run(store, "e", str(tmp_path / "models" / "other"), dirs["e"], minutes=5)
    seed_run(store, "f", base, None, state="running", minutes=6)
    got = rstore.newest_adapter(store, base)
    assert got["run_id"] == "b" and got["adapter_path"] == str(dirs["b"])
    assert rstore.newest_adapter(store, str(tmp_path / "models" / "third")) is None


def test_relative_base_model_matches_under_the_workspace(ws, store):
    adapter = ws.runs / "r1" / "adapter"
    adapter.mkdir(parents=True)
    seed_run(store, "r1", "models/tiny-llama", adapter)
    assert (
        rstore.newest_adapter(store, str(ws.models / "tiny-llama")) is None or Path.cwd() == ws.root
    )
    got = rstore.newest_adapter(store, str(ws.models / "tiny-llama"), root=ws.root)
    assert got["run_id"] == "r1"


def test_choose_adapter_default_base_only_given_and_errors(store, tmp_path):
    base = str(tmp_path / "m")
    none = inputs.choose_adapter(store, base)
    assert none.path is None and "no succeeded run" in none.describe()
    adapter = tmp_path / "runs" / "r9" / "adapter"
    adapter.mkdir(parents=True)
    seed_run(store, "r9", base, adapter)
    newest = inputs.choose_adapter(store, base)
    assert (newest.path, newest.run_id) == (str(adapter), "r9")
    assert "newest succeeded run r9" in newest.describe()
    only = inputs.choose_adapter(store, base, base_only=True)
    assert only.path is None and "base model only" in only.describe()
    given = inputs.choose_adapter(store, base, adapter_path=str(adapter))
    assert given.path == str(adapter) and given.run_id is None
    with pytest.raises(ValueError, match="not both"):
        inputs.choose_adapter(store, base, adapter_path=str(adapter), base_only=True)
    with pytest.raises(ValueError, match="does not exist"):
        inputs.choose_adapter(store, base, adapter_path=str(tmp_path / "nope"))


def _dataset(store, n: int = 12) -> list[str]:
    ds.create_dataset(store, "support")
    ver = ds.add_version(
        store,
        "support",
        [
            {
                "messages": [
                    {"role": "user", "content": f"How do I export report {i}?"},
                    {"role": "assistant", "content": f"Open Reports, pick {i}, Export."},
                ]
            }
            for i in range(n)
        ],
    )
    return [e["id"] for e in ds.version_examples(store, ver["id"])]


def test_cli_score_defaults_to_the_newest_adapter(
    ws, store, tiny_model_dir, adapter_dir, run_inline, monkeypatch
):
    from backend.cli import app

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    _dataset(store)
    seed_run(store, "run-b", str(tiny_model_dir), adapter_dir)
    runner = CliRunner()
    args = ["review", "score", "--dataset", "support", "--model", str(tiny_model_dir), "--detach"]
    out = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert (out["adapter"], out["adapter_run_id"]) == (str(adapter_dir), "run-b")
    plain = runner.invoke(app, [*args, "--base-only"])
    assert plain.exit_code == 0, plain.output
    assert "adapter: none, base model only (base only was asked for)" in plain.stdout
    base_job = plain.stdout.split("queued score job ")[1].split()[0]
    assert queue.read_spec(ws.job_dir(base_job))[1]["adapter_path"] is None
    status = run_inline(ws, out["job_id"])
    assert status.state == "succeeded", status.error
    run_inline(ws, base_job)
    ingest_all(store, ws)
    tuned = rstore.scores_of(store, out["job_id"])
    base = rstore.scores_of(store, base_job)
    assert {r["model"] for r in rstore.score_jobs(store, "support")} == {
        "tiny-llama",
        "tiny-llama+run-b",
    }
    assert tuned.keys() == base.keys() and tuned != base  # the adapter changed the scores
    bad = runner.invoke(app, [*args, "--base-only", "--adapter", str(adapter_dir)])
    assert bad.exit_code == 1 and "not both" in bad.stderr


def test_rescoring_leaves_out_reviewed_examples_and_rounds_move(
    ws, store, act, tiny_model_dir, run_inline
):
    ids = _dataset(store)
    spec, n, _ = inputs.prepare_spec(
        store, ws, "support", str(tiny_model_dir), only_unreviewed=True
    )
    assert n == 12 and spec["round"] == 1
    first = queue.submit(ws, "score", spec)
    assert run_inline(ws, first).state == "succeeded"
    ingest_all(store, ws)
    batch = actions.create_batch(
        act(), "support", first, FlagPolicy(kind="top_k", value=3, qc_share=0)
    )
    flagged = [i["example_id"] for i in rstore.batch_items(store, batch["id"])]
    for ex, verdict in zip(flagged, ["reject", "accept", "accept"], strict=True):
        actions.record_verdict(
            act(), batch["id"], Verdict(example_id=ex, reviewer="ana", verdict=verdict)
        )
    actions.apply_batch(act(), batch["id"])

    spec, n, ver = inputs.prepare_spec(
        store, ws, "support", str(tiny_model_dir), only_unreviewed=True
    )
    assert ver["number"] == 2 and spec["round"] == 2
    assert n == 9  # 12, less the rejected one, less the two accepted ones already reviewed
    written = {
        json.loads(line)["id"] for line in Path(spec["examples_path"]).read_text().splitlines()
    }
    assert written == set(ids) - set(flagged)
    assert inputs.prepare_spec(store, ws, "support", str(tiny_model_dir))[1] == 11
    second = queue.submit(ws, "score", spec)
    assert run_inline(ws, second).state == "succeeded"
    ingest_all(store, ws)
    rows = stats.rounds(store, "support")
    assert [(r["round"], r["n_scored"]) for r in rows] == [(1, 12), (2, 9)]
    assert rows[0]["share_above_first_cut"] == pytest.approx(3 / 12)
    # same model, the three least certain gone: nothing left reaches round 1's cut line
    assert rows[1]["share_above_first_cut"] == 0.0 and rows[1]["batch"] is None
