"""The demo workspace: model job, sample dataset, then exactly one short demo run."""

from __future__ import annotations

import shutil

from backend.demo_workspace import bootstrap, continue_demo, demo_model_path
from backend.jobs import queue


def _kinds(ws) -> list[str]:
    return [s.kind for s in queue.list_jobs(ws)]


def test_bootstrap_then_one_demo_run(ws, store, tiny_model_dir):
    done = bootstrap(store, ws)
    assert any("demo model" in d for d in done) and any("tasklane" in d for d in done)
    assert bootstrap(store, ws) == []  # idempotent: nothing queued or imported twice
    assert _kinds(ws) == ["demo-model"]
    assert continue_demo(store, ws) is None  # the model is not built yet
    shutil.copytree(tiny_model_dir, demo_model_path(ws))
    job_id = continue_demo(store, ws)
    assert job_id and queue.get(ws, job_id).kind == "train"
    spec = queue.read_spec(ws.job_dir(job_id))[1]
    assert spec["max_steps"] == 30 and spec["dataset"] == "tasklane-support"
    assert continue_demo(store, ws) is None
    assert _kinds(ws).count("train") == 1
