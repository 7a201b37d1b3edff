"""A Label Studio webhook receiver: annotations arrive as they are made, without a manual pull.

The receiver is a small stdlib HTTP server on 127.0.0.1 that NEVER opens the database (it may
run as its own process beside the dashboard). Each accepted annotation becomes ONE complete JSON
line in `<workspace>/review/webhooks/inbox.jsonl`, written whole under a lock with flush + fsync,
so a reader sees whole lines and at most a torn last line (which it leaves for the next pass).
The process that owns the store tails the inbox by byte offset (backend/ingest/review_inbox.py)
and upserts with the same parsing and `upsert_reviews` as a pull, so a delivery followed by a
pull, the reverse, or a repeated delivery stores each annotation once.

Label Studio proves who it is with a shared secret sent as a custom header (webhooks accept
`headers` at registration); a request without it gets 403. The secret is kept in a 0600 file
beside the inbox so a restarted receiver keeps matching the registered webhook.

Limits, so a slow or hostile client cannot tie the receiver up: a Content-Length that is missing
(411), negative or not a number (400), or over MAX_BODY (413) is refused before anything is read;
every socket times out after TIMEOUT_S; at most MAX_THREADS requests are handled at once (the
next waits up to BUSY_WAIT_S for a free slot, then gets 503). One inbox line is never longer
than MAX_LINE, the size the ingest reads per pass at least, so no single delivery can stall it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from backend.workspace import Workspace

log = logging.getLogger(__name__)

HEADER = "X-FTStudio-Webhook-Secret"
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED")
MAX_BODY = 32 << 20  # bytes one request may carry
MAX_LINE = MAX_BODY  # bytes one inbox line may take: the ingest reads at least this per pass
TIMEOUT_S = 10.0  # a socket idle this long (headers or body not arriving) is closed
MAX_THREADS = 16  # requests handled at once; more wait for a slot, then get 503
BUSY_WAIT_S = 2.0
_LENGTH = re.compile(r"[0-9]{1,15}")


def webhook_dir(ws: Workspace) -> Path:
    return ws.root / "review" / "webhooks"


def inbox_path(ws: Workspace) -> Path:
    return webhook_dir(ws) / "inbox.jsonl"


def shared_secret(ws: Workspace) -> str:
    """The receiver's secret, made once per workspace and kept in a 0600 file."""
    path = webhook_dir(ws) / "secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_name(f".secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return value


class PayloadError(ValueError):
    """The request body is not a Label Studio annotation webhook we can store."""


def inbox_lines(payload: Any, received: float, reviewer_of: Callable[[Any], str | None]) -> list:
    """The inbox records for one webhook body; PayloadError names what is wrong."""
    if not isinstance(payload, dict):
        raise PayloadError(f"the body must be a JSON object, not {type(payload).__name__}")
    action = payload.get("action")
    if action not in ACTIONS:
        raise PayloadError(f"unknown action {action!r}: this receiver takes {', '.join(ACTIONS)}")
    project = payload.get("project")
    project_id = project.get("id") if isinstance(project, dict) else project
    if action == "ANNOTATIONS_DELETED":  # ids only: the tasks may be gone with them
        gone = payload.get("annotations")
        if not isinstance(gone, list) or not all(isinstance(a, dict) and "id" in a for a in gone):
            raise PayloadError("ANNOTATIONS_DELETED needs `annotations`: a list of {id}")
        if not isinstance(project_id, int) or isinstance(project_id, bool):
            raise PayloadError(
                "ANNOTATIONS_DELETED needs `project` (its id): deletions are "
                "checked against the batch's project"
            )
        return [
            {
                "received": received,
                "action": action,
                "annotation_id": a["id"],
                "project_id": project_id,
            }
            for a in gone
        ]
    anns, tasks = payload.get("annotation"), payload.get("task")
    if action == "ANNOTATIONS_CREATED":
        if not isinstance(anns, list):
            raise PayloadError("ANNOTATIONS_CREATED needs `annotation` to be a list")
        task_list = tasks if isinstance(tasks, list) else [tasks] if tasks else []
    else:
        if not isinstance(anns, dict):
            raise PayloadError(f"{action} needs an `annotation` object (send_payload=True)")
        anns, task_list = [anns], [tasks] if tasks else []
    by_id = {t.get("id"): t for t in task_list if isinstance(t, dict)}
    records = []
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict) or "id" not in ann:
            raise PayloadError(f"annotation #{i} has no `id`")
        task_ref = ann.get("task")
        task = by_id.get(task_ref) or (task_list[i] if len(task_list) == len(anns) else None)
        data = (task or {}).get("data") or {}
        if not data.get("batch_id") or not data.get("example_id"):
            raise PayloadError(
                f"annotation {ann['id']}: its task carries no batch_id/example_id "
                "(not a task pushed by the studio, or the payload lacks `task`)"
            )
        records.append(
            {
                "received": received,
                "action": action,
                "annotation_id": ann["id"],
                "project_id": project_id or (task or {}).get("project"),
                "task_id": task_ref if not isinstance(task_ref, dict) else task_ref.get("id"),
                "batch_id": data["batch_id"],
                "example_id": data["example_id"],
                "reviewer": reviewer_of(ann.get("completed_by")),
                "annotation": ann,
            }
        )
    return records


