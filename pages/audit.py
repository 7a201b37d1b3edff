"""Audit: who did what, and when."""

import streamlit as st

from backend.store import users
from studio import auth, resources

auth.guard("audit")

st.title("Audit")
st.caption(
    "Every review, ranking, job launch and cancel, approval, import and export, with "
    "who did it and when."
)

store = resources.store()
c1, c2 = st.columns(2)
who = c1.text_input("Actor", placeholder="any")
action = c2.text_input("Action starts with", placeholder="e.g. job., review., prefs.")
rows = users.audit_rows(store, actor=who.strip() or None, action=action.strip() or None)
m1, m2 = st.columns(2)
m1.metric("Entries shown", len(rows))
m2.metric("Actors", rows["actor"].nunique() if len(rows) else 0)
if rows.empty:
    st.info("Nothing recorded yet for this filter.")
else:
    st.dataframe(rows, hide_index=True)
    st.download_button("Download CSV", rows.to_csv(index=False), "audit.csv", "text/csv")
