"""Review actions that reach Label Studio: push a batch, pull its verdicts, register or
remove a project's webhook, start or stop the workspace's local server.

A batch is pushed once: the push is claimed in its own transaction before the project is made
(so a second push, or two at once, answers `AlreadyDone`: naming the project, or saying it is
being pushed), the project id is recorded with the audit row, and a failed push releases the
claim. A pull reads and checks everything before one transaction writes it. Permissions:
pushing and removing a webhook `edit_data`; pulling and registering a webhook `review` (the
live verdicts a reviewer watches); starting and stopping the local Label Studio, and revealing
its credentials, `settings` (a server on this machine is the admin's business). Changes that
live only in Label Studio are audited with `action.record`; beside a running dashboard (no
store) the role check stands and no row can be written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store
from backend.auth import require
from backend.integrations.labelstudio import client as lsc
from backend.integrations.labelstudio import server as lss
from backend.integrations.labelstudio import webhook as hook
from backend.review import labelstudio as lsync
from backend.review import verdicts
from backend.store import Store
from backend.store import review as rstore

STALE_PUSH = timedelta(minutes=30)  # a push claim this old was left by a push that died


def _external(ctx: Ctx, permission: str, name: str, target: str | None, detail: dict) -> None:
    """Audit a change that lives outside the database; without a store, only the role check."""
    if ctx.store is None:
        require(ctx.actor, permission)
        return
    action.record(ctx, permission, name, target, detail)


def _connection(ctx: Ctx) -> tuple[str, str]:
    url, token = lsc.connection(ctx.settings, ctx.ws)
    if not url or not token:
        raise ActionError(
            "no Label Studio configured: run `ftstudio labelstudio up` (a local server) or "
            "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
        )
    return url.rstrip("/"), token


def _claim_push(store: Store, batch_id: str, url: str) -> dict:
    """In one transaction: refuse a batch pushed (or being pushed) already, else claim it."""

    def txn(cur) -> dict:
        batch = rstore.get_batch(store, batch_id)
        if batch["ls_project_id"]:
            link = f"{batch['ls_url']}/projects/{batch['ls_project_id']}/data"
            raise AlreadyDone(
                f"batch {batch_id} is already in Label Studio project "
                f"{batch['ls_project_id']} at {batch['ls_url']} ({link})",
                batch,
            )
        since = batch.get("ls_claimed")
        if since is not None and datetime.now() - since < STALE_PUSH:
            raise AlreadyDone(
                f"batch {batch_id} is already being pushed to Label Studio at "
                f"{batch['ls_url']} (since {since:%H:%M:%S})",
                batch,
            )
        rstore.claim_push(store, batch_id, url, datetime.now())
        return batch

    return store.write(txn)


def push_batch(
    ctx: Ctx, batch_id: str, *, overlap_share: float = 0.2, reviewers_per_overlap: int = 2
) -> dict:
    """Create a Label Studio project for the batch and import its items as tasks with
    predictions (least certain first; `overlap_share` of the tasks go to two reviewers).
    A batch is pushed once: a second push, or two at once, answers AlreadyDone."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)
    if not 0 <= overlap_share <= 1:
        raise ActionError(f"overlap share must lie in 0-1, got {overlap_share}")
    items = rstore.batch_items(store, batch_id)
    if not items:
        rstore.get_batch(store, batch_id)  # names an unknown batch
        raise ActionError(f"batch {batch_id} has no items to push")
    url, token = _connection(ctx)
    batch = _claim_push(store, batch_id, url)
    try:
        tasks = [lsync.task_payload(i, batch_id, batch["model"], batch["method"]) for i in items]
        options = lsync.project_options(
            batch, overlap_share=overlap_share, reviewers_per_overlap=reviewers_per_overlap
        )
        project_id, task_ids = lsc.create_project(url, token, tasks, key="example_id", **options)
        action.change(
            ctx,
            "edit_data",
            "review.push",
            batch_id,
            lambda cur: rstore.set_project(store, batch_id, url, project_id, task_ids),
            detail={"project_id": project_id, "tasks": len(task_ids), "url": url},
        )
    except BaseException:
        rstore.release_push(store, batch_id)
        raise
    return {
        "batch": batch_id,
        "project_id": project_id,
        "tasks": len(task_ids),
        "url": f"{url}/projects/{project_id}/data",
    }


class _Unchanged(Exception):
    """A pull that changed nothing: its transaction rolls back, no audit row."""

    def __init__(self, result: dict):
        self.result = result


