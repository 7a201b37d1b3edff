"""The on-disk queue: validation before anything is written, atomic claims, cancel, resume,
and clear errors for a corrupt or missing status.json."""

from __future__ import annotations

import json
import os

import pytest

from backend.jobs import kinds, queue
from backend.jobs.kinds import Kind, SpecError
from backend.jobs.status import JobState, JobStatusError, read_status


def test_submit_writes_spec_status_and_marker(ws):
    job_id = queue.submit(ws, "sleep", {"steps": 3})
    job_dir = ws.job_dir(job_id)
    assert json.loads((job_dir / "spec.json").read_text())["spec"]["steps"] == 3
    status = read_status(job_dir)
    assert status.state == JobState.queued and status.title == "sleep 3 steps"
    assert queue.pending_count(ws) == 1


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("sleep", {"steps": 0}, "steps"),
        ("sleep", {"steps": 3, "colour": "red"}, "colour"),
        ("sleep", {"seconds_per_step": "slow"}, "seconds_per_step"),
        ("nope", {}, "unknown job kind 'nope'"),
    ],
)
def test_bad_spec_is_refused_and_writes_nothing(ws, kind, spec, message):
    with pytest.raises(SpecError, match=message):
        queue.submit(ws, kind, spec)
    assert list(ws.jobs.iterdir()) == []
    assert queue.pending_count(ws) == 0


def test_claims_are_exclusive_and_in_order(ws):
    first = queue.submit(ws, "sleep", {"steps": 1})
    second = queue.submit(ws, "sleep", {"steps": 1})
    assert queue.claim_next(ws) == first
    assert queue.claim_next(ws) == second
    assert queue.claim_next(ws) is None


def test_gpu_kinds_run_one_at_a_time(ws, monkeypatch):
    monkeypatch.setitem(
        kinds.KINDS,
        "sleep-gpu",
        Kind(spec=kinds.KINDS["sleep"].spec, run=kinds.KINDS["sleep"].run, resource="gpu"),
    )
    a = queue.submit(ws, "sleep-gpu", {"steps": 1})
    b = queue.submit(ws, "sleep-gpu", {"steps": 1})
    c = queue.submit(ws, "sleep", {"steps": 1})
    assert queue.claim_next(ws) == a
    assert queue.claim_next(ws) == c  # the API-bound job passes the waiting GPU job
    assert queue.claim_next(ws) is None
    queue.release(ws, a)
    assert queue.claim_next(ws) == b


def test_cancel_a_queued_job_never_runs(ws):
    job_id = queue.submit(ws, "sleep", {"steps": 1})
    assert queue.cancel(ws, job_id).state == JobState.cancelled
    assert queue.claim_next(ws) is None
    with pytest.raises(queue.JobError, match="already cancelled"):
        queue.cancel(ws, job_id)


def test_resume_only_from_resumable_states(ws, run_inline):
    job_id = queue.submit(ws, "sleep", {"steps": 2, "seconds_per_step": 0})
    assert run_inline(ws, job_id).state == JobState.succeeded
    with pytest.raises(queue.JobError, match="only cancelled, failed, interrupted"):
        queue.resume(ws, job_id)


def test_failed_job_records_error_then_resumes_from_checkpoint(ws, run_inline):
    job_id = queue.submit(ws, "sleep", {"steps": 5, "seconds_per_step": 0, "fail_at": 4})
    status = run_inline(ws, job_id)
    assert status.state == JobState.failed
    assert "asked to fail at step 4" in status.error
    # drop the fault and resume: it continues after the checkpointed step 3
    spec_path = ws.job_dir(job_id) / "spec.json"
    data = json.loads(spec_path.read_text())
    data["spec"]["fail_at"] = None
    spec_path.write_text(json.dumps(data))
    assert queue.resume(ws, job_id).attempt == 2
    status = run_inline(ws, job_id)
    assert status.state == JobState.succeeded
    steps = [
        json.loads(line)["step"]
        for line in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines()
    ]
    assert sorted(set(steps)) == [1, 2, 3, 4, 5]
    assert len(steps) == 10  # two metrics per step, no step written twice


