"""Training jobs on CPU with the tiny model: LoRA and 4-bit QLoRA lower the loss, change the
trainable parameters, save an adapter that reloads and generates, and are ingested; a run
killed with SIGKILL is `interrupted` and its resume continues from the checkpoint step; a
cancel stops after saving a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.jobs.status import JobState
from backend.store import Store
from backend.store.runs import get_run, list_runs, run_generations
from backend.train.actions import start_run
from backend.train.config import file_fields

pytestmark = pytest.mark.slow

ANSWERS = [
    "Open Settings, then Members, and invite them by email.",
    "Tasks need a start date and a due date to appear on the timeline.",
    "Open Reports, pick the sprint, and choose Export.",
    "Invoices are sent on the first day of each month.",
]


def _queue_run(ws, fields, **kwargs) -> str:
    """Queue a train job through the action, for this process to run (no worker)."""
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    return start_run(shell, fields, start_worker=False, **kwargs)


def write_data(path, n=24):
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": f"Question {i % 4}: how do I do this?"},
                            {"role": "assistant", "content": ANSWERS[i % 4]},
                        ]
                    }
                )
                + "\n"
            )
    return path


def fields(tiny_model_dir, data, **overrides):
    base = {
        "base_model": str(tiny_model_dir),
        **file_fields(data),
        "learning_rate": 5e-3,
        "batch_size": 4,
        "max_steps": 12,
        "max_length": 64,
        "eval_split": 0.2,
        "save_steps": 6,
        "lora_r": 8,
        "lora_alpha": 16,
        "n_eval_prompts": 2,
        "max_new_tokens": 8,
        "quant": "none",
    }
    return {**base, **overrides}


def losses(ws, job_id):
    rows = [json.loads(x) for x in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["value"] for r in rows if r["name"] == "loss"}


def check_adapter(ws, job_id, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = ws.runs / job_id / "adapter"
    assert (adapter / "adapter_config.json").exists()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, adapter)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) > 0 for p in lora_b)  # B starts at zero
    tok = AutoTokenizer.from_pretrained(adapter)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.parametrize("quant", ["none", "4bit"])
def test_run_lowers_loss_saves_adapter_and_is_ingested(
    ws, tiny_model_dir, run_inline, tmp_path, quant
):
    data = write_data(tmp_path / "data.jsonl")
    job_id = _queue_run(ws, fields(tiny_model_dir, data, quant=quant))
    status = run_inline(ws, job_id)
    assert status.state == JobState.succeeded, status.error
    loss = losses(ws, job_id)
    assert sorted(loss) == list(range(1, 13))
    assert loss[12] < loss[1] - 0.2, loss
    check_adapter(ws, job_id, tiny_model_dir)

    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
        run = get_run(store, job_id)
        assert run["state"] == "succeeded"
        assert run["adapter_path"].endswith(f"{job_id}/adapter")
        assert run["last_loss"] < run["first_loss"]
        assert run["config"]["quant"] == quant
        assert run["packages"]["trl"] and run["dataset_hash"]
        assert ("4-bit" in run["device"]) == (quant == "4bit")
        assert run["eval_loss"] is not None and run["perplexity"] > 1
        names = {
            r["name"]
            for r in store.rows("SELECT DISTINCT name FROM metrics WHERE job_id = ?", [job_id])
        }
        assert {
            "loss",
            "grad_norm",
            "learning_rate",
            "epoch",
            "tokens_seen",
            "tokens_per_s",
            "eval_loss",
        } <= names
        gens = run_generations(store, job_id)
        assert len(gens) == 2 and gens[0]["params"]["max_new_tokens"] == 8
        assert [r["id"] for r in list_runs(store)] == [job_id]
    finally:
        store.close()


@pytest.fixture
def stop_worker(ws):
    yield
    if worker.worker_running(ws):
        try:
            os.kill(int(ws.worker_lock.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_sigkill_gives_interrupted_and_resume_continues(ws, tiny_model_dir, tmp_path, stop_worker):
    data = write_data(tmp_path / "data.jsonl", n=40)
    # small save interval and many steps so the kill lands between checkpoints
    job_id = _queue_run(
        ws,
        fields(tiny_model_dir, data, max_steps=400, save_steps=4, eval_split=0.0, n_eval_prompts=1),
    )
    worker.ensure_worker(ws, idle_exit_s=30)
    ckpts = ws.runs / job_id / "checkpoints"
    _wait_for(
        lambda: (
            any((p / "trainer_state.json").exists() for p in ckpts.glob("checkpoint-*"))
            and max(losses(ws, job_id) or [0]) >= 6
        )
    )
    pid = queue.get(ws, job_id).pid
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    # the worker records the exit code; resuming before that races with it (it would mark the
    # re-queued job interrupted), so wait for it as a user would see the run stop
    status = _wait_for(lambda: (s := queue.get(ws, job_id)).exit_code is not None and s)
    assert status.state == JobState.interrupted
    from backend.train.common import last_checkpoint

    saved = int(last_checkpoint(ckpts).name.split("-")[1])
    assert saved >= 4 and saved % 4 == 0

    # shorten the rest of the run: the resumed job reads the same spec, so only edit max_steps
    spec_path = ws.job_dir(job_id) / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["spec"]["max_steps"] = saved + 4
    spec_path.write_text(json.dumps(spec))
    queue.resume(ws, job_id)
    worker.ensure_worker(ws, idle_exit_s=30)
    final = queue.wait(ws, job_id, timeout_s=180)
    assert final.state == JobState.succeeded, final.error
    events = (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert f"resumed from step {saved}" in events
    resumed_steps = [
        json.loads(x)["step"]
        for x in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines()
    ]
    assert max(resumed_steps) == saved + 4


def test_cancel_saves_a_checkpoint_and_resume_finishes(ws, tiny_model_dir, tmp_path, run_inline):
    data = write_data(tmp_path / "data.jsonl")
    job_id = _queue_run(
        ws,
        fields(tiny_model_dir, data, max_steps=6, save_steps=100, eval_split=0.0, n_eval_prompts=1),
    )
    (ws.job_dir(job_id) / "cancel").write_text("test")  # seen at the end of step 1
    status = run_inline(ws, job_id)
    assert status.state == JobState.cancelled
    from backend.train.common import last_checkpoint

    assert last_checkpoint(ws.runs / job_id / "checkpoints").name == "checkpoint-1"
    assert not (ws.runs / job_id / "adapter").exists()
    queue.resume(ws, job_id)
    assert run_inline(ws, job_id).state == JobState.succeeded
    assert "resumed from step 1" in (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert max(losses(ws, job_id)) == 6


def test_optuna_sweep_trains_its_trials_in_one_job(ws, tiny_model_dir, run_inline, tmp_path):
    from backend.jobs.kinds import validate_spec
    from backend.train.config import make_config

    data = write_data(tmp_path / "data.jsonl", n=12)
    base = make_config(fields(tiny_model_dir, data, max_steps=2, save_steps=1, eval_split=0.25))
    spec = validate_spec(
        "sweep-optuna",
        {"base": base.model_dump(mode="json"), "n_trials": 2, "ranks": [4, 8], "seed": 1},
    )
    job_id = queue.submit(ws, "sweep-optuna", spec)
    status = run_inline(ws, job_id)
    assert status.state == JobState.succeeded, status.error
    trials = [
        json.loads(line)
        for line in (ws.job_dir(job_id) / "sweep_trials.jsonl").read_text().splitlines()
    ]
    assert [t["trial"] for t in trials] == [0, 1]
    assert all(t["params"]["lora_r"] in (4, 8) for t in trials)
    assert any(t["state"] == "complete" and t["eval_loss"] > 0 for t in trials)
