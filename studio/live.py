"""Live views: a page redraws by itself when data it shows changed in the background.

The ingestion thread (and every action) bumps a change counter per kind of data
(backend/changes.py). `follow("scores", "jobs")` near the top of a page remembers the counters
the page is drawn from and starts one small watcher fragment; when a counter it follows moves,
the watcher reruns the page. Streamlit sends only the elements whose content changed, widgets
keep their values and tabs bound to the URL stay open, so the figures, tables and "not yet"
states update within seconds with no reload and no timer per view.
"""

from __future__ import annotations

import streamlit as st

from backend.changes import CHANGES

WATCH_EVERY_S = 2.0


def follow(*kinds: str, every: float = WATCH_EVERY_S) -> None:
    """Rerun this page when any of `kinds` changes (see backend/changes.py for the kinds)."""
    key = "live:" + ",".join(kinds)
    st.session_state[key] = CHANGES.snapshot(kinds)  # what this run is drawn from

    @st.fragment(run_every=every)
    def _watch() -> None:
        if CHANGES.snapshot(kinds) != st.session_state.get(key):
            st.rerun(scope="app")

    _watch()
