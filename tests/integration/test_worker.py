"""The worker with real processes: jobs run detached, survive their starter, are marked
interrupted when killed, resume from their checkpoint, cancel with SIGTERM then SIGKILL, and a
restarted dashboard picks up where the old one stopped."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from backend.ingest.loop import Ingestor
from backend.jobs import queue, worker
from backend.jobs.status import JobState
from backend.store import Store

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout=30.0, poll=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


def _worker_pid(ws) -> int:
    return int(ws.worker_lock.read_text())


def _steps(ws, job_id) -> list[int]:
    path = ws.job_dir(job_id) / "metrics.jsonl"
    return [
        json.loads(line)["step"]
        for line in path.read_text().splitlines()
        if '"name":"value"' in line
    ]


@pytest.fixture
def stop_worker(ws):
    yield
    if ws.worker_lock.exists() and worker.worker_running(ws):
        try:
            os.kill(_worker_pid(ws), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_detached_worker_runs_a_job(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 5, "seconds_per_step": 0.01})
    assert worker.ensure_worker(ws, idle_exit_s=5)
    assert not worker.ensure_worker(ws)  # one worker per workspace
    status = queue.wait(ws, job_id, timeout_s=60)
    assert status.state == JobState.succeeded
    assert status.pid != _worker_pid(ws)  # the job ran in its own process
    assert _steps(ws, job_id) == [1, 2, 3, 4, 5]


def test_sigkill_mid_job_is_interrupted_then_resumes_from_checkpoint(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 40, "seconds_per_step": 0.05})
    worker.ensure_worker(ws, idle_exit_s=5)
    _wait_for(lambda: queue.get(ws, job_id).done >= 5)
    status = queue.get(ws, job_id)
    os.kill(_worker_pid(ws), signal.SIGKILL)
    os.killpg(status.pid, signal.SIGKILL)
    after = _wait_for(lambda: (s := queue.get(ws, job_id)).state != JobState.running and s)
    assert after.state == JobState.interrupted
    assert "stopped without finishing" in after.error
    done_before = len(set(_steps(ws, job_id)))
    assert 5 <= done_before < 40
    queue.resume(ws, job_id)
    _wait_for(lambda: not worker.worker_running(ws), timeout=5)
    worker.ensure_worker(ws, idle_exit_s=5)
    final = queue.wait(ws, job_id, timeout_s=60)
    assert final.state == JobState.succeeded and final.attempt == 2
    steps = _steps(ws, job_id)
    assert sorted(set(steps)) == list(range(1, 41))
    assert len(steps) - len(set(steps)) <= 1  # at most the step in flight when killed


def test_job_outlives_a_killed_worker(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 20, "seconds_per_step": 0.05})
    worker.ensure_worker(ws, idle_exit_s=5)
    _wait_for(lambda: queue.get(ws, job_id).state == JobState.running)
    os.kill(_worker_pid(ws), signal.SIGKILL)
    assert queue.wait(ws, job_id, timeout_s=60).state == JobState.succeeded


def test_cancel_running_job_sigterm(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 1000, "seconds_per_step": 0.05})
    worker.ensure_worker(ws, idle_exit_s=5)
    _wait_for(lambda: queue.get(ws, job_id).done >= 2)
    status = queue.cancel(ws, job_id, grace_s=10)
    assert status.state == JobState.cancelled
    assert queue.get(ws, job_id).done < 1000


def test_cancel_escalates_to_sigkill_after_grace(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 3, "seconds_per_step": 30})
    worker.ensure_worker(ws, idle_exit_s=5)
    _wait_for(lambda: queue.get(ws, job_id).state == JobState.running)
    time.sleep(0.3)
    started = time.time()
    status = queue.cancel(ws, job_id, grace_s=1.0)
    assert status.state == JobState.cancelled
    assert time.time() - started < 10


def test_restarted_dashboard_reattaches_to_running_job(ws, stop_worker):
    job_id = queue.submit(ws, "sleep", {"steps": 30, "seconds_per_step": 0.05})
    first = Store.open(ws.db_path)
    ingestor = Ingestor(first, ws)
    ingestor.tick()  # starts the worker, as the dashboard does
    _wait_for(lambda: queue.get(ws, job_id).done >= 5)
    ingestor.tick()
    seen = first.scalar("SELECT count(*) FROM metrics WHERE job_id = ?", [job_id])
    assert seen >= 10
    first.close()  # the dashboard goes away mid-job

    second = Store.open(ws.db_path)
    again = Ingestor(second, ws)
    assert second.scalar("SELECT state FROM jobs WHERE id = ?", [job_id]) == "running"
    queue.wait(ws, job_id, timeout_s=60)
    again.tick()
    assert second.scalar("SELECT state FROM jobs WHERE id = ?", [job_id]) == "succeeded"
    assert second.scalar("SELECT count(*) FROM metrics WHERE job_id = ?", [job_id]) == 60
    assert (
        second.scalar("SELECT count(DISTINCT (step, name)) FROM metrics WHERE job_id = ?", [job_id])
        == 60
    )
    second.close()
