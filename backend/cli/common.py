"""Helpers shared by the `ftstudio` sub-commands: settings, opening the store, running a job
from the command line (queue, start a worker, wait with a progress bar, ingest), JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from pydantic import BaseModel

from backend.config import Settings
from backend.jobs import queue, worker
from backend.jobs.kinds import SpecError
from backend.jobs.status import JobState, JobStatus
from backend.store import Store, StoreLockedError
from backend.workspace import Workspace, WorkspaceError


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
) -> JobStatus:
    """Queue a job; unless `detach`, wait for it with a progress bar, ingest its results when
    no dashboard holds the database, and exit non-zero if it did not succeed."""
    ws = workspace()
    try:
        job_id = queue.submit(ws, kind, spec, group_id=group_id)
    except SpecError as exc:
        fail(str(exc), code=2)
    worker.ensure_worker(ws)
    if detach:
        if not quiet:
            typer.echo(f"queued {kind} job {job_id}")
        return queue.get(ws, job_id)
    status = wait_with_progress(ws, job_id, quiet=quiet)
    ingested = ingest_now(ws)
    if not quiet and not ingested:
        typer.echo("the dashboard holds the database: it ingests this job's results")
    if status.state != JobState.succeeded:
        fail(f"job {job_id} {status.state}: {status.error or ''}".rstrip(": "))
    return status


def wait_with_progress(ws: Workspace, job_id: str, quiet: bool = False) -> JobStatus:
    if quiet or not sys.stderr.isatty():
        last = [""]

        def report(s: JobStatus) -> None:
            line = f"{s.state} {s.progress_line()}"
            if not quiet and line != last[0] and s.state != JobState.queued:
                typer.echo(f"{job_id}: {line}", err=True)
                last[0] = line

        return queue.wait(ws, job_id, on_status=report)
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

        return queue.wait(ws, job_id, on_status=update)
