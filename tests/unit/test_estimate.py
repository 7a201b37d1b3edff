"""The memory estimate before launch: parts worked out by hand, what 4-bit, checkpointing and
a smaller batch change, a run that cannot fit refused before it is queued (with settings that
fit), `ftstudio train --dry-run --json`, MFU's FLOPs convention and the GPU peak table."""

from __future__ import annotations

import json
from dataclasses import replace

import psutil
import pytest
from typer.testing import CliRunner

from backend.action import Ctx
from backend.cli import app
from backend.config import Settings
from backend.jobs import read
from backend.train import estimate as E
from backend.train import flops as F
from backend.train.actions import start_run
from backend.train.config import file_fields
from backend.train.fit import DoesNotFit

runner = CliRunner()
SEVEN_B_PARAMS = 7_241_732_096  # Mistral-7B-v0.1, as published

SMALL = E.Shape(
    vocab=1000, hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2, head_dim=16, tied=False
)


def llama_config(hidden: int, layers: int, vocab: int = 32000) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": hidden * 4,
        "num_hidden_layers": layers,
        "num_attention_heads": hidden // 128,
        "num_key_value_heads": hidden // 128,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
    }


def test_parts_by_hand():
    plan = E.Plan(batch_size=2, max_length=32, lora_r=4, dtype_bytes=4, lora_dropout=0.0)
    est = E.estimate(SMALL, plan)
    # block linears per layer: q 64x64, k 64x32, v 64x32, o 64x64, gate/up 64x128, down 128x64
    per_layer = 64 * 64 * 2 + 64 * 32 * 2 + 64 * 128 * 3
    assert SMALL.block_linear_params() == 2 * per_layer
    assert SMALL.other_params() == 2 * 1000 * 64 + 5 * 64
    assert est.parts["weights"] == 4 * (2 * per_layer + 2 * 1000 * 64 + 5 * 64)
    # LoRA r=4 on all seven linears: r x (in + out)
    lora = 2 * 4 * ((64 + 64) * 2 + (64 + 32) * 2 + (64 + 128) * 3)
    assert est.trainable_params == lora
    assert (est.parts["lora"], est.parts["gradients"], est.parts["optimizer"]) == (
        4 * lora,
        4 * lora,
        8 * lora,
    )
    assert est.parts["logits"] == 2 * 32 * 1000 * (4 + 12)
    assert est.total == sum(est.parts.values())
    assert est.parts["framework"] == E.CPU_FRAMEWORK_BYTES


def test_four_bit_checkpointing_and_batch_shrink_the_right_parts():
    big = E.Shape(
        vocab=32000,
        hidden=4096,
        layers=32,
        intermediate=14336,
        heads=32,
        kv_heads=8,
        head_dim=128,
        tied=False,
    )
    plan = E.Plan(batch_size=4, max_length=2048, device="cuda", dtype_bytes=2)
    full = E.estimate(big, plan)
    q = E.estimate(big, replace(plan, quantize_4bit=True))
    # Mistral-7B's shape (7.24B parameters): 13.5 GiB in bf16, under 4 GiB in 4-bit
    # (embeddings and head stay bf16)
    assert SEVEN_B_PARAMS - 1e7 < big.params() < SEVEN_B_PARAMS + 1e7
    assert 13 * E.GIB < full.parts["weights"] < 14 * E.GIB
    assert 3.5 * E.GIB < q.parts["weights"] < 4 * E.GIB
    ck = E.estimate(big, replace(plan, checkpointing=True))
    assert ck.parts["activations"] < full.parts["activations"] / 5
    assert full.activations_with_checkpointing == ck.parts["activations"]
    half = E.estimate(big, replace(plan, batch_size=2))
    assert half.parts["activations"] * 2 == full.parts["activations"]
    assert half.parts["weights"] == full.parts["weights"]
    dpo = E.estimate(big, replace(plan, sequences_per_example=2))
    assert dpo.parts["activations"] == 2 * full.parts["activations"]
    assert dpo.parts["weights"] == full.parts["weights"]  # no second model copy


