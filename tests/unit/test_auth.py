"""Accounts, roles and the audit log."""

from __future__ import annotations

import pytest

from backend.action import AlreadyDone
from backend.auth import (
    LOCAL_ADMIN,
    Actor,
    PermissionDenied,
    hash_password,
    page_allowed,
    require,
    verify_password,
)
from backend.store import users
from backend.users import actions as ua


def test_password_hash_roundtrip_and_salt():
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b  # salted
    assert verify_password("correct horse", a)
    assert not verify_password("wrong horse", a)
    assert not verify_password("correct horse", "md5$abc")
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_roles_gate_actions_and_pages():
    reviewer, analyst, lead = Actor("r", "reviewer"), Actor("a", "analyst"), Actor("l", "lead")
    assert require(reviewer, "review") == reviewer
    with pytest.raises(PermissionDenied, match="r \\(reviewer\\) may not launch job"):
        require(reviewer, "launch_job")
    with pytest.raises(PermissionDenied):
        require(analyst, "review")
    with pytest.raises(PermissionDenied):
        require(lead, "manage_users")
    assert require(None, "manage_users") == LOCAL_ADMIN  # the shell is trusted
    assert [
        p
        for p in ("review", "preferences", "training", "settings", "overview")
        if page_allowed(reviewer, p)
    ] == ["review", "overview"]
    assert page_allowed(analyst, "preferences") and not page_allowed(analyst, "training")


def test_accounts_and_audit(store, act):
    shell = act()
    ua.add_user(shell, "ann@example.com", "s3cret-pass", "reviewer")
    with pytest.raises(AlreadyDone, match="already exists"):  # the same form sent twice
        ua.add_user(shell, "ann@example.com", "s3cret-pass", "reviewer")
    with pytest.raises(users.UserError, match="already exists"):
        ua.add_user(shell, "ann@example.com", "another-pass", "lead")
    with pytest.raises(users.UserError, match="unknown role"):
        ua.add_user(shell, "bob", "password12", "boss")
    with pytest.raises(users.UserError, match="at least 8"):
        ua.add_user(shell, "bob", "short", "lead")
    with pytest.raises(users.UserError, match="user name"):
        ua.add_user(shell, "../etc", "password12", "lead")
    assert users.authenticate(store, "ann@example.com", "s3cret-pass") == Actor(
        "ann@example.com", "reviewer"
    )
    assert users.authenticate(store, "ann@example.com", "nope") is None
    assert users.authenticate(store, "ghost", "s3cret-pass") is None
    with pytest.raises(PermissionDenied):
        ua.set_role(act(Actor("ann@example.com", "reviewer")), "ann@example.com", "admin")
    ua.set_role(shell, "ann@example.com", "analyst")
    with pytest.raises(AlreadyDone, match="already analyst"):
        ua.set_role(shell, "ann@example.com", "analyst")
    log = users.audit_rows(store)
    assert list(log["action"]) == ["user.role", "user.add"]
    assert "s3cret" not in log.to_csv()
    assert users.count_users(store) == 1


def test_job_launch_and_cancel_are_attributed(ws, store):
    from backend.ingest.jobs import ingest_all
    from backend.jobs import queue

    lead, reviewer = Actor("lee", "lead"), Actor("rita", "reviewer")
    with pytest.raises(PermissionDenied):
        queue.submit(ws, "sleep", {"steps": 1}, actor=reviewer)
    assert queue.job_ids(ws) == []  # refused before anything was written
    job_id = queue.submit(ws, "sleep", {"steps": 1}, actor=lead)
    with pytest.raises(PermissionDenied):
        queue.cancel(ws, job_id, actor=reviewer)
    ingest_all(store, ws)
    queue.cancel(ws, job_id, actor=Actor("lia", "lead"))
    ingest_all(store, ws)
    ingest_all(store, ws)
    log = users.audit_rows(store)
    assert sorted(zip(log["action"], log["actor"], strict=True)) == [
        ("job.cancel", "lia"),
        ("job.launch", "lee"),
    ]
    queue.resume(ws, job_id, actor=lead)
    ingest_all(store, ws)
    assert "job.resume" in set(users.audit_rows(store)["action"])


