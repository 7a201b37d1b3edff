"""Monitoring: production data against a reference, drift over time, alerts, retraining plans.

The page only reads and calls the monitoring actions; the trigger rules (alerts, plans, plans
moved on) run in the dashboard's ingestion loop, never while this page draws."""

import pandas as pd
import streamlit as st

from backend.drift import actions, quality, watch
from backend.drift.monitors import METHODS, MonitorConfig, config_of
from backend.security import check_upload
from backend.store import monitoring as mon
from backend.store import production
from backend.store.datasets import list_datasets
from studio import auth, resources, state
from studio.components.charts import color_for, figure
from studio.components.jobs import live_active_jobs

auth.guard("monitoring")

st.title("Monitoring")
st.caption(
    "Compare production prompts with the data a model was trained on; when they drift, "
    "review the new data and fine-tune on it."
)
state.show_flash()
store = resources.store()

counts = mon.summary(store)
cols = st.columns(5)
cols[0].metric("Monitors", counts["monitors"])
cols[1].metric("Prompts received", counts["prompts"])
cols[2].metric("Checks", counts["checks"])
cols[3].metric("Open alerts", counts["open_alerts"])
cols[4].metric("Plans to approve", counts["plans_waiting"])

monitors = mon.list_monitors(store)
names = [m["name"] for m in monitors]
tab_mon, tab_data, tab_drift, tab_alerts = st.tabs(
    ["Monitors", "Production data", "Drift", "Alerts and retraining"]
)

with tab_mon:
    datasets = [d["name"] for d in list_datasets(store)]
    if not datasets:
        st.info(
            "No datasets yet: a monitor compares production data with a dataset version. "
            "Create or import one on the Datasets page first."
        )
    with st.form("new_monitor"):
        st.subheader("New monitor")
        name = st.text_input("Name", placeholder="production")
        reference = st.selectbox("Reference dataset (latest version)", datasets)
        watch = st.text_input(
            "Watched folder (optional)",
            help="New JSONL/CSV files in this folder are read every "
            "FTSTUDIO_WATCH_INTERVAL_S seconds (30 by default); a check starts by itself "
            "once the monitor's min_window of new prompts has arrived.",
        )
        auto = st.toggle(
            "Auto-approve retraining plans",
            help=MonitorConfig.model_fields["auto_approve"].description,
        )
        if st.form_submit_button("Create monitor", disabled=not datasets):
            try:  # the action keeps a typed watched folder inside the workspace
                actions.create_monitor(
                    auth.ctx(),
                    name,
                    reference=reference,
                    config={"auto_approve": auto},
                    watch_dir=watch,
                )
                state.flash(f"Monitor {name} created.")
                st.rerun()
            except ValueError as exc:
                st.error(str(exc))
    if monitors:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        k: m[k]
                        for k in (
                            "name",
                            "state",
                            "reference_dataset",
                            "reference_version_id",
                            "n_batches",
                            "last_check",
                            "watch_dir",
                        )
                    }
                    for m in monitors
                ]
            ),
            hide_index=True,
        )
        chosen = st.selectbox("Settings of", names, key="monitor_settings")
        cfg = config_of(mon.get_monitor(store, chosen))
        with st.form("monitor_config"):
            data = cfg.model_dump()
            c1, c2, c3 = st.columns(3)
            data["min_window"] = c1.number_input(
                "Smallest window (prompts)",
                2,
                100_000,
                cfg.min_window,
                help=MonitorConfig.model_fields["min_window"].description,
            )
            data["min_methods"] = c2.number_input(
                "Methods needed for an alert",
                1,
                len(METHODS),
                cfg.min_methods,
                help=MonitorConfig.model_fields["min_methods"].description,
            )
            data["auto_approve"] = c3.toggle("Auto-approve", cfg.auto_approve)
            q_help = type(cfg.quality).model_fields
            q1, q2 = st.columns([1, 2])
            data["quality"]["enabled"] = q1.toggle(
                "quality (NLL, entropy)", cfg.quality.enabled, help=q_help["enabled"].description
            )
            data["quality"]["margin"] = q2.number_input(
                "quality: margin over training time",
                0.0,
                10.0,
                cfg.quality.margin,
                format="%.2f",
                help=q_help["margin"].description,
            )
            j1, j2 = st.columns([2, 1])
            data["quality"]["judge_model"] = (
                j1.text_input(
                    "quality: LLM judge model (empty: no judge)",
                    cfg.quality.judge_model or "",
                    help=q_help["judge_model"].description,
                ).strip()
                or None
            )
            data["quality"]["judge_margin"] = j2.number_input(
                "judge: margin under training time",
                0.0,
                0.99,
                cfg.quality.judge_margin,
                format="%.2f",
                help=q_help["judge_margin"].description,
            )
            for method in METHODS:
                sub = getattr(cfg, method)
                a, b = st.columns([1, 2])
                data[method]["enabled"] = a.toggle(
                    method, sub.enabled, help=type(sub).model_fields["enabled"].description
                )
                data[method]["alpha"] = b.number_input(
                    f"{method}: alpha",
                    0.0001,
                    0.49,
                    sub.alpha,
                    format="%.4f",
                    help=type(sub).model_fields["alpha"].description,
                )
            if st.form_submit_button("Save settings"):
                try:
                    actions.set_config(auth.ctx(), chosen, data)
                    state.flash("Settings saved; the next check uses them.")
                    st.rerun()
                except ValueError as exc:
                    st.error(str(exc))

