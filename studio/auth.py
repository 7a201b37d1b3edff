"""Who is using the dashboard.

- An OIDC provider configured in `.streamlit/secrets.toml` ([auth] section): `st.login`. The
  provider's verified e-mail is matched to the account named so or linked to it (any case),
  which brings that account's name and role; a disabled account is refused; an e-mail outside
  FTSTUDIO_OIDC_DOMAINS is refused; someone unknown is refused once accounts exist (or made a
  reviewer when FTSTUDIO_OIDC_UNKNOWN=reviewer). The `sub` claim is never a user name.
- Otherwise, local accounts when any exist (`ftstudio users add NAME --role admin` creates the
  first): a sign-in form; a success opens a server-side session whose signed id the browser
  keeps in an HttpOnly cookie (studio/session.py), so a reload or a new tab stays signed in
  and lands on the page it asked for. Failed attempts back off per user name and per browser
  session, then lock the account (backend/users/actions.py).
- With no accounts: single-user mode, only on a loopback address (checked on the socket the
  server actually listens on).
The role and the disabled state are read from the database on every run, so a demotion or a
disable takes effect at once; session state keeps the session id and this run's actor only.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import streamlit as st

from backend.action import Ctx
from backend.auth import LOCAL_ADMIN, Actor, backoff_s
from backend.security import listening_addresses, loopback_only
from backend.store import users
from backend.users import actions as user_actions
from studio import resources, session, state

NOBODY = Actor("(not signed in)", "none")  # holds no permission


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def current_actor() -> Actor:
    """The signed-in actor, resolved again on every run and kept for this run in session
    state for `actor()`; draws the sign-in form and stops the page when nobody is signed in."""
    who = _resolve()
    st.session_state[state.ACTOR] = (who.username, who.role)
    return who


def _resolve() -> Actor:
    store = resources.store()
    if _oidc_configured():
        return _oidc_actor()
    if users.count_users(store) == 0:
        _refuse_single_user_off_loopback()
        return LOCAL_ADMIN
    ctx = Ctx(store=store, ws=resources.workspace(), settings=resources.settings())
    cookie = session.session_id_of(
        resources.workspace().root,
        st.context.cookies.get(session.COOKIE),
        resources.settings().session_hours * 3600,
    )
    for session_id in (st.session_state.get(state.SESSION), cookie):
        who = user_actions.session_actor(ctx, session_id)
        if who is not None:
            st.session_state[state.SESSION] = session_id
            return who
    st.session_state[state.SESSION] = None
    _sign_in_form()
    st.stop()


def _oidc_actor() -> Actor:
    if not st.user.is_logged_in:
        st.title("Fine-Tuning Studio")
        st.button("Sign in", on_click=st.login, type="primary")
        st.stop()
    cfg = resources.settings()
    found = user_actions.oidc_actor(
        Ctx(store=resources.store(), ws=resources.workspace(), settings=cfg), dict(st.user)
    )
    if isinstance(found, str):  # refused, and why
        st.error(found)
        st.button("Sign out", on_click=st.logout)
        st.stop()
    return found


def _refuse_single_user_off_loopback() -> None:
    """Single-user mode makes whoever connects an admin: refuse to serve it anywhere but on a
    loopback address, whatever the dashboard was started with."""
    port = st.get_option("server.port")
    bound = listening_addresses(int(port)) if port else []
    if bound and not loopback_only(bound):
        st.title("Fine-Tuning Studio")
        st.error(
            "Single-user mode (no accounts: everyone is admin) only serves on 127.0.0.1, but "
            f"this dashboard listens on {', '.join(sorted(set(bound)))}. Create the first "
            "admin with `ftstudio users add NAME --role admin`, or start it with "
            "`ftstudio up` (127.0.0.1)."
        )
        st.stop()


def _here() -> str:
    """The page the browser asked for, as a local path with its query."""
    url = st.context.url or ""
    parts = urlsplit(url)
    query = "&".join(f"{k}={v}" for k, v in st.query_params.items())
    return session.safe_next((parts.path or "/") + (f"?{query}" if query else ""))


def _sign_in_form() -> None:
    st.title("Sign in")
    st.caption("Fine-Tuning Studio: sign in with the account your admin created.")
    with st.form("sign-in"):
        username = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    fails, last = st.session_state.get(state.SIGN_IN_FAILS, (0, 0.0))
    wait = backoff_s(fails) - (time.time() - last)
    if wait > 0:  # this browser session's own back-off, whichever names it tries
        st.error(f"Too many failed sign-ins from this browser: try again in {wait:.0f} s.")
        return
    ctx = Ctx(store=resources.store(), ws=resources.workspace(), settings=resources.settings())
    try:
        signed = user_actions.sign_in(ctx, username.strip(), password)
    except user_actions.SignInRefused as exc:
        st.session_state[state.SIGN_IN_FAILS] = (fails + 1, time.time())
        st.error(str(exc))
        return
    if signed is None:
        st.session_state[state.SIGN_IN_FAILS] = (fails + 1, time.time())
        st.error("Unknown user name or wrong password.")
        return
    st.session_state[state.SIGN_IN_FAILS] = (0, 0.0)
    enter(*signed)


def enter(who: Actor, session_id: str) -> None:
    """Make `who` this browser's signed-in user: the tab's session now, and, where the cookie
    routes are mounted, the cookie (a one-time code traded at /auth/session, which comes back
    to this very page). Ends the script run."""
    st.session_state[state.SESSION] = session_id
    st.session_state[state.ACTOR] = (who.username, who.role)
    if session.routes_mounted():
        ctx = Ctx(store=resources.store(), ws=resources.workspace(), settings=resources.settings())
        code = user_actions.new_handoff(ctx, session_id)
        session.redirect(f"/auth/session?code={_quote(code)}&next={_quote(_here())}")
    st.rerun()


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


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
            user_actions.sign_out(ctx(), st.session_state.get(state.SESSION))
            st.session_state[state.SESSION] = None
            st.session_state[state.ACTOR] = None
            if session.routes_mounted():  # the cookie goes too
                session.redirect("/auth/sign-out?next=/")
            st.rerun()


def actor() -> Actor:
    """The actor of this run, as the app shell resolved it (role read from the database).
    Nobody signed in: the local admin in single-user mode, else someone with no permission."""
    signed = st.session_state.get(state.ACTOR)
    if signed:
        return Actor(*signed)
    return LOCAL_ADMIN if users.count_users(resources.store()) == 0 else NOBODY


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