def test_corrupt_and_missing_status_get_clear_errors(ws):
    job_id = queue.submit(ws, "sleep", {"steps": 1})
    path = ws.job_dir(job_id) / "status.json"
    path.write_text('{"id": "x", "state": "runn')
    with pytest.raises(JobStatusError, match=r"status.json is corrupt"):
        queue.get(ws, job_id)
    listed = queue.list_jobs(ws)
    assert isinstance(listed[0], JobStatusError)
    os.remove(path)
    with pytest.raises(JobStatusError, match="status.json is missing"):
        queue.get(ws, job_id)
    assert queue.claim_next(ws) is None  # an unusable folder is skipped, not run
    assert (ws.job_dir(job_id) / "spec.json").exists()  # and nothing of it is deleted


def test_unknown_job_id(ws):
    with pytest.raises(queue.JobError, match="no job 'missing'"):
        queue.get(ws, "missing")


def test_unwritable_workspace_gets_a_clear_error(tmp_path):
    from backend.workspace import Workspace, WorkspaceError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace(blocker).ensure()
    with pytest.raises(WorkspaceError, match="cannot create the workspace"):
        Workspace(blocker / "inside").ensure()


def test_concurrent_status_writers_never_show_an_empty_or_corrupt_file(ws):
    """Writers in several threads (the job, a cancel, the ingestion loop) each use their own
    temporary file under the job's lock; a reader polling meanwhile always parses a status."""
    import threading

    from backend.jobs.status import read_status, update_status, write_status

    job_id = queue.submit(ws, "sleep", {"steps": 1})
    job_dir = ws.job_dir(job_id)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                read_status(job_dir)
            except Exception as exc:  # collected for the assertion
                bad.append(repr(exc))

    def writer(n: int) -> None:
        for i in range(60):
            if n == 0:  # a writer of whole statuses, as a job writes its progress
                status = read_status(job_dir)
                status.message = f"step {i}"
                write_status(job_dir, status)
            else:  # read-modify-write under the lock, as cancel, resume and the loop do
                update_status(job_dir, lambda s: s.model_copy(update={"done": s.done + 1}))

    polling = threading.Thread(target=reader)
    polling.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    polling.join()
    assert bad == []
    before = read_status(job_dir).done
    counters = [
        threading.Thread(
            target=lambda: [
                update_status(job_dir, lambda s: s.model_copy(update={"done": s.done + 1}))
                for _ in range(50)
            ]
        )
        for _ in range(4)
    ]
    for t in counters:
        t.start()
    for t in counters:
        t.join()
    assert read_status(job_dir).done == before + 200  # no locked update was lost
    assert not [p for p in job_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_job_id_from_a_url_must_name_a_job_of_the_workspace(ws):
    from backend.jobs import read

    job_id = queue.submit(ws, "sleep", {"steps": 1})
    assert read.get(ws, job_id).id == job_id
    for crafted in ("../../etc", "..", ".hidden", "a/b", "", "x" * 200, "nope"):
        with pytest.raises(read.JobError, match="no job"):
            read.get(ws, crafted)


def test_the_workspace_database_and_logs_are_private(tmp_path):
    import stat

    from backend.jobs import worker
    from backend.store import Store
    from backend.workspace import Workspace

    ws = Workspace(tmp_path / "fresh").ensure()
    assert stat.S_IMODE(ws.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(ws.jobs.stat().st_mode) == 0o700
    store = Store.open(ws.db_path)
    store.close()
    assert stat.S_IMODE(ws.db_path.stat().st_mode) == 0o600
    job_id = queue.submit(ws, "sleep", {"steps": 1, "seconds_per_step": 0})
    assert queue.claim_next(ws) == job_id
    proc = worker._spawn(ws, job_id)
    proc.wait(timeout=60)
    assert stat.S_IMODE((ws.job_dir(job_id) / "log.txt").stat().st_mode) == 0o600
