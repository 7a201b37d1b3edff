"""The action kernel: the one way a change reaches the studio.

Every feature's `actions.py` is written with two functions from here:

- `change(ctx, permission, name, target, fn)`: refuse a role without `permission`, then run
  `fn(cur)` in one transaction together with its audit row. `fn` re-reads the state it depends
  on through `cur` and raises `AlreadyDone` when the work was done before it (a batch applied
  twice, a plan approved twice), so two clicks or two users give one result. A conflict with
  another transaction runs `fn` again (`Store.write`).
- `launch(ctx, kind, spec, name=..., target=...)`: the same for work that runs as a job: the
  job folder is validated and written under a hidden name, the audit row (and any rows of
  `fn`) commits, and only then does the job become visible and a worker start.

Pages and CLI commands build a `Ctx` (store, workspace, settings, actor) and call actions; they
never reach the queue, the worker or SQL themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.auth import Actor, require
from backend.changes import CHANGES
from backend.config import Settings
from backend.jobs import queue, worker
from backend.security import allowed_roots, confine_any
from backend.store import Store
from backend.store import audit as audit_log
from backend.workspace import Workspace

T = TypeVar("T")


class ActionError(ValueError):
    """An action refused: what was wrong, and where. Nothing was changed."""


class AlreadyDone(ActionError):
    """The work this action would do was done already; `result` is what it produced then."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Ctx:
    """Who acts, on which studio. `actor` None is the trusted shell (the CLI). `store` is None
    for a CLI command beside a running dashboard (which holds the database): only job
    launches work then, audited from the job folder when the dashboard ingests it."""

    store: Store | None
    ws: Workspace
    settings: Settings
    actor: Actor | None = None

    @property
    def who(self) -> str:
        return self.actor.username if self.actor else "shell"


def typed_path(ctx: Ctx, typed: str | Path, *, models: bool = False) -> Path:
    """A path a dashboard user typed, confined to the folders they may name (the workspace;
    with `models`, also the configured local model's folder): `UnsafePathError` (a
    ValueError) says why not. The shell's paths are taken as given."""
    if ctx.actor is None:
        return Path(typed)
    return confine_any(str(typed), allowed_roots(ctx.settings, ctx.ws, models=models))


def need_store(ctx: Ctx) -> Store:
    """The store of `ctx`, or `ActionError` for a CLI command beside a running dashboard."""
    if ctx.store is None:
        raise ActionError(
            "this needs the database, which the running dashboard holds: "
            "do it from the dashboard, or stop the dashboard first"
        )
    return ctx.store


def change(
    ctx: Ctx,
    permission: str,
    name: str,
    target: str | None,
    fn: Callable[[Any], T],
    *,
    detail: dict[str, Any] | Callable[[T], dict[str, Any] | None] | None = None,
) -> T:
    """Check the role, then run `fn(cur)` and write its audit row in one transaction."""
    require(ctx.actor, permission)
    need_store(ctx)

    def txn(cur) -> T:
        result = fn(cur)
        info = detail(result) if callable(detail) else detail
        audit_log.record(cur, ctx.actor, name, target, info)
        return result

    result = ctx.store.write(txn)
    CHANGES.after_action(name)
    return result


def launch(
    ctx: Ctx,
    kind: str,
    spec: dict[str, Any] | BaseModel,
    *,
    name: str,
    target: str | None,
    permission: str = "launch_job",
    fn: Callable[[Any, str], T] | None = None,
    detail: dict[str, Any] | None = None,
    group_id: str | None = None,
    start_worker: bool = True,
) -> tuple[str, T | None]:
    """Queue a job as one action: stage its folder, commit `fn(cur, job_id)` (rows that name
    the job) with the audit row, then make the job visible and make sure a worker runs.
    Returns (job_id, what `fn` returned). A refusal or error leaves no job and no rows."""
    require(ctx.actor, permission)
    staged = queue.stage(ctx.ws, kind, spec, group_id=group_id, actor=ctx.actor)
    if ctx.store is None and fn is None:  # the job's status names who submitted it
        staged.commit()
        if start_worker:
            worker.ensure_worker(ctx.ws)
        return staged.job_id, None
    try:

        def txn(cur) -> T | None:
            result = fn(cur, staged.job_id) if fn else None
            info = {"job": staged.job_id, "kind": kind, **(detail or {})}
            audit_log.record(cur, ctx.actor, name, target, info)
            return result

        result = ctx.store.write(txn)
    except BaseException:
        staged.discard()
        raise
    staged.commit()
    CHANGES.after_action(name)
    CHANGES.bump("jobs")
    if start_worker:
        worker.ensure_worker(ctx.ws)
    return staged.job_id, result


def record(ctx: Ctx, permission: str, name: str, target: str | None, detail=None) -> None:
    """An audited action whose change lives outside the database (a file, a server, a
    Label Studio project): the role check and the audit row, in one call."""
    change(ctx, permission, name, target, lambda cur: None, detail=detail)
