"""Training runs in DuckDB: ingest handlers for a train job's outputs, and the queries the
Training page and `ftstudio runs` use.

A run is a `train` job (same id). Its state is the job's state (jobs table, kept current by
ingestion); `runs` holds what ran: config, dataset version and hash, base model, device,
package versions, adapter path.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines

RUN_KINDS = ("train",)
RUN_COLUMNS = (
    "method",
    "base_model",
    "dataset",
    "dataset_version_id",
    "dataset_hash",
    "config",
    "state",
    "device",
    "runtime",
    "packages",
    "run_dir",
    "adapter_path",
    "merged_path",
    "attempt",
    "base_model_hash",
    "executor",
    "world_size",
)
JSON_COLUMNS = {"config", "runtime", "packages"}


class RunNotFound(ValueError):
    """No run with that id."""


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None


def ingest_run_rows(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """run.jsonl: each line updates the run; a missing or null field keeps the stored value."""
    rows = parse_lines(chunk)
    for r in rows:
        values = [
            json.dumps(r.get(c)) if c in JSON_COLUMNS and r.get(c) is not None else r.get(c)
            for c in RUN_COLUMNS
        ]
        cols = ", ".join(RUN_COLUMNS)
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, runs.{c})" for c in RUN_COLUMNS)
        cur.execute(
            f"INSERT INTO runs (id, {cols}, updated) VALUES (?, {', '.join('?' * len(values))}, ?)"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, updated = excluded.updated",
            [r.get("id") or job_id, *values, _ts(r.get("t"))],
        )
    return len(rows)


def ingest_run_eval(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    rows = parse_lines(chunk)
    for r in rows:
        cur.execute(
            "INSERT OR REPLACE INTO run_eval VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.get("run_id") or job_id,
                r.get("step"),
                r.get("eval_loss"),
                r.get("perplexity"),
                r.get("first_loss"),
                r.get("last_loss"),
                r.get("n_train"),
                r.get("n_eval"),
            ],
        )
    return len(rows)


def ingest_generations(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """generations.jsonl; an evaluation written again (a resumed job) replaces its step."""
    rows = parse_lines(chunk)
    for run_id, step in {(r.get("run_id") or job_id, r.get("step")) for r in rows}:
        cur.execute(
            "DELETE FROM generations WHERE run_id = ? AND step IS NOT DISTINCT FROM ?",
            [run_id, step],
        )
    cur.executemany(
        "INSERT INTO generations VALUES (?, ?, ?, ?, ?)",
        [
            [
                r.get("run_id") or job_id,
                r.get("step"),
                str(r.get("prompt", "")),
                str(r.get("output", "")),
                json.dumps(r.get("params")),
            ]
            for r in rows
        ],
    )
    return len(rows)


def ingest_sweep_trials(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    rows = parse_lines(chunk)
    for r in rows:
        cur.execute(
            "INSERT OR REPLACE INTO sweep_trials VALUES (?, ?, ?, ?, ?)",
            [job_id, r["trial"], json.dumps(r.get("params")), r.get("eval_loss"), r.get("state")],
        )
    return len(rows)


# --- queries ---------------------------------------------------------------------------------

_LIST_SQL = f"""
SELECT j.id, j.state, j.title, j.group_id, j.created, j.started, j.finished, j.done, j.total,
       j.attempt, coalesce(r.method, json_extract_string(j.spec, '$.method')) AS method,
       coalesce(r.base_model, json_extract_string(j.spec, '$.base_model')) AS base_model,
       coalesce(r.dataset, json_extract_string(j.spec, '$.dataset')) AS dataset,
       r.dataset_hash, r.device, r.adapter_path, e.eval_loss, e.perplexity,
       (SELECT value FROM metrics m WHERE m.job_id = j.id AND m.name = 'loss'
        ORDER BY step, t LIMIT 1) AS first_loss,
       (SELECT value FROM metrics m WHERE m.job_id = j.id AND m.name = 'loss'
        ORDER BY step DESC, t DESC LIMIT 1) AS last_loss
FROM jobs j LEFT JOIN runs r ON r.id = j.id LEFT JOIN run_eval e ON e.run_id = j.id
WHERE j.kind IN ({", ".join(f"'{k}'" for k in RUN_KINDS)})
"""


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def list_runs(store: Store, *, group_id: str | None = None) -> list[dict[str, Any]]:
    """Every run, oldest first, with its state, losses and eval figures."""
    where, params = (" AND j.group_id = ?", [group_id]) if group_id else ("", [])
    rows = store.rows(_LIST_SQL + where + " ORDER BY j.created, j.id", params)
    return [_plain(r) for r in rows]


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """One run: the list fields plus config, packages, runtime and evaluation."""
    rows = store.rows(_LIST_SQL + " AND j.id = ?", [run_id])
    if not rows:
        raise RunNotFound(f"no run {run_id!r}; `ftstudio runs list` shows the runs")
    run = _plain(rows[0])
    extra = store.rows(
        "SELECT r.config, r.packages, r.runtime, r.merged_path, r.run_dir,"
        " r.dataset_version_id, r.base_model_hash, r.executor, r.world_size, j.spec, j.error"
        " FROM jobs j"
        " LEFT JOIN runs r ON r.id = j.id WHERE j.id = ?",
        [run_id],
    )[0]
    run["config"] = json.loads(extra["config"] or extra["spec"])
    run["packages"] = json.loads(extra["packages"]) if extra["packages"] else None
    run["runtime"] = json.loads(extra["runtime"]) if extra["runtime"] else None
    for key in ("merged_path", "run_dir", "dataset_version_id", "base_model_hash", "error"):
        run[key] = extra[key]
    # runs from before executors (or not started yet): the config's choice, one process
    run["executor"] = extra["executor"] or run["config"].get("executor") or "local"
    run["world_size"] = extra["world_size"] or run["config"].get("processes") or 1
    return run


def run_metrics(store: Store, run_ids: list[str], names: list[str] | None = None):
    """Long-format metrics (job_id, step, name, value, t) of runs, latest value per step."""
    if not run_ids:
        return store.df("SELECT * FROM metrics WHERE false")
    marks = ", ".join("?" * len(run_ids))
    name_sql = f" AND name IN ({', '.join('?' * len(names))})" if names else ""
    return store.df(
        f"SELECT job_id, step, name, arg_max(value, t) AS value, max(t) AS t FROM metrics"
        f" WHERE job_id IN ({marks}){name_sql} GROUP BY job_id, step, name"
        f" ORDER BY job_id, name, step",
        [*run_ids, *(names or [])],
    )


def run_generations(store: Store, run_id: str) -> list[dict[str, Any]]:
    rows = store.rows(
        "SELECT step, prompt, output, params FROM generations WHERE run_id = ?"
        " ORDER BY step, prompt",
        [run_id],
    )
    for r in rows:
        r["params"] = json.loads(r["params"]) if r["params"] else None
    return rows


def sweep_trials(store: Store, job_id: str) -> list[dict[str, Any]]:
    rows = store.rows(
        "SELECT trial, params, eval_loss, state FROM sweep_trials WHERE job_id = ? ORDER BY trial",
        [job_id],
    )
    for r in rows:
        r["params"] = json.loads(r["params"]) if r["params"] else None
    return rows