with tab_data:
    if not monitors:
        st.info(
            "Create a monitor first (Monitors tab), then upload production prompts here or "
            "with `ftstudio monitor ingest FILE`."
        )
    else:
        target = st.selectbox("Monitor", names, key="monitor_data")
        upload = st.file_uploader(
            "Production prompts (JSONL or CSV: prompt, optional response and timestamp)",
            type=["jsonl", "json", "csv"],
        )
        if upload is not None and st.button("Ingest batch"):
            try:
                check_upload(upload.name, upload.getvalue(), {"jsonl", "json", "csv"})
                b = actions.ingest(auth.ctx(), target, upload.getvalue(), upload.name)
                st.success(f"Stored {b['n_records']} prompts ({b['n_responses']} with responses).")
            except ValueError as exc:
                st.error(str(exc))
        if st.button("Check every monitor now", type="primary"):
            try:
                watch.scan_watched(auth.ctx())
                results = actions.run_checks(auth.ctx())
            except ValueError as exc:  # a refusal (PermissionDenied) included
                st.error(str(exc))
                results = []
            for r in results:
                st.write(
                    f"{r['monitor']}: "
                    + (
                        f"skipped ({r['skipped']})"
                        if "skipped" in r
                        else f"drift job {r['job_id']} queued"
                    )
                )
        live_active_jobs("No drift check is running.")
        rows = production.batches(store, mon.get_monitor(store, target)["id"])
        if rows:
            st.dataframe(
                pd.DataFrame(rows).drop(columns=["content_hash", "monitor_id"]), hide_index=True
            )
        else:
            st.caption("No batches yet for this monitor.")

