"""Sign-in survives reloads and new tabs: a signed, expiring, HttpOnly cookie tied to a
server-side session; signing in from a page lands on that page; signing out and disabling the
account end the session at once; failed sign-ins back off and are audited."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "session-pass-1"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.store import Store, users
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-session") / "workspace").ensure()
    store = Store.open(ws.db_path)
    try:
        users.add_user(store, "ada", PASSWORD, "admin")
        users.add_user(store, "rita", PASSWORD, "reviewer")
    finally:
        store.close()
    server = Dashboard(ws.root)
    yield server
    server.stop()


def _sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=60_000)
    page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_reload_and_a_new_tab_keep_the_session_and_sign_in_lands_where_asked(studio, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(studio.url + "/review")
    _sign_in(page, "rita")
    expect(page.get_by_text("Signed in as rita (reviewer)")).to_be_visible(timeout=30_000)
    page.wait_for_url("**/review**")
    expect(page.get_by_role("heading", name="Review")).to_be_visible(timeout=30_000)
    cookie = next(c for c in context.cookies() if c["name"] == "ftstudio_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert page.evaluate("document.cookie").find("ftstudio_session") < 0  # not for scripts

    page.reload()
    expect(page.get_by_text("Signed in as rita (reviewer)")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    other = context.new_page()
    other.goto(studio.url)
    expect(other.get_by_text("Signed in as rita (reviewer)")).to_be_visible(timeout=30_000)
    other.close()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
    context.close()


def test_disabling_the_account_ends_its_session_at_once(studio, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(studio.url)
    _sign_in(page, "rita")
    expect(page.get_by_text("Signed in as rita (reviewer)")).to_be_visible(timeout=30_000)

    admin = browser.new_context(viewport={"width": 1400, "height": 1000})
    ada = admin.new_page()
    ada.set_default_timeout(30_000)
    ada.goto(studio.url + "/users?users_selected=rita")  # the selection lives in the URL
    _sign_in(ada, "ada")
    expect(ada.get_by_role("heading", name="rita: reviewer")).to_be_visible(timeout=30_000)
    ada.get_by_role("button", name="Disable").click()
    expect(ada.get_by_text("rita is disabled")).to_be_visible(timeout=30_000)

    page.reload()  # the cookie is still there; its session is not
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
    admin.close()
    context.close()


def test_failed_sign_ins_back_off_in_the_browser(studio, browser):
    """Three wrong passwords are answered as such; after that each attempt must wait (2, 4,
    8 ... s), and while it waits even the right password is refused."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(studio.url)
    for _ in range(3):
        _sign_in(page, "ada", "not-the-password")
        expect(page.get_by_text("Unknown user name or wrong password.")).to_be_visible()
    refused = False
    for _ in range(5):  # the 4th failure starts the back-off
        _sign_in(page, "ada", "not-the-password")
        page.wait_for_timeout(1_500)  # the rerun that answers
        if page.get_by_text("try again in").is_visible():
            refused = True
            break
    assert refused
    _sign_in(page, "ada", PASSWORD)  # right, but too soon
    expect(page.get_by_text("try again in")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.close()
