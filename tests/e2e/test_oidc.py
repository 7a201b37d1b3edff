"""Signing in through an OpenID Connect provider (a real one on loopback, see
tests/support/oidc_provider.py) with Streamlit's st.login, in Chromium: the provider's e-mail
is matched to the studio account it is linked to, which brings that account's name, role and
pages; an e-mail nobody linked comes in as a reviewer; a disabled account is turned away."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Dashboard, free_port
from tests.e2e.test_roles import nav_titles
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from backend.store import Store, users
    from backend.workspace import Workspace

    root = tmp_path_factory.mktemp("e2e-oidc")
    ws = Workspace(root / "workspace").ensure()
    store = Store.open(ws.db_path)
    try:
        users.add_user(store, "admin", "pw-123456789", "admin")
        users.add_user(store, "lee", "pw-123456789", "lead", email="lee@example.com")
        users.add_user(store, "old", "pw-123456789", "lead", email="old@example.com")
        store.cursor().execute("UPDATE users SET disabled = true WHERE username = 'old'")
    finally:
        store.close()
    port = free_port()
    with OIDCProvider(email="lee@example.com") as idp:
        conf = root / "secrets.toml"
        conf.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(16)}"\n'
            f'client_id = "{CLIENT_ID}"\n'
            f'client_secret = "{CLIENT_SECRET}"\n'
            f'server_metadata_url = "{idp.metadata_url}"\n'
        )
        server = Dashboard(ws.root, {"STREAMLIT_SECRETS_FILES": str(conf)}, port=port)
        yield server, idp
        server.stop()


def sign_in(browser, url: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.get_by_role("button", name="Sign in").click(timeout=60_000)
    return page


def test_provider_email_signs_in_as_the_linked_account(studio, browser):
    server, idp = studio
    idp.email = "LEE@example.com"  # providers do not promise the case
    page = sign_in(browser, server.url)
    expect(page.get_by_text("Signed in as lee (lead)")).to_be_visible(timeout=60_000)
    titles = nav_titles(page)
    assert {"Training", "Compare", "Monitoring"} <= titles and "Users" not in titles
    assert {"/authorize", "/token", "/jwks"} <= set(idp.requests)
    page.context.close()


def test_unlinked_email_and_disabled_account_are_refused(studio, browser):
    server, idp = studio
    idp.email = "someone@example.com"  # accounts exist: someone unknown is refused
    page = sign_in(browser, server.url)
    expect(page.get_by_text("someone@example.com has no account here")).to_be_visible(
        timeout=60_000
    )
    page.context.close()

    idp.email = "old@example.com"
    page = sign_in(browser, server.url)
    expect(page.get_by_text("This account is disabled; ask an admin.")).to_be_visible(
        timeout=60_000
    )
    page.context.close()
