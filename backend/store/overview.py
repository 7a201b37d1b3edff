"""Workspace-wide counts for the Overview page."""

from __future__ import annotations

from backend.store.db import Store


def job_counts(store: Store) -> dict[str, int]:
    rows = store.rows("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    return {r["state"]: r["n"] for r in rows}


def _table_exists(store: Store, name: str) -> bool:
    return bool(
        store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
    )


def _count(store: Store, table: str, where: str = "") -> int | None:
    if not _table_exists(store, table):
        return None
    return store.scalar(f"SELECT count(*) FROM {table} {where}")  # table names are ours


def pipeline(store: Store) -> list[dict]:
    """The loop as stages, each with a count and a state line."""

    def stage(name: str, what: str, count: int | None, todo: str) -> dict:
        if count is None:
            return {"name": name, "what": what, "count": 0, "state": "not set up"}
        return {"name": name, "what": what, "count": count, "state": "ready" if count else todo}

    return [
        stage("Generate", "examples", _count(store, "examples"), "write a recipe or import"),
        stage("Review", "reviews", _count(store, "reviews"), "flag and review examples"),
        stage("Train", "runs", _count(store, "runs"), "launch a run"),
        stage("Compare", "evaluated runs", _count(store, "run_eval"), "evaluate runs"),
        stage("Rank", "comparisons", _count(store, "comparisons"), "rank outputs"),
        stage("Monitor", "monitors", _count(store, "monitors"), "create a monitor"),
    ]
