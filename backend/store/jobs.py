"""Jobs as the dashboard lists them, mirrored from job folders by ingestion (backend/ingest):
the jobs table, job events, metrics rows, the audit of launches and cancels, and the byte
offsets that make ingestion idempotent. SQL and row mapping only."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.json as pj

from backend.store import metric_buckets, run_summary
from backend.store.db import Store

Handler = Callable[[duckdb.DuckDBPyConnection, str, bytes], int]


def list_jobs(store: Store, *, kind: str | None = None, limit: int = 500):
    """Newest first, as a DataFrame, with timings in seconds."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    return store.df(
        f"""SELECT id, kind, title, state, done, total, rate, error, attempt, created, started,
               finished, date_diff('millisecond', started, coalesce(finished, heartbeat)) / 1000.0
                   AS seconds, group_id
            FROM jobs {where} ORDER BY created DESC LIMIT ?""",
        [*params, limit],
    )


def job_events(store: Store, job_id: str, limit: int = 200) -> list[dict]:
    return store.rows(
        "SELECT t, level, message FROM job_events WHERE job_id = ? ORDER BY t DESC LIMIT ?",
        [job_id, limit],
    )


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


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None


def audit_job(cur: duckdb.DuckDBPyConnection, status: Any, job_dir) -> None:
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


def upsert_job(cur: duckdb.DuckDBPyConnection, status: Any, spec: dict) -> None:
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


def stored_offset(store: Store, key: str, name: str) -> int:
    """How far (bytes) the file `name` of job `key` has been ingested."""
    return (
        store.scalar(
            "SELECT byte_offset FROM ingest_offsets WHERE job_id = ? AND file = ?", [key, name]
        )
        or 0
    )


def advance_offset(cur, key: str, name: str, offset: int, lines: int) -> None:
    """Record `lines` more lines ingested, up to byte `offset` (in the rows' transaction)."""
    cur.execute(
        "INSERT INTO ingest_offsets VALUES (?, ?, ?, ?) ON CONFLICT (job_id, file) DO UPDATE"
        " SET byte_offset = excluded.byte_offset, lines = ingest_offsets.lines + ?",
        [key, name, offset, lines, lines],
    )


def reset_offset(store: Store, key: str, name: str) -> None:
    with store.transaction() as cur:
        cur.execute(
            "UPDATE ingest_offsets SET byte_offset = 0 WHERE job_id = ? AND file = ?", [key, name]
        )


def mark_unreadable(store: Store, job_id: str, error: str) -> None:
    """A job folder whose status or spec cannot be read: its row says why."""
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET error = ? WHERE id = ?", [error, job_id])


def sync_job(store: Store, status: Any, spec: dict, job_dir) -> bool:
    """Mirror a job's status into its row; audit a launch, resume or cancel once. Returns
    whether its state (or attempt) moved."""
    with store.transaction() as cur:
        before = cur.execute("SELECT state, attempt FROM jobs WHERE id = ?", [status.id]).fetchone()
        moved = before != (status.state.value, status.attempt)
        if moved:
            audit_job(cur, status, job_dir)
        upsert_job(cur, status, spec)
    return moved
