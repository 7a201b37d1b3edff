"""Monitors, production batches, drift checks and reports, alerts and retraining plans.

The drift job's results reach `drift_reports` through `ingest_results` (the `drift` kind's
output handler); everything else is written by the dashboard or the CLI through these functions.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import duckdb

from backend.drift.monitors import MonitorConfig, parse_config
from backend.store.datasets import resolve_version
from backend.store.db import Store
from backend.store.jobs import parse_lines


class MonitorNotFound(ValueError):
    """No monitor by that name or id (or none, or several, where one was expected)."""


class BatchExists(ValueError):
    """The same file was already ingested for this monitor."""


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def _monitor(row: dict) -> dict:
    return {**row, "config": parse_config(json.loads(row["config"]))}


# monitors ------------------------------------------------------------------------------------


def create_monitor(
    store: Store,
    name: str,
    *,
    reference: str,
    version: str | int | None = None,
    config: MonitorConfig | dict | None = None,
    watch_dir: str | None = None,
) -> dict:
    """A monitor over a reference dataset version (the latest when `version` is None)."""
    if not name or not name.strip() or len(name) > 80:
        raise ValueError(f"monitor name {name!r} must be 1-80 characters")
    ref = resolve_version(store, reference, version)
    cfg = config if isinstance(config, MonitorConfig) else parse_config(config)
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM monitors WHERE name = ?", [name]).fetchone():
            raise ValueError(f"a monitor named {name!r} already exists")
        mid = _id("mon")
        cur.execute(
            "INSERT INTO monitors VALUES (?,?,?,?,?,?,?,?)",
            [mid, name, ref["dataset"], ref["id"], cfg.model_dump_json(), watch_dir, "ok", now()],
        )
    return get_monitor(store, mid)


def get_monitor(store: Store, monitor: str) -> dict:
    rows = store.rows("SELECT * FROM monitors WHERE id = ? OR name = ?", [monitor, monitor])
    if not rows:
        names = [r["name"] for r in store.rows("SELECT name FROM monitors ORDER BY name")]
        raise MonitorNotFound(f"no monitor {monitor!r}; monitors: {', '.join(names) or 'none'}")
    return _monitor(rows[0])


def the_monitor(store: Store, monitor: str | None = None) -> dict:
    """The named monitor, or the only one when no name is given."""
    if monitor:
        return get_monitor(store, monitor)
    rows = list_monitors(store)
    if len(rows) != 1:
        raise MonitorNotFound(
            "no monitor yet: create one with `ftstudio monitor create NAME --reference DATASET`"
            if not rows
            else f"{len(rows)} monitors exist ({', '.join(r['name'] for r in rows)}): name one"
        )
    return rows[0]


def list_monitors(store: Store) -> list[dict]:
    return [
        _monitor(r)
        for r in store.rows(
            "SELECT m.*, (SELECT count(*) FROM production_batches b WHERE b.monitor_id = m.id)"
            " AS n_batches, (SELECT max(created) FROM drift_checks c WHERE c.monitor_id = m.id)"
            " AS last_check FROM monitors m ORDER BY m.name"
        )
    ]


def set_config(store: Store, monitor: str, config: MonitorConfig | dict) -> dict:
    cfg = config if isinstance(config, MonitorConfig) else parse_config(config)
    m = get_monitor(store, monitor)
    cur = store.cursor()
    try:
        cur.execute("UPDATE monitors SET config = ? WHERE id = ?", [cfg.model_dump_json(), m["id"]])
    finally:
        cur.close()
    return get_monitor(store, m["id"])


# production batches --------------------------------------------------------------------------


def add_batch(
    store: Store,
    monitor_id: str,
    records: list[dict[str, Any]],
    *,
    source: str,
    name: str | None,
    content_hash: str,
) -> dict:
    """Store one batch of production records ({prompt, response?, t?}) in one transaction."""
    if not records:
        raise ValueError(f"{name or 'the batch'} has no prompts")
    received = now()
    times = [r["t"] for r in records if r.get("t") is not None]
    start, end = (min(times), max(times)) if times else (received, received)
    with store.transaction() as cur:
        if cur.execute(
            "SELECT 1 FROM production_batches WHERE monitor_id = ? AND content_hash = ?",
            [monitor_id, content_hash],
        ).fetchone():
            raise BatchExists(f"{name or 'this batch'} was already ingested for this monitor")
        bid = _id("pb")
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


# checks and reports --------------------------------------------------------------------------


def record_check(
    store: Store,
    *,
    check_id: str,
    monitor_id: str,
    job_id: str | None,
    reference_version_id: str,
    batch_ids: list[str],
    window_start: Any,
    window_end: Any,
    n_reference: int,
    n_window: int,
) -> None:
    """A submitted check, and the batches it consumes (one transaction)."""
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO drift_checks (id, monitor_id, job_id, reference_version_id,"
            " window_start, window_end, n_reference, n_window, created)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [
                check_id,
                monitor_id,
                job_id,
                reference_version_id,
                window_start,
                window_end,
                n_reference,
                n_window,
                now(),
            ],
        )
        cur.execute(
            "UPDATE production_batches SET check_id = ? WHERE list_contains(?, id)",
            [check_id, batch_ids],
        )


def drop_check(store: Store, check_id: str) -> None:
    """Forget a check whose job could not be queued; its batches become unchecked again."""
    with store.transaction() as cur:
        cur.execute("UPDATE production_batches SET check_id = NULL WHERE check_id = ?", [check_id])
        cur.execute("DELETE FROM drift_checks WHERE id = ?", [check_id])


def ingest_results(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """The `drift` kind's handler for drift_results.jsonl: one drift_reports row per line."""
    rows = parse_lines(chunk)
    for r in rows:
        check = cur.execute(
            "SELECT window_start, window_end FROM drift_checks WHERE id = ?", [r["check_id"]]
        ).fetchone() or (None, None)
        cur.execute(
            "INSERT OR IGNORE INTO drift_reports VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                r["check_id"],
                r["monitor_id"],
                r["reference_version_id"],
                check[0],
                check[1],
                r["method"],
                r["statistic"],
                r["threshold"],
                r["verdict"],
                json.dumps(r.get("details") or {}),
                r.get("n_reference"),
                r.get("n_window"),
                now(),
            ],
        )
    return len(rows)


