"""Job actions: cancel and resume.

They work without the database (a CLI beside a running dashboard): the audit trail is in the
job folder, where a cancel file names who asked and a resume records who queued the attempt,
and ingestion writes both to the audit log once (`job.cancel`, `job.resume`). A job that ended,
or was queued again, in the meantime answers `AlreadyDone`.
"""

from __future__ import annotations

from backend import action
from backend.action import AlreadyDone, Ctx
from backend.auth import require
from backend.jobs import queue, read
from backend.jobs.status import RESUMABLE, TERMINAL, JobStatus


def cancel(ctx: Ctx, job_id: str, *, grace_s: float = 10.0, background: bool = False) -> JobStatus:
    """Cancel a queued or running job: SIGTERM to its process group, SIGKILL after `grace_s`.
    `background`: return once the request is recorded, signalling on a daemon thread (a page
    must not wait out the grace period)."""
    require(ctx.actor, "cancel_job")
    status = read.get(ctx.ws, job_id)
    if status.state in TERMINAL:
        raise AlreadyDone(f"job {job_id} is already {status.state}", status)
    require(ctx.actor, "cancel_job")
    if background:
        import threading

        threading.Thread(
            target=queue.cancel,
            args=(ctx.ws, job_id),
            kwargs={"grace_s": grace_s, "actor": ctx.actor},
            daemon=True,
        ).start()
        return status
    try:
        return queue.cancel(ctx.ws, job_id, grace_s=grace_s, actor=ctx.actor)
    except queue.JobError as exc:
        raise AlreadyDone(str(exc), read.get(ctx.ws, job_id)) from exc


def resume(ctx: Ctx, job_id: str, *, start_worker: bool = True) -> JobStatus:
    """Queue an interrupted, failed or cancelled job again; it continues from its checkpoint."""
    require(ctx.actor, "launch_job")
    status = read.get(ctx.ws, job_id)
    if status.state not in RESUMABLE:
        if status.state in ("queued", "running"):
            raise AlreadyDone(f"job {job_id} is {status.state} already", status)
        raise action.ActionError(
            f"job {job_id} is {status.state}; only "
            f"{', '.join(sorted(RESUMABLE))} jobs can be resumed"
        )
    require(ctx.actor, "launch_job")
    resumed = queue.resume(ctx.ws, job_id, actor=ctx.actor)
    if start_worker:
        from backend.jobs import worker

        worker.ensure_worker(ctx.ws)
    return resumed
