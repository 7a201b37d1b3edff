"""Studio users' Label Studio e-mails: the migration from version 13, setting and clearing one
(checked, unique ignoring case, admins only, audited), and verdicts and judgements from Label
Studio (pull rows, webhook inbox lines, pulled preference judgements) recorded under the studio
username, re-attributed without duplicates when the e-mail is set later."""

from __future__ import annotations

import json
import time

import duckdb
import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone
from backend.auth import Actor, PermissionDenied
from backend.cli import app
from backend.ingest.review_inbox import ingest_workspace_inbox
from backend.integrations.labelstudio import webhook as hook
from backend.integrations.labelstudio.client import reviewer_name
from backend.prefs import actions as prefs_actions
from backend.prefs.pairs import build_items
from backend.review import labelstudio as lsync
from backend.store import Store, users
from backend.store import prefs as S
from backend.store import prefs_ls as L
from backend.store import review as rstore
from backend.store.migrations import available
from backend.users import actions as ua
from tests.support.seed_review import flagged_batch, scored_dataset

PW = "password-1"
LS_USERS = {1: "ann@example.com", 2: "Carl@Example.com"}  # Label Studio user id -> e-mail


def _at_version_13(ws) -> None:
    """A database as the studio left it before e-mails existed, with one account."""
    con = duckdb.connect(str(ws.db_path))
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    for version, name, path in available():
        if version <= 13:
            con.execute(path.read_text())
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    con.execute(
        "INSERT INTO users (username, display_name, role, password_hash)"
        " VALUES ('old', 'Old', 'lead', 'x')"
    )
    con.close()


def test_database_at_version_13_migrates_and_keeps_its_users(ws):
    _at_version_13(ws)
    store = Store.open(ws.db_path)
    try:
        assert store.scalar("SELECT max(version) FROM schema_version") == available()[-1][0]
        assert [(u["username"], u["role"], u["email"]) for u in users.list_users(store)] == [
            ("old", "lead", None)
        ]
        assert users.set_email(store, "old", "Old@Example.com")["email"] == "old@example.com"
        with pytest.raises(duckdb.ConstraintException):  # the index backs the store's check
            store.cursor().execute(
                "INSERT INTO users (username, role, password_hash, email)"
                " VALUES ('twin', 'lead', 'x', 'OLD@example.com')"
            )
    finally:
        store.close()
    store = Store.open(ws.db_path)  # reopening applies nothing twice
    try:
        assert store.scalar("SELECT count(*) FROM schema_version WHERE version = 14") == 1
        assert users.list_users(store)[0]["email"] == "old@example.com"
    finally:
        store.close()


def test_setting_an_email_is_checked_unique_admin_only_and_audited(store, act):
    shell = act()
    ua.add_user(shell, "ann", PW, "reviewer")
    ua.add_user(shell, "bob", PW, "analyst", email=" Bob@Example.com ")
    ua.add_user(shell, "dee@example.com", PW, "reviewer")  # a user named by an e-mail
    assert {u["username"]: u["email"] for u in users.list_users(store)}["bob"] == "bob@example.com"
    for bad in ("ann", "ann@", "ann @example.com", "ann@example", "a@b@example.com"):
        with pytest.raises(users.UserError, match="not an e-mail address"):
            ua.set_email(shell, "ann", bad)
    with pytest.raises(users.UserError, match="already belongs to user 'bob'"):
        ua.set_email(shell, "ann", "BOB@example.COM")
    with pytest.raises(users.UserError, match="already belongs to user 'bob'"):
        ua.add_user(shell, "eve", PW, "reviewer", email="bob@example.com")
    with pytest.raises(users.UserError, match="user name of another account, 'dee@example.com'"):
        ua.set_email(shell, "ann", "Dee@Example.com")
    with pytest.raises(users.UserError, match="no user 'nobody'"):
        ua.set_email(shell, "nobody", "n@example.com")
    with pytest.raises(PermissionDenied, match="may not manage users"):
        ua.set_email(act(Actor("lee", "lead")), "ann", "ann@example.com")
    assert {u["username"]: u["email"] for u in users.list_users(store)}["ann"] is None
    assert ua.set_email(act(Actor("ada", "admin")), "ann", "Ann@Example.com") == {
        "username": "ann",
        "email": "ann@example.com",
        "reviews": 0,
        "judgements": 0,
    }
    with pytest.raises(AlreadyDone, match="already ann@example.com"):  # nothing to record
        ua.set_email(shell, "ann", "ann@example.com")
    ua.set_email(shell, "bob", None)
    ua.set_email(shell, "ann", "bob@example.com")  # free again once bob cleared it
    log = users.audit_rows(store, action="user.email")
    assert list(log["target"]) == ["ann", "bob", "ann"]
    assert list(log["actor"]) == ["shell", "shell", "ada"]
    assert json.loads(log["detail"].iloc[0])["previous"] == "ann@example.com"


