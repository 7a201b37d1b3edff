"""The Users page in a real browser: the first admin added in single-user mode is signed in at
once and the next action is not dropped; an admin changes a role and disables and re-enables an
account, and the account's sign-in follows."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD = "users-pass-1"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("e2e-users") / "workspace").ensure()
    server = Dashboard(ws.root)
    yield server
    server.stop()


def _add(page: Page, name: str, role: str | None = None) -> None:
    form = page.get_by_test_id("stForm")
    form.get_by_label("User name (or e-mail)").fill(name)
    if role:
        form.get_by_role("combobox", name="Role").click()
        page.get_by_role("option", name=role, exact=True).click()
    form.get_by_label("Password (8 characters or more)").fill(PASSWORD)
    form.get_by_role("button", name="Add user").click()


def _can_sign_in(browser, url: str, name: str) -> bool:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=60_000)
        page.get_by_label("User name", exact=True).fill(name)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        signed = page.get_by_text(re.compile(rf"Signed in as {name} "))
        refused = page.get_by_text("Unknown user name or wrong password.")
        expect(signed.or_(refused).first).to_be_visible(timeout=30_000)
        return signed.count() > 0
    finally:
        context.close()


def test_first_admin_is_signed_in_and_roles_and_state_change_from_the_page(studio, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(studio.url + "/users?users_tab=Add+a+user")
    expect(page.get_by_role("heading", name="Users")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile("No accounts yet"))).to_be_attached()

    _add(page, "ada")
    expect(page.get_by_text("Signed in as ada (admin)")).to_be_visible(timeout=30_000)
    # the very next action is not dropped: it is ada's, and it lands
    _add(page, "rita", role="reviewer")
    expect(page.get_by_text("Added rita as reviewer.")).to_be_visible()
    page.reload()  # the new admin's session survives a reload
    expect(page.get_by_text("Signed in as ada (admin)")).to_be_visible(timeout=60_000)

    page.get_by_role("tab", name="Accounts").click()
    page.get_by_role("combobox", name="User").click()
    page.get_by_role("option", name="rita", exact=True).click()
    expect(page.get_by_role("heading", name="rita: reviewer")).to_be_visible()
    page.get_by_role("combobox", name="Role").first.click()
    page.get_by_role("option", name="analyst", exact=True).click()
    page.get_by_role("button", name="Change role").click()
    expect(page.get_by_text("rita is now analyst", exact=False)).to_be_visible()
    expect(page.get_by_role("heading", name="rita: analyst")).to_be_visible()

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("heading", name="rita: analyst (disabled)")).to_be_visible()
    assert not _can_sign_in(browser, studio.url, "rita")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("heading", name="rita: analyst")).to_be_visible()
    assert _can_sign_in(browser, studio.url, "rita")
    expect(page.get_by_text("Signed in as ada (admin)")).to_be_visible()
    context.close()
