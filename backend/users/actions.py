"""User actions: add an account, change a role, link a Label Studio e-mail, disable or
enable an account, reset a password, and sign in and out (server-side sessions).

Each checks `manage_users` (signing in needs no role) and writes its audit row in the
transaction of the change. Adding a user whose name exists answers `AlreadyDone` when the
existing account has the same role and e-mail (a form sent twice), a clear error otherwise.
"""

from __future__ import annotations

from datetime import datetime

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store
from backend.auth import LOCK_AFTER, LOCK_S, Actor, backoff_s
from backend.changes import CHANGES
from backend.store import audit as audit_log
from backend.store import sessions, users


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


class SignInRefused(ActionError):
    """A sign-in refused before the password was checked: the account is locked, or the
    back-off after failed attempts has not passed. `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


ANONYMOUS = Actor("(not signed in)", "none")  # whoever tried a failed sign-in


def _refuse_if_waiting(ctx: Ctx, username: str, now: datetime) -> None:
    row = sessions.failures(ctx.store, username)
    if not row:
        return
    if row["locked_until"] and row["locked_until"] > now:
        wait = (row["locked_until"] - now).total_seconds()
        _failed(ctx, username, "locked")
        raise SignInRefused(
            f"{username} is locked after {LOCK_AFTER} failed sign-ins: try again in "
            f"{wait / 60:.0f} min, or ask an admin to reset the password",
            wait,
        )
    if row["last"] is not None:
        wait = backoff_s(row["n"] or 0) - (now - row["last"]).total_seconds()
        if wait > 0:
            _failed(ctx, username, "too soon")
            raise SignInRefused(
                f"too many failed sign-ins for {username}: try again in {wait:.0f} s", wait
            )


def _failed(ctx: Ctx, username: str, reason: str, detail: dict | None = None) -> None:
    with ctx.store.transaction() as cur:
        audit_log.record(
            cur, ANONYMOUS, "session.sign_in_failed", username, {"reason": reason, **(detail or {})}
        )
    CHANGES.bump("audit")


def sign_in(ctx: Ctx, username: str, password: str) -> tuple[Actor, str] | None:
    """Check a password and open a browser session: (actor, session id), or None when the
    name or password is wrong (the same answer for both). Every failure is audited, counted
    per user (a back-off, then a lockout: backend/auth.py) and refused early while waiting
    (`SignInRefused`). A success re-hashes a password stored with a weaker cost."""
    store = need_store(ctx)
    now = datetime.now()
    _refuse_if_waiting(ctx, username, now)
    who = users.authenticate(store, username, password)
    if who is None:
        if users.find_user(store, username) is not None:
            row = sessions.record_failure(store, username, LOCK_AFTER, LOCK_S)
            _failed(ctx, username, "wrong password", {"locked": bool(row.get("locked_until"))})
        else:
            _failed(ctx, username, "unknown user or disabled")
        return None
    sessions.clear_failures(store, username)
    ttl = ctx.settings.session_hours * 3600
    signed = Ctx(store=store, ws=ctx.ws, settings=ctx.settings, actor=who)
    session_id = action.change(
        signed,
        "sign_in",
        "session.sign_in",
        who.username,
        lambda cur: sessions.create(store, who.username, ttl),
    )
    return who, session_id


def session_actor(ctx: Ctx, session_id: str | None) -> Actor | None:
    """The actor of a live session, with the role the account has now (None when the session
    ended, expired, or its account is disabled)."""
    if not session_id or ctx.store is None:
        return None
    row = sessions.active(ctx.store, session_id)
    return Actor(row["username"], row["role"]) if row else None


def sign_out(ctx: Ctx, session_id: str | None) -> None:
    """End a browser session (its cookie is then worth nothing)."""
    if not session_id or ctx.actor is None:
        return
    action.change(
        ctx,
        "sign_in",
        "session.sign_out",
        ctx.actor.username,
        lambda cur: sessions.revoke(ctx.store, session_id),
    )


def set_disabled(ctx: Ctx, username: str, disabled: bool) -> dict:
    """Disable (every session of the account ends at once) or enable an account."""

    def write(cur) -> dict:
        existing = users.find_user(ctx.store, username)
        if existing is None:
            raise users.UserError(f"no user {username!r}")
        if bool(existing.get("disabled")) == disabled:
            raise AlreadyDone(f"{username} is already {'disabled' if disabled else 'enabled'}")
        if disabled and ctx.actor is not None and ctx.actor.username == username:
            raise ActionError("you cannot disable your own account")
        users.set_disabled(ctx.store, username, disabled)
        ended = sessions.revoke_user(ctx.store, username) if disabled else 0
        return {"username": username, "disabled": disabled, "sessions_ended": ended}

    name = "user.disable" if disabled else "user.enable"
    return action.change(ctx, "manage_users", name, username, write, detail=lambda r: r)


def reset_password(ctx: Ctx, username: str, password: str) -> dict:
    """Give an account a new password; its lockout and failed count are cleared and its
    sessions end (they were opened with the old one)."""

    def write(cur) -> dict:
        if users.find_user(ctx.store, username) is None:
            raise users.UserError(f"no user {username!r}")
        users.set_password(ctx.store, username, password)
        sessions.clear_failures(ctx.store, username)
        return {"username": username, "sessions_ended": sessions.revoke_user(ctx.store, username)}

    return action.change(ctx, "manage_users", "user.password", username, write, detail=lambda r: r)


def oidc_actor(ctx: Ctx, claims: dict) -> Actor | str:
    """Who an identity provider's sign-in is: the account named by the verified e-mail or
    linked to it, with its role. A string says why it is refused instead: no verified e-mail,
    a domain outside FTSTUDIO_OIDC_DOMAINS, a disabled account, or someone unknown while
    unknown people are refused. The `sub` claim never names an account."""
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        return "The identity provider sent no e-mail address: the studio signs people in by e-mail."
    if claims.get("email_verified") is not True:
        return f"The identity provider has not verified {email}: verify it there, then sign in."
    domains = [d.strip().lower().lstrip("@") for d in (ctx.settings.oidc_domains or "").split(",")]
    domains = [d for d in domains if d]
    if domains and email.rsplit("@", 1)[-1] not in domains:
        return f"{email} is not in an allowed domain ({', '.join(domains)}); ask an admin."
    store = need_store(ctx)
    policy = ctx.settings.oidc_unknown
    known = users.find_by_identity(store, email)
    if known is None:
        refuse = policy == "refuse" or (policy == "auto" and users.count_users(store) > 0)
        if refuse:
            return f"{email} has no account here; ask an admin to add you."
        return Actor(email, "reviewer")
    if known.get("disabled"):
        return "This account is disabled; ask an admin."
    return Actor(known["username"], known["role"])


def new_handoff(ctx: Ctx, session_id: str) -> str:
    """A one-time code that the browser trades for the session's cookie (/auth/session)."""
    return sessions.new_handoff(need_store(ctx), session_id)


def take_handoff(ctx: Ctx, code: str) -> str | None:
    return sessions.take_handoff(need_store(ctx), code)
