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

from backend import auth as auth_rules  # noqa: E402
from backend.demo_workspace import bootstrap  # noqa: E402
from backend.store import StoreLockedError  # noqa: E402
from backend.workspace import WorkspaceError  # noqa: E402
from studio import auth, resources, state  # noqa: E402

st.set_page_config(page_title="Fine-Tuning Studio", page_icon=":material/tune:", layout="wide")
state.init()


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

actor = auth.current_actor()
auth.sidebar(actor)

# section -> (page file stem, title, icon), in the order of the work
NAV = {
    "Home": [("overview", "Overview", ":material/dashboard:")],
    "Data": [
        ("datasets", "Datasets", ":material/dataset:"),
        ("review", "Review", ":material/rate_review:"),
    ],
    "Train": [
        ("training", "Training", ":material/model_training:"),
        ("compare", "Compare", ":material/compare_arrows:"),
        ("playground", "Playground", ":material/forum:"),
    ],
    "Align": [("preferences", "Preferences", ":material/thumbs_up_down:")],
    "Operate": [
        ("monitoring", "Monitoring", ":material/monitoring:"),
        ("jobs", "Jobs", ":material/work_history:"),
    ],
    "Admin": [
        ("settings", "Settings", ":material/settings:"),
        ("users", "Users", ":material/group:"),
        ("audit", "Audit", ":material/history:"),
    ],
}
sections = {
    section: [
        st.Page(f"../pages/{stem}.py", title=title, icon=icon, default=stem == "overview")
        for stem, title, icon in items
        if auth_rules.page_allowed(actor, stem)
    ]
    for section, items in NAV.items()
}
st.navigation({name: pages for name, pages in sections.items() if pages}).run()
