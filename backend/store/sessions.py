"""Browser sessions and one-time sign-in hand-offs (the cookie carries only a signed session
id; this table says whether it is still good), and the per-user failed sign-in counters."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from backend.store.db import Store


def create(store: Store, username: str, ttl_s: float) -> str:
    session_id = secrets.token_urlsafe(24)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO sessions (id, username, expires) VALUES (?, ?, ?)",
            [session_id, username, datetime.now() + timedelta(seconds=ttl_s)],
        )
    return session_id


def active(store: Store, session_id: str) -> dict | None:
    """The session and its user's current role, when the session is neither expired nor
    revoked and the account is enabled; None otherwise."""
    rows = store.rows(
        "SELECT s.id, s.username, s.expires, u.role FROM sessions s"
        " JOIN users u ON u.username = s.username"
        " WHERE s.id = ? AND s.revoked IS NULL AND s.expires > ?"
        " AND NOT coalesce(u.disabled, false)",
        [session_id, datetime.now()],
    )
    return rows[0] if rows else None


def revoke(store: Store, session_id: str) -> bool:
    with store.transaction() as cur:
        found = cur.execute(
            "UPDATE sessions SET revoked = ? WHERE id = ? AND revoked IS NULL RETURNING id",
            [datetime.now(), session_id],
        ).fetchall()
    return bool(found)


def revoke_user(store: Store, username: str) -> int:
    """End every session of a user (disabled, or signed out everywhere)."""
    with store.transaction() as cur:
        found = cur.execute(
            "UPDATE sessions SET revoked = ? WHERE username = ? AND revoked IS NULL RETURNING id",
            [datetime.now(), username],
        ).fetchall()
    return len(found)


def new_handoff(store: Store, session_id: str, ttl_s: float = 60.0) -> str:
    """A one-time code that turns into the session's cookie at /auth/session."""
    code = secrets.token_urlsafe(24)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO handoffs VALUES (?, ?, ?)",
            [code, session_id, datetime.now() + timedelta(seconds=ttl_s)],
        )
    return code


def take_handoff(store: Store, code: str) -> str | None:
    """The session id of a hand-off code, once (the code is deleted); None when unknown or
    expired."""
    with store.transaction() as cur:
        row = cur.execute(
            "DELETE FROM handoffs WHERE code = ? RETURNING session_id, expires", [code]
        ).fetchone()
        cur.execute("DELETE FROM handoffs WHERE expires < ?", [datetime.now()])
    if row is None or row[1] < datetime.now():
        return None
    return row[0]


def failures(store: Store, username: str) -> dict | None:
    rows = store.rows(
        "SELECT failed_sign_ins AS n, last_failed_sign_in AS last, locked_until"
        " FROM users WHERE username = ?",
        [username],
    )
    return rows[0] if rows else None


def record_failure(store: Store, username: str, lock_after: int, lock_s: float) -> dict:
    """Count a failed sign-in; the `lock_after`th in a row locks the account for `lock_s`."""
    now = datetime.now()
    with store.transaction() as cur:
        row = cur.execute(
            "UPDATE users SET failed_sign_ins = coalesce(failed_sign_ins, 0) + 1,"
            " last_failed_sign_in = ? WHERE username = ? RETURNING failed_sign_ins",
            [now, username],
        ).fetchone()
        if row and row[0] >= lock_after:
            cur.execute(
                "UPDATE users SET locked_until = ?, failed_sign_ins = 0 WHERE username = ?",
                [now + timedelta(seconds=lock_s), username],
            )
    return failures(store, username) or {}


def clear_failures(store: Store, username: str) -> None:
    with store.transaction() as cur:
        cur.execute(
            "UPDATE users SET failed_sign_ins = 0, last_failed_sign_in = NULL,"
            " locked_until = NULL WHERE username = ?",
            [username],
        )
