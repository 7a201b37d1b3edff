"""The "Label Studio" section of the Preferences page's Rank tab: push a comparison set as a
Pairwise / Ranker project, pull the analysts' judgements back, link to the project."""

from __future__ import annotations

import streamlit as st

from backend.action import AlreadyDone
from backend.integrations.labelstudio import client as lsc
from backend.prefs import actions
from backend.store import prefs_ls as L
from studio import auth, resources, state
from studio.components.safe_text import md_escape


def labelstudio_section(cs: dict) -> None:
    """Push / pull buttons and the project link for comparison set `cs`."""
    store, ws, cfg = resources.store(), resources.workspace(), resources.settings()
    url, token = lsc.connection(cfg, ws)
    link = L.project_link(store, cs["id"])
    kind = "a Pairwise (tie / both bad)" if cs["mode"] == "pairwise" else "a Ranker"
    st.caption(
        f"A second channel: analysts judge this set in {kind} project; pulled "
        "judgements carry their Label Studio email, and pulling again adds nothing."
    )
    if link:
        st.link_button("Open the project", link, icon=":material/open_in_new:")
    if not url or not token:
        st.info(
            "No Label Studio configured: run `ftstudio labelstudio up` (a local server) or "
            "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY."
        )
        return
    c1, c2 = st.columns(2)
    try:
        if c1.button("Push to Label Studio", disabled=bool(link), key="prefs_ls_push"):
            with st.spinner("Creating the project and importing tasks"):
                res = actions.push_to_labelstudio(auth.ctx(), cs["name"])
            state.flash(f"Pushed {res['tasks']} tasks to project {res['project_id']}")
            st.rerun()
        if c2.button("Pull judgements", disabled=not link, key="prefs_ls_pull"):
            with st.spinner("Reading the full JSON export"):
                res = actions.pull_from_labelstudio(auth.ctx(), cs["name"])
            state.flash(
                f"Pulled {res['annotations']} annotations: {res['new']} new, "
                f"{res['updated']} updated, {res['unchanged']} unchanged, "
                f"{len(res['skipped'])} skipped"
            )
            st.rerun()
    except AlreadyDone as exc:
        st.info(md_escape(str(exc)))
    except (ValueError, lsc.LabelStudioError) as exc:
        st.error(md_escape(str(exc)))
