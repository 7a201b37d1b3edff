"""Jobs as the dashboard lists them (mirrored from job folders by ingestion)."""

from __future__ import annotations

from backend.store.db import Store


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
