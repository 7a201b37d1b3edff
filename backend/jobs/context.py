"""What a running job sees: its folder, and calls to report progress, metrics and events.

A job never opens DuckDB. It appends JSONL lines (flushed per line) and replaces status.json
atomically; the dashboard or CLI ingests the folder into the database.

An API key typed for one job (by an admin, for a URL other than the configured endpoint) never
enters its spec: the launching action writes it to `secret.json` (mode 0600) in the job's
folder before the job is queued; the job takes it (reads and deletes it) as it starts, and the
worker deletes it when the job's process ends in any way (`drop_job_key`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from backend.jobs.status import JobState, JobStatus, dump_json_line, write_status
from backend.workspace import Workspace, atomic_write_text

KEY_FILE = "secret.json"


def write_job_key(job_dir: Path, base_url: str | None, api_key: str) -> None:
    """Leave `api_key` (for `base_url`; None: the configured endpoint) for the job of
    `job_dir`, in a file only this user can read."""
    path = Path(job_dir) / KEY_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"base_url": base_url, "api_key": api_key}, fh)


def take_job_key(job_dir: Path) -> dict | None:
    """The key left for this job ({base_url, api_key}), removed from disk as it is read."""
    path = Path(job_dir) / KEY_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        data = None
    drop_job_key(job_dir)
    return data if isinstance(data, dict) and data.get("api_key") else None


def drop_job_key(job_dir: Path) -> None:
    """Remove a key left for a job (its end, a cancel before it started)."""
    (Path(job_dir) / KEY_FILE).unlink(missing_ok=True)


class JobCancelled(Exception):
    """Raised inside a job when a cancel was requested."""


class JobContext:
    is_main = True  # a rank other than 0 of a multi-process run writes nothing (RankContext)

    def __init__(
        self, workspace: Workspace, job_dir: Path, status: JobStatus, heartbeat_s: float = 2.0
    ):
        self.workspace = workspace
        self.dir = Path(job_dir)
        self.id = status.id
        self._status = status
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque(maxlen=50)
        self._last_write = 0.0
        self._cancel = threading.Event()
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._files: dict[str, Any] = {}
        self._beat: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self._heartbeat_s):
                self._update(force=True)

        self._beat = threading.Thread(target=beat, name="heartbeat", daemon=True)
        self._beat.start()

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def request_cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set() or (self.dir / "cancel").exists()

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelled("cancelled by request")

    # reporting -----------------------------------------------------------------------------
    def progress(
        self,
        done: float,
        total: float | None = None,
        *,
        unit: str | None = None,
        message: str | None = None,
    ) -> None:
        """Report progress; rate and ETA come from the recent samples."""
        with self._lock:
            s = self._status
            if total is not None:
                s.total = float(total)
            if unit:
                s.unit = unit
            if message is not None:
                s.message = message
            now = time.time()
            if self._samples and done < self._samples[-1][1]:
                self._samples.clear()
            self._samples.append((now, float(done)))
            s.done = float(done)
            t0, d0 = self._samples[0]
            if now > t0 and done > d0:
                s.rate = (done - d0) / (now - t0)
                s.eta_s = (s.total - done) / s.rate if s.total else None
        self._update()

    def _update(self, force: bool = False, **changes: Any) -> None:
        with self._lock:
            now = time.time()
            for key, value in changes.items():
                setattr(self._status, key, value)
            if not force and not changes and now - self._last_write < 0.5:
                return
            self._status.heartbeat = now
            self._last_write = now
            write_status(self.dir, self._status)

    def finish(self, state: JobState, error: str | None = None) -> None:
        self._update(state=state, error=error, finished=time.time(), eta_s=None)

    @property
    def status(self) -> JobStatus:
        return self._status

    def _append(self, name: str, line: str) -> None:
        fh = self._files.get(name)
        if fh is None:
            fh = self._files[name] = open(self.dir / name, "a", encoding="utf-8")
        fh.write(line)
        fh.flush()

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        """A human-readable event, ingested into job_events and shown on the Jobs page."""
        row = {"t": time.time(), "level": level, "message": message, "data": data or None}
        self._append("events.jsonl", dump_json_line(row))
        self.log(f"[{level}] {message}")

    def metric(self, step: int, **values: float) -> None:
        """Numeric metrics at a step, one long-format line per metric."""
        now = time.time()
        lines = "".join(
            dump_json_line({"step": int(step), "name": name, "value": float(value), "t": now})
            for name, value in values.items()
            if value is not None
        )
        if lines:
            self._append("metrics.jsonl", lines)

    def output(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Append output rows to a JSONL file of this job (ingested by the kind's handler)."""
        self._append(name, "".join(dump_json_line(r) for r in rows))

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._append("log.txt", f"{stamp} {message}\n")

    # resumable state -----------------------------------------------------------------------
    def read_checkpoint(self) -> dict[str, Any]:
        path = self.dir / "checkpoint.json"
        if not path.exists():
            return {}
        return json.loads(path.read_text())

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write_text(self.dir / "checkpoint.json", json.dumps(state))
