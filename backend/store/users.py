"""Local accounts and the audit log.

Every action that changes shared state (a review, a ranking, a job launch or cancel, an
approval, an import or export) records who did it and when with `audit`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from backend.auth import ROLES, Actor, hash_password, require, verify_password
from backend.store.db import Store

_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")


class UserError(ValueError):
    """A bad account request (name taken, unknown role, weak password...)."""


def add_user(
    store: Store,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str | None = None,
    actor: Actor | None = None,
) -> dict:
    require(actor, "manage_users")
    if not _NAME.match(username):
        raise UserError(
            f"user name {username!r}: use 2-64 lower-case letters, digits, . _ @ + - "
            "(an e-mail works)"
        )
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise UserError(f"user {username!r} already exists")
        cur.execute(
            "INSERT INTO users (username, display_name, role, password_hash) VALUES (?, ?, ?, ?)",
            [username, display_name or username, role, hashed],
        )
        _audit(cur, actor, "user.add", username, {"role": role})
    return {"username": username, "role": role}


def authenticate(store: Store, username: str, password: str) -> Actor | None:
    """The actor for these credentials, or None (same answer for unknown user and bad
    password, so names cannot be probed)."""
    rows = store.rows(
        "SELECT role, password_hash, disabled FROM users WHERE username = ?", [username]
    )
    if not rows or rows[0]["disabled"]:
        verify_password(password, "scrypt$16384$8$1$00$00")  # same work either way
        return None
    if not verify_password(password, rows[0]["password_hash"]):
        return None
    return Actor(username, rows[0]["role"])


def list_users(store: Store) -> list[dict]:
    return store.rows(
        "SELECT username, display_name, role, created, disabled FROM users ORDER BY username"
    )


def count_users(store: Store) -> int:
    return store.scalar("SELECT count(*) FROM users") or 0


def set_role(store: Store, username: str, role: str, *, actor: Actor | None = None) -> None:
    require(actor, "manage_users")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    with store.transaction() as cur:
        if not cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise UserError(f"no user {username!r}")
        cur.execute("UPDATE users SET role = ? WHERE username = ?", [role, username])
        _audit(cur, actor, "user.role", username, {"role": role})


def _audit(
    cur, actor: Actor | None, action: str, target: str | None, detail: dict[str, Any] | None
) -> None:
    who = actor.username if actor else "shell"
    cur.execute(
        "INSERT INTO audit_log (actor, action, target, detail) VALUES (?, ?, ?, ?)",
        [who, action, target, json.dumps(detail, default=str) if detail else None],
    )


def audit(
    store: Store,
    actor: Actor | None,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record who did what to which item. Never pass secrets in `detail`."""
    cur = store.cursor()
    try:
        _audit(cur, actor, action, target, detail)
    finally:
        cur.close()


def audit_rows(
    store: Store, *, actor: str | None = None, action: str | None = None, limit: int = 1000
):
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


def audited(permission: str, action: str, target: str):
    """Decorate a backend function that changes shared state: it gains an `actor=` keyword,
    refuses roles without `permission` before doing anything, and records `action` on the
    argument named `target` in the audit log once it succeeded."""
    import functools
    import inspect

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(store: Store, *args, actor: Actor | None = None, **kwargs):
            require(actor, permission)
            result = fn(store, *args, **kwargs)
            bound = signature.bind(store, *args, **kwargs)
            audit(store, actor, action, str(bound.arguments.get(target)))
            return result

        return inner

    return wrap
