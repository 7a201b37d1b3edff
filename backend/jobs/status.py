"""A job's status.json: the one file that says where a job stands.

Written only with an atomic replace, so a reader never sees half a file. Reading a missing or
corrupt file raises `JobStatusError` naming the file and the problem.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ValidationError

from backend.workspace import atomic_write_text


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"


TERMINAL = {JobState.succeeded, JobState.failed, JobState.cancelled, JobState.interrupted}
RESUMABLE = {JobState.failed, JobState.cancelled, JobState.interrupted}


class JobStatusError(RuntimeError):
    """status.json is missing or unreadable."""


class JobStatus(BaseModel):
    id: str
    kind: str
    state: JobState = JobState.queued
    title: str = ""
    done: float = 0.0
    total: float | None = None
    rate: float | None = None  # items per second, smoothed
    eta_s: float | None = None
    unit: str = "items"
    message: str = ""
    error: str | None = None
    attempt: int = 1
    created: float
    started: float | None = None
    finished: float | None = None
    heartbeat: float | None = None
    pid: int | None = None
    pid_start: int | None = None  # process start time, so a reused pid is not taken for ours
    exit_code: int | None = None
    group_id: str | None = None
    submitted_by: str | None = None  # user name, or "shell" for the command line

    def progress_line(self) -> str:
        """ "done/total · rate · ETA", the one-line progress shown everywhere."""
        parts = [f"{self.done:g}/{self.total:g} {self.unit}" if self.total else f"{self.done:g}"]
        if self.rate:
            parts.append(f"{self.rate:.2f} {self.unit}/s")
        if self.eta_s is not None and self.state == JobState.running:
            parts.append(f"ETA {format_seconds(self.eta_s)}")
        return " · ".join(parts)

    @property
    def fraction(self) -> float:
        if not self.total:
            return 1.0 if self.state == JobState.succeeded else 0.0
        return max(0.0, min(1.0, self.done / self.total))


def format_seconds(seconds: float) -> str:
    """Short human form: 42s, 3m05s, 1h02m.

    >>> format_seconds(185)
    '3m05s'
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def read_status(job_dir: Path) -> JobStatus:
    path = Path(job_dir) / "status.json"
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise JobStatusError(f"{path} is missing: the job folder is incomplete") from exc
    except OSError as exc:
        raise JobStatusError(f"{path} cannot be read: {exc}") from exc
    try:
        return JobStatus.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise JobStatusError(f"{path} is corrupt ({first}); the job's state is unknown") from exc


@contextmanager
def status_lock(job_dir: Path) -> Iterator[None]:
    """The job's status lock (an flock on `.status.lock`): held by every writer, so two
    writers (the job, the worker, a cancel, the ingestion loop) never interleave a read and a
    write of status.json. Readers need no lock: the file is replaced atomically."""
    with open(Path(job_dir) / ".status.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_status(job_dir: Path, status: JobStatus) -> None:
    """Replace status.json with `status` under the job's lock."""
    with status_lock(job_dir):
        atomic_write_text(Path(job_dir) / "status.json", status.model_dump_json(indent=1))


def update_status(job_dir: Path, change: Callable[[JobStatus], JobStatus | None]) -> JobStatus:
    """Read, change and write status.json as one step under the job's lock: `change` gets the
    status as it is now and returns the new one (None: leave it). Returns the status after."""
    with status_lock(job_dir):
        current = read_status(job_dir)
        new = change(current.model_copy())
        if new is None:
            return current
        atomic_write_text(Path(job_dir) / "status.json", new.model_dump_json(indent=1))
        return new


def now() -> float:
    return time.time()


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int | None, start: int | None) -> bool:
    """Whether the process that wrote this status is still the one alive under that pid."""
    if not pid:
        return False
    current = process_start_time(pid)
    if current is None:
        return False
    if start is not None and current != start:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def dump_json_line(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str) + "\n"
