"""The dashboard's ingestion loop: a background thread that records jobs whose process is gone,
starts a worker whenever jobs are queued and none runs, ingests job folders and the review
inbox into the database, applies the monitors' trigger rules to what arrived (finished drift
checks -> alerts and retraining plans, approved plans moved on; as the trusted system actor,
so pages never run them while they draw), then runs the steps that follow new data
(`after_tick`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from backend.action import Ctx
from backend.config import Settings
from backend.drift import actions as monitoring
from backend.ingest.jobs import IngestReport, ingest_all
from backend.jobs import queue, worker
from backend.store.db import Store
from backend.workspace import Workspace

log = logging.getLogger(__name__)


class Ingestor:
    """Ingest every `interval_s` seconds on a daemon thread; `tick()` does one pass now."""

    def __init__(
        self,
        store: Store,
        ws: Workspace,
        interval_s: float = 2.0,
        stale_after_s: float = 30.0,
        after_tick: Callable[[], object] | None = None,
        settings: Settings | None = None,
    ):
        self.store, self.ws, self.interval_s = store, ws, interval_s
        self.ctx = Ctx(store, ws, settings or Settings(), monitoring.SYSTEM)
        self.after_tick = after_tick
        self.stale_after_s = stale_after_s
        self.last_report: IngestReport | None = None
        self.last_error: str | None = None
        self.passes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> IngestReport:
        with self._lock:
            queue.reconcile(self.ws, self.stale_after_s)
            if queue.pending_count(self.ws):
                worker.ensure_worker(self.ws)
            report = ingest_all(self.store, self.ws)
            self.last_report, self.passes = report, self.passes + 1
            errors = []
            for step in (self.apply_rules, self.after_tick):
                try:  # one failing step never stops the other
                    if step is not None:
                        step()
                except Exception as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
            return report

    def apply_rules(self) -> list[dict]:
        """The monitors' trigger rules over what this pass ingested; returns fired alerts."""
        return monitoring.apply_rules(self.ctx)

    def start(self) -> Ingestor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ingestor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self.last_error = None
            except Exception as exc:  # keep ingesting; the Jobs page shows the error
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("ingestion pass failed")
            time.sleep(self.interval_s)
