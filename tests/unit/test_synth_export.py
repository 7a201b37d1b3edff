"""Exports load with `datasets` and train with TRL's SFTTrainer for a couple of steps."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.store import datasets as dstore
from backend.synth.actions import seed_demo_dataset
from backend.synth.exporters import FORMATS, ExportError
from backend.synth.import_actions import export_version


@pytest.fixture
def ctx(ws, store) -> Ctx:
    return Ctx(store=store, ws=ws, settings=Settings(), actor=None)


def _load(fmt: str, path):
    from datasets import load_dataset, load_from_disk

    if fmt == "hf":
        return load_from_disk(str(path))
    if fmt == "parquet":
        return load_dataset("parquet", data_files=str(path), split="train")
    return load_dataset("json", data_files=str(path), split="train")


def _train_two_steps(model_dir, data, out_dir) -> tuple[float, float, bool]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = SFTConfig(
        output_dir=str(out_dir),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        max_length=256,
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
        seed=0,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    changed = any(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())
    return losses[0], losses[-1], changed


@pytest.mark.slow
def test_every_export_loads_and_trains(ctx, store, tmp_path, tiny_model_dir):
    seed_demo_dataset(ctx)
    v = dstore.resolve_version(store, "tasklane-support")
    for fmt in FORMATS:
        out = tmp_path / f"export-{fmt}"
        info = export_version(ctx, "tasklane-support", fmt, out)
        assert info["examples"] == v["n_examples"] and info["hash"] == v["hash"]
        data = _load(fmt, out)
        assert len(data) == v["n_examples"]
        if fmt == "prompt-completion-jsonl":
            assert data[0]["completion"][0]["role"] == "assistant"
            assert data[0]["prompt"][-1]["role"] == "user"
        else:
            assert data[0]["messages"][-1]["role"] == "assistant"
        first, last, changed = _train_two_steps(tiny_model_dir, data, tmp_path / f"run-{fmt}")
        assert changed, fmt
        assert last < first, (fmt, first, last)


def test_export_refuses_to_overwrite_and_unknown_format(ctx, tmp_path):
    seed_demo_dataset(ctx)
    out = tmp_path / "x.jsonl"
    export_version(ctx, "tasklane-support", "messages-jsonl", out)
    line = json.loads(out.read_text().splitlines()[0])
    assert set(line) == {"messages"}
    with pytest.raises(ExportError, match="already exists"):
        export_version(ctx, "tasklane-support", "messages-jsonl", out)
    export_version(ctx, "tasklane-support", "messages-jsonl", out, overwrite=True)
    with pytest.raises(ExportError, match="unknown export format"):
        export_version(ctx, "tasklane-support", "csv", tmp_path / "y")
    assert not list(tmp_path.glob(".*tmp"))


def _tree(root) -> dict:
    """Every file under `root` with its bytes (the database by size: it is open)."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size if "duckdb" in p.name else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_write_to_the_workspace_with_overwrite_is_refused_and_nothing_is_lost(ws, store):
    from backend.action import Ctx
    from backend.auth import Actor
    from backend.jobs import queue

    shell = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    lead = Ctx(store=store, ws=ws, settings=Settings(), actor=Actor("lee", "lead"))
    seed_demo_dataset(shell)
    queue.submit(ws, "generate", {"dataset": "x", "recipe": {}})  # a job folder to lose
    (ws.root / "review").mkdir()
    (ws.root / "review" / "inbox.jsonl").write_text("{}\n")
    before = _tree(ws.root)
    for ctx, typed in (
        (lead, "."),
        (lead, "./"),
        (lead, "exports"),
        (lead, "studio.duckdb"),
        (lead, "jobs"),
        (lead, "jobs/new.jsonl"),
        (lead, "queue/pending"),
        (lead, "review"),
        (lead, "models/x"),
        (lead, "runs"),
        (shell, ws.root),
        (shell, ws.root / "jobs"),
        (shell, ws.root.parent),
        (shell, ws.root / "studio.duckdb"),
    ):
        for fmt in ("hf", "messages-jsonl"):
            with pytest.raises(ValueError) as err:
                export_version(ctx, "tasklane-support", fmt, typed, overwrite=True)
            assert "Nothing was written" in str(err.value), (typed, str(err.value))
    assert _tree(ws.root) == before
    assert dstore.resolve_version(store, "tasklane-support")["n_examples"] >= 35
    rows = store.rows("SELECT action FROM audit_log WHERE action = 'dataset.export'")
    assert rows == []


def test_an_overwrite_replaces_only_a_folder_an_export_made(ws, store, tmp_path):
    from backend.synth.exporters import MARKER

    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    seed_demo_dataset(ctx)
    mine = ws.exports / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes")
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hi')")
    for target in (mine, project):
        for fmt in ("hf", "parquet"):
            with pytest.raises(ExportError, match=f"did not export .*{MARKER}"):
                export_version(ctx, "tasklane-support", fmt, target, overwrite=True)
    assert (mine / "notes.txt").read_text() == "my own notes"
    assert (project / "main.py").read_text() == "print('hi')"
    # a folder export carries the marker, so exporting over it again is allowed
    out = ws.exports / "hf-export"
    export_version(ctx, "tasklane-support", "hf", out)
    marker = json.loads((out / MARKER).read_text())
    assert marker["dataset"] == "tasklane-support" and marker["version"] == 1
    with pytest.raises(ExportError, match="already exists"):
        export_version(ctx, "tasklane-support", "hf", out)
    export_version(ctx, "tasklane-support", "hf", out, overwrite=True)
    assert (out / MARKER).is_file() and not list(ws.exports.glob(".*"))


def test_a_dashboard_export_goes_under_exports_only(ws, store):
    from backend.auth import Actor

    lead = Ctx(store=store, ws=ws, settings=Settings(), actor=Actor("lee", "lead"))
    seed_demo_dataset(Ctx(store=store, ws=ws, settings=Settings(), actor=None))
    with pytest.raises(ExportError, match="exports go under exports/"):
        export_version(lead, "tasklane-support", "messages-jsonl", "train.jsonl")
    info = export_version(lead, "tasklane-support", "messages-jsonl", "exports/sub/train.jsonl")
    assert info["path"] == str(ws.exports / "sub" / "train.jsonl")


def test_a_download_is_the_export_file_as_bytes_and_audited(ws, store):
    import io

    import pyarrow.parquet as pq

    from backend.synth.import_actions import download_version

    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    seed_demo_dataset(ctx)
    n = dstore.resolve_version(store, "tasklane-support")["n_examples"]
    data = download_version(ctx, "tasklane-support", "messages-jsonl")
    assert len(data.decode().splitlines()) == n
    assert (
        pq.read_table(io.BytesIO(download_version(ctx, "tasklane-support", "parquet"))).num_rows
        == n
    )
    with pytest.raises(ExportError, match="export it"):
        download_version(ctx, "tasklane-support", "hf")
    rows = store.rows("SELECT action FROM audit_log WHERE action = 'dataset.download'")
    assert len(rows) == 2
    assert not list(ws.exports.iterdir())  # nothing left on the server's disk
