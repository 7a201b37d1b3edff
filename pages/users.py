"""Users: local accounts and their roles (admins only)."""

import streamlit as st

from backend.auth import ROLES, PermissionDenied
from backend.store import users
from studio import auth, resources

auth.guard("users")

st.title("Users")
st.caption(
    "Accounts and roles: reviewers review, analysts rank, leads run everything, "
    "admins also manage users and settings."
)

store = resources.store()
accounts = users.list_users(store)
cols = st.columns(len(ROLES))
for col, role in zip(cols, ROLES, strict=True):
    col.metric(f"{role}s", sum(1 for a in accounts if a["role"] == role))

tab_list, tab_add = st.tabs(["Accounts", "Add a user"])
with tab_list:
    if accounts:
        st.dataframe(accounts, hide_index=True)
    else:
        st.info(
            "No accounts yet: the studio runs in single-user mode. Add the first admin "
            "here or with `ftstudio users add NAME --role admin`."
        )
with tab_add, st.form("add-user", clear_on_submit=True):
    name = st.text_input("User name (or e-mail)")
    role = st.selectbox("Role", ROLES, index=0)
    password = st.text_input("Password (8 characters or more)", type="password")
    if st.form_submit_button("Add user", type="primary"):
        try:
            users.add_user(store, name.strip(), password, role, actor=auth.actor())
        except (users.UserError, PermissionDenied) as exc:
            st.error(str(exc))
        else:
            st.success(f"Added {name} as {role}.")
