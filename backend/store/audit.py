"""The audit log: who did what to which item, and when. Rows are written by actions on the
cursor of the change they record, so a change and its audit row commit together."""

from __future__ import annotations

import json
from typing import Any

from backend.auth import Actor
from backend.store.db import Store


def record(
    cur, actor: Actor | None, action: str, target: str | None, detail: dict[str, Any] | None
) -> None:
    """Write one audit row on `cur` (the change's transaction). Never pass secrets in
    `detail`. A None actor is the trusted shell."""
    who = actor.username if actor else "shell"
    cur.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES (?, ?, ?, ?)",
        [who, action, target, json.dumps(detail, default=str) if detail else None],
    )


def rows(store: Store, *, actor: str | None = None, action: str | None = None, limit: int = 1000):
    """The audit log, newest first, filtered by actor and action prefix."""
    where, params = [], []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("action LIKE ?")
        params.append(f"{action}%")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return store.df(
        f"SELECT t, actor, action, target, detail FROM audit_log {clause} ORDER BY t DESC LIMIT ?",
        [*params, limit],
    )
