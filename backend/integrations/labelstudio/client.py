"""label-studio-sdk 2.x behind a small surface: `client`, `call` (every request, its errors as
`LabelStudioError`), `create_project` (a project with its tasks), `full_export`,
`export_with_users`, `reviewer_name`, and `connection` (which Label Studio a page or command
talks to: settings first, else the workspace's local server).

The token is passed in by the caller at the point of use and never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or answered with an error; nothing was changed."""


def client(url: str, token: str, timeout: float = 30.0):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url.rstrip("/"), api_key=token, timeout=timeout)


def call(what: str, url: str, fn: Callable[[], Any]) -> Any:
    """Run one request; a transport error or an HTTP error becomes `LabelStudioError`."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn()
    except httpx.HTTPError as exc:
        raise LabelStudioError(
            f"{what}: Label Studio at {url} did not answer "
            f"({type(exc).__name__}: {exc}). Is it running? "
            "`ftstudio labelstudio status` tells. Nothing was changed."
        ) from exc
    except ApiError as exc:
        raise LabelStudioError(
            f"{what}: Label Studio at {url} answered HTTP {exc.status_code}: "
            f"{str(exc.body)[:300]}. Nothing was changed."
        ) from exc


def task_link(url: str, project_id: int, task_id: int) -> str:
    return f"{url.rstrip('/')}/projects/{project_id}/data?task={task_id}"


def reviewer_name(completed_by: Any, emails: dict[int, str]) -> str:
    """Who made an annotation: the e-mail the export or the users list gives, else user-<id>."""
    if isinstance(completed_by, dict):
        return completed_by.get("email") or str(completed_by.get("id"))
    return emails.get(completed_by, f"user-{completed_by}")


def full_export(
    ls: Any, url: str, project_id: int, stage: Callable[[str], None] = lambda _s: None
) -> list[dict]:
    """A project's annotated tasks from the full JSON export (not JSON_MIN: it keeps each
    annotation's id, author and times); LabelStudioError when it cannot be had or read."""
    stage("export")
    raw = call(
        "downloading the export",
        url,
        lambda: b"".join(
            ls.projects.exports.download_sync(
                project_id, export_type="JSON", download_all_tasks=False
            )
        ),
    )
    stage("parse")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise LabelStudioError(
            f"the export from {url} is not JSON ({exc}); nothing was changed"
        ) from exc


def create_project(
    url: str, token: str, tasks: list[dict], *, key: str, **options: Any
) -> tuple[int, dict[Any, int]]:
    """Create a project (`options`: title, label_config, sampling...) and import `tasks`;
    returns its id and each task's id by its `data[key]`."""
    ls = client(url, token)
    project = call("creating the project", url, lambda: ls.projects.create(**options))
    call("importing tasks", url, lambda: ls.projects.import_tasks(project.id, request=tasks))
    listed = call("listing tasks", url, lambda: list(ls.tasks.list(project=project.id)))
    return project.id, {t.data[key]: t.id for t in listed}


def export_with_users(
    url: str, token: str, project_id: int, stage: Callable[[str], None] = lambda _s: None
) -> tuple[list[dict], dict[int, str]]:
    """A project's full export and its users' e-mails by id (to name annotators)."""
    ls = client(url, token)
    stage("users")
    users = call("listing users", url, lambda: list(ls.users.list()))
    return full_export(ls, url, project_id, stage), {u.id: u.email for u in users}


def connection(settings: Any, ws: Any) -> tuple[str | None, str | None]:
    """Label Studio url and token: settings (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY) first,
    else the workspace's local server; (None, None) when neither. Read at the point of use,
    never kept."""
    from backend.config import secret
    from backend.integrations.labelstudio import server

    if settings.label_studio_url and settings.label_studio_token:
        return settings.label_studio_url, secret(settings.label_studio_token)
    info = server.read_info(ws)
    return (info.url, server.token(ws)) if info else (None, None)
