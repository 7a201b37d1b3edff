"""Reading jobs, never writing them: a job's status as it stands, its spec, its log's tail,
and waiting for it to end. Pages and CLI commands read jobs through this module; everything
that changes a job goes through an action (backend/jobs/actions.py and each feature's).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from backend.jobs.status import (
    TERMINAL,
    JobState,
    JobStatus,
    JobStatusError,
    now,
    process_alive,
    read_status,
)
from backend.workspace import Workspace

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class JobError(RuntimeError):
    """A job operation that cannot be done (unknown id, wrong state)."""


def read_spec(job_dir: Path) -> tuple[str, dict[str, Any]]:
    path = Path(job_dir) / "spec.json"
    try:
        data = json.loads(path.read_text())
        return data["kind"], data["spec"]
    except FileNotFoundError as exc:
        raise JobStatusError(f"{path} is missing") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise JobStatusError(f"{path} is corrupt: {exc}") from exc


def job_ids(ws: Workspace) -> list[str]:
    if not ws.jobs.exists():
        return []
    return sorted(p.name for p in ws.jobs.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_jobs(ws: Workspace) -> list[JobStatus | JobStatusError]:
    """Every job's status (oldest first); a running job whose process is gone reads as
    interrupted (nothing is written).

    An unreadable status.json comes back as the JobStatusError that says why.
    """
    out: list[JobStatus | JobStatusError] = []
    for job_id in job_ids(ws):
        try:
            out.append(observe(ws, read_status(ws.job_dir(job_id))))
        except JobStatusError as exc:
            out.append(exc)
    return out


def checked_id(ws: Workspace, job_id: str) -> str:
    """`job_id` when it names a job folder of this workspace (ids come from URLs and typed
    text); `JobError` otherwise, so a crafted id never reaches a path outside jobs/."""
    text = str(job_id or "").strip()
    if not _JOB_ID.fullmatch(text) or not ws.job_dir(text).is_dir():
        raise JobError(f"no job {job_id!r} in {ws.jobs}")
    return text


def get(ws: Workspace, job_id: str) -> JobStatus:
    job_id = checked_id(ws, job_id)
    return observe(ws, read_status(ws.job_dir(job_id)))


def _ended(ws: Workspace, status: JobStatus, stale_after_s: float | None) -> JobStatus | None:
    """A copy of a running job's status as it really stands when its process is gone (or its
    heartbeat is stale): interrupted, or cancelled when a cancel was asked. None otherwise."""
    if status.state != JobState.running:
        return None
    dead = status.pid is not None and not process_alive(status.pid, status.pid_start)
    stale = (
        stale_after_s is not None
        and status.heartbeat is not None
        and now() - status.heartbeat > stale_after_s
    )
    if not (dead or stale):
        return None
    ended = status.model_copy()
    cancelled = (ws.job_dir(status.id) / "cancel").exists()
    ended.state = JobState.cancelled if cancelled else JobState.interrupted
    ended.error = status.error or (
        "cancelled"
        if cancelled
        else "the job's process stopped without finishing (killed, or the machine restarted); "
        "resume it to continue from its last checkpoint"
        if dead
        else f"no heartbeat for {now() - (status.heartbeat or 0):.0f}s"
    )
    ended.finished = status.finished or now()
    return ended


def observe(ws: Workspace, status: JobStatus, stale_after_s: float | None = None) -> JobStatus:
    """How a job stands, for a reader: a running job whose process is gone reads as
    interrupted. Never writes: the ingestion loop and the worker record it (`reconcile_one`)."""
    return _ended(ws, status, stale_after_s) or status


def wait(
    ws: Workspace, job_id: str, poll_s: float = 0.5, timeout_s: float | None = None, on_status=None
) -> JobStatus:
    """Block until the job ends, calling `on_status(status)` at each poll."""
    deadline = None if timeout_s is None else time.time() + timeout_s
    while True:
        status = observe(ws, read_status(ws.job_dir(job_id)), stale_after_s=30.0)
        if on_status:
            on_status(status)
        if status.state in TERMINAL:
            return status
        if deadline and time.time() > deadline:
            raise TimeoutError(f"job {job_id} still {status.state} after {timeout_s}s")
        time.sleep(poll_s)


def log_tail(
    ws: Workspace, job_id: str, max_bytes: int = 64 * 1024, lines: int | None = None
) -> str:
    """The end of a job's log, read from its tail (never the whole file)."""
    path = ws.job_dir(job_id) / "log.txt"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, size - max_bytes))
        text = fh.read().decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    if lines is not None:
        text = "\n".join(text.splitlines()[-lines:])
    return text
