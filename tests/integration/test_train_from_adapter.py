"""A targeted fine-tune from the last adapter: `init_adapter` is checked before queueing, and a
run started from another run's adapter begins at that adapter's weights (its first loss is
near the previous run's last loss, far below a fresh start) and saves a new adapter."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.jobs import worker
from backend.jobs.status import JobState
from backend.train.actions import start_run
from backend.train.config import ConfigError, SFTRunConfig, make_config, preflight
from tests.integration.test_train_job import fields, losses, write_data


def _queue_run(ws, fields, **kwargs) -> str:
    """Queue a train job through the action, for this process to run (no worker)."""
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    return start_run(shell, fields, start_worker=False, **kwargs)


def test_preflight_checks_the_init_adapter(tiny_model_dir, tmp_path):
    data = write_data(tmp_path / "data.jsonl", n=4)
    cfg = fields(tiny_model_dir, data)

    def check(**extra):
        preflight(SFTRunConfig(**{**cfg, **extra}))

    with pytest.raises(ConfigError, match="init_adapter: .*missing does not exist"):
        check(init_adapter=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="init_adapter: .*has no adapter_config.json"):
        check(init_adapter=str(tmp_path / "empty"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": "/models/some-other-base", "peft_type": "LORA"})
    )
    with pytest.raises(ConfigError, match="init_adapter: .*trained on /models/some-other-base"):
        check(init_adapter=str(other))
    same = tmp_path / "same"
    same.mkdir()
    (same / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tiny_model_dir), "peft_type": "LORA"})
    )
    check(init_adapter=str(same))
    with pytest.raises(ConfigError, match="init_adapter: only sft"):
        make_config({**cfg, "init_adapter": str(same), "method": "dpo"})


def _lora(adapter):
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


@pytest.mark.slow
def test_run_continues_from_a_previous_adapter(
    ws, store, tiny_model_dir, run_inline, tmp_path, monkeypatch
):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    data = write_data(tmp_path / "data.jsonl")
    first = _queue_run(ws, fields(tiny_model_dir, data, eval_split=0.0))
    assert run_inline(ws, first).state == JobState.succeeded
    before = losses(ws, first)
    adapter = ws.runs / first / "adapter"

    cfg = fields(
        tiny_model_dir, data, eval_split=0.0, max_steps=4, init_adapter=str(adapter), lora_r=4
    )  # lora_r is the adapter's (8), not 4
    second = start_run(Ctx(store=store, ws=ws, settings=Settings()), cfg)  # the action path
    status = run_inline(ws, second)
    assert status.state == JobState.succeeded, status.error
    after = losses(ws, second)
    drop = before[1] - before[12]
    assert drop > 0.2, before
    # the second run starts where the first ended, not where a fresh LoRA starts
    assert abs(after[1] - before[12]) < 0.25 * drop, (before, after)
    assert after[1] < before[1] - 0.75 * drop

    new = ws.runs / second / "adapter"
    meta = json.loads((new / "adapter_config.json").read_text())
    assert meta["r"] == 8 and meta["base_model_name_or_path"] == str(tiny_model_dir)
    old_w, new_w = _lora(adapter), _lora(new)
    assert old_w.keys() == new_w.keys()
    assert any(not (old_w[k] == new_w[k]).all() for k in old_w)  # trained on
    assert (adapter / "adapter_config.json").exists()  # the first run's adapter is untouched