def test_studio_names_maps_known_emails_only(store):
    users.add_user(store, "bob", PW, "analyst", email="bob@example.com")
    with store.transaction() as cur:
        names = users.studio_names(cur, ["BOB@example.com", "carl@example.com", "user-7", None])
    assert names == {
        "BOB@example.com": "bob",
        "carl@example.com": "carl@example.com",
        "user-7": "user-7",
        None: None,
    }


def _annotation(ann_id: int, who: int, verdict: str, updated: str) -> dict:
    return {
        "id": ann_id,
        "task": 100 + ann_id,
        "completed_by": who,
        "was_cancelled": False,
        "created_at": "2026-11-29T10:00:00.000000Z",
        "updated_at": updated,
        "result": [{"from_name": "verdict", "type": "choices", "value": {"choices": [verdict]}}],
    }


@pytest.fixture
def batch(store):
    _, ids = scored_dataset(store, n=4)
    b = flagged_batch(store, "support", "score-1", 4)
    rstore.set_project(store, b["id"], "http://ls", 7, {e: 100 + i for i, e in enumerate(ids)})
    return b["id"], ids


def _pull(store, batch_id, ids) -> dict:
    """What `pull_batch` stores for this export: two annotators, one annotation each."""
    export = [
        (ids[0], _annotation(1, 1, "accept", "2026-11-29T10:00:00Z")),
        (ids[1], _annotation(2, 2, "reject", "2026-11-29T10:00:00Z")),
    ]
    rows = [
        lsync.parse_annotation(ann, ex, reviewer_name(ann["completed_by"], LS_USERS))
        for ex, ann in export
    ]
    return rstore.upsert_reviews(store, batch_id, rows)


def _reviewers(store, batch_id) -> dict[str, str]:
    return {r["id"]: r["reviewer"] for r in rstore.reviews(store, batch_id)}


def test_pulled_verdicts_count_under_the_username_and_follow_a_later_email(store, batch):
    batch_id, ids = batch
    users.add_user(store, "ann", PW, "reviewer", email="ANN@example.com")
    users.add_user(store, "carl", PW, "reviewer")
    assert _pull(store, batch_id, ids)["new"] == 2
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "Carl@Example.com"}
    assert _pull(store, batch_id, ids) == {"new": 0, "updated": 0, "unchanged": 2}
    # carl links his Label Studio account: his stored verdict moves at once, a pull is a no-op
    assert users.set_email(store, "carl", "carl@example.com")["reviews"] == 1
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "carl"}
    assert _pull(store, batch_id, ids) == {"new": 0, "updated": 0, "unchanged": 2}
    # clearing puts it back under the e-mail, as the next pull would
    assert users.set_email(store, "carl", None)["reviews"] == 1
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "carl@example.com"}
    assert _pull(store, batch_id, ids) == {"new": 0, "updated": 1, "unchanged": 1}
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "Carl@Example.com"}


