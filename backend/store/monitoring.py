"""Monitors, drift checks and their reports, alerts and retraining plans.

SQL and row mapping only: a monitor's `config` is stored and returned as a plain dict (the
drift package parses it into a MonitorConfig), and the trigger rules' decisions (drifted or
not, the message, the plan's steps) are made by the caller and written here in one
transaction. The drift job's results reach `drift_reports` through `ingest_results` (the
`drift` kind's output handler). Production batches live in backend/store/production.py,
quality-check rows in backend/store/drift_quality.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import duckdb

from backend.store.datasets import resolve_version
from backend.store.db import Store
from backend.store.jobs import parse_lines


class MonitorNotFound(ValueError):
    """No monitor by that name or id (or none, or several, where one was expected)."""


class MonitorExists(ValueError):
    """A monitor by that name exists already."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def _monitor(row: dict) -> dict:
    return {**row, "config": json.loads(row["config"])}


# monitors ------------------------------------------------------------------------------------


def create_monitor(
    store: Store,
    name: str,
    *,
    reference: str,
    version: str | int | None = None,
    config: dict[str, Any] | None = None,
    watch_dir: str | None = None,
) -> dict:
    """A monitor over a reference dataset version (the latest when `version` is None);
    `config` is the already validated MonitorConfig as a dict. MonitorExists on a taken name."""
    with store.transaction() as cur:
        ref = resolve_version(store, reference, version)
        if cur.execute("SELECT 1 FROM monitors WHERE name = ?", [name]).fetchone():
            raise MonitorExists(f"a monitor named {name!r} already exists")
        mid = new_id("mon")
        cur.execute(
            "INSERT INTO monitors VALUES (?,?,?,?,?,?,?,?)",
            [
                mid,
                name,
                ref["dataset"],
                ref["id"],
                json.dumps(config or {}),
                watch_dir,
                "ok",
                now(),
            ],
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


def set_config(store: Store, monitor_id: str, config: dict[str, Any]) -> dict:
    """Replace a monitor's config (an already validated MonitorConfig as a dict)."""
    with store.transaction() as cur:
        cur.execute("UPDATE monitors SET config = ? WHERE id = ?", [json.dumps(config), monitor_id])
        return get_monitor(store, monitor_id)


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
) -> bool:
    """A submitted check and the batches it consumes, in one transaction. False (nothing
    written) when one of the batches was taken by another check meanwhile."""
    with store.transaction() as cur:
        taken = cur.execute(
            "SELECT count(*) FROM production_batches WHERE list_contains(?, id)"
            " AND check_id IS NOT NULL",
            [batch_ids],
        ).fetchone()[0]
        if taken:
            return False
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
        return True


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


def job_state(store: Store, job_id: str | None) -> str | None:
    """A job's state as ingested (None: not mirrored yet)."""
    return store.scalar("SELECT state FROM jobs WHERE id = ?", [job_id]) if job_id else None


def last_run(store: Store) -> dict | None:
    """The newest succeeded training run that left an adapter."""
    rows = store.rows(
        "SELECT r.id, r.base_model, r.adapter_path, r.merged_path, r.config, j.spec FROM runs r"
        " JOIN jobs j ON j.id = r.id WHERE j.state = 'succeeded' AND r.adapter_path IS NOT NULL"
        " ORDER BY j.finished DESC LIMIT 1"
    )
    return rows[0] if rows else None


# the trigger rules' writes -------------------------------------------------------------------


