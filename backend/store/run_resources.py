"""`run_resources`: a run's memory estimate beside its measured peak, tokens/s and MFU (one row
per run, written by the train job's resources.jsonl; a resumed run's later row replaces it)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines

COLUMNS = (
    "device",
    "estimate_bytes",
    "estimate",
    "peak_bytes",
    "peak_kind",
    "error",
    "tokens_per_s",
    "mfu",
    "t",
)


def ingest_resources(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """resources.jsonl: one row per training attempt; the latest wins."""
    rows = parse_lines(chunk)
    for r in rows:
        values = [json.dumps(r.get(c)) if c == "estimate" else r.get(c) for c in COLUMNS]
        cur.execute(
            f"INSERT OR REPLACE INTO run_resources (run_id, {', '.join(COLUMNS)}) "
            f"VALUES (?, {', '.join('?' * len(COLUMNS))})",
            [r.get("run_id") or job_id, *values],
        )
    return len(rows)


def get_resources(store: Store, run_id: str) -> dict[str, Any] | None:
    """A run's resources row, the estimate's parts as a dict; None before training ended."""
    rows = store.rows("SELECT * FROM run_resources WHERE run_id = ?", [run_id])
    if not rows:
        return None
    row = dict(rows[0])
    if isinstance(row.get("estimate"), str):
        row["estimate"] = json.loads(row["estimate"])
    return row
