"""`ftstudio jobs list|show|cancel|resume`: the job queue from the shell."""

from __future__ import annotations

import typer

from backend.cli import common
from backend.jobs import queue
from backend.jobs.queue import JobError
from backend.jobs.status import JobStatus, JobStatusError, format_seconds

app = typer.Typer(no_args_is_help=True, help="List, inspect, cancel and resume jobs.")


def _job_dict(s: JobStatus) -> dict:
    return s.model_dump(mode="json")


@app.command("list")
def jobs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every job, oldest first."""
    ws = common.workspace()
    items = queue.list_jobs(ws)
    if as_json:
        common.emit_json(
            [_job_dict(s) if isinstance(s, JobStatus) else {"error": str(s)} for s in items]
        )
        return
    if not items:
        typer.echo("no jobs yet")
    for s in items:
        if isinstance(s, JobStatusError):
            typer.echo(f"?  {s}")
            continue
        typer.echo(f"{s.id:45} {s.state:11} {s.progress_line():30} {s.title}")


@app.command("show")
def jobs_show(
    job_id: str,
    as_json: bool = typer.Option(False, "--json"),
    log_lines: int = typer.Option(20, help="Lines of log to show."),
) -> None:
    """One job: status, spec and the tail of its log."""
    ws = common.workspace()
    try:
        s = queue.get(ws, job_id)
        kind, spec = queue.read_spec(ws.job_dir(job_id))
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    log = ws.job_dir(job_id) / "log.txt"
    tail = log.read_text(errors="replace").splitlines()[-log_lines:] if log.exists() else []
    if as_json:
        common.emit_json({**_job_dict(s), "spec": spec, "log_tail": tail})
        return
    typer.echo(f"{s.id}  {kind}  {s.state}  {s.progress_line()}")
    if s.started and s.finished:
        typer.echo(f"ran {format_seconds(s.finished - s.started)}")
    if s.error:
        typer.echo(f"error: {s.error}")
    typer.echo(f"spec: {spec}")
    typer.echo("\n".join(tail))


@app.command("cancel")
def jobs_cancel(
    job_id: str, grace: float = typer.Option(10.0, help="Seconds before SIGKILL.")
) -> None:
    """Cancel a queued or running job (SIGTERM, then SIGKILL after the grace period)."""
    ws = common.workspace()
    try:
        s = queue.cancel(ws, job_id, grace_s=grace)
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    typer.echo(f"{job_id}: {s.state}")


@app.command("resume")
def jobs_resume(job_id: str, detach: bool = typer.Option(False, help="Queue and return.")) -> None:
    """Queue an interrupted, failed or cancelled job again; it continues from its checkpoint."""
    from backend.jobs.worker import ensure_worker

    ws = common.workspace()
    try:
        queue.resume(ws, job_id)
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    ensure_worker(ws)
    if detach:
        typer.echo(f"{job_id}: queued")
        return
    s = common.wait_with_progress(ws, job_id)
    common.ingest_now(ws)
    typer.echo(f"{job_id}: {s.state}")
    if s.state != "succeeded":
        raise typer.Exit(1)
