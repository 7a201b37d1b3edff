"""Sign-in with local accounts: each role sees only its pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.store import Store, users

APP = str(Path(__file__).resolve().parents[2] / "studio" / "app.py")


def _seed(ws) -> None:
    store = Store.open(ws.db_path)
    users.add_user(store, "rita", "reviewer-pass", "reviewer")
    users.add_user(store, "lee", "lead-pass-1", "lead")
    store.close()
    (ws.models / "tiny-llama").mkdir()


def _sign_in(name: str, password: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.title[0].value == "Sign in"
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click()
    at.run()
    return at


def test_wrong_password_is_refused(ws):
    _seed(ws)
    at = _sign_in("rita", "not-her-password")
    assert at.error[0].value == "Unknown user name or wrong password."
    assert at.title[0].value == "Sign in"


def test_reviewer_signs_in_and_cannot_open_lead_pages(ws):
    from backend.jobs import queue

    _seed(ws)
    queue.submit(ws, "sleep", {"steps": 1})  # an active job on the Overview, without a link
    at = _sign_in("rita", "reviewer-pass")
    assert not at.exception, at.exception
    assert at.session_state["actor"] == ("rita", "reviewer")
    assert any("Signed in as rita (reviewer)" in c.value for c in at.sidebar.caption)
    at.switch_page("../pages/review.py")
    at.run()
    assert not at.exception and at.title[0].value == "Review"


def test_lead_signs_in(ws):
    _seed(ws)
    at = _sign_in("lee", "lead-pass-1")
    assert at.session_state["actor"] == ("lee", "lead")
    at.switch_page("../pages/jobs.py")
    at.run()
    assert not at.exception and at.title[0].value == "Jobs"


def test_reviewer_cannot_reach_a_hidden_page(ws):
    _seed(ws)
    at = _sign_in("rita", "reviewer-pass")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/jobs.py")  # the navigation does not even register it
