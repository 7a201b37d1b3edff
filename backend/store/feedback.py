"""KTO feedback and GRPO samples in DuckDB: feedback sets (thumbs ratings, kto-jsonl imports),
the review verdicts of a dataset with their examples, and the answers a GRPO run sampled.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def upsert_feedback(cur: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> dict:
    """Insert feedback rows, replacing a row with the same id (a rater changing their mind);
    returns counts new / updated / unchanged."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    for r in rows:
        old = cur.execute("SELECT label FROM feedback WHERE id = ?", [r["id"]]).fetchone()
        values = [
            r["set_name"],
            json.dumps(r["prompt"], ensure_ascii=False),
            r["completion"],
            bool(r["label"]),
            r["source"],
            json.dumps(r.get("origin")),
            r.get("who"),
            _now(),
        ]
        if old is None:
            cur.execute("INSERT INTO feedback VALUES (?,?,?,?,?,?,?,?,?)", [r["id"], *values])
            counts["new"] += 1
        elif old[0] != bool(r["label"]):
            cur.execute(
                "UPDATE feedback SET label = ?, who = ?, created = ? WHERE id = ?",
                [bool(r["label"]), r.get("who"), _now(), r["id"]],
            )
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts


def feedback_rows(store: Store, set_name: str) -> list[dict]:
    """Every row of a feedback set, oldest first."""
    rows = store.rows(
        "SELECT id, set_name, prompt, completion, label, source, origin, who, created"
        " FROM feedback WHERE set_name = ? ORDER BY created, id",
        [set_name],
    )
    for r in rows:
        r["prompt"] = json.loads(r["prompt"])
        r["origin"] = json.loads(r["origin"]) if r["origin"] else None
    return rows


def feedback_sets(store: Store) -> list[dict]:
    """Each feedback set with its counts of desirable and undesirable answers."""
    return store.rows(
        "SELECT set_name AS name, count(*) FILTER (WHERE label) AS desirable,"
        " count(*) FILTER (WHERE NOT label) AS undesirable, max(created) AS updated"
        " FROM feedback GROUP BY set_name ORDER BY set_name"
    )


def rating_of(store: Store, row_id: str) -> bool | None:
    return store.scalar("SELECT label FROM feedback WHERE id = ?", [row_id])


def dataset_verdicts(store: Store, dataset: str) -> list[dict]:
    """Every stored verdict on the examples of `dataset`'s review batches, with the example's
    messages: {id, batch_id, example_id, reviewer, verdict, corrected, updated, messages}."""
    rows = store.rows(
        "SELECT r.id, r.batch_id, r.example_id, r.reviewer, r.verdict, r.corrected, r.updated,"
        " e.messages FROM reviews r JOIN review_batches b ON b.id = r.batch_id"
        " JOIN examples e ON e.id = r.example_id WHERE b.dataset = ?"
        " ORDER BY r.batch_id, r.example_id, r.id",
        [dataset],
    )
    for r in rows:
        r["messages"] = json.loads(r["messages"])
    return rows


def ingest_completions(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """completions.jsonl of a GRPO run -> run_completions."""
    rows = parse_lines(chunk)
    cur.executemany(
        "INSERT INTO run_completions VALUES (?, ?, ?, ?, ?)",
        [
            [
                r.get("run_id") or job_id,
                int(r.get("step") or 0),
                r.get("prompt"),
                r.get("completion"),
                json.dumps(r.get("rewards") or {}),
            ]
            for r in rows
        ],
    )
    return len(rows)


def run_completions(store: Store, run_id: str, limit: int = 500) -> list[dict]:
    """The answers a GRPO run sampled, newest step first, each with its rewards."""
    rows = store.rows(
        "SELECT step, prompt, completion, rewards FROM run_completions WHERE run_id = ?"
        " ORDER BY step DESC LIMIT ?",
        [run_id, limit],
    )
    for r in rows:
        r["rewards"] = json.loads(r["rewards"] or "{}")
    return rows
