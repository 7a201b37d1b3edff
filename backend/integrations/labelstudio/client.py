"""label-studio-sdk 2.x behind a small surface: `client`, `call` (every request, its errors as
`LabelStudioError`), `create_project` (a project with its tasks), `iter_export` / `full_export`,
`export_with_users`, `reviewer_name`, and `connection` (which Label Studio a page or command
talks to: settings first, else the workspace's local server).

An export is streamed to an anonymous temporary file as it downloads and its tasks are parsed
from there one at a time, so a large project is never held as bytes and as objects at once.
The token is passed in by the caller at the point of use and never stored.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any


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


def iter_json_array(text: IO[str], chunk: int = 1 << 18) -> Iterator[Any]:
    """The items of the JSON array in `text`, decoded one at a time (memory: one item and one
    chunk); ValueError when it is not a JSON array.

    >>> list(iter_json_array(io.StringIO(' [ {"a": [1, 2]}, 3 ,"x"] '), chunk=2))
    [{'a': [1, 2]}, 3, 'x']
    """
    decoder = json.JSONDecoder()
    buf, pos, eof = "", 0, False

    def fill() -> bool:
        nonlocal buf, pos, eof
        part = text.read(chunk)
        buf, pos = buf[pos:] + part, 0
        eof = not part
        return bool(part)

    def peek() -> str:  # the next character that is not white space; "" at the end
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    if peek() != "[":
        raise ValueError("not a JSON array")
    pos += 1
    first = True
    while (c := peek()) != "]":
        if not first:
            if c != ",":
                raise ValueError(f"expected ',' or ']' between items, found {c!r}")
            pos += 1
            peek()
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
            except ValueError:
                if fill():
                    continue
                raise
            if end == len(buf) and fill():  # a number may go on in the next chunk
                continue
            break
        pos, first = end, False
        yield item
    pos += 1
    if peek():
        raise ValueError("data after the end of the array")


def download_export(
    ls: Any, url: str, project_id: int, stage: Callable[[str], None] = lambda _s: None
) -> IO[bytes]:
    """A project's full JSON export (not JSON_MIN: it keeps each annotation's id, author and
    times) streamed into an anonymous temporary file, returned rewound."""
    stage("export")
    spool = tempfile.TemporaryFile()  # 0600 and already unlinked: gone when closed

    def fetch() -> None:
        for part in ls.projects.exports.download_sync(
            project_id, export_type="JSON", download_all_tasks=False
        ):
            spool.write(part)

    try:
        call("downloading the export", url, fetch)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def iter_export(
    ls: Any, url: str, project_id: int, stage: Callable[[str], None] = lambda _s: None
) -> Iterator[dict]:
    """A project's annotated tasks, one at a time, from its full export: downloaded whole
    first (so a server that dies mid-download fails here, before anything is parsed), then
    parsed from disk. LabelStudioError when it cannot be had or read."""
    spool = download_export(ls, url, project_id, stage)

    def tasks() -> Iterator[dict]:
        with spool, io.TextIOWrapper(spool, encoding="utf-8", errors="strict") as text:
            stage("parse")
            try:
                yield from iter_json_array(text)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise LabelStudioError(
                    f"the export from {url} is not JSON ({exc}); nothing was changed"
                ) from exc

    return tasks()


def full_export(
    ls: Any, url: str, project_id: int, stage: Callable[[str], None] = lambda _s: None
) -> list[dict]:
    """A project's annotated tasks as a list (parsed from the streamed download, never held
    as bytes beside it); LabelStudioError when it cannot be had or read."""
    return list(iter_export(ls, url, project_id, stage))


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
) -> tuple[Iterator[dict], dict[int, str]]:
    """A project's full export (its tasks one at a time, see `iter_export`) and its users'
    e-mails by id (to name annotators)."""
    ls = client(url, token)
    stage("users")
    users = call("listing users", url, lambda: list(ls.users.list()))
    return iter_export(ls, url, project_id, stage), {u.id: u.email for u in users}


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
