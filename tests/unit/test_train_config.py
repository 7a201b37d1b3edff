"""The run config, its preflight, the runtime decision, sweep expansion and the CLI's
rejection of bad configs before anything is queued (no training here; fast)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from backend.action import Ctx
from backend.config import Settings
from backend.jobs import queue, worker
from backend.train.actions import start_run
from backend.train.config import (
    GROUPS,
    LABELS,
    METHODS,
    ConfigError,
    RunConfig,
    SFTRunConfig,
    file_fields,
    help_text,
    in_words,
    label,
    make_config,
    method_fields,
    module_names,
    preflight,
)
from backend.train.sweep import expand, parse_values


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                }
            )
            + "\n"
            for i in range(5)
        )
    )
    return path


def fields(model, data, **extra):
    return {"base_model": str(model), **file_fields(data), **extra}


def test_defaults_and_every_field_documented_once_in_a_group(tiny_model_dir, data):
    c = SFTRunConfig(**fields(tiny_model_dir, data))
    assert c.learning_rate == 5e-5 and c.epochs == 3 and c.target_modules == ["all-linear"]
    assert c.quant == "auto" and c.method == "sft" and c.assistant_only_loss
    grouped = [name for _, names in GROUPS for name in names]
    assert len(grouped) == len(set(grouped))
    internal = {"dataset_version_id", "dataset_hash", "data_path"}
    every = set(RunConfig.model_fields).union(*(cls.model_fields for cls in METHODS.values()))
    assert set(grouped) | internal == every
    assert all(help_text(name) for name in every)


def test_every_form_field_has_a_plain_label_and_its_library_term_in_help():
    """Labels in the user's words ("LoRA rank"), the library's term in the help ("LoRA rank
    (r)"); errors name a field by its label; each method's form fields are its own."""
    grouped = {name for _, names in GROUPS for name in names}
    assert grouped <= set(LABELS)
    assert label("lora_r") == "LoRA rank" and "LoRA rank (r)" in help_text("lora_r")
    assert label("grad_accum") == "Steps per update"
    assert "gradient_accumulation_steps" in help_text("grad_accum")
    for name in grouped:
        assert "_" not in label(name), name  # words, not identifiers
        assert help_text(name).endswith(f"Library term: {LABELS[name][1]}.")
    assert in_words("lora_r: must be at least 1") == "LoRA rank (lora_r): must be at least 1"
    assert in_words("no such thing: here") == "no such thing: here"
    assert "beta" in method_fields("dpo") and "beta" not in method_fields("sft")
    assert "init_adapter" in method_fields("sft") and "init_adapter" not in method_fields("dpo")


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"method": "ppo"}, "unknown method 'ppo'"),
        ({"quant": "8bit"}, "quant"),
        ({"target_modules": []}, "target module"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_fields_are_named(tiny_model_dir, data, bad, needle):
    with pytest.raises(ConfigError, match=needle):
        make_config(fields(tiny_model_dir, data, **bad))


def test_module_names_read_from_the_weights(tiny_model_dir):
    names = module_names(tiny_model_dir)
    assert "model.layers.0.self_attn.q_proj" in names and "lm_head" in names


def test_preflight_errors(tiny_model_dir, data, tmp_path):
    with pytest.raises(ConfigError, match="target_modules: foo_proj"):
        preflight(
            SFTRunConfig(**fields(tiny_model_dir, data, target_modules=["q_proj", "foo_proj"]))
        )
    preflight(SFTRunConfig(**fields(tiny_model_dir, data, target_modules=["q_proj", "v_proj"])))
    with pytest.raises(ConfigError, match="no model folder"):
        preflight(SFTRunConfig(**fields(tmp_path / "missing", data)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        preflight(SFTRunConfig(**fields(tmp_path / "empty", data)))
    gone = SFTRunConfig(**{**fields(tiny_model_dir, data), "data_path": str(tmp_path / "x.jsonl")})
    with pytest.raises(ConfigError, match="does not exist"):
        preflight(gone)


def test_bad_config_is_rejected_before_queueing(ws, store, tiny_model_dir, data, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    ctx = Ctx(store=store, ws=ws, settings=Settings())
    with pytest.raises(ConfigError):
        start_run(ctx, fields(tiny_model_dir, data, target_modules=["nope"]))
    with pytest.raises(ConfigError):
        start_run(ctx, fields(tiny_model_dir, data, learning_rate=0))
    assert queue.job_ids(ws) == [] and queue.pending_count(ws) == 0
    job_id = start_run(ctx, fields(tiny_model_dir, data, max_steps=2))
    assert queue.job_ids(ws) == [job_id]


def test_runtime_on_cpu():
    from backend.train.runtime import decide, model_kwargs

    rt = decide("auto", "cpu")
    assert (rt.device, rt.dtype, rt.bf16, rt.use_cpu, rt.pin_memory, rt.quantize_4bit) == (
        "cpu",
        "float32",
        False,
        True,
        False,
        False,
    )
    forced = decide("4bit", "cpu")
    assert forced.quantize_4bit and forced.dtype == "float32"
    q = model_kwargs(forced)["quantization_config"]
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert "quantization_config" not in model_kwargs(decide("none", "cpu"))


def test_split_is_deterministic_and_checkpoints_need_their_state(tmp_path):
    from backend.train.common import last_checkpoint, split

    rows = [{"messages": [{"role": "user", "content": str(i)}]} for i in range(20)]
    assert split(rows, 0.2, 1) == split(rows, 0.2, 1)
    train, held = split(rows, 0.2, 1)
    assert len(held) == 4 and len(train) == 16
    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path).name == "checkpoint-4"  # 6 was cut off mid-save


def test_sweep_expansion():
    base = {"lora_r": 16, "lora_alpha": 32, "learning_rate": 1e-4}
    grid = expand(base, {"learning_rate": [1e-4, 5e-5], "lora_r": [8, 16]})
    assert len(grid) == 4 and {(g["lora_r"], g["lora_alpha"]) for g in grid} == {(8, 16), (16, 32)}
    picked = expand(
        base, {"learning_rate": [1e-4, 5e-5, 1e-5], "lora_r": [8, 16]}, "random", n=3, seed=1
    )
    assert len(picked) == 3 and len({json.dumps(p, sort_keys=True) for p in picked}) == 3
    assert parse_values("lora_r", "8,16") == [8, 16]
    with pytest.raises(ConfigError, match="cannot be swept"):
        expand(base, {"max_length": [1, 2]})
    with pytest.raises(ConfigError, match="not a comma-separated"):
        parse_values("learning_rate", "fast")


def test_cli_rejects_bad_configs_without_queueing(ws, tiny_model_dir, data, tmp_path):
    from backend.cli import app

    runner = CliRunner()
    bad_yaml = tmp_path / "run.yaml"
    bad_yaml.write_text("target_modules: [q_proj, foo_proj]\n")
    cases = [
        (["train", "--dataset", str(data), "--base-model", str(tmp_path / "nope")], "base_model"),
        (["train", "--dataset", "nosuch", "--base-model", str(tiny_model_dir)], "nosuch"),
        (
            [
                "train",
                "--dataset",
                str(data),
                "--base-model",
                str(tiny_model_dir),
                "--config",
                str(bad_yaml),
            ],
            "foo_proj",
        ),
        (
            [
                "sweep",
                "--dataset",
                str(data),
                "--base-model",
                str(tiny_model_dir),
                "--lr",
                "0,1e-4",
            ],
            "learning_rate",
        ),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert needle in result.output
    assert queue.job_ids(ws) == []