def fail_check(store: Store, check_id: str, error: str) -> None:
    """A check whose job did not succeed: evaluated with its error; its batches go back into
    the next window."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE drift_checks SET evaluated = ?, error = ? WHERE id = ? AND evaluated IS NULL",
            [now(), error, check_id],
        )
        cur.execute("UPDATE production_batches SET check_id = NULL WHERE check_id = ?", [check_id])


def _propose(cur, plan_id: str, monitor_id: str, alert_id: str, steps: list[dict]) -> None:
    cur.execute(
        "INSERT INTO retraining_plans (id, monitor_id, alert_id, state, auto_approved, steps,"
        " created, updated) VALUES (?,?,?,?,false,?,?,?)",
        [plan_id, monitor_id, alert_id, "proposed", json.dumps(steps), now(), now()],
    )


def apply_verdict(
    store: Store,
    check_id: str,
    monitor_id: str,
    *,
    drifted: bool,
    methods: list[str],
    message: str,
    steps: list[dict],
    no_plan: tuple[str, str] | None = None,
) -> dict | None:
    """Record a check's verdict in one transaction: on an `ok` monitor a drifted check opens
    ONE alert and turns the monitor `alerting`, with ONE proposed plan (`steps`) unless
    `no_plan` says (why, what would unblock it) the plan could not run: then the alert keeps
    that reason instead. While alerting a drifted check counts against the open alert (and
    proposes the plan the alert lacks once it can run); a clean check resolves it. Returns
    {"alert_id", "plan_id" (a plan proposed now), "opened" (a crossing)}, or None when the
    check was evaluated already."""
    with store.transaction() as cur:
        if (
            cur.execute(
                "SELECT 1 FROM drift_checks WHERE id = ? AND evaluated IS NULL", [check_id]
            ).fetchone()
            is None
        ):
            return None
        state = cur.execute("SELECT state FROM monitors WHERE id = ?", [monitor_id]).fetchone()[0]
        open_id = cur.execute(
            "SELECT id FROM alerts WHERE monitor_id = ? AND state = 'open'", [monitor_id]
        ).fetchone()
        why, unblock = no_plan or (None, None)
        alert = plan_id = None
        opened = False
        if drifted and state == "ok":
            alert, opened = new_id("alert"), True
            cur.execute(
                "INSERT INTO alerts (id, monitor_id, check_id, methods, message, state, n_checks,"
                " created, no_plan_reason, no_plan_unblock) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [alert, monitor_id, check_id, json.dumps(methods), message, "open", 1, now()]
                + [why, unblock],
            )
            if no_plan is None:
                plan_id = new_id("plan")
                _propose(cur, plan_id, monitor_id, alert, steps)
            cur.execute("UPDATE monitors SET state = 'alerting' WHERE id = ?", [monitor_id])
        elif drifted and open_id:
            alert = open_id[0]
            cur.execute("UPDATE alerts SET n_checks = n_checks + 1 WHERE id = ?", [alert])
            planned = cur.execute(
                "SELECT 1 FROM retraining_plans WHERE alert_id = ?", [alert]
            ).fetchone()
            if not planned:  # the alert had no plan: propose it now, or say why not still
                if no_plan is None:
                    plan_id = new_id("plan")
                    _propose(cur, plan_id, monitor_id, alert, steps)
                cur.execute(
                    "UPDATE alerts SET no_plan_reason = ?, no_plan_unblock = ? WHERE id = ?",
                    [why, unblock, alert],
                )
        elif not drifted and state == "alerting":
            cur.execute(
                "UPDATE alerts SET state = 'resolved', resolved = ?, resolved_by = 'system'"
                " WHERE monitor_id = ? AND state = 'open'",
                [now(), monitor_id],
            )
            cur.execute("UPDATE monitors SET state = 'ok' WHERE id = ?", [monitor_id])
        cur.execute(
            "UPDATE drift_checks SET evaluated = ?, n_drift = ?, drifted = ?,"
            " alert_id = ? WHERE id = ?",
            [now(), len(methods), drifted, alert, check_id],
        )
        return {"alert_id": alert, "plan_id": plan_id, "opened": opened}


# alerts and plans ----------------------------------------------------------------------------


def _of_monitors(
    store: Store,
    table: str,
    json_column: str,
    monitor_id: str | None,
    state: str | None,
    row_id: str | None = None,
) -> list[dict]:
    """Rows of `table` (alerts or plans) with their monitor's name, newest first, filtered by
    monitor, state and id, with `json_column` decoded."""
    clauses, params = [], []
    for column, value in (("monitor_id", monitor_id), ("state", state), ("id", row_id)):
        if value:
            clauses.append(f"t.{column} = ?")
            params.append(value)
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
    """Alerts, newest first, each with its monitor's name and `plan_id` (None: no plan)."""
    rows = _of_monitors(store, "alerts", "methods", monitor_id, state)
    plan_of = {
        r["alert_id"]: r["id"]
        for r in store.rows("SELECT id, alert_id FROM retraining_plans ORDER BY created")
    }
    return [{**r, "plan_id": plan_of.get(r["id"])} for r in rows]


def get_alert(store: Store, alert_id: str) -> dict:
    rows = _of_monitors(store, "alerts", "methods", None, None, alert_id)
    if not rows:
        raise ValueError(f"no alert {alert_id!r}; `ftstudio monitor alerts` lists them")
    return rows[0]


def acknowledge_alert(store: Store, alert_id: str, who: str) -> dict:
    """Mark an alert as seen by `who` (it stays open until resolved)."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ?",
            [who, now(), alert_id],
        )
        return get_alert(store, alert_id)


def resolve_alert(store: Store, alert_id: str, who: str) -> dict:
    """Close an open alert by hand; its monitor is `ok` again, so the next drifting check is
    a new crossing (a new alert and plan)."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE alerts SET state = 'resolved', resolved = ?, resolved_by = ?"
            " WHERE id = ? AND state = 'open'",
            [now(), who, alert_id],
        )
        cur.execute(
            "UPDATE monitors SET state = 'ok' WHERE id = (SELECT monitor_id FROM alerts"
            " WHERE id = ?) AND NOT EXISTS (SELECT 1 FROM alerts a2 WHERE a2.monitor_id ="
            " monitors.id AND a2.state = 'open')",
            [alert_id],
        )
        return get_alert(store, alert_id)


def plans(store: Store, monitor_id: str | None = None, state: str | None = None) -> list[dict]:
    return _of_monitors(store, "retraining_plans", "steps", monitor_id, state)


def get_plan(store: Store, plan_id: str) -> dict:
    rows = _of_monitors(store, "retraining_plans", "steps", None, None, plan_id)
    if not rows:
        raise ValueError(f"no retraining plan {plan_id!r}")
    return rows[0]


def alert_check(store: Store, alert_id: str) -> str:
    """The check that opened an alert."""
    return store.scalar("SELECT check_id FROM alerts WHERE id = ?", [alert_id])


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
    with store.transaction() as cur:
        cur.execute(
            f"UPDATE retraining_plans SET {', '.join(sets)} WHERE id = ?", [*params, plan_id]
        )
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


def rules_fingerprint(store: Store) -> tuple:
    """What the trigger rules change, in brief (evaluated checks, alerts by state and count,
    plans by state and steps): two equal fingerprints mean the rules changed nothing."""
    return tuple(
        store.rows(
            "SELECT (SELECT count(*) FROM drift_checks WHERE evaluated IS NOT NULL) AS checks,"
            " (SELECT count(*) FROM alerts) AS alerts,"
            " (SELECT coalesce(sum(n_checks), 0) FROM alerts) AS alert_checks,"
            " (SELECT count(*) FROM alerts WHERE state = 'open') AS open,"
            " (SELECT count(*) FROM retraining_plans) AS plans,"
            " (SELECT bit_xor(hash(id || state || CAST(steps AS VARCHAR)))"
            "  FROM retraining_plans) AS plan_states"
        )[0].values()
    )