with tab_drift:
    reps = mon.reports(store)
    if not reps:
        st.info("No drift reports yet: ingest production prompts and run a check.")
    else:
        target = st.selectbox("Monitor", names, key="monitor_drift")
        mid = mon.get_monitor(store, target)["id"]
        df = pd.DataFrame([r for r in reps if r["monitor_id"] == mid])
        qual = df[df["method"].isin(list(quality.METHODS))] if not df.empty else df
        df = df[~df["method"].isin(list(quality.METHODS))] if not df.empty else df
        if df.empty:
            st.caption("This monitor has no drift reports yet.")
        else:
            chart_cols = st.columns(2)
            for i, (method, part) in enumerate(df.groupby("method", sort=False)):
                fig = figure(
                    f"{method}: statistic against threshold",
                    "window end (time)",
                    "statistic (unitless)",
                )
                fig.add_scatter(
                    x=part["window_end"],
                    y=part["statistic"],
                    mode="lines+markers",
                    name="statistic",
                    line={"color": color_for(method)},
                )
                fig.add_scatter(
                    x=part["window_end"],
                    y=part["threshold"],
                    mode="lines",
                    name="threshold",
                    line={"dash": "dash", "color": "#999"},
                )
                hits = part[part["verdict"] == "drift"]
                fig.add_scatter(
                    x=hits["window_end"],
                    y=hits["statistic"],
                    mode="markers",
                    name="drift",
                    marker={"size": 12, "color": "#db2763"},
                )
                chart_cols[i % 2].plotly_chart(fig, key=f"drift_{method}")
            last = df[df["check_id"] == df.iloc[-1]["check_id"]]
            by = {r["method"]: r for r in last.to_dict("records")}
            if "vocabulary" in by:
                st.subheader("Terms that moved most (latest check)")
                st.dataframe(
                    pd.DataFrame(by["vocabulary"]["details"]["moved_terms"]), hide_index=True
                )
            if "topics" in by:
                st.subheader("Topics that moved most (latest check)")
                st.caption(by["topics"]["details"].get("source", ""))
                st.dataframe(pd.DataFrame(by["topics"]["details"]["topics"]), hide_index=True)
        st.subheader("Model quality against training time")
        if qual.empty:
            st.caption(
                "No quality reports yet: they need a trained run and production prompts "
                "that come with responses (a `response` field)."
            )
        else:
            q_cols = st.columns(2)
            labels = {
                "quality_nll": "mean response NLL",
                "quality_entropy": "mean predictive entropy",
                "quality_judge": "mean LLM-judge score",
            }
            units = {"quality_judge": "score 1-10, higher is better"}
            for i, (method, part) in enumerate(qual.groupby("method", sort=False)):
                label = labels.get(method, method)
                source = part.iloc[-1]["details"].get("baseline_source", "held-out")
                fig = figure(
                    f"{label}: production window vs training time",
                    "window end (time)",
                    f"{label} ({units.get(method, 'nats per token')})",
                )
                fig.add_scatter(
                    x=part["window_end"],
                    y=[d.get("training_mean") for d in part["details"]],
                    mode="lines",
                    name=f"training time ({source} data)",
                    line={"color": "#555"},
                )
                fig.add_scatter(
                    x=part["window_end"],
                    y=part["threshold"],
                    mode="lines",
                    name="alert threshold",
                    line={"dash": "dash", "color": "#999"},
                )
                fig.add_scatter(
                    x=part["window_end"],
                    y=part["statistic"],
                    mode="lines+markers",
                    name="production window",
                    line={"color": color_for(method)},
                )
                hits = part[part["verdict"] == "drift"]
                fig.add_scatter(
                    x=hits["window_end"],
                    y=hits["statistic"],
                    mode="markers",
                    name="quality alert",
                    marker={"size": 12, "color": "#db2763"},
                )
                q_cols[i % 2].plotly_chart(fig, key=f"quality_{method}")
            last_q = qual[qual["check_id"] == qual.iloc[-1]["check_id"]]
            st.caption(
                f"Run {last_q.iloc[0]['details'].get('run_id')} scored on "
                f"{int(last_q.iloc[0]['n_window'])} window responses against "
                f"{int(last_q.iloc[0]['n_reference'])} {source} examples; a window "
                "above the dashed line (below it for the judge score) raises an alert like "
                "drift does."
            )

with tab_alerts:
    alerts = mon.alerts(store)
    if not alerts:
        st.info("No alerts: every check so far matched its reference.")
    else:
        st.dataframe(
            pd.DataFrame(alerts)[
                ["created", "monitor", "state", "message", "n_checks", "resolved"]
            ],
            hide_index=True,
        )
    plans = mon.plans(store)
    for plan in plans:
        with st.container(border=True):
            st.markdown(
                f"**Plan {plan['id']}** · monitor `{plan['monitor']}` · {plan['state']}"
                + (" (auto-approved)" if plan["auto_approved"] else "")
            )
            for step in plan["steps"]:
                st.text(
                    f"{step['name']} [{step['state']}] {step['what']}"
                    + (f" · job {step['job_id']}" if step.get("job_id") else "")
                    + (f" · {step['reason']}" if step.get("reason") else "")
                )
            if plan["state"] == "proposed":
                a, r = st.columns(2)
                if a.button("Approve", key=f"approve_{plan['id']}", type="primary"):
                    try:
                        actions.approve_plan(auth.ctx(), plan["id"])
                        state.flash(
                            "Plan approved: review scoring queued; training follows the review."
                        )
                    except ValueError as exc:  # AlreadyDone and PermissionDenied included
                        state.flash(f"Could not approve: {exc}")
                    st.rerun()
                if r.button("Reject", key=f"reject_{plan['id']}"):
                    try:
                        actions.reject_plan(auth.ctx(), plan["id"])
                    except ValueError as exc:
                        state.flash(f"Could not reject: {exc}")
                    st.rerun()
