"""The quality side of drift checks: the score and judge jobs queued for a check's quality
report (quality_checks, quality_judge_checks; migrations 0010 and 0012), their states, the
score means they produced, and the quality reports written into drift_reports."""

from __future__ import annotations

import json
from typing import Any

from backend.store.db import Store
from backend.store.monitoring import now

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")


def unfinished(pair: dict | None) -> bool:
    """Whether a check's window/baseline job pair (a quality or judge row) still runs."""
    return pair is not None and any(
        s not in FINISHED for s in (pair["window_state"], pair["baseline_state"])
    )


QUALITY_COLS = (
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
TABLES = {"quality_checks": QUALITY_COLS, "quality_judge_checks": JUDGE_COLS}


def _insert(store: Store, table: str, row: dict[str, Any]) -> None:
    cols = TABLES[table]
    with store.transaction() as cur:
        cur.execute(
            f"INSERT INTO {table} ({', '.join(cols)}, created)"
            f" VALUES ({', '.join('?' * len(cols))}, ?)",
            [row[c] for c in cols] + [now()],
        )


def record_quality(store: Store, **row: Any) -> None:
    """The score jobs queued for a check's quality report."""
    _insert(store, "quality_checks", row)


def record_judge(store: Store, **row: Any) -> None:
    """The quality-judge jobs queued for a check's judge report."""
    _insert(store, "quality_judge_checks", row)


def _newest_baseline(store: Store, table: str, where: str, params: list) -> dict | None:
    """The newest baseline job recorded in `table` that has not failed (queued ones count: a
    job not yet mirrored into `jobs` is still on its way)."""
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


def reusable_judge_baseline(store: Store, run_id: str, judge_model: str) -> dict | None:
    """The newest judge baseline job of a run under this judge model that has not failed."""
    return _newest_baseline(
        store, "quality_judge_checks", "q.run_id = ? AND q.judge_model = ?", [run_id, judge_model]
    )


def quality_of(store: Store, check_id: str) -> dict | None:
    """A check's quality jobs with their states (None: no quality scoring for this check)."""
    return _check_jobs(store, "quality_checks", check_id)


def judge_of(store: Store, check_id: str) -> dict | None:
    """A check's quality-judge jobs with their states (None: no judge for this check)."""
    return _check_jobs(store, "quality_judge_checks", check_id)


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
