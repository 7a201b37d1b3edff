"""Re-runs on CPU with the tiny model: `ftstudio runs rerun RUN --json` trains again from the
stored record (through a real worker) and the per-step loss matches the original within 1e-4;
a changed dataset or base model is refused; differing package versions are warned about."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from backend.action import ActionError, Ctx
from backend.cli import app
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs.status import JobState
from backend.store import Store
from backend.store.runs import get_run
from backend.train import runtime
from backend.train.actions import rerun_run, start_run
from backend.train.lineage import RERUN_TOLERANCE, model_hash
from backend.train.reruns import rerun_report
from tests.integration.test_train_job import fields, write_data

pytestmark = pytest.mark.slow


def _original(ws, tiny_model_dir, data, run_inline) -> str:
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    spec = fields(tiny_model_dir, data, max_steps=6, save_steps=6, n_eval_prompts=1)
    job_id = start_run(shell, {**spec, "max_new_tokens": 4}, start_worker=False)
    assert run_inline(ws, job_id).state == JobState.succeeded
    return job_id


def test_cli_rerun_matches_the_original_curve(ws, tiny_model_dir, run_inline, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_data(tmp_path / "data.jsonl")
    original = _original(ws, model, data, run_inline)
    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
        assert get_run(store, original)["base_model_hash"] == model_hash(str(model))
    finally:
        store.close()

    result = CliRunner().invoke(app, ["runs", "rerun", original, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rerun_of"] == original and report["run_id"] != original
    assert report["state"] == "succeeded"
    assert report["steps_compared"] == 6 and not report["only_rerun"]
    assert report["max_loss_diff"] <= RERUN_TOLERANCE, report
    assert report["within_tolerance"] is True


def test_rerun_refuses_a_changed_record_and_warns_on_packages(
    ws, store, tiny_model_dir, run_inline, tmp_path, monkeypatch
):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_data(tmp_path / "data.jsonl")
    original = _original(ws, model, data, run_inline)
    ingest_all(store, ws)
    shell = Ctx(store=store, ws=ws, settings=Settings(), actor=None)

    real = runtime.package_versions()
    monkeypatch.setattr(runtime, "package_versions", lambda: {**real, "trl": "0.0.1"})
    job_id, warnings = rerun_run(shell, original, start_worker=False)
    assert warnings == [f"trl {real['trl']} -> 0.0.1"]
    assert rerun_report(store, job_id)["warnings"] == warnings
    assert rerun_report(store, original) is None

    with open(data, "a") as fh:  # the file the run trained on is not what it was
        fh.write(json.dumps({"messages": [{"role": "user", "content": "new"}]}) + "\n")
    with pytest.raises(ActionError, match="no longer has the content hash"):
        rerun_run(shell, original, start_worker=False)
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:-1]))
    (model / "config.json").write_text((model / "config.json").read_text() + "\n")
    with pytest.raises(ActionError, match="base model .* changed since the run"):
        rerun_run(shell, original, start_worker=False)
    with pytest.raises(ActionError, match="no run 'nope'"):
        rerun_run(shell, "nope", start_worker=False)
