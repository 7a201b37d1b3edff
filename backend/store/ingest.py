"""Ingest job folders into DuckDB: the dashboard (or a CLI that holds the database) calls
`ingest_all` on a timer.

Each JSONL file is tailed from its stored byte offset. Only complete lines (up to the last
newline) are read, so a torn last line waits for the next pass; the rows and the new offset are
committed in one transaction, so ingesting twice adds nothing.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.json as pj

from backend.jobs import queue
from backend.jobs.kinds import KINDS, load
from backend.jobs.status import JobStatus, JobStatusError, read_status
from backend.store import metric_buckets, run_summary
from backend.store.db import Store
from backend.workspace import Workspace

Handler = Callable[[duckdb.DuckDBPyConnection, str, bytes], int]

METRIC_SCHEMA = pa.schema(
    [("step", pa.int64()), ("name", pa.string()), ("value", pa.float64()), ("t", pa.float64())]
)


def parse_lines(chunk: bytes) -> list[dict]:
    """Complete JSONL lines to dicts; blank lines are skipped."""
    return [json.loads(line) for line in chunk.splitlines() if line.strip()]


def ingest_metrics(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    table = pj.read_json(
        io.BytesIO(chunk),
        parse_options=pj.ParseOptions(
            explicit_schema=METRIC_SCHEMA, unexpected_field_behavior="ignore"
        ),
        read_options=pj.ReadOptions(block_size=max(1 << 20, min(len(chunk) + 1, 1 << 28))),
    )
    cur.register("_metrics_chunk", table)
    try:
        cur.execute(
            "INSERT INTO metrics SELECT ?, step, name, value, t FROM _metrics_chunk", [job_id]
        )
        run_summary.merge_metrics(cur, job_id, "_metrics_chunk")  # keep run_summary current
        metric_buckets.merge_metrics(cur, job_id, "_metrics_chunk")  # and the curves' buckets
    finally:
        cur.unregister("_metrics_chunk")
    return table.num_rows


def ingest_events(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    rows = parse_lines(chunk)
    cur.executemany(
        "INSERT INTO job_events VALUES (?, to_timestamp(?), ?, ?, ?)",
        [
            [
                job_id,
                r.get("t", 0.0),
                r.get("level", "info"),
                str(r.get("message", "")),
                json.dumps(r.get("data")) if r.get("data") is not None else None,
            ]
            for r in rows
        ],
    )
    return len(rows)


BASE_FILES: dict[str, Handler] = {"events.jsonl": ingest_events, "metrics.jsonl": ingest_metrics}


@dataclass
class IngestReport:
    jobs: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None


def audit_job(cur: duckdb.DuckDBPyConnection, status: JobStatus, job_dir) -> None:
    """Attribute a job's launch (or resume) and cancel in the audit log, once per attempt."""

    def once(action: str, actor: str) -> None:
        seen = cur.execute(
            "SELECT 1 FROM audit_log WHERE action = ? AND target = ? "
            "AND json_extract(detail, '$.attempt') = ?",
            [action, status.id, status.attempt],
        ).fetchone()
        if not seen:
            cur.execute(
                "INSERT INTO audit_log (t, actor, action, target, detail) "
                "VALUES (to_timestamp(?), ?, ?, ?, ?)",
                [
                    status.created if action == "job.launch" else time.time(),
                    actor,
                    action,
                    status.id,
                    json.dumps({"attempt": status.attempt, "kind": status.kind}),
                ],
            )

    once("job.launch" if status.attempt == 1 else "job.resume", status.submitted_by or "shell")
    cancel = job_dir / "cancel"
    if cancel.exists():
        try:
            who = json.loads(cancel.read_text()).get("by", "shell")
        except (OSError, ValueError, AttributeError):
            who = "shell"
        once("job.cancel", who)


def upsert_job(cur: duckdb.DuckDBPyConnection, status: JobStatus, spec: dict) -> None:
    cur.execute(
        "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            status.id,
            status.kind,
            status.title,
            json.dumps(spec),
            status.state.value,
            status.done,
            status.total,
            status.rate,
            status.eta_s,
            status.error,
            status.attempt,
            _ts(status.created),
            _ts(status.started),
            _ts(status.finished),
            _ts(status.heartbeat),
            status.group_id,
        ],
    )
    run_summary.sync_job(cur, status.id)  # a train job's summary row follows its job row


def tail_file(
    store: Store, job_id: str, name: str, handler: Handler, path, max_bytes: int = 1 << 28
) -> int:
    """Ingest the complete lines appended to `path` since the stored offset."""
    offset = (
        store.scalar(
            "SELECT byte_offset FROM ingest_offsets WHERE job_id = ? AND file = ?", [job_id, name]
        )
        or 0
    )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size <= offset:
        return 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(min(size - offset, max_bytes))
    end = data.rfind(b"\n")
    if end < 0:
        return 0  # only a torn line so far
    chunk = data[: end + 1]
    with store.transaction() as cur:
        n = handler(cur, job_id, chunk)
        cur.execute(
            "INSERT INTO ingest_offsets VALUES (?, ?, ?, ?) ON CONFLICT (job_id, file) DO UPDATE"
            " SET byte_offset = excluded.byte_offset, lines = ingest_offsets.lines + ?",
            [job_id, name, offset + len(chunk), n, n],
        )
    return n


def ingest_job(store: Store, ws: Workspace, job_id: str, report: IngestReport) -> None:
    job_dir = ws.job_dir(job_id)
    try:
        status = queue.reconcile_one(ws, read_status(job_dir))
        kind, spec = queue.read_spec(job_dir)
    except JobStatusError as exc:
        report.errors.append(str(exc))
        cur = store.cursor()
        cur.execute("UPDATE jobs SET error = ? WHERE id = ?", [str(exc), job_id])
        cur.close()
        return
    with store.transaction() as cur:
        before = cur.execute("SELECT state, attempt FROM jobs WHERE id = ?", [job_id]).fetchone()
        if before != (status.state.value, status.attempt):
            audit_job(cur, status, job_dir)
        upsert_job(cur, status, spec)
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
    report = IngestReport()
    for job_id in queue.job_ids(ws):
        ingest_job(store, ws, job_id, report)
    ingest_review_webhooks(store, ws, report)
    return report


def ingest_review_webhooks(store: Store, ws: Workspace, report: IngestReport) -> None:
    """Label Studio annotations the webhook receiver put in its inbox (review/webhooks/)."""
    from backend.review.webhook import inbox_path

    if not inbox_path(ws).exists():
        return
    from backend.store.review_inbox import ingest_workspace_inbox

    try:
        inbox = ingest_workspace_inbox(store, ws)
    except Exception as exc:  # retried next pass: the offset moves only after storing
        report.errors.append(f"{inbox_path(ws)}: cannot ingest ({type(exc).__name__}: {exc})")
        return
    if inbox.lines:
        report.rows["review/webhooks/inbox.jsonl"] = inbox.lines
    report.errors += inbox.errors
