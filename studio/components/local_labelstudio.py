"""This workspace's own Label Studio, for admins: its status, Start and Stop (through the Label
Studio actions, so the role check and the audit row are theirs), its credentials (address,
admin user, password, API token) shown only when an admin asks, and the end of its log.

    if actor.can("settings"):
        local_labelstudio.panel("review")

The credentials are read from the workspace's 0600 file on each draw while shown; session
state holds only the flag that they are shown, never the secrets.
"""

from __future__ import annotations

import streamlit as st

from backend.integrations.labelstudio import server as lss
from backend.review import labelstudio_actions as ls_actions
from studio import auth, resources, state
from studio.components.safe_text import md_escape

SHOWN = "{prefix}_ls_credentials_shown"  # session-state flag per page: credentials on view
FIELDS = (
    ("Address", "url"),
    ("User", "username"),
    ("Password", "password"),
    ("API token", "token"),
)


def _done(message: str) -> None:
    state.flash(message)
    st.rerun()


def panel(prefix: str) -> None:
    """Draw the panel; `prefix` keeps its widget keys apart from other pages' (unique keys)."""
    ws = resources.workspace()
    shown_key = SHOWN.format(prefix=prefix)
    st.markdown("**This workspace's Label Studio**")
    status = lss.status(ws)
    running = status["running"]
    if running:
        st.success(f"Running at {md_escape(status['url'])} (process {status['pid']}).")
    elif status.get("url"):
        st.warning(f"Not answering at {md_escape(status['url'])}: start it again.")
    else:
        st.info(
            "Not started here yet. Start installs it on first use (a few minutes), then runs "
            "it on 127.0.0.1 for this workspace only."
        )
    c1, c2, c3 = st.columns(3)
    if c1.button("Start Label Studio", disabled=running, key=f"{prefix}_ls_start"):
        try:
            with st.spinner("Starting Label Studio (the first start also installs it)"):
                info, _token = ls_actions.start_labelstudio(auth.ctx())
            _done(f"Label Studio runs at {info.url} (ready in {info.start_seconds} s).")
        except (lss.LabelStudioServerError, OSError, ValueError) as exc:
            st.error(md_escape(f"Could not start Label Studio: {exc}"))
    if c2.button("Stop Label Studio", disabled=not running, key=f"{prefix}_ls_stop"):
        try:
            was = ls_actions.stop_labelstudio(auth.ctx())
            _done("Label Studio stopped." if was else "No local Label Studio was running.")
        except (OSError, ValueError) as exc:
            st.error(md_escape(f"Could not stop Label Studio: {exc}"))
    if not st.session_state.get(shown_key):
        if c3.button(
            "Show credentials",
            key=f"{prefix}_ls_show_credentials",
            help="The address, admin user, password and API token of this local Label "
            "Studio, for signing in or for LABEL_STUDIO_API_KEY elsewhere. Admins only; each "
            "reveal is recorded in the audit log.",
        ):
            try:
                ls_actions.reveal_labelstudio_credentials(auth.ctx())
                st.session_state[shown_key] = True
                st.rerun()
            except ValueError as exc:
                st.error(md_escape(str(exc)))
        return
    if c3.button("Hide credentials", key=f"{prefix}_ls_hide_credentials"):
        st.session_state[shown_key] = False
        st.rerun()
    creds = lss.local_credentials(ws) or {}
    for label, field in FIELDS:
        st.text(label)
        st.code(creds.get(field) or "(none)", language=None)
    with st.expander("The end of its log"):
        st.code(lss.log_tail(lss.state_dir(ws) / "server.log") or "(empty)", language=None)
