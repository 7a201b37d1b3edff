"""What a job's ranks see when the job runs in processes other than its own: the processes of
an `accelerate launch`, or a Ray job on a cluster (backend/train/executors.py starts them).

The job's own process stays the owner of status.json and its heartbeat. A rank writes into the
same job folder through a `RankContext`, but only rank 0 writes at all: events, metrics,
outputs, the log and checkpoint.json; its progress goes to `progress.json`, which the owner
mirrors into status.json; its end goes to `rank_result.json`, which the owner turns into the
job's end. Every rank reads the cancel file, so a cancel reaches each of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.jobs.context import JobCancelled, JobContext
from backend.jobs.status import read_status
from backend.workspace import Workspace, atomic_write_text

POLL_S = 0.5
STOP_GRACE_S = 120.0  # after a cancel, how long the ranks get to save and stop
PROGRESS_FILE = "progress.json"
RESULT_FILE = "rank_result.json"


class RankContext(JobContext):
    """A JobContext for rank `rank` of `world` processes; only rank 0 writes."""

    def __init__(self, workspace: Workspace, job_dir: Path, rank: int = 0, world: int = 1):
        super().__init__(workspace, job_dir, read_status(job_dir))  # a snapshot: id, attempt
        self.rank, self.world = rank, world

    @property
    def is_main(self) -> bool:  # type: ignore[override]
        return self.rank == 0

    def start_heartbeat(self) -> None:
        """The owner's heartbeat covers the job; a rank keeps none."""

    def _update(self, force: bool = False, **changes: Any) -> None:
        """Progress goes to progress.json (rank 0 only); status.json is the owner's."""
        if not self.is_main:
            return
        now = time.time()
        for key, value in changes.items():
            setattr(self._status, key, value)
        if not force and not changes and now - self._last_write < 0.5:
            return
        self._last_write = now
        s = self._status
        fields = {"done": s.done, "total": s.total, "unit": s.unit, "message": s.message, "t": now}
        atomic_write_text(self.dir / PROGRESS_FILE, json.dumps(fields))

    def close(self) -> None:
        self._update(force=True)  # the last progress, even when it came within the throttle
        super().close()

    def _append(self, name: str, line: str) -> None:
        if self.is_main:
            super()._append(name, line)

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        if self.is_main:
            super().write_checkpoint(state)

    def write_result(self, state: str, error: str | None = None) -> None:
        """The ranks' end for the owner: succeeded, cancelled or failed (rank 0 only)."""
        if self.is_main:
            result = {"state": state, "error": error, "t": time.time()}
            atomic_write_text(self.dir / RESULT_FILE, json.dumps(result))


def read_progress(job_dir: Path) -> dict[str, Any] | None:
    """The ranks' last progress, or None before rank 0 wrote any."""
    try:
        return json.loads((Path(job_dir) / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None


def read_result(job_dir: Path) -> dict[str, Any] | None:
    """How the ranks ended, or None when rank 0 wrote no end (it was killed, or never ran)."""
    try:
        return json.loads((Path(job_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def clear(job_dir: Path) -> None:
    """Forget a previous attempt's progress and end before the ranks start again."""
    for name in (PROGRESS_FILE, RESULT_FILE):
        (Path(job_dir) / name).unlink(missing_ok=True)


def supervise(
    ctx: JobContext,
    poll: Callable[[], int | None],
    stop: Callable[[], None],
    what: str,
    grace_s: float = STOP_GRACE_S,
) -> None:
    """Wait for the ranks: mirror rank 0's progress into the job's status, give them
    `grace_s` after a cancel before `stop()`, then turn their end into the job's.
    `poll()` is None while they run, else an exit code."""
    cancel_at: float | None = None
    seen: list[Any] = [None]

    def mirror() -> None:
        progress = read_progress(ctx.dir)
        if progress and progress.get("t") != seen[0]:
            seen[0] = progress["t"]
            ctx.progress(
                progress["done"],
                progress.get("total"),
                unit=progress.get("unit"),
                message=progress.get("message"),
            )

    while (code := poll()) is None:
        mirror()
        if ctx.cancel_requested and cancel_at is None:
            cancel_at = time.time()
            ctx.log(f"cancel requested: waiting for the ranks of {what} to save and stop")
        if cancel_at is not None and time.time() - cancel_at > grace_s:
            ctx.log(f"the ranks did not stop within {grace_s:.0f}s: stopping {what}")
            stop()
            cancel_at = float("inf")
        time.sleep(POLL_S)
    mirror()
    result = read_result(ctx.dir) or {}
    state = result.get("state")
    if state == "succeeded" and code == 0:
        return
    if state == "cancelled" or (ctx.cancel_requested and state != "failed"):
        raise JobCancelled("cancelled by request after the ranks saved a checkpoint")
    error = result.get("error") or f"{what} exited with code {code}; see log.txt"
    raise RuntimeError(error)
