"""Watched folders. `scan_folder` / `scan_watched` ingest the JSONL/CSV files of a folder, one
`actions.ingest` per file (the CLI, the Monitoring page's "Check every monitor now").

Monitoring without anyone at the page: the dashboard's ingestion thread calls
`FolderWatch.tick` after each pass. Every `interval_s` it reads the monitors' watched folders
(a file is read again only when its size or modification time changed) and queues a drift
check for each monitor whose unchecked prompts reached its `min_window`. The trigger rules that
turn finished checks into alerts and plans run in the ingestion loop itself
(backend/ingest/loop.py).

Batches and checks it adds go through the monitoring actions as `folder-watch`, so the jobs
and the audit log name it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from backend.action import AlreadyDone, Ctx
from backend.auth import Actor, require
from backend.config import Settings
from backend.drift import actions, checks
from backend.store import monitoring as mon
from backend.store.db import Store
from backend.workspace import Workspace

log = logging.getLogger(__name__)

WATCHER = Actor("folder-watch", "lead")


def scan_folder(
    ctx: Ctx, monitor: str, folder: Path, seen: dict | None = None
) -> tuple[list[dict], list[str]]:
    """Ingest every JSONL/CSV file in `folder` not seen before (by content); returns the new
    batches and one message per file that failed. With `seen` (kept by the caller between
    scans), a file whose size and modification time are unchanged is not read again. Each
    file is one `actions.ingest`; a role that may not ingest is refused before any is read."""
    require(ctx.actor, "edit_data")
    folder = Path(folder)
    if not folder.is_dir():
        return [], [f"watched folder {folder} does not exist"]
    new, errors = [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in checks.SUFFIXES or path.name[0] == ".":
            continue
        try:
            st = path.stat()
        except OSError:
            continue  # gone between the listing and now
        key, stamp = (monitor, str(path)), (st.st_size, st.st_mtime_ns)
        if seen is not None and seen.get(key) == stamp:
            continue
        try:
            new.append(actions.ingest_file(ctx, monitor, path, source="folder"))
        except AlreadyDone:
            pass
        except ValueError as exc:
            errors.append(str(exc))
        if seen is not None:
            seen[key] = stamp  # a bad file is reported once, then again when it changes
    return new, errors


def scan_watched(ctx: Ctx, seen: dict | None = None) -> tuple[list[dict], list[str]]:
    """`scan_folder` over every monitor that watches a folder."""
    new, errors = [], []
    for m in mon.list_monitors(ctx.store):
        if m["watch_dir"]:
            b, e = scan_folder(ctx, m["id"], Path(m["watch_dir"]), seen)
            new += b
            errors += e
    return new, errors


class FolderWatch:
    """Watched folders -> batches -> drift checks, every `interval_s`."""

    def __init__(
        self,
        store: Store,
        ws: Workspace,
        interval_s: float = 30.0,
        settings: Settings | None = None,
    ):
        self.store, self.ws, self.interval_s = store, ws, interval_s
        self.ctx = Ctx(store, ws, settings or Settings(), WATCHER)
        self.seen: dict = {}  # (monitor id, path) -> (size, mtime_ns) of files already read
        self.last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        return self.interval_s > 0 and (
            self.last is None or time.monotonic() - self.last >= self.interval_s
        )

    def tick(self, *, force: bool = False) -> dict | None:
        """One watch pass when due (or `force`): {"batches", "errors", "checks"}."""
        if not (force or self.due()):
            return None
        with self._lock:
            self.last = time.monotonic()
            result: dict = {"batches": 0, "errors": [], "checks": []}
            if not any(m["watch_dir"] for m in mon.list_monitors(self.store)):
                return result
            new, errors = scan_watched(self.ctx, self.seen)
            result["batches"], result["errors"] = len(new), errors
            for monitor_id in dict.fromkeys(b["monitor_id"] for b in new):
                try:  # the ingestion loop starts a worker for what is queued
                    sub = actions.run_check(self.ctx, monitor_id, start_worker=False)
                except AlreadyDone:
                    continue
                except (ValueError, OSError) as exc:
                    result["errors"].append(f"monitor {monitor_id}: no check ({exc})")
                    continue
                if "check_id" in sub:
                    result["checks"].append(sub["check_id"])
            for message in result["errors"]:
                log.warning("folder watch: %s", message)
            return result
