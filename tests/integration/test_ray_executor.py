"""The ray executor against a real local Ray head (`ray start --head` on 127.0.0.1, small: one
CPU, an 80 MB object store), started by this module and always stopped (`ray stop --force`):
a run submitted through the Jobs API trains the loss curve of the same run trained locally and
is ingested unchanged (the job folder is the shared path); a cancel stops the Ray job after a
checkpoint and the resumed run continues from it; an unreachable cluster fails the job with
its address."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backend.cli import app
from backend.jobs import queue
from backend.jobs.status import JobState
from backend.train.ray_jobs import client, status_of
from tests.integration.test_train_job import _queue_run, fields, losses, write_data

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """The Jobs API address of a Ray head started for this module."""
    pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    dashboard = _free_port()
    head = [
        RAY,
        "start",
        "--head",
        f"--port={_free_port()}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--object-store-memory=80000000",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    try:
        subprocess.run(head, env=env, check=True, timeout=180, capture_output=True)
        address = f"http://127.0.0.1:{dashboard}"
        deadline = time.time() + 60
        while True:  # the Jobs API answers a moment after `ray start` returns
            try:
                client(address).list_jobs()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, timeout=120, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def run_fields(tiny_model_dir, data, **extra):
    base = {"max_steps": 4, "lora_dropout": 0.0, "save_steps": 100, "batch_size": 4}
    return fields(tiny_model_dir, data, **{**base, **extra})


def test_a_ray_run_trains_the_local_runs_curve(
    ws, tiny_model_dir, tmp_path, run_inline, ray_address, record_property
):
    data = write_data(tmp_path / "d.jsonl")
    local = _queue_run(ws, run_fields(tiny_model_dir, data))
    t0 = time.perf_counter()
    assert run_inline(ws, local).state == JobState.succeeded
    local_s = time.perf_counter() - t0
    on_ray = _queue_run(
        ws, run_fields(tiny_model_dir, data, executor="ray", ray_address=ray_address)
    )
    t0 = time.perf_counter()
    status = run_inline(ws, on_ray)
    ray_s = time.perf_counter() - t0
    record_property("wall_s_local_vs_ray", (round(local_s, 1), round(ray_s, 1)))
    assert status.state == JobState.succeeded, status.error
    curve_local, curve_ray = losses(ws, local), losses(ws, on_ray)
    assert sorted(curve_ray) == [1, 2, 3, 4]
    assert max(abs(curve_local[s] - curve_ray[s]) for s in curve_local) <= 1e-6
    job_dir = ws.job_dir(on_ray)
    submitted = json.loads((job_dir / "ray.json").read_text())
    assert submitted["submission_id"] == f"ftstudio-{on_ray}-a1"
    assert status_of(client(ray_address), submitted["submission_id"]) == "SUCCEEDED"
    assert "Running entrypoint" in (job_dir / "log.txt").read_text()  # Ray's log, pulled in
    assert status.done == 4
    assert (ws.runs / on_ray / "adapter" / "adapter_config.json").is_file()
    shown = json.loads(CliRunner().invoke(app, ["runs", "show", on_ray, "--json"]).stdout)
    assert (shown["executor"], shown["world_size"], shown["state"]) == ("ray", 1, "succeeded")
    assert shown["eval_loss"] is not None  # ingested like a local run


def test_a_cancelled_ray_run_stops_and_resumes_from_its_checkpoint(
    ws, tiny_model_dir, tmp_path, run_inline, ray_address
):
    data = write_data(tmp_path / "d.jsonl", n=48)
    job = _queue_run(
        ws,
        run_fields(
            tiny_model_dir,
            data,
            max_steps=300,
            batch_size=2,
            eval_split=0.0,
            executor="ray",
            ray_address=ray_address,
        ),
    )
    assert queue.claim_next(ws) == job
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.jobs.run", str(ws.root), job],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while queue.get(ws, job).done < 3:
            assert proc.poll() is None, (ws.job_dir(job) / "log.txt").read_text()[-3000:]
            assert time.time() < deadline, "the Ray job never reported progress"
            time.sleep(0.2)
        status = queue.cancel(ws, job, grace_s=180)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert status.state == JobState.cancelled, status.error
    submission = json.loads((ws.job_dir(job) / "ray.json").read_text())["submission_id"]
    assert status_of(client(ray_address), submission) in {"SUCCEEDED", "FAILED", "STOPPED"}
    stopped = json.loads((ws.job_dir(job) / "checkpoint.json").read_text())["step"]
    assert 3 <= stopped < 300
    queue.release(ws, job)

    queue.resume(ws, job)
    status = run_inline(ws, job)
    assert status.state == JobState.succeeded, status.error
    assert max(losses(ws, job)) == 300 and stopped + 1 in losses(ws, job)
    assert json.loads((ws.job_dir(job) / "ray.json").read_text())["submission_id"].endswith("-a2")


def test_an_unreachable_cluster_fails_the_job_naming_it(ws, tiny_model_dir, tmp_path, run_inline):
    data = write_data(tmp_path / "d.jsonl")
    nowhere = f"http://127.0.0.1:{_free_port()}"
    job = _queue_run(ws, run_fields(tiny_model_dir, data, executor="ray", ray_address=nowhere))
    status = run_inline(ws, job)
    assert status.state == JobState.failed
    assert f"cannot reach the Ray cluster at {nowhere}" in status.error