def pull_batch(ctx: Ctx, batch_id: str, *, on_stage: Callable[[str], None] | None = None) -> dict:
    """Fetch the project's full JSON export and upsert its verdicts (pulling twice adds
    nothing); verdicts whose annotation was deleted there are dropped unless the batch was
    applied. Everything is read and checked before one transaction writes it, so a server
    that dies mid-pull raises LabelStudioError and changes nothing."""
    require(ctx.actor, "review")
    store = need_store(ctx)
    batch = rstore.get_batch(store, batch_id)
    if not batch["ls_project_id"]:
        raise ActionError(f"batch {batch_id} was not pushed to Label Studio yet")
    url, token = _connection(ctx)
    stage = on_stage or (lambda _s: None)
    exported, emails = lsc.export_with_users(url, token, batch["ls_project_id"], stage)
    n_tasks = 0

    def counted():  # the export's tasks, one at a time (it is never held whole)
        nonlocal n_tasks
        for task in exported:
            n_tasks += 1
            yield task

    rows, skipped, present = lsync.parse_export(counted(), emails)
    try:
        rows = [verdicts.checked(r) for r in rows]
    except ValueError as exc:
        raise ActionError(f"the export of batch {batch_id} holds a bad verdict: {exc}") from exc
    stage("store")

    def txn(cur) -> dict:
        counts = rstore.upsert_reviews(store, batch_id, rows)
        stored = {r["id"] for r in rstore.reviews(store, batch_id) if r["source"] == "label-studio"}
        gone = rstore.remove_ls_reviews(store, sorted(stored - present), batch_id=batch_id)
        result = {
            "batch": batch_id,
            "tasks": n_tasks,
            "annotations": len(rows),
            "skipped": skipped,
            **counts,
            "removed": gone["removed"],
            "kept_deleted": gone["kept"],
        }
        if not (counts["new"] or counts["updated"] or gone["removed"]):
            raise _Unchanged(result)
        return result

    def detail(r: dict) -> dict:
        return {k: r[k] for k in ("new", "updated", "removed")}

    try:
        return action.change(ctx, "review", "review.pull", batch_id, txn, detail=detail)
    except _Unchanged as same:
        return same.result


def register_webhook(ctx: Ctx, project_id: int, receiver: hook.Receiver) -> dict:
    """Point a Label Studio project's webhook at `receiver` (annotations then arrive as they
    are made); once per receiver and project, AlreadyDone after."""
    require(ctx.actor, "review")
    if project_id in receiver.registered:
        raise AlreadyDone(f"project {project_id} already posts to {receiver.url}")
    url, token = _connection(ctx)
    done = hook.register(url, token, project_id, receiver.url, receiver.secret)
    receiver.registered.add(project_id)
    detail = {"receiver": receiver.url, "created": done["created"], "removed": done["removed"]}
    _external(ctx, "review", "review.webhook_register", str(project_id), detail)
    return done


def delete_webhook(ctx: Ctx, project_id: int, receiver_url: str | None = None) -> int:
    """Stop a project posting to this studio: remove its webhooks to `receiver_url`, or every
    one a receiver of ours registered there. Returns how many were removed."""
    require(ctx.actor, "edit_data")
    url, token = _connection(ctx)
    n = hook.unregister(url, token, project_id, receiver_url)
    if n:
        _external(ctx, "edit_data", "review.webhook_delete", str(project_id), {"removed": n})
    return n


def start_labelstudio(ctx: Ctx, port: int = 8080) -> tuple[lss.ServerInfo, str]:
    """Start the workspace's local Label Studio (its own venv, made on first use), or find
    the one running. Returns its info and API token (the caller shows it once)."""
    require(ctx.actor, "settings")
    running = lss.status(ctx.ws)["running"]
    info, token = lss.up(ctx.ws, port)
    if not running:
        _external(ctx, "settings", "labelstudio.up", info.url, {"pid": info.pid})
    return info, token


def reveal_labelstudio_credentials(ctx: Ctx) -> dict[str, str]:
    """The local Label Studio's url, admin user, password and API token, for an admin who
    asked to see them (audited: who looked, never what they saw). ActionError when no local
    server was ever started in this workspace."""
    require(ctx.actor, "settings")
    creds = lss.local_credentials(ctx.ws)
    if creds is None:
        raise ActionError("no local Label Studio was started in this workspace yet: start it first")
    _external(ctx, "settings", "labelstudio.reveal", creds.get("url") or None, {})
    return creds


def stop_labelstudio(ctx: Ctx) -> bool:
    """Stop the workspace's local Label Studio; returns whether one was running."""
    require(ctx.actor, "settings")
    was = lss.down(ctx.ws)
    if was:
        _external(ctx, "settings", "labelstudio.down", None, {})
    return was