def test_a_pull_re_attributes_rows_stored_under_the_email(store, batch):
    """An e-mail that reached the users table without moving the stored verdicts (a database
    restored from before this change): the next pull moves them, same ids, same count."""
    batch_id, ids = batch
    users.add_user(store, "carl", PW, "reviewer")
    _pull(store, batch_id, ids)
    store.cursor().execute("UPDATE users SET email = 'carl@example.com' WHERE username = 'carl'")
    assert _pull(store, batch_id, ids) == {"new": 0, "updated": 1, "unchanged": 1}
    assert _reviewers(store, batch_id) == {"ls:1": "ann@example.com", "ls:2": "carl"}
    assert store.scalar("SELECT count(*) FROM reviews") == 2


def _deliver(ws, batch_id, example_id, ann_id, who, updated) -> None:
    """Append what the webhook receiver would for one ANNOTATION_CREATED delivery."""
    payload = {
        "action": "ANNOTATION_CREATED",
        "annotation": _annotation(ann_id, who, "accept", updated),
        "task": {
            "id": 100 + ann_id,
            "project": 7,
            "data": {"batch_id": batch_id, "example_id": example_id},
        },
        "project": {"id": 7},
    }
    hook.Inbox(hook.inbox_path(ws)).append(hook.inbox_lines(payload, time.time(), LS_USERS.get))


def test_webhook_inbox_records_the_username_and_re_attributes(ws, store, batch):
    batch_id, ids = batch
    users.add_user(store, "ann", PW, "reviewer", email="ann@example.com")
    users.add_user(store, "carl", PW, "reviewer")
    _deliver(ws, batch_id, ids[0], 1, 1, "2026-11-29T10:00:00Z")
    _deliver(ws, batch_id, ids[1], 2, 2, "2026-11-29T10:00:00Z")
    assert ingest_workspace_inbox(store, ws).stored["new"] == 2
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "Carl@Example.com"}
    store.cursor().execute("UPDATE users SET email = 'carl@example.com' WHERE username = 'carl'")
    _deliver(ws, batch_id, ids[1], 2, 2, "2026-11-29T10:00:00Z")  # a repeated delivery
    assert ingest_workspace_inbox(store, ws).stored == {"new": 0, "updated": 1, "unchanged": 0}
    assert _reviewers(store, batch_id) == {"ls:1": "ann", "ls:2": "carl"}
    users.set_email(store, "ann", None)
    _deliver(ws, batch_id, ids[0], 1, 1, "2026-11-29T11:00:00Z")  # ann edits her verdict
    assert ingest_workspace_inbox(store, ws).stored == {"new": 0, "updated": 1, "unchanged": 0}
    assert _reviewers(store, batch_id) == {"ls:1": "ann@example.com", "ls:2": "carl"}
    assert store.scalar("SELECT count(*) FROM reviews") == 2


def test_pulled_judgements_count_under_the_username(store, act):
    users.add_user(store, "bob", PW, "analyst")
    cs = prefs_actions.create_comparison_set(
        act(), "c", items=build_items({"r1": {"q": "a"}, "r2": {"q": "b"}}), analysts=["bob"]
    )
    item = S.set_items(store, cs["id"])[0]["id"]
    row = {
        "id": "ls:9:1",
        "item_id": item,
        "annotator": "Bob@Example.com",
        "verdict": "A",
        "ranking": None,
        "detail": {"updated": "2026-11-29T10:00:00Z"},
    }
    other = {**row, "id": "ls:9:2", "annotator": "zoe@example.com"}

    def annotators() -> dict[str, str]:
        return dict(store.cursor().execute("SELECT id, annotator FROM comparisons").fetchall())

    assert L.upsert_ls_judgements(store, cs["id"], [row, other])["new"] == 2
    assert annotators() == {"ls:9:1": "Bob@Example.com", "ls:9:2": "zoe@example.com"}
    assert users.set_email(store, "bob", "bob@example.com")["judgements"] == 1
    assert annotators() == {"ls:9:1": "bob", "ls:9:2": "zoe@example.com"}
    assert L.upsert_ls_judgements(store, cs["id"], [row, other]) == {
        "new": 0,
        "updated": 0,
        "unchanged": 2,
    }
    store.cursor().execute("UPDATE comparisons SET annotator = 'Bob@Example.com'")
    assert L.upsert_ls_judgements(store, cs["id"], [row, other])["updated"] == 2
    assert annotators() == {"ls:9:1": "bob", "ls:9:2": "zoe@example.com"}
    assert store.scalar("SELECT count(*) FROM comparisons") == 2


