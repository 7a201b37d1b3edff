"""Session-state keys, one constant each, initialised with setdefault.

Never put secrets here: session state is per browser tab and shows in debugging tools.
"""

from __future__ import annotations

import streamlit as st

SELECTED_JOB = "selected_job"
SELECTED_DATASET = "selected_dataset"
SELECTED_RUNS = "selected_runs"
SELECTED_RUN = "selected_run"  # the run shown on the Training page
REVIEWER = "reviewer"
FLASH = "flash"  # a message to show once after a rerun
ACTOR = "actor"  # (username, role) of this run's actor, resolved again each run; never a secret
SESSION = "session"  # this tab's server-side session id (the cookie carries it across reloads)
SIGN_IN_FAILS = "sign_in_fails"  # (failed attempts, time of the last) in this browser session
PREFS_SET = "prefs_set"  # the comparison set on the Preferences page
PREFS_ANALYST = "prefs_analyst"  # who is ranking on the Preferences page
COMPARE_TABLE = "compare_runs_table"  # row selection of the Compare page's runs table
LS_LIVE = "ls_live"  # the Review page receives Label Studio annotations by webhook

DEFAULTS: dict[str, object] = {
    SELECTED_JOB: None,
    SELECTED_DATASET: None,
    SELECTED_RUNS: [],
    SELECTED_RUN: None,
    REVIEWER: "me",
    FLASH: None,
    ACTOR: None,
    SESSION: None,
    PREFS_SET: None,
    PREFS_ANALYST: "",
}


def init() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value.copy() if isinstance(value, list) else value)


def flash(message: str) -> None:
    st.session_state[FLASH] = message


def show_flash() -> None:
    message = st.session_state.get(FLASH)
    if message:
        st.success(message)
        st.session_state[FLASH] = None
