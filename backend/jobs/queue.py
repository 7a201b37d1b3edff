"""The job queue, on disk. Markers move between queue/pending and queue/running with atomic
renames, so two workers can never claim the same job; each job's truth is its status.json.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from backend.auth import Actor, require
from backend.jobs.context import drop_job_key
from backend.jobs.kinds import LIMITS, SpecError, job_resource, validate_spec
from backend.jobs.read import (  # noqa: F401  (readers' names, kept importable from here)
    JobError,
    _ended,
    get,
    job_ids,
    list_jobs,
    observe,
    read_spec,
    wait,
)
from backend.jobs.status import (
    RESUMABLE,
    TERMINAL,
    JobState,
    JobStatus,
    JobStatusError,
    now,
    process_alive,
    read_status,
    update_status,
    write_status,
)
from backend.workspace import Workspace, atomic_write_text


def new_job_id(kind: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{kind}-{uuid.uuid4().hex[:6]}"


def _who(actor: Actor | None) -> str:
    return actor.username if actor else "shell"


class Staged:
    """A job written under a hidden name: validated, not yet visible to workers or readers.
    `commit()` renames it into place and queues it; `discard()` removes it."""

    def __init__(self, ws: Workspace, job_id: str, tmp: Path):
        self.ws, self.job_id, self._tmp = ws, job_id, tmp

    def commit(self) -> str:
        final = self.ws.job_dir(self.job_id)
        if final.exists():
            raise JobError(f"job {self.job_id} already exists")
        os.rename(self._tmp, final)
        _enqueue(self.ws, self.job_id)
        return self.job_id

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)


def stage(
    ws: Workspace,
    kind: str,
    spec: dict[str, Any] | BaseModel,
    *,
    group_id: str | None = None,
    job_id: str | None = None,
    actor: Actor | None = None,
) -> Staged:
    """Validate the spec and write the job folder under a hidden name. A spec that fails
    validation writes nothing (`SpecError`)."""
    require(actor, "launch_job")
    ws.ensure()
    parsed = validate_spec(kind, spec)
    job_id = job_id or new_job_id(kind)
    if ws.job_dir(job_id).exists():
        raise JobError(f"job {job_id} already exists")
    tmp = ws.jobs / f".{job_id}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "spec.json").write_text(
        json.dumps({"kind": kind, "spec": parsed.model_dump(mode="json")}, indent=1)
    )
    status = JobStatus(
        id=job_id,
        kind=kind,
        title=parsed.title(),
        created=now(),
        group_id=group_id,
        submitted_by=_who(actor),
    )
    write_status(tmp, status)
    return Staged(ws, job_id, tmp)


def submit(
    ws: Workspace,
    kind: str,
    spec: dict[str, Any] | BaseModel,
    *,
    group_id: str | None = None,
    job_id: str | None = None,
    actor: Actor | None = None,
) -> str:
    """Validate the spec, write the job folder, then queue it. Returns the job id.

    The folder is written under a temporary name and renamed into place, so a half-written
    job is never visible; a spec that fails validation writes nothing. `actor` must hold
    launch_job (None is the trusted shell); the job records who submitted it.
    """
    return stage(ws, kind, spec, group_id=group_id, job_id=job_id, actor=actor).commit()


def _enqueue(ws: Workspace, job_id: str) -> None:
    marker = ws.pending / f"{time.time_ns()}-{job_id}"
    atomic_write_text(marker, job_id)


def reconcile_one(
    ws: Workspace, status: JobStatus, stale_after_s: float | None = 30.0
) -> JobStatus:
    """Record a running job whose process is gone (or whose heartbeat is stale) as
    interrupted. Called by the ingestion loop, the worker and cancel: never by a reader. The
    check is made again under the job's lock, so a job that wrote its own end meanwhile keeps
    it."""
    if _ended(ws, status, stale_after_s) is None:
        return status
    after = update_status(ws.job_dir(status.id), lambda now_: _ended(ws, now_, stale_after_s))
    if after.state != JobState.running:
        _drop_marker(ws.running, status.id)
    return after


def reconcile(ws: Workspace, stale_after_s: float = 30.0) -> None:
    for job_id in job_ids(ws):
        try:
            reconcile_one(ws, read_status(ws.job_dir(job_id)), stale_after_s)
        except JobStatusError:
            continue


def _drop_marker(folder: Path, job_id: str) -> None:
    if not folder.exists():
        return
    for marker in folder.iterdir():
        if marker.name == job_id or marker.name.endswith(f"-{job_id}"):
            marker.unlink(missing_ok=True)


def resource_of(ws: Workspace, job_id: str, kind: str) -> str:
    """The worker slot a job takes (its kind's, or decided by its spec: a local model on
    CUDA is gpu work)."""
    try:
        _, spec = read_spec(ws.job_dir(job_id))
    except JobStatusError:
        spec = None
    return job_resource(kind, spec)


def running_counts(ws: Workspace) -> dict[str, int]:
    counts: dict[str, int] = {}
    for marker in ws.running.iterdir() if ws.running.exists() else []:
        try:
            kind = read_status(ws.job_dir(marker.name)).kind
            resource = resource_of(ws, marker.name, kind)
        except (JobStatusError, SpecError):
            continue
        counts[resource] = counts.get(resource, 0) + 1
    return counts


def claim_next(ws: Workspace) -> str | None:
    """Claim the oldest pending job whose resource has a free slot; None when nothing fits."""
    counts = running_counts(ws)
    for marker in sorted(ws.pending.iterdir()):
        job_id = marker.name.split("-", 1)[1]
        try:
            status = read_status(ws.job_dir(job_id))
            resource = resource_of(ws, job_id, status.kind)
        except (JobStatusError, SpecError):
            marker.unlink(missing_ok=True)  # its folder is unusable; the Jobs page shows why
            continue
        if status.state != JobState.queued:
            marker.unlink(missing_ok=True)
            continue
        if counts.get(resource, 0) >= LIMITS.get(resource, 1):
            continue
        try:
            os.rename(marker, ws.running / job_id)
        except FileNotFoundError:
            continue  # another worker took it
        return job_id
    return None


def release(ws: Workspace, job_id: str) -> None:
    (ws.running / job_id).unlink(missing_ok=True)


def release_finished(ws: Workspace, keep=()) -> None:
    """Drop running markers of jobs that ended while no worker watched them."""
    for marker in list(ws.running.iterdir()) if ws.running.exists() else []:
        if marker.name in keep:
            continue
        try:
            status = reconcile_one(ws, read_status(ws.job_dir(marker.name)), stale_after_s=None)
        except JobStatusError:
            marker.unlink(missing_ok=True)
            continue
        if status.state in TERMINAL or status.state == JobState.queued:
            marker.unlink(missing_ok=True)


def pending_count(ws: Workspace) -> int:
    return sum(1 for _ in ws.pending.iterdir()) if ws.pending.exists() else 0


def cancel(
    ws: Workspace, job_id: str, grace_s: float = 10.0, actor: Actor | None = None
) -> JobStatus:
    """Cancel a job: a queued one never starts; a running one gets SIGTERM to its process
    group, then SIGKILL after `grace_s` seconds. The cancel file records who asked."""
    require(actor, "cancel_job")
    job_dir = ws.job_dir(job_id)
    status = get(ws, job_id)
    if status.state in TERMINAL:
        raise JobError(f"job {job_id} is already {status.state}")
    atomic_write_text(job_dir / "cancel", json.dumps({"by": _who(actor), "t": now()}))
    if status.state == JobState.queued:
        _drop_marker(ws.pending, job_id)

        def cancel_queued(current: JobStatus) -> JobStatus | None:
            if current.state != JobState.queued:
                return None  # a worker claimed it meanwhile: signalled below
            current.state, current.finished, current.error = JobState.cancelled, now(), "cancelled"
            return current

        status = update_status(job_dir, cancel_queued)
        if status.state == JobState.cancelled:
            drop_job_key(job_dir)  # it will never run: no key waits for it
            return status
    pid = status.pid
    if pid and process_alive(pid, status.pid_start):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.time() + grace_s
        while time.time() < deadline and process_alive(pid, status.pid_start):
            time.sleep(0.1)
        if process_alive(pid, status.pid_start):
            _signal_group(pid, signal.SIGKILL)
            time.sleep(0.2)
    return reconcile_one(ws, read_status(job_dir), stale_after_s=0)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        pass


def resume(ws: Workspace, job_id: str, actor: Actor | None = None) -> JobStatus:
    """Queue an interrupted, failed or cancelled job again; its kind continues from the
    checkpoint it left in its folder."""
    require(actor, "launch_job")
    job_dir = ws.job_dir(job_id)
    status = get(ws, job_id)
    if status.state not in RESUMABLE:
        raise JobError(
            f"job {job_id} is {status.state}; only "
            f"{', '.join(sorted(RESUMABLE))} jobs can be resumed"
        )
    (job_dir / "cancel").unlink(missing_ok=True)

    def requeue(current: JobStatus) -> JobStatus:
        current = _ended(ws, current, None) or current  # a dead "running" job is interrupted
        if current.state not in RESUMABLE:
            raise JobError(f"job {job_id} is {current.state} already")
        current.state, current.error, current.finished = JobState.queued, None, None
        current.attempt += 1
        current.pid = current.pid_start = current.exit_code = None
        current.submitted_by = _who(actor)
        return current

    status = update_status(job_dir, requeue)
    _enqueue(ws, job_id)
    return status
