"""The Monitoring page's alerts and retraining plans (its "Alerts and retraining" tab), and the
way its buttons run actions: in a callback, before the page draws, so the page shows the
change, keeps its tab (bound to the URL), flashes a success and shows an "already done" or a
refusal where it was asked."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.drift import actions
from backend.store import monitoring as mon
from backend.store.db import Store
from studio import auth, state
from studio.components.safe_text import md_escape

SAYS = "monitoring_says"  # (place, "info" | "error", message): an action's answer, shown once
ALERT_COLUMNS = [
    "created",
    "monitor",
    "state",
    "message",
    "n_checks",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_by",
    "resolved",
    "plan_id",
]


def act(place: str, fn, ok=None) -> None:
    """Run an action from a widget's callback (before the page draws, so the page shows its
    effect and keeps its tab): success is flashed, AlreadyDone and refusals are shown at
    `place` on the next run."""
    try:
        result = fn()
    except AlreadyDone as exc:
        st.session_state[SAYS] = (place, "info", str(exc))
        return
    except ValueError as exc:  # a refusal (PermissionDenied) included
        st.session_state[SAYS] = (place, "error", str(exc))
        return
    if ok:
        state.flash(ok(result) if callable(ok) else ok)


def say(place: str) -> None:
    said = st.session_state.get(SAYS)
    if said and said[0] == place:
        (st.info if said[1] == "info" else st.error)(md_escape(said[2]))
        st.session_state[SAYS] = None


def _alert_card(alert: dict) -> None:
    """An open alert: what drifted, who has seen it, why it has no plan (and what would
    unblock one), and the buttons that acknowledge and resolve it."""
    with st.container(border=True):
        st.markdown(
            f"**Alert** `{alert['id']}` · monitor {md_escape(alert['monitor'])} · "
            f"opened {alert['created']} · {alert['n_checks']} drifting checks"
        )
        st.text(alert["message"])
        if alert["acknowledged_by"]:
            st.caption(
                f"Acknowledged by {md_escape(alert['acknowledged_by'])} "
                f"at {alert['acknowledged_at']}"
            )
        if alert["plan_id"] is None and alert["no_plan_reason"]:
            st.warning(  # the studio's own words (backend/drift/plans.py), not user text
                f"No retraining plan: {alert['no_plan_reason']}.  \n"
                f"To unblock it: {alert['no_plan_unblock']}.",
                icon=":material/block:",
            )
        a, r = st.columns(2)
        a.button(
            "Acknowledge",
            key=f"monitoring_ack_{alert['id']}",
            disabled=bool(alert["acknowledged_by"]),
            help="Say that you have seen it; who and when are kept. It stays open.",
            on_click=act,
            args=("alerts", lambda: actions.acknowledge_alert(auth.ctx(), alert["id"])),
            kwargs={"ok": f"Alert {alert['id']} acknowledged."},
        )
        r.button(
            "Resolve",
            key=f"monitoring_resolve_{alert['id']}",
            help="Close it by hand; the next drifting check opens a new alert.",
            on_click=act,
            args=("alerts", lambda: actions.resolve_alert(auth.ctx(), alert["id"])),
            kwargs={"ok": f"Alert {alert['id']} resolved."},
        )


def _plan_card(plan: dict) -> None:
    with st.container(border=True):
        st.markdown(
            f"**Plan** `{plan['id']}` · monitor {md_escape(plan['monitor'])} · {plan['state']}"
            + (" (auto-approved)" if plan["auto_approved"] else "")
            + (
                f" · by {md_escape(plan['approved_by'])} at {plan['approved_at']}"
                if plan["approved_by"] and not plan["auto_approved"]
                else ""
            )
        )
        for step in plan["steps"]:
            st.text(
                f"{step['name']} [{step['state']}] {step['what']}"
                + (f" · job {step['job_id']}" if step.get("job_id") else "")
                + (f" · {step['reason']}" if step.get("reason") else "")
            )
        if plan["state"] == "proposed":
            a, r = st.columns(2)
            a.button(
                "Approve",
                key=f"approve_{plan['id']}",
                type="primary",
                on_click=act,
                args=("alerts", lambda: actions.approve_plan(auth.ctx(), plan["id"])),
                kwargs={"ok": "Plan approved: review scoring queued; training follows the review."},
            )
            r.button(
                "Reject",
                key=f"reject_{plan['id']}",
                on_click=act,
                args=("alerts", lambda: actions.reject_plan(auth.ctx(), plan["id"])),
                kwargs={"ok": f"Plan {plan['id']} rejected."},
            )


def alerts_tab(store: Store) -> None:
    """Open alerts as cards (acknowledge, resolve, why no plan), every alert with who and
    when, and the retraining plans (approve, reject)."""
    say("alerts")  # the answer of an alert or plan button (it may be gone from the list)
    alerts = mon.alerts(store)
    if not alerts:
        st.info("No alerts: every check so far matched its reference.")
    for alert in alerts:
        if alert["state"] == "open":
            _alert_card(alert)
    if alerts:
        st.subheader("Every alert")
        st.dataframe(pd.DataFrame(alerts)[ALERT_COLUMNS], hide_index=True)
    plans = mon.plans(store)
    if plans:
        st.subheader("Retraining plans")
    for plan in plans:
        _plan_card(plan)
