"""Tracker mirroring on CPU with the tiny model: off by default (no mlruns, no wandb folder);
with FTSTUDIO_MLFLOW_URI a run's params, per-step metrics and adapter land in a real local
MLflow file store, read back through MLflow's own client; with FTSTUDIO_WANDB_MODE=offline a
W&B offline run is written; an unreachable tracker is a warning, never a failed run."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.jobs.status import JobState
from backend.train.actions import start_run
from backend.train.lineage import model_hash
from tests.integration.test_train_job import fields, losses, write_data

pytestmark = pytest.mark.slow


def _run(ws, tiny_model_dir, tmp_path, run_inline) -> str:
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    spec = fields(tiny_model_dir, write_data(tmp_path / "d.jsonl"), max_steps=3, save_steps=3)
    job_id = start_run(
        shell, {**spec, "n_eval_prompts": 1, "max_new_tokens": 4}, start_worker=False
    )
    assert run_inline(ws, job_id).state == JobState.succeeded
    return job_id


def _events(ws, job_id) -> list[dict]:
    lines = (ws.job_dir(job_id) / "events.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_mlflow_and_wandb_offline(ws, tiny_model_dir, tmp_path, run_inline, monkeypatch):
    from mlflow.tracking import MlflowClient

    mlruns = tmp_path / "mlruns"
    monkeypatch.setenv("FTSTUDIO_MLFLOW_URI", str(mlruns))
    monkeypatch.setenv("FTSTUDIO_WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    job_id = _run(ws, tiny_model_dir, tmp_path, run_inline)
    warnings = [e["message"] for e in _events(ws, job_id) if e["level"] == "warning"]
    assert not warnings, warnings

    client = MlflowClient(tracking_uri=mlruns.as_uri())
    [run] = client.search_runs(
        [client.get_experiment_by_name("ftstudio").experiment_id],
        filter_string=f"tags.`ftstudio.run_id` = '{job_id}'",
    )
    params = run.data.params
    assert params["config.lora_r"] == "8" and params["config.seed"] == "42"
    assert params["base_model_hash"] == model_hash(str(tiny_model_dir))
    assert "packages.trl" in params
    history = client.get_metric_history(run.info.run_id, "loss")
    assert {m.step: m.value for m in history} == pytest.approx(losses(ws, job_id))
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "adapter")]
    assert "adapter/adapter_config.json" in arts and "adapter/adapter_model.safetensors" in arts

    # wandb 0.31 has no reader of its offline log, so look for what was logged in its bytes
    [offline] = list((ws.root / "wandb" / "wandb").glob("offline-run-*"))
    [log] = list(offline.glob("run-*.wandb"))
    data = log.read_bytes()
    for logged in (b"config.lora_r", b"mean_token_accuracy", b"adapter_config.json"):
        assert logged in data, logged


def test_off_by_default_and_a_broken_tracker_only_warns(
    ws, tiny_model_dir, tmp_path, run_inline, monkeypatch
):
    job_id = _run(ws, tiny_model_dir, tmp_path, run_inline)
    assert not (ws.root / "wandb").exists() and not any(tmp_path.glob("**/mlruns"))
    assert not [e for e in _events(ws, job_id) if "mirror" in e["message"]]

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    monkeypatch.setenv("FTSTUDIO_MLFLOW_URI", str(blocker / "mlruns"))
    job_id = _run(ws, tiny_model_dir, tmp_path, run_inline)
    warned = [e["message"] for e in _events(ws, job_id) if e["level"] == "warning"]
    assert any(w.startswith("MLflow mirroring failed") for w in warned), warned
