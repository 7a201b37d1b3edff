"""Ingest job folders into DuckDB: the dashboard's ingestion loop (backend/ingest/loop.py), or
a CLI command that holds the database, calls `ingest_all`.

Each JSONL file is tailed from its stored byte offset. Only complete lines (up to the last
newline) are read, so a torn last line waits for the next pass; the rows and the new offset are
committed in one transaction, so ingesting twice adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.changes import CHANGES
from backend.jobs import queue
from backend.jobs.kinds import KINDS, load
from backend.jobs.status import JobStatusError, read_status
from backend.jsonl import read_new_lines
from backend.store import jobs as jobrows
from backend.store.db import Store
from backend.workspace import Workspace

BASE_FILES: dict[str, jobrows.Handler] = {
    "events.jsonl": jobrows.ingest_events,
    "metrics.jsonl": jobrows.ingest_metrics,
}


@dataclass
class IngestReport:
    jobs: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    moved: list[str] = field(default_factory=list)  # kinds of the jobs whose state moved
    errors: list[str] = field(default_factory=list)


def tail_file(
    store: Store, job_id: str, name: str, handler: jobrows.Handler, path, max_bytes: int = 1 << 28
) -> int:
    """Ingest the complete lines appended to `path` since the stored offset."""
    offset = jobrows.stored_offset(store, job_id, name)
    chunk = read_new_lines(path, offset, max_bytes)
    if not chunk:
        return 0

    def write(cur) -> int:
        n = handler(cur, job_id, chunk)
        jobrows.advance_offset(cur, job_id, name, offset + len(chunk), n)
        return n

    return store.write(write)


def ingest_job(store: Store, ws: Workspace, job_id: str, report: IngestReport) -> None:
    job_dir = ws.job_dir(job_id)
    try:
        status = queue.observe(ws, read_status(job_dir))
        kind, spec = queue.read_spec(job_dir)
    except JobStatusError as exc:
        report.errors.append(str(exc))
        jobrows.mark_unreadable(store, job_id, str(exc))
        return
    if jobrows.sync_job(store, status, spec, job_dir):
        report.moved.append(kind)
    report.jobs += 1
    files = dict(BASE_FILES)
    info = KINDS.get(kind)
    if info:
        files.update({name: load(dotted) for name, dotted in info.outputs.items()})
    for name, handler in files.items():
        path = job_dir / name
        try:
            while (n := tail_file(store, job_id, name, handler, path)) > 0:
                report.rows[name] = report.rows.get(name, 0) + n
        except Exception as exc:  # one bad file must not stop the others; retried next pass
            report.errors.append(f"{path}: cannot ingest ({type(exc).__name__}: {exc})")


def ingest_all(store: Store, ws: Workspace) -> IngestReport:
    """One pass over every job folder, then the review webhook inbox."""
    from backend.ingest.review_inbox import ingest_review_webhooks

    report = IngestReport()
    for job_id in queue.job_ids(ws):
        ingest_job(store, ws, job_id, report)
    ingest_review_webhooks(store, ws, report)
    CHANGES.after_ingest(list(report.rows), report.moved)
    return report
