"""Local accounts: names, roles, password hashes, Label Studio e-mails, disabled state.

SQL and row mapping only; the role checks and audit rows are the user actions'
(backend/users/actions.py). `audit_rows` reads the audit log (backend/store/audit.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from backend.auth import ROLES, Actor, hash_password, needs_rehash, verify_password
from backend.store import audit as audit_log
from backend.store.db import Store

_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{1,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


_DUMMY_HASH = "scrypt$32768$8$1$" + "00" * 16 + "$" + "00" * 32


class UserError(ValueError):
    """A bad account request (name taken, unknown role, weak password...)."""


def add_user(
    store: Store,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
) -> dict:
    """Create an account; `email` is its Label Studio e-mail (see `set_email`)."""
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
    email = normalize_email(email) if email else None
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise UserError(f"user {username!r} already exists")
        if email:
            _check_email_free(cur, username, email)
        cur.execute(
            "INSERT INTO users (username, display_name, role, password_hash, email)"
            " VALUES (?, ?, ?, ?, ?)",
            [username, display_name or username, role, hashed, email],
        )
    return {"username": username, "role": role, "email": email}


def authenticate(store: Store, username: str, password: str) -> Actor | None:
    """The actor for these credentials, or None (same answer for unknown user and bad
    password, so names cannot be probed). A hash weaker than today's cost is replaced."""
    rows = store.rows(
        "SELECT role, password_hash, disabled FROM users WHERE username = ?", [username]
    )
    if not rows or rows[0]["disabled"]:
        verify_password(password, _DUMMY_HASH)  # same work either way
        return None
    if not verify_password(password, rows[0]["password_hash"]):
        return None
    if needs_rehash(rows[0]["password_hash"]):
        set_password(store, username, password)
    return Actor(username, rows[0]["role"])


def set_password(store: Store, username: str, password: str) -> None:
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    with store.transaction() as cur:
        found = cur.execute(
            "UPDATE users SET password_hash = ? WHERE username = ? RETURNING username",
            [hashed, username],
        ).fetchone()
        if found is None:
            raise UserError(f"no user {username!r}")


def set_disabled(store: Store, username: str, disabled: bool) -> None:
    with store.transaction() as cur:
        found = cur.execute(
            "UPDATE users SET disabled = ? WHERE username = ? RETURNING username",
            [disabled, username],
        ).fetchone()
        if found is None:
            raise UserError(f"no user {username!r}")


def list_users(store: Store) -> list[dict]:
    return store.rows(
        "SELECT username, display_name, role, email, created, disabled FROM users ORDER BY username"
    )


def count_users(store: Store) -> int:
    return store.scalar("SELECT count(*) FROM users") or 0


def find_user(store: Store, username: str) -> dict | None:
    rows = store.rows(
        "SELECT username, display_name, role, email, created, disabled FROM users"
        " WHERE username = ?",
        [username],
    )
    return rows[0] if rows else None


def set_role(store: Store, username: str, role: str) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    with store.transaction() as cur:
        if not cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise UserError(f"no user {username!r}")
        cur.execute("UPDATE users SET role = ? WHERE username = ?", [role, username])


def normalize_email(email: str) -> str:
    """`email` trimmed and lower-case (e-mails are compared ignoring case), or UserError."""
    cleaned = (email or "").strip().lower()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise UserError(f"e-mail {email!r}: not an e-mail address (name@domain.tld)")
    return cleaned


def _check_email_free(cur, username: str, email: str) -> None:
    """Refuse an e-mail another account holds, or that is another account's user name (its
    Label Studio work would otherwise be credited to two people)."""
    row = cur.execute(
        "SELECT username FROM users WHERE lower(email) = ? AND username <> ?", [email, username]
    ).fetchone()
    if row:
        raise UserError(f"e-mail {email!r} already belongs to user {row[0]!r}")
    row = cur.execute(
        "SELECT username FROM users WHERE lower(username) = ? AND username <> ?", [email, username]
    ).fetchone()
    if row:
        raise UserError(f"e-mail {email!r} is the user name of another account, {row[0]!r}")


def set_email(store: Store, username: str, email: str | None) -> dict:
    """Set (or, with None / "", clear) the Label Studio e-mail of a user; admins only.

    Verdicts and judgements already pulled from Label Studio follow in the same transaction:
    those under the new e-mail move to the username, and on a clear or change those under the
    username go back to the old e-mail, as the next pull would record them. Returns the counts.
    """
    new = normalize_email(email) if email and email.strip() else None
    with store.transaction() as cur:
        found = cur.execute("SELECT email FROM users WHERE username = ?", [username]).fetchone()
        if found is None:
            raise UserError(f"no user {username!r}")
        old = found[0]
        if new:
            _check_email_free(cur, username, new)
        moved = {"reviews": 0, "judgements": 0}
        if new == old:
            return {"username": username, "email": new, **moved}
        cur.execute("UPDATE users SET email = ? WHERE username = ?", [new, username])
        if old:
            _reattribute(cur, username, old, moved, back=True)
        if new:
            _reattribute(cur, new, username, moved, back=False)
    return {"username": username, "email": new, "previous": old, **moved}


def _reattribute(cur, frm: str, to: str, moved: dict[str, int], *, back: bool) -> None:
    """Move Label Studio verdicts (reviews) and judgements (comparisons `ls:` ids) from the
    name `frm` to `to`; `frm` is compared ignoring case unless moving back from a username."""
    match = "reviewer = ?" if back else "lower(reviewer) = ?"
    n = cur.execute(
        f"UPDATE reviews SET reviewer = ? WHERE source = 'label-studio' AND {match}", [to, frm]
    ).fetchone()
    moved["reviews"] += n[0] if n else 0
    match = "annotator = ?" if back else "lower(annotator) = ?"
    n = cur.execute(
        f"UPDATE comparisons SET annotator = ? WHERE id LIKE 'ls:%' AND {match}", [to, frm]
    ).fetchone()
    moved["judgements"] += n[0] if n else 0


def studio_names(cur, identities: Iterable[str | None]) -> dict[str | None, str | None]:
    """Map annotator identities from Label Studio (e-mails) to studio usernames: an identity
    that is some user's e-mail (ignoring case) becomes that username; any other comes back
    unchanged. Every writer of pulled or delivered verdicts and judgements calls this on its
    transaction's cursor, so one person is counted once across the studio and Label Studio."""
    by_email = dict(
        cur.execute("SELECT lower(email), username FROM users WHERE email IS NOT NULL").fetchall()
    )
    return {i: by_email.get(i.strip().lower(), i) if isinstance(i, str) else i for i in identities}


def find_by_identity(store: Store, email: str) -> dict | None:
    """The account whose user name or linked e-mail is `email` (ignoring case), or None."""
    key = email.strip().lower()
    for u in list_users(store):
        if u["username"].lower() == key or (u.get("email") or "").lower() == key:
            return u
    return None


audit_rows = audit_log.rows
