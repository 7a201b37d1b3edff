"""Production data of the monitors: batches of prompts (one per file, with its time window)
and their records. A batch belongs to the drift check that consumed it (`check_id`), set by
`monitoring.record_check`."""

from __future__ import annotations

import hashlib
from typing import Any

from backend.store.db import Store
from backend.store.monitoring import now


class BatchExists(ValueError):
    """The same file was already ingested for this monitor."""


def add_batch(
    store: Store,
    monitor_id: str,
    records: list[dict[str, Any]],
    *,
    source: str,
    name: str | None,
    content_hash: str,
) -> dict:
    """Store one batch of production records ({prompt, response?, t?}) in one transaction.
    Its id follows from the monitor and the file's content, so two transactions storing the
    same file cannot both commit."""
    if not records:
        raise ValueError(f"{name or 'the batch'} has no prompts")
    received = now()
    times = [r["t"] for r in records if r.get("t") is not None]
    start, end = (min(times), max(times)) if times else (received, received)
    with store.transaction() as cur:
        if find_batch(store, monitor_id, content_hash) is not None:
            raise BatchExists(f"{name or 'this batch'} was already ingested for this monitor")
        bid = "pb-" + hashlib.sha256(f"{monitor_id}:{content_hash}".encode()).hexdigest()[:12]
        cur.execute(
            "INSERT INTO production_batches VALUES (?,?,?,?,?,?,?,?,?,?,NULL)",
            [
                bid,
                monitor_id,
                source,
                name,
                content_hash,
                len(records),
                sum(1 for r in records if r.get("response")),
                start,
                end,
                received,
            ],
        )
        cur.executemany(
            "INSERT INTO production_records VALUES (?,?,?,?,?)",
            [[bid, i, r["prompt"], r.get("response"), r.get("t")] for i, r in enumerate(records)],
        )
        return store.rows("SELECT * FROM production_batches WHERE id = ?", [bid])[0]


def find_batch(store: Store, monitor_id: str, content_hash: str) -> dict | None:
    """The batch of this monitor stored from a file with this content, if any."""
    rows = store.rows(
        "SELECT * FROM production_batches WHERE monitor_id = ? AND content_hash = ?",
        [monitor_id, content_hash],
    )
    return rows[0] if rows else None


def batches(store: Store, monitor_id: str | None = None) -> list[dict]:
    where, params = ("WHERE monitor_id = ?", [monitor_id]) if monitor_id else ("", [])
    return store.rows(f"SELECT * FROM production_batches {where} ORDER BY received", params)


def unchecked_batches(store: Store, monitor_id: str) -> list[dict]:
    return store.rows(
        "SELECT * FROM production_batches WHERE monitor_id = ? AND check_id IS NULL"
        " ORDER BY window_start",
        [monitor_id],
    )


def batch_records(store: Store, batch_ids: list[str]) -> list[dict]:
    if not batch_ids:
        return []
    return store.rows(
        "SELECT * FROM production_records WHERE list_contains(?, batch_id)"
        " ORDER BY batch_id, position",
        [batch_ids],
    )


def answered_records(store: Store, check_id: str) -> list[dict]:
    """The records of a check's window that came with a response, in arrival order."""
    return store.rows(
        "SELECT r.* FROM production_records r JOIN production_batches b"
        " ON b.id = r.batch_id WHERE b.check_id = ? AND r.response IS NOT NULL"
        " ORDER BY r.batch_id, r.position",
        [check_id],
    )


def responses_in_check(store: Store, check_id: str) -> int:
    return int(
        store.scalar(
            "SELECT coalesce(sum(n_responses), 0) FROM production_batches WHERE check_id = ?",
            [check_id],
        )
    )
