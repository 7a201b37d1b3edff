"""Monitoring without anyone at the page: the dashboard's ingestion thread calls
`FolderWatch.tick` after each pass. Every `interval_s` it reads the monitors' watched folders
(a file is read again only when its size or modification time changed), queues a drift check
for each monitor whose unchecked prompts reached its `min_window`, and applies the trigger
rules, so alerts and retraining plans appear (and approved plans move on) on their own.

Checks it starts are attributed to `folder-watch` in the jobs and the audit log.
"""

from __future__ import annotations

import logging
import threading
import time

from backend.auth import Actor
from backend.drift import checks, triggers
from backend.store import monitoring as mon
from backend.store.db import Store
from backend.workspace import Workspace

log = logging.getLogger(__name__)

WATCHER = Actor("folder-watch", "lead")


class FolderWatch:
    """Watched folders -> batches -> drift checks -> alerts and plans, every `interval_s`."""

    def __init__(self, store: Store, ws: Workspace, interval_s: float = 30.0):
        self.store, self.ws, self.interval_s = store, ws, interval_s
        self.seen: dict = {}  # (monitor id, path) -> (size, mtime_ns) of files already read
        self.last: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        return self.interval_s > 0 and (
            self.last is None or time.monotonic() - self.last >= self.interval_s
        )

    def tick(self, *, force: bool = False) -> dict | None:
        """One watch pass when due (or `force`): {"batches", "errors", "checks", "alerts"}."""
        if not (force or self.due()):
            return None
        with self._lock:
            self.last = time.monotonic()
            result: dict = {"batches": 0, "errors": [], "checks": [], "alerts": 0}
            if not any(m["watch_dir"] for m in mon.list_monitors(self.store)):
                return result
            new, errors = checks.scan_watched(self.store, self.seen)
            result["batches"], result["errors"] = len(new), errors
            for monitor_id in dict.fromkeys(b["monitor_id"] for b in new):
                try:
                    sub = checks.submit_check(self.store, self.ws, monitor_id, actor=WATCHER)
                except (ValueError, OSError) as exc:
                    result["errors"].append(f"monitor {monitor_id}: no check ({exc})")
                    continue
                if "check_id" in sub:
                    result["checks"].append(sub["check_id"])
            result["alerts"] = len(triggers.evaluate(self.store, self.ws))
            triggers.advance(self.store, self.ws)
            for message in result["errors"]:
                log.warning("folder watch: %s", message)
            return result