def test_cli_add_list_email_and_clear(ws):
    runner = CliRunner()
    args = ["users", "add", "ann", "--role", "reviewer", "--password-stdin"]
    done = runner.invoke(app, [*args, "--email", "Ann@Example.com"], input=PW + "\n")
    assert done.exit_code == 0, done.output
    assert "Label Studio e-mail ann@example.com" in done.stdout
    done = runner.invoke(
        app, ["users", "add", "bob", "--role", "analyst", "--password-stdin"], input=PW + "\n"
    )
    assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["users", "list"]).stdout.splitlines()
    assert [line.split() for line in listed] == [
        ["ann", "reviewer", "ann@example.com"],
        ["bob", "analyst", "-"],
    ]
    clash = runner.invoke(app, ["users", "email", "bob", "ANN@example.com"])
    assert clash.exit_code == 2 and "already belongs to user 'ann'" in clash.output
    bad = runner.invoke(app, ["users", "email", "bob", "bob-at-example"])
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    for wrong in (["bob"], ["bob", "b@example.com", "--clear"]):
        both = runner.invoke(app, ["users", "email", *wrong])
        assert both.exit_code == 2 and "either an EMAIL or --clear" in both.output
    done = runner.invoke(app, ["users", "email", "bob", "Bob@Example.com"])
    assert done.exit_code == 0 and "now bob@example.com" in done.stdout
    done = runner.invoke(app, ["users", "email", "ann", "--clear"])
    assert done.exit_code == 0 and "cleared" in done.stdout
    rows = json.loads(runner.invoke(app, ["users", "list", "--json"]).stdout)
    assert {r["username"]: r["email"] for r in rows} == {"ann": None, "bob": "bob@example.com"}


def test_an_identity_provider_sign_in_finds_the_linked_account(store, act, monkeypatch):
    """Signed in through OIDC with a verified e-mail: the account named so, or the one whose
    linked e-mail it is (any case), with its role. Refused: an unverified e-mail, one outside
    the allowed domains, a disabled account, someone unknown once accounts exist (unless
    unknown people are made reviewers), and a `sub` claim never names an account."""

    def who(email=None, verified=True, **claims):
        return ua.oidc_actor(act(), {"email": email, "email_verified": verified, **claims})

    users.add_user(store, "ana", "pw-123456789", "lead", email="ana@example.com")
    users.add_user(store, "bo@example.com", "pw-123456789", "analyst")
    assert who("ANA@example.com ") == Actor("ana", "lead")
    assert who("bo@example.com") == Actor("bo@example.com", "analyst")
    assert "has not verified" in who("ana@example.com", verified=False)
    assert "has not verified" in who("ana@example.com", verified="true")  # a string is not True
    assert "no e-mail" in who(None, sub="ana")  # the subject is never a user name
    assert "no account here" in who("cy@example.com")  # accounts exist: unknown is refused
    monkeypatch.setenv("FTSTUDIO_OIDC_UNKNOWN", "reviewer")
    assert who("cy@example.com") == Actor("cy@example.com", "reviewer")
    monkeypatch.setenv("FTSTUDIO_OIDC_DOMAINS", "example.org, @corp.example")
    assert "not in an allowed domain" in who("bo@example.com")
    monkeypatch.delenv("FTSTUDIO_OIDC_DOMAINS")
    store.cursor().execute("UPDATE users SET disabled = true WHERE username = 'ana'")
    assert "disabled" in who("ana@example.com")  # refused, not a reviewer
