"""The browser's sign-in cookie: a signed, expiring, HttpOnly, SameSite=Lax cookie that
carries only a session id (backend/store/sessions.py says whether that session still holds).

Two HTTP routes sit beside the dashboard (studio/server.py mounts them):
- GET /auth/session?code=...&next=/review: the page's sign-in form, once the password is
  checked, sends the browser here with a one-time code; the route trades it for the cookie and
  sends the browser back to the page it asked for.
- GET|POST /auth/sign-out?next=/: clears the cookie (the page has ended the session already).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

COOKIE = "ftstudio_session"
ROUTES_ENV = "FTSTUDIO_SESSION_ROUTES"  # set by studio/server.py: the routes are mounted


def routes_mounted() -> bool:
    return os.environ.get(ROUTES_ENV) == "1"


def _key(ws_root: Path) -> bytes:
    """The workspace's cookie-signing key, made on first use, readable by its owner only."""
    path = Path(ws_root) / ".session_key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    except FileExistsError:  # another thread made it meanwhile
        return path.read_bytes()


def _signer(ws_root: Path) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_key(ws_root), salt="ftstudio-session")


def cookie_value(ws_root: Path, session_id: str) -> str:
    return _signer(ws_root).dumps(session_id)


def session_id_of(ws_root: Path, cookie: str | None, max_age_s: float) -> str | None:
    """The session id a cookie carries, when its signature holds and it is not too old."""
    if not cookie:
        return None
    try:
        value = _signer(ws_root).loads(cookie, max_age=max_age_s)
    except BadSignature:  # SignatureExpired is one too
        return None
    return value if isinstance(value, str) else None


def safe_next(value: str | None, default: str = "/") -> str:
    """A local path to send the browser back to (never another site).

    >>> safe_next("/review?tab=Flag"), safe_next("//evil.example"), safe_next("https://x.y/")
    ('/review?tab=Flag', '/', '/')
    """
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 for c in value):
        return default
    parts = urlsplit(value)
    return default if parts.scheme or parts.netloc else value


def redirect(path: str) -> None:
    """Send this browser tab to a local path of the studio's (the cookie routes) and end the
    script run. The one place the studio runs a script in the page: a fixed line around a
    path it built itself and checked with `safe_next`, never user text."""
    import json

    import streamlit as st

    target = safe_next(path)
    st.html(
        f"<script>window.location.replace({json.dumps(target)});</script>",
        unsafe_allow_javascript=True,
    )
    st.stop()


def _studio():
    from studio import resources  # the dashboard's own store and settings (one process)

    return resources.store(), resources.workspace(), resources.settings()


async def session_route(request: Request) -> Response:
    from backend.action import Ctx
    from backend.users import actions as user_actions

    store, ws, cfg = _studio()
    code = request.query_params.get("code", "")
    session_id = user_actions.take_handoff(Ctx(store=store, ws=ws, settings=cfg), code)
    if session_id is None:
        return PlainTextResponse(
            "This sign-in link was used already or has expired: sign in again.", status_code=400
        )
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie_value(ws.root, session_id),
        max_age=int(cfg.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def sign_out_route(request: Request) -> Response:
    response = RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


routes = [
    Route("/auth/session", session_route, methods=["GET"]),
    Route("/auth/sign-out", sign_out_route, methods=["GET", "POST"]),
]