def checks(store: Store, monitor_id: str | None = None) -> list[dict]:
    where, params = ("WHERE c.monitor_id = ?", [monitor_id]) if monitor_id else ("", [])
    return store.rows(
        "SELECT c.*, m.name AS monitor, j.state AS job_state, j.error AS job_error"
        " FROM drift_checks c JOIN monitors m ON m.id = c.monitor_id"
        f" LEFT JOIN jobs j ON j.id = c.job_id {where} ORDER BY c.created",
        params,
    )


def finished_unevaluated(store: Store) -> list[dict]:
    """Checks whose job ended (as ingested) and whose results the triggers have not seen."""
    return store.rows(
        "SELECT c.*, j.state AS job_state, j.error AS job_error FROM drift_checks c"
        " JOIN jobs j ON j.id = c.job_id WHERE c.evaluated IS NULL"
        " AND j.state IN ('succeeded', 'failed', 'cancelled', 'interrupted') ORDER BY c.created"
    )


def reports(store: Store, monitor_id: str | None = None, check_id: str | None = None) -> list[dict]:
    clauses, params = [], []
    if monitor_id:
        clauses.append("monitor_id = ?")
        params.append(monitor_id)
    if check_id:
        clauses.append("check_id = ?")
        params.append(check_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.rows(f"SELECT * FROM drift_reports {where} ORDER BY created, method", params)
    for r in rows:
        r["details"] = json.loads(r["details"]) if r["details"] else {}
    return rows


# quality signals ----------------------------------------------------------------------------

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


def record_quality(store: Store, **row: Any) -> None:
    """The score jobs queued for a check's quality report (see migration 0010)."""
    cols = (
        "check_id",
        "monitor_id",
        "run_id",
        "model",
        "window_job_id",
        "baseline_job_id",
        "baseline_source",
        "n_window",
        "n_baseline",
        "margin",
    )
    cur = store.cursor()
    try:
        cur.execute(
            f"INSERT INTO quality_checks ({', '.join(cols)}, created)"
            f" VALUES ({', '.join('?' * len(cols))}, ?)",
            [row[c] for c in cols] + [now()],
        )
    finally:
        cur.close()


def _newest_baseline(store: Store, table: str, where: str, params: list) -> dict | None:
    """The newest baseline job recorded in `table` (quality_checks or quality_judge_checks)
    that has not failed (queued ones count: a job not yet mirrored into `jobs` is still on
    its way)."""
    rows = store.rows(
        f"SELECT q.baseline_job_id, q.baseline_source, q.n_baseline FROM {table} q"
        f" LEFT JOIN jobs j ON j.id = q.baseline_job_id WHERE {where}"
        " AND coalesce(j.state, 'queued') IN ('queued', 'running', 'succeeded')"
        " ORDER BY q.created DESC LIMIT 1",
        params,
    )
    return rows[0] if rows else None


def _check_jobs(store: Store, table: str, check_id: str) -> dict | None:
    """A check's row of `table` with its window and baseline jobs' states, or None."""
    rows = store.rows(
        f"SELECT q.*, w.state AS window_state, b.state AS baseline_state FROM {table} q"
        " LEFT JOIN jobs w ON w.id = q.window_job_id LEFT JOIN jobs b ON b.id = q.baseline_job_id"
        " WHERE q.check_id = ?",
        [check_id],
    )
    return rows[0] if rows else None


def reusable_baseline(store: Store, run_id: str) -> dict | None:
    """The newest baseline score job of a run that has not failed."""
    return _newest_baseline(store, "quality_checks", "q.run_id = ?", [run_id])


def quality_of(store: Store, check_id: str) -> dict | None:
    """A check's quality jobs with their states (None: no quality scoring for this check)."""
    return _check_jobs(store, "quality_checks", check_id)


def score_means(store: Store, job_id: str) -> dict[str, dict]:
    """{method: {mean, n}} of one score job: the mean over examples of their per-token mean."""
    return {
        r["method"]: {"mean": r["mean"], "n": r["n"]}
        for r in store.rows(
            "SELECT method, avg(score) AS mean, count(*) AS n FROM scores WHERE job_id = ?"
            " GROUP BY method",
            [job_id],
        )
    }


JUDGE_COLS = (
    "check_id",
    "monitor_id",
    "run_id",
    "judge_model",
    "window_job_id",
    "baseline_job_id",
    "baseline_source",
    "n_window",
    "n_baseline",
    "margin",
)


def record_judge(store: Store, **row: Any) -> None:
    """The quality-judge jobs queued for a check's judge report (see migration 0012)."""
    cur = store.cursor()
    try:
        cur.execute(
            f"INSERT INTO quality_judge_checks ({', '.join(JUDGE_COLS)}, created)"
            f" VALUES ({', '.join('?' * len(JUDGE_COLS))}, ?)",
            [row[c] for c in JUDGE_COLS] + [now()],
        )
    finally:
        cur.close()


def reusable_judge_baseline(store: Store, run_id: str, judge_model: str) -> dict | None:
    """The newest judge baseline job of a run under this judge model that has not failed."""
    return _newest_baseline(
        store, "quality_judge_checks", "q.run_id = ? AND q.judge_model = ?", [run_id, judge_model]
    )


def judge_of(store: Store, check_id: str) -> dict | None:
    """A check's quality-judge jobs with their states (None: no judge for this check)."""
    return _check_jobs(store, "quality_judge_checks", check_id)


def add_reports(store: Store, check: dict, rows: list[dict]) -> None:
    """Reports computed outside a drift job (quality), in one transaction."""
    with store.transaction() as cur:
        for r in rows:
            cur.execute(
                "INSERT OR REPLACE INTO drift_reports VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    check["id"],
                    check["monitor_id"],
                    check["reference_version_id"],
                    check["window_start"],
                    check["window_end"],
                    r["method"],
                    r["statistic"],
                    r["threshold"],
                    r["verdict"],
                    json.dumps(r.get("details") or {}),
                    r.get("n_reference"),
                    r.get("n_window"),
                    now(),
                ],
            )


