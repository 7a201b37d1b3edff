"""Exports on CPU with the tiny model: a real short LoRA run is merged, written as GGUF (f16
and q8_0) with an Ollama Modelfile, read back through transformers' GGUF loader, and held to
base + adapter (logits within tolerance, 32 greedy tokens equal, stops at the end-of-turn
token); exports are recorded in the store and by `ftstudio runs show --json`; a failed check
fails the job with its numbers and leaves nothing shippable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.action import ActionError, AlreadyDone, Ctx
from backend.cli import app
from backend.config import Settings
from backend.export import verify
from backend.export.actions import start_export
from backend.ingest.jobs import ingest_all
from backend.jobs import queue
from backend.jobs.run import run_job
from backend.jobs.status import JobState
from backend.store import Store
from backend.store.exports import list_exports
from backend.train.actions import start_run
from backend.train.config import file_fields
from backend.workspace import Workspace
from tests.integration.test_train_job import fields, write_data

pytestmark = pytest.mark.slow


def _run_inline(ws: Workspace, job_id: str):
    assert queue.claim_next(ws) == job_id
    run_job(ws, job_id, heartbeat_s=0.5)
    queue.release(ws, job_id)
    return queue.get(ws, job_id)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """(workspace, run id): one short real LoRA run, shared by this module's tests."""
    root = tmp_path_factory.mktemp("export")
    mp = pytest.MonkeyPatch()
    mp.setenv("FTSTUDIO_WORKSPACE", str(root / "workspace"))
    mp.setenv("FTSTUDIO_HEARTBEAT_S", "0.5")
    ws = Workspace(root / "workspace").ensure()
    data = write_data(root / "data.jsonl")
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    run_fields = fields(tiny_model_dir, data, max_steps=8, save_steps=8, n_eval_prompts=1)
    assert file_fields(data)["data_path"] == run_fields["data_path"]
    run_id = start_run(shell, run_fields, start_worker=False)
    assert _run_inline(ws, run_id).state == JobState.succeeded
    yield ws, run_id
    mp.undo()


def _export(ws, run_id, fmt, **kwargs):
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    job_id = start_export(shell, run_id, fmt, start_worker=False, **kwargs)
    status = _run_inline(ws, job_id)
    rows = [json.loads(x) for x in (ws.job_dir(job_id) / "export.jsonl").read_text().splitlines()]
    return status, rows[-1]


def _held_to_reference(check: dict, tolerance: float) -> None:
    assert check["relative_diff"] <= tolerance, check
    assert check["greedy_ok"] and check["greedy_tokens"] == 32, check


def test_merged_export_matches_base_plus_adapter(trained):
    ws, run_id = trained
    status, row = _export(ws, run_id, "merged")
    assert status.state == JobState.succeeded, status.error
    out = Path(row["path"])
    assert out == ws.runs / run_id / "exports" / "merged"
    assert (out / "model.safetensors").is_file() and (out / "export.json").is_file()
    gen = json.loads((out / "generation_config.json").read_text())
    eot = row["checks"]["stops"]["end_of_turn"]
    assert eot in (
        gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    )
    tok_cfg = out / "tokenizer_config.json"
    template = out / "chat_template.jinja"
    assert template.is_file() or "chat_template" in json.loads(tok_cfg.read_text())
    checks = row["checks"]
    _held_to_reference(checks["merged"], verify.TOLERANCE["merged-float32"])
    assert checks["merged"]["max_logit_diff"] < 1e-3
    assert checks["chat_template"]["ok"] and checks["stops"]["ok"]
    assert row["verified"] and row["size_bytes"] > 0 and len(row["sha256"]) == 64


@pytest.mark.parametrize("fmt, quant", [("gguf", "f16"), ("ollama", "q8_0")])
def test_gguf_reads_back_through_transformers_and_matches(trained, fmt, quant):
    ws, run_id = trained
    status, row = _export(ws, run_id, fmt, quant=quant)
    assert status.state == JobState.succeeded, status.error
    path = Path(row["path"])
    assert path.name.endswith(f"-{quant}.gguf") and path.is_file()
    checks = row["checks"]
    _held_to_reference(checks["gguf"], verify.TOLERANCE[quant])
    assert checks["gguf"]["max_logit_diff"] > 0  # really the quantised file, not the model
    assert checks["stops"]["ok"] and checks["chat_template"]["ok"] and checks["tokenizer"]["ok"]
    from backend.export.gguf import read_metadata

    meta = read_metadata(path)
    assert meta["general.architecture"] == "llama"
    assert meta["tokenizer.ggml.eos_token_id"] == checks["stops"]["end_of_turn"]
    assert "vllm serve" in row["commands"]["vllm"] and "--enable-lora" in row["commands"]["vllm"]
    if fmt == "ollama":
        modelfile = (path.parent / "Modelfile").read_text()
        assert modelfile.startswith(f"FROM ./{path.name}\nTEMPLATE ")
        assert 'PARAMETER stop "<|end|>"' in modelfile
        assert checks["ollama_template"]["ok"]
        assert row["commands"]["ollama"].startswith("ollama create ")


