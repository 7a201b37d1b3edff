"""Exports load with `datasets` and train with TRL's SFTTrainer for a couple of steps."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.store import datasets as dstore
from backend.synth.actions import export_version, seed_demo_dataset
from backend.synth.exporters import FORMATS, ExportError


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
