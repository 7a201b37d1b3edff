"""Run one job in this process: `python -m backend.jobs.run WORKSPACE JOB_ID`.

The worker starts it in a new session (its own process group) so cancel can signal the whole
group. It writes status.json (running, heartbeat, final state) and never opens DuckDB. A key
typed for this job is taken from its folder first (backend/jobs/context.py) and held in this
process only, bound to the origin it was typed for.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from backend.integrations import llm
from backend.jobs.context import JobCancelled, JobContext, take_job_key
from backend.jobs.kinds import SpecError, kind_info, load, validate_spec
from backend.jobs.queue import read_spec
from backend.jobs.status import JobState, now, process_start_time, read_status, write_status
from backend.workspace import Workspace


def run_job(ws: Workspace, job_id: str, heartbeat_s: float = 2.0) -> JobState:
    typed = take_job_key(ws.job_dir(job_id))  # off the disk before anything else can fail
    if typed:
        llm.use_job_key(typed.get("base_url"), typed["api_key"])
    try:
        return _run(ws, job_id, heartbeat_s, keyed=typed is not None)
    finally:
        llm.use_job_key(None, None)


def _run(ws: Workspace, job_id: str, heartbeat_s: float, *, keyed: bool) -> JobState:
    job_dir = ws.job_dir(job_id)
    status = read_status(job_dir)
    status.state = JobState.running
    status.started = now()
    status.finished = None
    status.error = None
    status.pid = os.getpid()
    status.pid_start = process_start_time(os.getpid())
    status.heartbeat = now()
    write_status(job_dir, status)
    ctx = JobContext(ws, job_dir, status, heartbeat_s=heartbeat_s)
    signal.signal(signal.SIGTERM, lambda *_: ctx.request_cancel())
    ctx.start_heartbeat()
    ctx.log(f"start {status.kind} job {job_id} (attempt {status.attempt}, pid {os.getpid()})")
    if keyed:
        ctx.log("an API key typed for this job was taken from its folder (not shown)")
    try:
        kind, raw_spec = read_spec(job_dir)
        spec = validate_spec(kind, raw_spec)
        runner = load(kind_info(kind).run)
        runner(ctx, spec)
        ctx.check_cancelled()
    except JobCancelled:
        ctx.event("cancelled", level="warning")
        ctx.finish(JobState.cancelled, "cancelled")
        return JobState.cancelled
    except SpecError as exc:
        ctx.event(str(exc), level="error")
        ctx.finish(JobState.failed, str(exc))
        return JobState.failed
    except Exception as exc:  # a job's error becomes its status, with the traceback in log.txt
        ctx.log(traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        ctx.event(message, level="error")
        ctx.finish(JobState.failed, message)
        return JobState.failed
    finally:
        ctx.close()
    ctx.finish(JobState.succeeded)
    ctx.close()
    return JobState.succeeded


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print("usage: python -m backend.jobs.run WORKSPACE JOB_ID", file=sys.stderr)  # noqa: T201
        return 2
    heartbeat = float(os.environ.get("FTSTUDIO_HEARTBEAT_S", "2"))
    # Settings() in this process reads the saved settings of the job's own workspace
    os.environ["FTSTUDIO_WORKSPACE"] = str(Path(args[0]).resolve())
    state = run_job(Workspace(Path(args[0])), args[1], heartbeat_s=heartbeat)
    return 0 if state == JobState.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