# alerts and plans ----------------------------------------------------------------------------


def _of_monitors(
    store: Store, table: str, json_column: str, monitor_id: str | None, state: str | None
) -> list[dict]:
    """Rows of `table` (alerts or plans) with their monitor's name, newest first, filtered by
    monitor and state, with `json_column` decoded."""
    clauses, params = [], []
    if monitor_id:
        clauses.append("t.monitor_id = ?")
        params.append(monitor_id)
    if state:
        clauses.append("t.state = ?")
        params.append(state)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.rows(
        f"SELECT t.*, m.name AS monitor FROM {table} t JOIN monitors m"
        f" ON m.id = t.monitor_id {where} ORDER BY t.created DESC",
        params,
    )
    for r in rows:
        r[json_column] = json.loads(r[json_column])
    return rows


def alerts(store: Store, monitor_id: str | None = None, state: str | None = None) -> list[dict]:
    return _of_monitors(store, "alerts", "methods", monitor_id, state)


def plans(store: Store, monitor_id: str | None = None, state: str | None = None) -> list[dict]:
    return _of_monitors(store, "retraining_plans", "steps", monitor_id, state)


def get_plan(store: Store, plan_id: str) -> dict:
    rows = [p for p in plans(store) if p["id"] == plan_id]
    if not rows:
        raise ValueError(f"no retraining plan {plan_id!r}")
    return rows[0]


def save_plan(
    store: Store,
    plan_id: str,
    *,
    state: str | None = None,
    steps: list[dict] | None = None,
    approved_by: str | None = None,
    auto_approved: bool | None = None,
) -> dict:
    sets, params = ["updated = ?"], [now()]
    if state is not None:
        sets.append("state = ?")
        params.append(state)
    if steps is not None:
        sets.append("steps = ?")
        params.append(json.dumps(steps))
    if approved_by is not None:
        sets += ["approved_by = ?", "approved_at = ?"]
        params += [approved_by, now()]
    if auto_approved is not None:
        sets.append("auto_approved = ?")
        params.append(auto_approved)
    cur = store.cursor()
    try:
        cur.execute(
            f"UPDATE retraining_plans SET {', '.join(sets)} WHERE id = ?", [*params, plan_id]
        )
    finally:
        cur.close()
    return get_plan(store, plan_id)


def summary(store: Store) -> dict[str, int]:
    """Counts for the page's metrics row."""
    q = {
        "monitors": "SELECT count(*) FROM monitors",
        "prompts": "SELECT coalesce(sum(n_records), 0) FROM production_batches",
        "checks": "SELECT count(*) FROM drift_checks",
        "open_alerts": "SELECT count(*) FROM alerts WHERE state = 'open'",
        "plans_waiting": "SELECT count(*) FROM retraining_plans WHERE state = 'proposed'",
    }
    return {k: int(store.scalar(sql) or 0) for k, sql in q.items()}
