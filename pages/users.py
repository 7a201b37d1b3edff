"""Users: local accounts and their roles (admins only)."""

import streamlit as st

from backend.action import AlreadyDone
from backend.auth import ROLES
from backend.store import users
from backend.users import actions as user_actions
from studio import auth, resources

auth.guard("users")

st.title("Users")
st.caption(
    "Accounts and roles: reviewers review, analysts rank, leads run everything, "
    "admins also manage users and settings."
)

store = resources.store()
accounts = users.list_users(store)
cols = st.columns(len(ROLES) + 1)  # filled last, so a change made below shows at once

table = None  # the accounts table, also filled last
tab_list, tab_add = st.tabs(["Accounts", "Add a user"])
with tab_list:
    if accounts:
        table = st.empty()
        st.subheader("Label Studio e-mail")
        st.caption(
            "Link an account to its Label Studio e-mail: verdicts and rankings made in Label "
            "Studio then count under the user name, those already pulled too."
        )
        who = st.selectbox("User", [a["username"] for a in accounts])
        current = next(a["email"] for a in accounts if a["username"] == who) or ""
        typed = st.text_input("Label Studio e-mail", value=current)
        save_col, clear_col = st.columns(2)
        save = save_col.button("Save e-mail", type="primary")
        clear = clear_col.button("Clear e-mail")
        if save or clear:
            try:
                moved = user_actions.set_email(auth.ctx(), who, None if clear else typed)
            except AlreadyDone as exc:
                st.info(str(exc))
            except ValueError as exc:
                st.error("The e-mail was not saved:")
                st.text(str(exc))
            else:
                st.success(
                    f"Saved. Re-attributed {moved['reviews']} verdicts and "
                    f"{moved['judgements']} rankings."
                )
                st.text(f"{who}: {moved['email'] or 'no Label Studio e-mail'}")
    else:
        st.info(
            "No accounts yet: the studio runs in single-user mode. Add the first admin "
            "here or with `ftstudio users add NAME --role admin`."
        )
with tab_add, st.form("add-user", clear_on_submit=True):
    name = st.text_input("User name (or e-mail)")
    role = st.selectbox("Role", ROLES, index=0)
    password = st.text_input("Password (8 characters or more)", type="password")
    new_email = st.text_input("Label Studio e-mail (optional)")
    if st.form_submit_button("Add user", type="primary"):
        try:
            user_actions.add_user(
                auth.ctx(), name.strip(), password, role, email=new_email.strip() or None
            )
        except AlreadyDone as exc:
            st.info(str(exc))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(f"Added {name} as {role}.")

accounts = users.list_users(store)
for col, role in zip(cols, ROLES, strict=False):
    col.metric(f"{role}s", sum(1 for a in accounts if a["role"] == role))
cols[-1].metric("Label Studio e-mails", sum(1 for a in accounts if a["email"]))
if table is not None:
    table.dataframe(accounts, hide_index=True)
