"""The worker: claims queued jobs and runs each in its own process group.

Run it with `ftstudio worker` or `python -m backend.jobs.worker WORKSPACE`. One worker per
workspace (an flock on worker.lock); the dashboard and the CLI start one, detached, when jobs
are queued and none runs. It exits after `idle_exit_s` seconds with nothing to do.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from backend.jobs import queue
from backend.jobs.context import drop_job_key
from backend.jobs.status import JobState, JobStatus, JobStatusError, now, update_status
from backend.workspace import Workspace


class WorkerBusy(RuntimeError):
    """Another worker already serves this workspace."""


def _try_lock(ws: Workspace):
    ws.ensure()
    fh = open(ws.worker_lock, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def worker_running(ws: Workspace) -> bool:
    if not ws.worker_lock.exists():
        return False
    with open(ws.worker_lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def ensure_worker(ws: Workspace, idle_exit_s: float = 300.0) -> bool:
    """Start a detached worker when none runs. Returns True when one was started.

    The lock is taken here and handed to the child (an inherited flock), so two callers racing
    can never start two workers.
    """
    lock = _try_lock(ws)
    if lock is None:
        return False
    try:
        log = open(ws.root / "worker.log", "ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backend.jobs.worker",
                str(ws.root),
                "--idle-exit",
                str(idle_exit_s),
                "--lock-fd",
                str(lock.fileno()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            pass_fds=(lock.fileno(),),
        )
        log.close()
        lock.seek(0)
        lock.truncate()
        lock.write(str(proc.pid))
        lock.flush()
    finally:
        lock.close()  # the child still holds the lock through its inherited descriptor
    return True


def _spawn(ws: Workspace, job_id: str) -> subprocess.Popen:
    job_dir = ws.job_dir(job_id)
    # the log may hold prompts and paths: readable by the studio's user only
    log = os.fdopen(
        os.open(job_dir / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.jobs.run", str(ws.root), job_id],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    return proc


def _finish(ws: Workspace, job_id: str, code: int) -> None:
    """After a job's process exits: a job that did not write its own end is interrupted."""
    job_dir = ws.job_dir(job_id)

    def end(status: JobStatus) -> JobStatus | None:
        if status.state == JobState.queued:  # resumed already: not ours to end
            return None
        status.exit_code = code
        if status.state == JobState.running:
            cancelled = (job_dir / "cancel").exists()
            status.state = JobState.cancelled if cancelled else JobState.interrupted
            status.error = (
                "cancelled" if cancelled else f"the job's process exited with code {code}"
            )
            status.finished = now()
        return status

    drop_job_key(job_dir)  # a key typed for the job never outlives its process
    try:
        update_status(job_dir, end)
    except JobStatusError:
        pass
    queue.release(ws, job_id)


def serve(
    ws: Workspace,
    idle_exit_s: float | None = None,
    poll_s: float = 0.3,
    stale_after_s: float = 30.0,
    lock_fd: int | None = None,
) -> None:
    lock = os.fdopen(lock_fd, "a+") if lock_fd is not None else _try_lock(ws)
    if lock is None:
        raise WorkerBusy(f"a worker already serves {ws.root}")
    children: dict[str, subprocess.Popen] = {}
    idle_since = time.time()
    try:
        # running markers left by a dead worker: reconcile decides what became of their jobs
        queue.reconcile(ws, stale_after_s)
        while True:
            for job_id, proc in list(children.items()):
                code = proc.poll()
                if code is not None:
                    _finish(ws, job_id, code)
                    del children[job_id]
            queue.release_finished(ws, keep=children.keys())
            while (job_id := queue.claim_next(ws)) is not None:
                children[job_id] = _spawn(ws, job_id)
            if children or queue.pending_count(ws):
                idle_since = time.time()
            elif idle_exit_s is not None and time.time() - idle_since > idle_exit_s:
                return
            time.sleep(poll_s)
    finally:
        lock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace", type=Path)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        help="exit after this many idle seconds (default: never)",
    )
    parser.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        serve(Workspace(args.workspace.resolve()), idle_exit_s=args.idle_exit, lock_fd=args.lock_fd)
    except WorkerBusy as exc:
        print(exc, file=sys.stderr)  # noqa: T201
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
