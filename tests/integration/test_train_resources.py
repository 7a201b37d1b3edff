"""After a run, its measured peak memory is stored beside its estimate and shown on Compare,
with its tokens/s: a real train job in its own process (through the real worker, so the
process's peak RSS is the job's alone) on the tiny model; on CPU the estimate is within 25% of
the measured peak."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.jobs.status import JobState
from backend.store import Store
from backend.store.compare import runs_table
from backend.store.run_resources import get_resources
from backend.train.actions import start_run
from backend.train.config import file_fields

pytestmark = pytest.mark.slow


def test_peak_memory_is_stored_beside_the_estimate_and_shown_on_compare(
    ws, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cpu")
    row = {
        "messages": [
            {"role": "user", "content": "How do I export a sprint report?"},
            {"role": "assistant", "content": "Open Reports, pick the sprint, choose Export."},
        ]
    }
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(row) for _ in range(16)) + "\n")
    shell = Ctx(store=None, ws=ws, settings=Settings(), actor=None)
    fields = {
        "base_model": str(tiny_model_dir),
        **file_fields(data),
        "batch_size": 4,
        "max_length": 64,
        "max_steps": 4,
        "eval_split": 0.0,
        "n_eval_prompts": 0,
        "quant": "none",
    }
    job_id = start_run(shell, fields, start_worker=False)
    worker.serve(ws, idle_exit_s=0.5, poll_s=0.2)  # runs the job in its own process, then exits
    status = queue.get(ws, job_id)
    assert status.state == JobState.succeeded, status.error

    lines = (ws.job_dir(job_id) / "resources.jsonl").read_text().splitlines()
    (res,) = [json.loads(x) for x in lines]
    assert res["device"] == "cpu" and res["peak_kind"] == "cpu_peak_rss"
    assert res["estimate_bytes"] == sum(res["estimate"].values())
    assert abs(res["error"]) <= 0.25, res  # the estimate against the job's own peak RSS
    assert res["tokens_per_s"] > 0 and res["mfu"] is None  # MFU is a CUDA figure
    events = (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert "peak memory" in events and "estimated" in events

    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
        stored = get_resources(store, job_id)
        assert stored["peak_bytes"] == res["peak_bytes"]
        assert stored["estimate"]["weights"] == res["estimate"]["weights"]
        table = runs_table(store)
        (shown,) = table[table["run_id"] == job_id].to_dict("records")
        assert shown["peak_mem_mib"] == pytest.approx(res["peak_bytes"] / 2**20)
        assert shown["est_mem_mib"] == pytest.approx(res["estimate_bytes"] / 2**20)
        assert shown["tokens_per_s"] > 0
    finally:
        store.close()
