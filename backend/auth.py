"""Roles, permissions and password hashing: pure functions, no storage.

Roles: reviewer (Review), analyst (Preferences), lead (everything but admin), admin (users,
settings and everything else). Backend functions that change shared state call
`require(actor, permission)`, so hiding a page is never the only protection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ROLES = ("reviewer", "analyst", "lead", "admin")

# permission -> roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "review": frozenset({"reviewer", "lead", "admin"}),
    "rank": frozenset({"analyst", "lead", "admin"}),
    "view_runs": frozenset({"analyst", "lead", "admin"}),
    "edit_data": frozenset({"lead", "admin"}),
    "launch_job": frozenset({"lead", "admin"}),
    "cancel_job": frozenset({"lead", "admin"}),
    "approve_plan": frozenset({"lead", "admin"}),
    "import_export": frozenset({"lead", "admin"}),
    "view_audit": frozenset({"lead", "admin"}),
    "manage_users": frozenset({"admin"}),
    "settings": frozenset({"admin"}),
    "sign_in": frozenset(ROLES),
}

# page file stem -> permission needed to see it (pages not listed are open to every role)
PAGE_PERMISSION: dict[str, str] = {
    "datasets": "edit_data",
    "review": "review",
    "training": "launch_job",
    "compare": "view_runs",
    "playground": "view_runs",
    "preferences": "rank",
    "monitoring": "approve_plan",
    "jobs": "launch_job",
    "audit": "view_audit",
    "users": "manage_users",
    "settings": "settings",
}


class PermissionDenied(PermissionError, ValueError):
    """The signed-in role may not do this. Also a ValueError, so every form that shows bad
    input as an error shows a refusal the same way."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, the local single user, or the command line."""

    username: str
    role: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS.get(permission, frozenset())


LOCAL_ADMIN = Actor("local", "admin")  # single-user mode and the shell


def require(actor: Actor | None, permission: str) -> Actor:
    """Refuse unless `actor` holds `permission`; None means the trusted local shell."""
    actor = actor or LOCAL_ADMIN
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if not actor.can(permission):
        allowed = ", ".join(sorted(PERMISSIONS[permission]))
        raise PermissionDenied(
            f"{actor.username} ({actor.role}) may not {permission.replace('_', ' ')}; "
            f"roles that may: {allowed}"
        )
    return actor


def page_allowed(actor: Actor, page: str) -> bool:
    permission = PAGE_PERMISSION.get(page)
    return permission is None or actor.can(permission)


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # 32 MiB per hash: slows guessing, not users
_SCRYPT_MAXMEM = 64 * 2**20


def hash_password(password: str) -> str:
    """scrypt with a random salt, stored as `scrypt$n$r$p$salt$hash` (hex)."""
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    salt = secrets.token_bytes(16)
    n, r, p = SCRYPT_N, SCRYPT_R, SCRYPT_P
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=_SCRYPT_MAXMEM
    )
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(),
        salt=bytes.fromhex(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
        maxmem=_SCRYPT_MAXMEM,
    )
    return hmac.compare_digest(candidate.hex(), digest)


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash is weaker than today's cost (re-hashed at the next sign-in).

    >>> needs_rehash("scrypt$16384$8$1$00$00"), needs_rehash(f"scrypt${SCRYPT_N}$8$1$00$00")
    (True, False)
    """
    try:
        scheme, n, r, p, _salt, _digest = stored.split("$")
        return scheme != "scrypt" or (int(n), int(r), int(p)) < (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    except ValueError:
        return True


# Failed sign-ins: the 4th and later in a row wait 2, 4, 8 ... (at most 300) seconds after the
# previous failure; the 10th locks the account for 15 minutes. Counted per user name (in the
# database) and per browser session (by the page).
BACKOFF_FREE_TRIES = 3
LOCK_AFTER = 10
LOCK_S = 15 * 60


def backoff_s(failures: int) -> float:
    """How long after the last failed sign-in the next attempt must wait.

    >>> [backoff_s(n) for n in (0, 3, 4, 5, 12)]
    [0.0, 0.0, 2.0, 4.0, 300.0]
    """
    if failures <= BACKOFF_FREE_TRIES:
        return 0.0
    return float(min(2 ** (failures - BACKOFF_FREE_TRIES), 300))