def inbox_line(record: dict) -> bytes:
    """One record as its inbox line (UTF-8 as is, so a line is about as long as its body)."""
    try:
        return json.dumps(record, ensure_ascii=False).encode() + b"\n"
    except UnicodeEncodeError:  # a lone surrogate: escaped, as JSON allows
        return json.dumps(record).encode() + b"\n"


class Inbox:
    """Appends whole JSON lines with flush + fsync under a thread lock and a file lock."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[dict]) -> None:
        self.append_lines([inbox_line(r) for r in records])

    def append_lines(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        with self._lock, open(self.path, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # and against a second receiver process
            try:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def read_records(chunk: bytes, where: str = "inbox") -> tuple[list[dict], list[str]]:
    """Complete inbox lines to records; a bad line is an error string, never a stop."""
    records, errors = [], []
    for n, line in enumerate(chunk.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            deleted = isinstance(rec, dict) and rec.get("action") == "ANNOTATIONS_DELETED"
            if not isinstance(rec, dict) or not ("annotation" in rec or deleted):
                raise ValueError("not an inbox record (no `annotation`)")
            records.append(rec)
        except ValueError as exc:
            errors.append(f"{where}: line {n} of this pass is unreadable ({exc}); skipped")
    return records, errors


def user_emails(url: str, token: str) -> Callable[[Any], str | None]:
    """`completed_by` id -> email, as a pull names reviewers; users are listed on a miss."""
    from backend.integrations.labelstudio import client as lsc

    cache: dict[int, str] = {}
    lock = threading.Lock()

    def reviewer_of(completed_by: Any) -> str | None:
        if isinstance(completed_by, dict):
            return lsc.reviewer_name(completed_by, {})
        with lock:
            if completed_by not in cache:
                try:
                    users = list(lsc.client(url, token, timeout=10).users.list())
                    cache.update({u.id: u.email for u in users})
                except Exception as exc:  # the ingest side falls back to user-<id>
                    log.warning("cannot list Label Studio users: %s", exc)
            return cache.get(completed_by)

    return reviewer_of


def _handler(inbox: Inbox, secret: str, reviewer_of: Callable[[Any], str | None], timeout_s: float):
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        server_version = "ftstudio-webhook/1"
        timeout = timeout_s  # StreamRequestHandler puts it on the socket: reads never hang

        def _answer(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # a liveness probe, no secrets
            self._answer(200, {"ok": True, "accepts": list(ACTIONS)})

        def _length(self) -> int | None:
            """The body's length, or None after answering why it cannot be read."""
            given = self.headers.get_all("Content-Length") or []
            if not given:
                self._answer(411, {"error": "a Content-Length header is required"})
                return None
            if len(set(given)) > 1 or not _LENGTH.fullmatch(given[0].strip()):
                self._answer(
                    400, {"error": "Content-Length must be one whole number of bytes, 0 or more"}
                )
                return None
            length = int(given[0])
            if length > MAX_BODY:
                self._answer(413, {"error": f"body over {MAX_BODY} bytes"})
                return None
            return length

        def do_POST(self) -> None:
            self.close_connection = True  # one request per connection: nothing left unread
            if not secrets.compare_digest(self.headers.get(HEADER, ""), secret):
                self._answer(403, {"error": f"missing or wrong {HEADER} header"})
                return
            length = self._length()
            if length is None:
                return
            try:
                body = self.rfile.read(length)
            except (TimeoutError, OSError):
                return  # the client stopped sending: the socket timed out, drop it
            if len(body) < length:
                self._answer(400, {"error": f"the body ended after {len(body)} of {length} bytes"})
                return
            try:
                payload = json.loads(body)
            except ValueError as exc:
                self._answer(400, {"error": f"the body is not JSON: {exc}"})
                return
            try:
                records = inbox_lines(payload, time.time(), reviewer_of)
            except PayloadError as exc:
                self._answer(400, {"error": str(exc)})
                return
            lines = [inbox_line(r) for r in records]
            if any(len(line) > MAX_LINE for line in lines):
                self._answer(413, {"error": f"an annotation over {MAX_LINE} bytes"})
                return
            inbox.append_lines(lines)
            self._answer(200, {"stored": len(records)})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("webhook %s " + fmt, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    """A threading server with at most `max_threads` handler threads: a request beyond them
    waits up to BUSY_WAIT_S for a slot (the accept loop waits with it, further connections
    queue in the kernel), then is answered 503 and closed."""

    daemon_threads = True
    block_on_close = False  # stopping never waits on a client that went quiet

    def __init__(self, address, handler, max_threads: int):
        self.slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(timeout=BUSY_WAIT_S):
            self._busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _busy(self, request: socket.socket) -> None:
        body = json.dumps({"error": "the receiver is busy; retry shortly"}).encode()
        head = (
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        )
        try:
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        except OSError:
            pass
        self.shutdown_request(request)


class Receiver:
    """The receiver on 127.0.0.1:`port` (0: a free one) on a daemon thread; `url` once started.
    `timeout_s` and `max_threads` bound what slow or many clients can hold (see the module)."""

    def __init__(
        self,
        ws: Workspace,
        port: int = 0,
        *,
        secret: str | None = None,
        reviewer_of: Callable[[Any], str | None] | None = None,
        timeout_s: float = TIMEOUT_S,
        max_threads: int = MAX_THREADS,
    ):
        self.inbox = Inbox(inbox_path(ws))
        self.secret = secret or shared_secret(ws)
        handler = _handler(self.inbox, self.secret, reviewer_of or (lambda _u: None), timeout_s)
        self.server = _Server(("127.0.0.1", port), handler, max_threads)
        self._thread: threading.Thread | None = None
        self.registered: set[int] = set()  # projects pointed at this receiver (by the actions)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> Receiver:
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name="ls-webhook", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register(url: str, token: str, project_id: int, receiver_url: str, secret: str) -> dict:
    """Point the project's webhook at the receiver, once: an existing one for the same url is
    updated (actions, secret) rather than duplicated; one left by an earlier receiver of ours
    (our header, another url) is removed so Label Studio does not post into the void."""
    from backend.integrations.labelstudio import client as lsc

    ls = lsc.client(url, token)
    hooks = lsc.call(
        "listing webhooks", url, lambda: list(ls.webhooks.list(project=str(project_id)))
    )
    hooks = [h for h in hooks if h.project == project_id]
    wanted = dict(
        actions=list(ACTIONS),
        headers={HEADER: secret},
        send_payload=True,
        send_for_all_actions=False,
        is_active=True,
    )
    kept, removed = None, 0
    for h in hooks:
        ours = isinstance(h.headers, dict) and HEADER in h.headers
        if h.url == receiver_url and kept is None:
            kept = h
        elif ours or h.url == receiver_url:
            lsc.call("removing an old webhook", url, lambda h=h: ls.webhooks.delete(h.id))
            removed += 1
    if kept is None:
        made = lsc.call(
            "registering the webhook",
            url,
            lambda: ls.webhooks.create(project=project_id, url=receiver_url, **wanted),
        )
        return {
            "project_id": project_id,
            "webhook_id": made.id,
            "created": True,
            "removed": removed,
        }
    if (
        sorted(kept.actions or []) != sorted(ACTIONS)
        or kept.headers != {HEADER: secret}
        or not kept.send_payload
        or not kept.is_active
        or kept.send_for_all_actions
    ):
        lsc.call("updating the webhook", url, lambda: ls.webhooks.update(kept.id, **wanted))
    return {"project_id": project_id, "webhook_id": kept.id, "created": False, "removed": removed}


def unregister(url: str, token: str, project_id: int, receiver_url: str | None = None) -> int:
    """Remove the project's webhooks that post to `receiver_url`, or, without one, every
    webhook a receiver of this studio registered there (our header); returns how many."""
    from backend.integrations.labelstudio import client as lsc

    ls = lsc.client(url, token)
    hooks = lsc.call(
        "listing webhooks", url, lambda: list(ls.webhooks.list(project=str(project_id)))
    )
    gone = [
        h
        for h in hooks
        if h.project == project_id
        and (
            h.url == receiver_url
            if receiver_url
            else isinstance(h.headers, dict) and HEADER in h.headers
        )
    ]
    for h in gone:
        lsc.call("removing the webhook", url, lambda h=h: ls.webhooks.delete(h.id))
    return len(gone)
