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
