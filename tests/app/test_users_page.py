"""The Users page: an admin sets and clears a user's Label Studio e-mail (a clash is refused
naming the other user, shown as text), new accounts can carry one, and a lead is turned away."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.review import labelstudio as lsync
from backend.store import Store, users
from backend.store import review as rstore
from tests.support.seed_review import flagged_batch, scored_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "users.py")
PW = "password-1"


def _seed(ws) -> None:
    store = Store.open(ws.db_path)
    try:
        users.add_user(store, "ada", PW, "admin")
        users.add_user(store, "ann", PW, "reviewer", email="ann@example.com")
        users.add_user(store, "carl", PW, "reviewer")
        _, ids = scored_dataset(store, n=2)
        batch = flagged_batch(store, "support", "score-1", 2)
        ann = {
            "id": 5,
            "completed_by": 2,
            "updated_at": "2026-11-29T10:00:00Z",
            "result": [{"from_name": "verdict", "value": {"choices": ["accept"]}}],
        }
        row = lsync.parse_annotation(ann, ids[0], "carl@example.com")
        rstore.upsert_reviews(store, batch["id"], [row])
    finally:
        store.close()


def _page(who=("ada", "admin")) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = who
    at.run()
    assert not at.exception, at.exception
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_admin_sets_and_clears_an_email(ws):
    _seed(ws)
    at = _page()
    assert _metric(at, "Label Studio e-mails") == "1"
    user = next(s for s in at.selectbox if s.label == "User")
    field = next(t for t in at.text_input if t.label == "Label Studio e-mail")
    assert user.value == "ada" and field.value == ""
    user.set_value("carl").run()
    field = next(t for t in at.text_input if t.label == "Label Studio e-mail")
    field.input("ANN@example.com")
    next(b for b in at.button if b.label == "Save e-mail").click().run()
    assert not at.exception
    assert "already belongs to user 'ann'" in at.error[0].value
    field = next(t for t in at.text_input if t.label == "Label Studio e-mail")
    field.input("Carl@Example.com")
    next(b for b in at.button if b.label == "Save e-mail").click().run()
    assert not at.exception and not at.error
    assert "carl: carl@example.com. Re-attributed 1 verdicts" in at.success[0].value
    assert _metric(at, "Label Studio e-mails") == "2"  # the metrics show the change at once
    table = at.dataframe[0].value
    assert dict(zip(table["username"], table["email"], strict=True))["carl"] == "carl@example.com"
    store = Store.open(ws.db_path)
    try:
        assert store.scalar("SELECT reviewer FROM reviews") == "carl"
        assert users.audit_rows(store, action="user.email")["actor"].tolist() == ["ada"]
    finally:
        store.close()
    next(b for b in at.button if b.label == "Clear e-mail").click().run()
    assert not at.exception and _metric(at, "Label Studio e-mails") == "1"


def test_add_a_user_with_an_email(ws):
    _seed(ws)
    at = _page()
    form = [t for t in at.text_input if t.label != "Label Studio e-mail"]
    labels = [t.label for t in form]
    form[labels.index("User name (or e-mail)")].input("dee")
    form[labels.index("Password (8 characters or more)")].input(PW)
    form[labels.index("Label Studio e-mail (optional)")].input("Dee@Example.com")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception and at.success[0].value == "Added dee as reviewer."
    table = at.dataframe[0].value
    assert dict(zip(table["username"], table["email"], strict=True))["dee"] == "dee@example.com"


def test_a_lead_cannot_open_the_page(ws):
    _seed(ws)
    at = _page(("lee", "lead"))
    assert "may not open this page" in at.error[0].value
    assert not at.text_input
