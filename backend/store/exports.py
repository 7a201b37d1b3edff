"""Exports of training runs in DuckDB: the ingest handler of the `export` job's
`export.jsonl`, and the query the run's page and `ftstudio runs show` use.

An export is shippable only when `verified` is true: every check passed (backend/export/verify.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines

_JSON = ("checks", "commands", "wall_s")
_COLUMNS = ("run_id", "format", "quant", "path", "size_bytes", "sha256", "verified", "error")


def ingest_exports(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """export.jsonl: one row per export; a row written again (a resumed job) replaces it."""
    rows = parse_lines(chunk)
    for r in rows:
        created = datetime.fromtimestamp(r["t"], UTC).replace(tzinfo=None) if r.get("t") else None
        cur.execute(
            f"INSERT OR REPLACE INTO exports (id, {', '.join(_COLUMNS)}, {', '.join(_JSON)},"
            f" created) VALUES ({', '.join('?' * (len(_COLUMNS) + len(_JSON) + 2))})",
            [
                r.get("id") or job_id,
                *(r.get(c) if c != "verified" else bool(r.get(c)) for c in _COLUMNS),
                *(json.dumps(r.get(c)) for c in _JSON),
                created,
            ],
        )
    return len(rows)


def list_exports(store: Store, run_id: str | None = None) -> list[dict[str, Any]]:
    """A run's exports (every run's without `run_id`), newest first, JSON fields parsed."""
    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    rows = store.rows(f"SELECT * FROM exports {where} ORDER BY created DESC, id DESC", params)
    for r in rows:
        for c in _JSON:
            r[c] = json.loads(r[c]) if r[c] else None
        if isinstance(r.get("created"), datetime):
            r["created"] = r["created"].isoformat()
    return rows