def test_sign_in_backs_off_locks_audits_failures_and_rehashes(store, act, monkeypatch):
    import datetime as dt

    from backend import auth as rules
    from backend.store import sessions

    shell = act()
    ua.add_user(shell, "ann", "s3cret-pass", "reviewer")
    weak = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32  # a hash of the old, lower cost
    store.cursor().execute("UPDATE users SET password_hash = ? WHERE username = 'ann'", [weak])
    assert ua.sign_in(shell, "ann", "s3cret-pass") is None  # (that hash matches no password)
    users.set_password(store, "ann", "s3cret-pass")
    hashed = store.scalar("SELECT password_hash FROM users WHERE username = 'ann'")
    assert not rules.needs_rehash(hashed)

    for _ in range(2):  # with the one above: three wrong tries answer plainly
        assert ua.sign_in(shell, "ann", "wrong-pass") is None
    assert ua.sign_in(shell, "ann", "wrong-pass") is None  # the 4th failure
    with pytest.raises(ua.SignInRefused, match="try again in"):
        ua.sign_in(shell, "ann", "s3cret-pass")  # right, but within the back-off
    log = users.audit_rows(store, action="session.sign_in_failed")
    assert len(log) == 5 and set(log["target"]) == {"ann"}
    assert "s3cret" not in log.to_csv() and "wrong-pass" not in log.to_csv()

    past = dt.datetime.now() - dt.timedelta(seconds=3600)
    store.cursor().execute("UPDATE users SET last_failed_sign_in = ?", [past])
    who, session_id = ua.sign_in(shell, "ann", "s3cret-pass")
    assert who == Actor("ann", "reviewer") and sessions.active(store, session_id)

    for _ in range(rules.LOCK_AFTER):  # ten in a row lock the account
        store.cursor().execute("UPDATE users SET last_failed_sign_in = ?", [past])
        try:
            ua.sign_in(shell, "ann", "wrong-pass")
        except ua.SignInRefused:
            pass
    with pytest.raises(ua.SignInRefused, match="locked"):
        ua.sign_in(shell, "ann", "s3cret-pass")
    ua.reset_password(shell, "ann", "new-secret-1")  # an admin's reset lifts the lock
    assert sessions.active(store, session_id) is None  # and ends the old sessions
    assert ua.sign_in(shell, "ann", "new-secret-1")[0] == Actor("ann", "reviewer")


def test_a_weaker_stored_hash_is_replaced_at_the_next_sign_in(store, act):
    from backend import auth as rules

    old = hashlib_scrypt_hash("s3cret-pass", n=2**14)
    users.add_user(store, "bob", "placeholder-1", "analyst")
    store.cursor().execute("UPDATE users SET password_hash = ? WHERE username = 'bob'", [old])
    assert ua.sign_in(act(), "bob", "s3cret-pass")[0] == Actor("bob", "analyst")
    now = store.scalar("SELECT password_hash FROM users WHERE username = 'bob'")
    assert now != old and not rules.needs_rehash(now) and rules.verify_password("s3cret-pass", now)


def test_disable_ends_sessions_and_demotion_shows_on_the_next_run(store, act):
    from backend.store import sessions

    shell = act()
    ua.add_user(shell, "lee", "lead-pass-1", "lead")
    _, session_id = ua.sign_in(shell, "lee", "lead-pass-1")
    assert ua.session_actor(shell, session_id) == Actor("lee", "lead")
    ua.set_role(shell, "lee", "reviewer")
    assert ua.session_actor(shell, session_id) == Actor("lee", "reviewer")  # read again
    ua.set_disabled(shell, "lee", True)
    assert ua.session_actor(shell, session_id) is None and not sessions.active(store, session_id)
    with pytest.raises(AlreadyDone):
        ua.set_disabled(shell, "lee", True)
    assert ua.sign_in(shell, "lee", "lead-pass-1") is None  # disabled: refused
    ua.set_disabled(shell, "lee", False)
    assert ua.sign_in(shell, "lee", "lead-pass-1")[0] == Actor("lee", "reviewer")
    with pytest.raises(PermissionDenied):
        ua.set_disabled(act(Actor("lee", "reviewer")), "lee", True)


def hashlib_scrypt_hash(password: str, n: int) -> str:
    import hashlib
    import secrets

    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    return f"scrypt${n}$8$1${salt.hex()}${digest.hex()}"
