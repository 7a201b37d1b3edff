"""Re-runs in DuckDB: which run repeats which, and the two loss curves side by side.

Written by backend.train.actions.rerun_run (inside its launch transaction); read by
`ftstudio runs rerun` and the Training page's Re-run panel.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from backend.store.db import Store


def record_rerun(
    cur: duckdb.DuckDBPyConnection, run_id: str, original_id: str, warnings: list[str]
) -> None:
    cur.execute(
        "INSERT INTO reruns (run_id, original_id, warnings) VALUES (?, ?, ?)",
        [run_id, original_id, json.dumps(warnings)],
    )


def rerun_of(store: Store, run_id: str) -> dict[str, Any] | None:
    """The re-run row of `run_id` ({original_id, warnings}), or None for a first run."""
    rows = store.rows("SELECT original_id, warnings FROM reruns WHERE run_id = ?", [run_id])
    if not rows:
        return None
    return {"original_id": rows[0]["original_id"], "warnings": json.loads(rows[0]["warnings"])}


def reruns_of(store: Store, original_id: str) -> list[str]:
    """Re-runs of a run, oldest first."""
    rows = store.rows(
        "SELECT run_id FROM reruns WHERE original_id = ? ORDER BY created, run_id", [original_id]
    )
    return [r["run_id"] for r in rows]


def loss_curve(store: Store, run_id: str, name: str = "loss") -> dict[int, float]:
    """{step: value} of one metric of a run (the latest report per step)."""
    rows = store.rows(
        "SELECT step, arg_max(value, t) AS value FROM metrics WHERE job_id = ? AND name = ?"
        " GROUP BY step ORDER BY step",
        [run_id, name],
    )
    return {int(r["step"]): float(r["value"]) for r in rows}
