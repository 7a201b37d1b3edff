"""The dashboard: `streamlit run studio/app.py` (or `ftstudio up`).

Navigation over the files in pages/, in the order of the work. This process holds the
database; a background thread ingests job folders and starts a worker when jobs are queued.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run studio/app.py` from a plain checkout
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from backend.demo_workspace import bootstrap  # noqa: E402
from backend.store import StoreLockedError  # noqa: E402
from backend.workspace import WorkspaceError  # noqa: E402
from studio import resources, state  # noqa: E402

st.set_page_config(page_title="Fine-Tuning Studio", page_icon=":material/tune:", layout="wide")
state.init()


def page(name: str, title: str, icon: str, default: bool = False) -> st.Page:
    return st.Page(f"../pages/{name}.py", title=title, icon=icon, default=default)


try:
    store = resources.store()
    ws = resources.workspace()
except (StoreLockedError, WorkspaceError) as exc:
    st.error(f"The studio cannot open its workspace: {exc}")
    st.stop()


@st.cache_resource(show_spinner=False)
def _bootstrap_once() -> list[str]:
    return bootstrap(store, ws)


_bootstrap_once()
resources.ingestor()

NAV = {
    "Home": [page("overview", "Overview", ":material/dashboard:", default=True)],
    "Data": [page("review", "Review", ":material/rate_review:")],
    "Operate": [page("jobs", "Jobs", ":material/work_history:")],
    "Admin": [page("settings", "Settings", ":material/settings:")],
}

st.navigation(NAV).run()
