"""User actions: add an account, change a role, link a Label Studio e-mail, sign in.

Each checks `manage_users` (signing in needs no role) and writes its audit row in the
transaction of the change. Adding a user whose name exists answers `AlreadyDone` when the
existing account has the same role and e-mail (a form sent twice), a clear error otherwise.
"""

from __future__ import annotations

from backend import action
from backend.action import AlreadyDone, Ctx
from backend.auth import Actor
from backend.store import users


def add_user(
    ctx: Ctx,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
) -> dict:
    """Create an account; `email` is its Label Studio e-mail (see `set_email`)."""

    def write(cur) -> dict:
        existing = users.find_user(ctx.store, username)
        if existing is not None:
            wanted = users.normalize_email(email) if email else None
            if existing["role"] == role and (existing.get("email") or None) == wanted:
                raise AlreadyDone(f"user {username!r} already exists as {role}", existing)
        return users.add_user(
            ctx.store, username, password, role, display_name=display_name, email=email
        )

    return action.change(
        ctx,
        "manage_users",
        "user.add",
        username,
        write,
        detail=lambda added: {"role": added["role"], "email": added["email"]},
    )


def set_role(ctx: Ctx, username: str, role: str) -> dict:
    """Change a user's role; the same role again answers `AlreadyDone`."""

    def write(cur) -> dict:
        existing = users.find_user(ctx.store, username)
        if existing is not None and existing["role"] == role:
            raise AlreadyDone(f"{username} is already {role}", existing)
        users.set_role(ctx.store, username, role)
        return {"username": username, "role": role}

    return action.change(ctx, "manage_users", "user.role", username, write, detail={"role": role})


def set_email(ctx: Ctx, username: str, email: str | None) -> dict:
    """Set (or, with None / "", clear) a user's Label Studio e-mail; verdicts and judgements
    already pulled under it follow in the same transaction. Returns the moved counts; the
    e-mail it has already answers `AlreadyDone`."""

    def write(cur) -> dict:
        existing = users.find_user(ctx.store, username)
        wanted = users.normalize_email(email) if email and email.strip() else None
        if existing is not None and (existing.get("email") or None) == wanted:
            what = f"e-mail is already {wanted}" if wanted else "has no e-mail already"
            raise AlreadyDone(f"{username}'s Label Studio {what}", existing)
        return users.set_email(ctx.store, username, email)

    def detail(moved: dict) -> dict:
        return {k: v for k, v in moved.items() if k != "username"}

    moved = action.change(ctx, "manage_users", "user.email", username, write, detail=detail)
    return {k: v for k, v in moved.items() if k != "previous"}


def sign_in(ctx: Ctx, username: str, password: str) -> Actor | None:
    """The actor for these credentials (None when wrong); a success is audited."""
    who = users.authenticate(ctx.store, username, password)
    if who is None:
        return None
    signed = Ctx(store=ctx.store, ws=ctx.ws, settings=ctx.settings, actor=who)
    action.change(signed, "sign_in", "session.sign_in", who.username, lambda cur: None)
    return who
