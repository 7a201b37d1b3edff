"""`ftstudio jobs list|show|cancel|resume`: the job queue from the shell."""

from __future__ import annotations

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.jobs import actions as job_actions
from backend.jobs import read as jobs
from backend.jobs.read import JobError
from backend.jobs.status import JobStatus, JobStatusError, format_seconds

app = typer.Typer(no_args_is_help=True, help="List, inspect, cancel and resume jobs.")


def _job_dict(s: JobStatus) -> dict:
    return s.model_dump(mode="json")


@app.command("list")
def jobs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every job, oldest first."""
    ws = common.workspace()
    items = jobs.list_jobs(ws)
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
        s = jobs.get(ws, job_id)
        kind, spec = jobs.read_spec(ws.job_dir(job_id))
    except (JobError, JobStatusError) as exc:
        common.fail(str(exc))
    tail = jobs.log_tail(ws, job_id, lines=log_lines).splitlines() if log_lines > 0 else []
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
    try:
        s = job_actions.cancel(common.shell(), job_id, grace_s=grace)
    except AlreadyDone as exc:
        typer.echo(f"{job_id}: {exc}")
        return
    except (ValueError, JobError, JobStatusError) as exc:
        common.fail(str(exc))
    typer.echo(f"{job_id}: {s.state}")


@app.command("resume")
def jobs_resume(job_id: str, detach: bool = typer.Option(False, help="Queue and return.")) -> None:
    """Queue an interrupted, failed or cancelled job again; it continues from its checkpoint."""
    try:
        job_actions.resume(common.shell(), job_id)
    except AlreadyDone as exc:
        typer.echo(f"{job_id}: {exc}")
        return
    except (ValueError, JobError, JobStatusError) as exc:
        common.fail(str(exc))
    if detach:
        typer.echo(f"{job_id}: queued")
        return
    s = common.follow(job_id, check=False)
    typer.echo(f"{job_id}: {s.state}")
    if s.state != "succeeded":
        raise typer.Exit(1)