def test_suggestions_fit_and_keep_examples_per_update():
    big = E.Shape(
        vocab=32000,
        hidden=4096,
        layers=32,
        intermediate=14336,
        heads=32,
        kv_heads=8,
        head_dim=128,
        tied=False,
    )
    plan = E.Plan(batch_size=16, max_length=2048, device="cuda", dtype_bytes=2)
    capacity = 24 * E.GIB
    assert E.estimate(big, plan, capacity).fits is False
    options = E.suggestions(big, plan, capacity)
    assert options, "a 24 GiB GPU fits a 7B QLoRA run at some batch size"
    for o in options:
        changed = replace(
            plan,
            batch_size=o["changes"].get("batch_size", plan.batch_size),
            grad_accum=o["changes"].get("grad_accum", plan.grad_accum),
            quantize_4bit=o["changes"].get("quant") == "4bit" or plan.quantize_4bit,
            max_length=o["changes"].get("max_length", plan.max_length),
            checkpointing=plan.checkpointing or o["changes"].get("gradient_checkpointing", False),
        )
        assert E.estimate(big, changed, capacity).fits
        if "max_length" not in o["changes"] and "batch_size" in o["changes"]:
            assert changed.batch_size * changed.grad_accum >= 16
    assert E.suggestions(big, plan, 1 * E.GIB) == []  # nothing makes 7B fit in 1 GiB


def test_flops_and_peak_by_full_name():
    trainable = 1000
    fpt = F.flops_per_token(SMALL, trainable, 32)
    assert fpt == 4 * SMALL.block_linear_params() + 6 * trainable + 12 * 2 * 4 * 16 * 32
    assert F.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert F.peak_flops("NVIDIA H100 PCIe") == 756e12
    assert F.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert F.peak_flops("NVIDIA A10G") == 70e12
    assert F.peak_flops("NVIDIA L4") == 121e12
    assert F.peak_flops("Mystery GPU") is None
    assert F.peak_flops("Mystery GPU", 100.0) == 100e12
    assert F.mfu(1000.0, SMALL, trainable, 32, 1e12) == pytest.approx(1000.0 * fpt / 1e12)


def _model_folder(tmp_path, cfg: dict):
    folder = tmp_path / "big-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def _data(tmp_path):
    data = tmp_path / "rows.jsonl"
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    data.write_text("\n".join(json.dumps(row) for _ in range(4)) + "\n")
    return data


def _too_big_unless_4bit(tmp_path) -> dict:
    """A model (config only) whose float32 weights exceed this machine's memory and whose
    4-bit weights fit in it, sized from the machine."""
    ram = psutil.virtual_memory().total
    hidden = 4096
    per_layer_fp32 = 4 * (4 * hidden * hidden + 3 * hidden * 4 * hidden)
    layers = int(1.3 * ram / per_layer_fp32) + 1
    return llama_config(hidden, layers)


def test_a_run_that_cannot_fit_is_refused_before_it_is_queued(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cpu")
    model = _model_folder(tmp_path, _too_big_unless_4bit(tmp_path))
    fields = {
        "base_model": str(model),
        **file_fields(_data(tmp_path)),
        "quant": "none",
        "batch_size": 1,
        "max_length": 64,
    }
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    with pytest.raises(DoesNotFit) as info:
        start_run(shell, fields, start_worker=False)
    message = str(info.value)
    assert message.startswith("memory: the run needs about")
    assert "Settings that would fit" in message and "4-bit" in message
    assert read.list_jobs(ws) == []  # nothing queued
    # the suggested 4-bit run is accepted and queued
    job_id = start_run(shell, {**fields, "quant": "4bit"}, start_worker=False)
    assert read.get(ws, job_id).state == "queued"


def test_dry_run_json_gives_parts_in_bytes_and_queues_nothing(ws, tmp_path, tiny_model_dir):
    data = _data(tmp_path)
    args = ["train", "--dataset", str(data), "--base-model", str(tiny_model_dir)]
    result = runner.invoke(
        app, [*args, "--batch-size", "2", "--max-length", "64", "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    est = out["estimate"]
    assert out["queued"] is False and est["fits"] is True
    parts = est["parts"]
    assert set(parts) == {
        "weights",
        "lora",
        "gradients",
        "optimizer",
        "activations",
        "logits",
        "framework",
    }
    assert all(isinstance(v, int) and v >= 0 for v in parts.values())
    assert est["total"] == sum(parts.values())
    assert est["activations_with_checkpointing"] < est["activations_without_checkpointing"]
    assert out["config"]["batch_size"] == 2
    assert read.list_jobs(ws) == []
    text = runner.invoke(app, [*args, "--dry-run"])
    assert text.exit_code == 0 and "memory estimate on" in text.stdout
    assert "fits" in text.stdout and read.list_jobs(ws) == []


def test_dry_run_of_a_run_that_does_not_fit_exits_non_zero(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cpu")
    model = _model_folder(tmp_path, _too_big_unless_4bit(tmp_path))
    args = ["train", "--dataset", str(_data(tmp_path)), "--base-model", str(model)]
    result = runner.invoke(app, [*args, "--quant", "none", "--dry-run", "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["estimate"]["fits"] is False and out["suggestions"]
    assert any(s["changes"].get("quant") == "4bit" for s in out["suggestions"])
    assert read.list_jobs(ws) == []
