"""Helpers shared by the `ftstudio` sub-commands: settings, `opened()` (the store and an action
context, as a context manager), `out()` (text or --json), `fail()`, and waiting for a job the
command queued (progress bar, ingest when no dashboard holds the database)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import BaseModel

from backend import action
from backend.action import AlreadyDone, Ctx
from backend.config import Settings
from backend.jobs import read as jobs
from backend.jobs.kinds import SpecError
from backend.jobs.status import JobState, JobStatus
from backend.store import Store, StoreLockedError
from backend.workspace import Workspace, WorkspaceError

# --api-key of every command that calls an endpoint (one definition, one meaning)
API_KEY_OPTION = typer.Option(
    None,
    "--api-key",
    envvar="FTSTUDIO_JOB_API_KEY",
    show_default=False,
    help="API key for --base-url, sent only to that URL's origin, for this job only (never "
    "in its spec or logs); FTSTUDIO_JOB_API_KEY keeps it out of the shell history.",
)


def settings() -> Settings:
    return Settings()


def workspace() -> Workspace:
    try:
        return Workspace(settings().workspace).ensure()
    except WorkspaceError as exc:
        fail(str(exc))


def fail(message: str, code: int = 1):
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def open_store(ws: Workspace) -> Store:
    """Open the database or exit with a message naming the process that holds it."""
    try:
        return Store.open(ws.db_path)
    except StoreLockedError as exc:
        fail(str(exc))


def try_open_store(ws: Workspace) -> Store | None:
    """The store when this process can hold it; None while a dashboard holds it."""
    try:
        return Store.open(ws.db_path)
    except StoreLockedError:
        return None


@contextmanager
def opened(*, ingest: bool = True) -> Iterator[Ctx]:
    """The store and an action context for a command (the shell acts: actor None). Pending job
    output is ingested first so the command sees what finished; the store is always closed.
    Exits with a message naming the process that holds the database when it is held."""
    ws = workspace()
    store = open_store(ws)
    try:
        if ingest:
            from backend.ingest.jobs import ingest_all

            ingest_all(store, ws)
        yield Ctx(store=store, ws=ws, settings=settings(), actor=None)
    finally:
        store.close()


def shell(store: Store | None = None) -> Ctx:
    """An action context for the shell user (actor None) without opening the database: for
    job actions beside a running dashboard."""
    return Ctx(store=store, ws=workspace(), settings=settings(), actor=None)


def follow(job_id: str, *, quiet: bool = False, check: bool = True) -> JobStatus:
    """Wait for a job an action queued, with a progress bar; ingest its results when no
    dashboard holds the database; with `check`, exit non-zero unless it succeeded."""
    ws = workspace()
    status = wait_with_progress(ws, job_id, quiet=quiet)
    ingested = ingest_now(ws)
    if not quiet and not ingested:
        typer.echo("the dashboard holds the database: it ingests this job's results")
    if check and status.state != JobState.succeeded:
        fail(f"job {job_id} {status.state}: {status.error or ''}".rstrip(": "))
    return status


def out(data: Any, as_json: bool, text: Callable[[Any], str] | str | None = None) -> None:
    """Print `data` as JSON (--json), else as `text(data)` (or `text` itself, or each
    key/value of a dict on its own line)."""
    if as_json:
        emit_json(data)
        return
    if callable(text):
        typer.echo(text(data))
    elif text is not None:
        typer.echo(text)
    elif isinstance(data, dict):
        for key, value in data.items():
            typer.echo(f"{key:20} {value}")
    else:
        typer.echo(str(data))


def already(exc: AlreadyDone, as_json: bool) -> None:
    """Say what was done before, and exit 0: a double submission is not done twice. With
    --json, the earlier result with an `already_done` message."""
    if as_json:
        result = exc.result if isinstance(exc.result, dict) else {"result": exc.result}
        emit_json({**result, "already_done": str(exc)})
    else:
        typer.echo(str(exc))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def ingest_now(ws: Workspace) -> bool:
    """Ingest job folders when no dashboard holds the database. Returns whether it did."""
    from backend.ingest.jobs import ingest_all

    store = try_open_store(ws)
    if store is None:
        return False
    try:
        ingest_all(store, ws)
    finally:
        store.close()
    return True


def run_job(
    kind: str,
    spec: dict[str, Any] | BaseModel,
    *,
    detach: bool = False,
    quiet: bool = False,
    group_id: str | None = None,
    name: str | None = None,
    target: str | None = None,
) -> JobStatus:
    """Queue a job through the action kernel as the shell user; unless `detach`, wait for it
    (`follow`). Prefer a feature action that prepares the spec itself."""
    try:
        job_id, _ = action.launch(
            shell(),
            kind,
            spec,
            name=name or f"job.{kind}",
            target=target,
            group_id=group_id,
        )
    except (SpecError, ValueError) as exc:
        fail(str(exc), code=2)
    if detach:
        if not quiet:
            typer.echo(f"queued {kind} job {job_id}")
        return jobs.get(workspace(), job_id)
    return follow(job_id, quiet=quiet)


def wait_with_progress(ws: Workspace, job_id: str, quiet: bool = False) -> JobStatus:
    if quiet or not sys.stderr.isatty():
        last = [""]

        def report(s: JobStatus) -> None:
            line = f"{s.state} {s.progress_line()}"
            if not quiet and line != last[0] and s.state != JobState.queued:
                typer.echo(f"{job_id}: {line}", err=True)
                last[0] = line

        return jobs.wait(ws, job_id, on_status=report)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[line]}"),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(job_id, total=None, line="queued")

        def update(s: JobStatus) -> None:
            bar.update(task, total=s.total, completed=s.done, line=f"{s.state} {s.progress_line()}")

        return jobs.wait(ws, job_id, on_status=update)
