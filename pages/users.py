"""Users: local accounts, their roles and state (admins only)."""

import streamlit as st

from backend.action import AlreadyDone
from backend.auth import LOCAL_ADMIN, ROLES
from backend.store import users
from backend.users import actions as user_actions
from studio import auth, live, resources, state

auth.guard("users")

st.title("Users")
st.caption(
    "Accounts and roles: reviewers review, analysts rank, leads run everything, "
    "admins also manage users and settings."
)
state.show_flash()
live.follow("users")

store = resources.store()
cols = st.columns(len(ROLES) + 2)  # filled last, so a change made below shows at once
table = None  # the accounts table, also filled last


def _done(message: str) -> None:
    state.flash(message)
    st.rerun()


def _run(call, success) -> None:
    """Call a user action; show its refusal, or its success (a text, or a function of the
    action's result) once the page has redrawn with the change."""
    try:
        result = call()
    except AlreadyDone as exc:
        st.info(str(exc))
    except ValueError as exc:
        st.error(str(exc))
    else:
        _done(success(result) if callable(success) else success)


def _moved(result: dict) -> str:
    return (
        f"{result['username']}: {result['email'] or 'no Label Studio e-mail'}. Re-attributed "
        f"{result['reviews']} verdicts and {result['judgements']} rankings."
    )


accounts = users.list_users(store)
tab_list, tab_add = st.tabs(["Accounts", "Add a user"], key="users_tab", bind="query-params")
with tab_list:
    if accounts:
        table = st.empty()
        names = [a["username"] for a in accounts]
        who = st.selectbox("User", names, key="users_selected", bind="query-params")
        row = next(a for a in accounts if a["username"] == who)
        st.subheader(f"{who}: {row['role']}{' (disabled)' if row['disabled'] else ''}")
        role_col, state_col = st.columns(2)
        with role_col:
            new_role = st.selectbox(
                "Role", ROLES, index=ROLES.index(row["role"]), key=f"users_role_{who}"
            )
            if st.button("Change role", disabled=new_role == row["role"]):
                _run(
                    lambda: user_actions.set_role(auth.ctx(), who, new_role),
                    f"{who} is now {new_role}; it takes effect on their next click.",
                )
        with state_col:
            st.caption(
                "A disabled account cannot sign in, and its open sessions end at once."
                if not row["disabled"]
                else "Enabling lets the account sign in again."
            )
            label = "Enable" if row["disabled"] else "Disable"
            if st.button(label, type="secondary"):
                _run(
                    lambda: user_actions.set_disabled(auth.ctx(), who, not row["disabled"]),
                    f"{who} is {'enabled' if row['disabled'] else 'disabled'}.",
                )
        with st.expander("Reset password"):
            new_password = st.text_input(
                "New password (8 characters or more)", type="password", key=f"users_pw_{who}"
            )
            if st.button("Set the new password", disabled=not new_password):
                _run(
                    lambda: user_actions.reset_password(auth.ctx(), who, new_password),
                    f"{who}'s password is reset; their sessions have ended.",
                )
        with st.expander("Label Studio e-mail"):
            st.caption(
                "Link an account to its Label Studio e-mail: verdicts and rankings made in "
                "Label Studio then count under the user name, those already pulled too."
            )
            typed = st.text_input(
                "Label Studio e-mail", value=row["email"] or "", key=f"users_email_{who}"
            )
            save_col, clear_col = st.columns(2)
            if save_col.button("Save e-mail", type="primary"):
                _run(lambda: user_actions.set_email(auth.ctx(), who, typed), _moved)
            if clear_col.button("Clear e-mail"):
                _run(lambda: user_actions.set_email(auth.ctx(), who, None), _moved)
    else:
        st.info(
            "No accounts yet: the studio runs in single-user mode. Add the first admin "
            "in the next tab (you are signed in as that admin at once) or with "
            "`ftstudio users add NAME --role admin`."
        )
with tab_add, st.form("add-user", clear_on_submit=True):
    name = st.text_input("User name (or e-mail)")
    first = not accounts
    role = st.selectbox(
        "Role",
        ROLES,
        index=ROLES.index("admin") if first else 0,
        disabled=first,
        help="The first account is an admin: it manages the others." if first else None,
    )
    password = st.text_input("Password (8 characters or more)", type="password")
    new_email = st.text_input("Label Studio e-mail (optional)")
    if st.form_submit_button("Add user", type="primary"):
        chosen = "admin" if first else role
        try:
            user_actions.add_user(
                auth.ctx(), name.strip(), password, chosen, email=new_email.strip() or None
            )
        except AlreadyDone as exc:
            st.info(str(exc))
        except ValueError as exc:
            st.error(str(exc))
        else:
            if first and auth.actor() == LOCAL_ADMIN:
                # accounts exist now, so sign-in is required: sign this admin in right away
                signed = user_actions.sign_in(auth.ctx(), name.strip(), password)
                state.flash(f"Added {name} as admin; you are signed in as {name}.")
                if signed:
                    auth.enter(*signed)
            _done(f"Added {name} as {chosen}.")

accounts = users.list_users(store)
for col, role_name in zip(cols, ROLES, strict=False):
    col.metric(f"{role_name}s", sum(1 for a in accounts if a["role"] == role_name))
cols[-2].metric("Disabled", sum(1 for a in accounts if a["disabled"]))
cols[-1].metric("Label Studio e-mails", sum(1 for a in accounts if a["email"]))
if table is not None:
    table.dataframe(
        [{k: a[k] for k in ("username", "role", "email", "disabled", "created")} for a in accounts],
        hide_index=True,
    )
