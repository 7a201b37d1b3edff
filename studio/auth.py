"""Who is using the dashboard.

- An OIDC provider configured in `.streamlit/secrets.toml` ([auth] section): `st.login`; the
  provider's e-mail is matched to the account named so or linked to it (any case), which
  brings that account's name and role; reviewer when unknown, refused when disabled.
- Otherwise, local accounts when any exist (`ftstudio users add NAME --role admin` creates the
  first): a sign-in form, passwords checked against scrypt hashes.
- With no accounts: single-user mode, meant for 127.0.0.1, and the page says so.
Only the user name and role are kept in session state, never a password or token.
"""

from __future__ import annotations

import streamlit as st

from backend.action import Ctx
from backend.auth import LOCAL_ADMIN, Actor
from backend.store import users
from backend.users import actions as user_actions
from studio import resources, state


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def current_actor() -> Actor:
    """The signed-in actor, also kept in session state for `actor()`; draws the sign-in form
    and stops the page when nobody is signed in."""
    who = _resolve()
    st.session_state[state.ACTOR] = (who.username, who.role)
    return who


def _resolve() -> Actor:
    store = resources.store()
    if _oidc_configured():
        if not st.user.is_logged_in:
            st.title("Fine-Tuning Studio")
            st.button("Sign in", on_click=st.login, type="primary")
            st.stop()
        who = users.actor_for_identity(store, str(st.user.get("email") or st.user.get("sub")))
        if who is None:
            st.error("This account is disabled; ask an admin.")
            st.button("Sign out", on_click=st.logout)
            st.stop()
        return who
    if users.count_users(store) == 0:
        return LOCAL_ADMIN
    signed = st.session_state.get(state.ACTOR)
    if signed and signed != (LOCAL_ADMIN.username, LOCAL_ADMIN.role):
        return Actor(*signed)
    _sign_in_form(store)
    st.stop()


def _sign_in_form(store) -> None:
    st.title("Sign in")
    st.caption("Fine-Tuning Studio: sign in with the account your admin created.")
    with st.form("sign-in"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        actor = user_actions.sign_in(ctx(), username.strip(), password)
        if actor is None:
            st.error("Unknown user name or wrong password.")
            return
        st.session_state[state.ACTOR] = (actor.username, actor.role)
        st.rerun()


def sidebar(actor: Actor) -> None:
    with st.sidebar:
        if actor == LOCAL_ADMIN:
            st.caption(
                "Single-user mode: no accounts exist, so whoever reaches this address "
                "acts as admin. Keep the studio on 127.0.0.1, or create accounts with "
                "`ftstudio users add NAME --role admin`."
            )
            return
        st.caption(f"Signed in as {actor.username} ({actor.role})")
        if _oidc_configured():
            st.button("Sign out", on_click=st.logout)
        elif st.button("Sign out"):
            st.session_state[state.ACTOR] = None
            st.rerun()


def actor() -> Actor:
    """The actor for backend calls from a page (set by the app shell)."""
    signed = st.session_state.get(state.ACTOR)
    return Actor(*signed) if signed else LOCAL_ADMIN


def ctx() -> Ctx:
    """The action context of this page run: the process's store, workspace and settings, and
    the signed-in actor. Every change a page makes is an action called with it."""
    return Ctx(
        store=resources.store(),
        ws=resources.workspace(),
        settings=resources.settings(),
        actor=actor(),
    )


def guard(page: str) -> Actor:
    """First line of a page: stop with a clear message when the role may not use it (the
    navigation hides such pages; this also covers a typed URL or a stale link)."""
    from backend.auth import PAGE_PERMISSION, page_allowed

    who = actor()
    if not page_allowed(who, page):
        st.error(
            f"{who.username} ({who.role}) may not open this page: it needs the "
            f"'{PAGE_PERMISSION[page].replace('_', ' ')}' permission. Ask an admin."
        )
        st.stop()
    return who


def can_open(page: str) -> bool:
    """Whether the current actor's navigation has this page (for links to it)."""
    from backend.auth import page_allowed

    return page_allowed(actor(), page)


def identity_input(label: str, key: str) -> str:
    """The name a reviewer or analyst acts under: the signed-in user's (fixed), or, in
    single-user mode, whatever the person types."""
    who = actor()
    if who == LOCAL_ADMIN:
        return st.text_input(label, key=key).strip()
    st.text_input(label, value=who.username, disabled=True, key=f"{key}-signed")
    return who.username