def test_a_failed_check_fails_the_job_with_numbers(trained, monkeypatch):
    ws, run_id = trained
    monkeypatch.setitem(verify.TOLERANCE, "q8_0", 0.0)  # no quantised file is this exact
    out = ws.root / "strict"
    status, row = _export(ws, run_id, "gguf", quant="q8_0", out=str(out))
    assert status.state == JobState.failed
    assert "max logit difference" in status.error and "over the tolerance 0" in status.error
    assert not row["verified"] and not out.exists()  # nothing shippable in place
    assert not list(out.parent.glob(".strict*"))  # nor half-made beside it


def test_refusals(trained, tmp_path):
    ws, run_id = trained
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    with pytest.raises(ActionError, match="not one of"):
        start_export(shell, run_id, "onnx")
    with pytest.raises(ActionError, match="quant applies to gguf"):
        start_export(shell, run_id, "merged", quant="f16", start_worker=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ActionError, match="not an earlier export"):
        start_export(shell, run_id, "merged", out=str(busy))
    job_id = start_export(shell, run_id, "merged", out=str(tmp_path / "twice"), start_worker=False)
    with pytest.raises(AlreadyDone):
        start_export(shell, run_id, "merged", out=str(tmp_path / "twice"), start_worker=False)
    queue.cancel(ws, job_id, grace_s=0)
    # a GGUF of another architecture is refused before anything is queued, naming it
    spec_path = ws.job_dir(run_id) / "spec.json"
    spec = json.loads(spec_path.read_text())
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    saved = spec_path.read_text()
    spec["spec"]["base_model"] = str(gpt2)
    spec_path.write_text(json.dumps(spec))
    try:
        with pytest.raises(ActionError, match="GPT2LMHeadModel is not supported yet"):
            start_export(shell, run_id, "gguf")
    finally:
        spec_path.write_text(saved)


def test_exports_are_recorded_and_shown_by_runs_show(trained):
    ws, run_id = trained
    shutil.rmtree(ws.root / "strict", ignore_errors=True)
    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
        rows = list_exports(store, run_id)
    finally:
        store.close()
    shipped = {(r["format"], r["quant"]) for r in rows if r["verified"]}
    assert {("merged", None), ("gguf", "f16"), ("ollama", "q8_0")} <= shipped
    assert any(not r["verified"] and "tolerance" in r["error"] for r in rows)
    shown = json.loads(CliRunner().invoke(app, ["runs", "show", run_id, "--json"]).stdout)
    assert {e["format"] for e in shown["exports"]} >= {"merged", "gguf", "ollama"}
    assert shown["vllm_command"].startswith("vllm serve ")
    assert f"{run_id.lower()}=" in shown["vllm_command"]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_qlora_run_merges_into_the_dequantized_base(ws, tiny_model_dir, tmp_path, device):
    """A 4-bit (QLoRA) run: the export merges its adapter into the unquantised base, and the
    merged model matches base + adapter (on CPU bitsandbytes trains 4-bit in float32)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA: the QLoRA merge on a GPU is checked where one is present")
    data = write_data(tmp_path / "data.jsonl")
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    run_fields = fields(tiny_model_dir, data, quant="4bit", max_steps=6, save_steps=6)
    run_id = start_run(shell, run_fields, start_worker=False)
    assert _run_inline(ws, run_id).state == JobState.succeeded
    run_row = json.loads((ws.job_dir(run_id) / "run.jsonl").read_text().splitlines()[0])
    assert run_row["runtime"]["quantize_4bit"] is True
    status, row = _export(ws, run_id, "merged")
    assert status.state == JobState.succeeded, status.error
    _held_to_reference(row["checks"]["merged"], verify.TOLERANCE["merged-float32"])
    config = json.loads((Path(row["path"]) / "config.json").read_text())
    assert "quantization_config" not in config  # plain weights, loadable anywhere


def test_cli_export_waits_for_the_job_through_a_real_worker(trained, tmp_path, monkeypatch):
    """`ftstudio export RUN --format gguf --quant f16 --out DIR --json`, as a script runs it:
    a real worker process runs the job; the command prints the verified export."""
    import time

    from backend.jobs import worker

    ws, run_id = trained
    start = worker.ensure_worker
    monkeypatch.setattr(worker, "ensure_worker", lambda w, **k: start(w, idle_exit_s=1))
    out = tmp_path / "ship"
    args = ["export", run_id, "--format", "gguf", "--quant", "f16", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["verified"] and row["path"] == str(out / f"{row['path'].split('/')[-1]}")
    assert (out / "export.json").is_file() and Path(row["path"]).is_file()
    again = CliRunner().invoke(app, ["export", run_id, "--format", "gguf", "--quant", "q4"])
    assert again.exit_code == 2 and "quant" in again.output
    deadline = time.time() + 30
    while worker.worker_running(ws) and time.time() < deadline:  # it exits when idle
        time.sleep(0.5)
    assert not worker.worker_running(ws)
