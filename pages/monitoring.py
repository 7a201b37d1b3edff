"""Monitoring: production data against a reference, drift over time, alerts, retraining plans.

The page only reads and calls the monitoring actions; the trigger rules (alerts, plans, plans
moved on) run in the dashboard's ingestion loop, never while this page draws."""

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.drift import actions, quality
from backend.drift import watch as folders
from backend.drift.monitors import METHODS, MonitorConfig, config_of
from backend.store import monitoring as mon
from backend.store import production
from backend.store.datasets import list_datasets
from studio import auth, live, resources, state
from studio.components import endpoint
from studio.components.charts import color_for, figure
from studio.components.jobs import live_active_jobs
from studio.components.monitoring_alerts import act, alerts_tab, say
from studio.components.safe_text import md_escape

auth.guard("monitoring")
live.follow("drift", "jobs")  # reports, alerts and plans redraw as checks end, no reload

# session-state keys of this page (the tab and the monitor are also in the URL)
TAB = "monitoring_tab"
MONITOR = "monitoring_monitor"
NEW = "monitoring_new_"  # prefix of the new-monitor form's fields


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
selected = (
    st.selectbox(
        "Monitor",
        names,
        key=MONITOR,
        bind="query-params",
        help="The monitor whose settings, production data and drift the tabs show.",
    )
    if names
    else None
)
tab_mon, tab_data, tab_drift, tab_alerts = st.tabs(
    ["Monitors", "Production data", "Drift", "Alerts and retraining"],
    key=TAB,
    bind="query-params",
)

with tab_mon:
    datasets = [d["name"] for d in list_datasets(store)]
    if not datasets:
        st.info(
            "No datasets yet: a monitor compares production data with a dataset version. "
            "Create or import one on the Datasets page first."
        )

    def _create_monitor() -> None:
        ss = st.session_state

        def create() -> dict:  # the action keeps a typed watched folder inside the workspace
            m = actions.create_monitor(
                auth.ctx(),
                ss.get(NEW + "name", ""),
                reference=ss.get(NEW + "reference"),
                config={"auto_approve": bool(ss.get(NEW + "auto"))},
                watch_dir=ss.get(NEW + "watch", ""),
            )
            ss[MONITOR] = m["name"]  # the new monitor is the one shown
            return m

        act("new_monitor", create, lambda m: f"Monitor {md_escape(m['name'])} created.")

    with st.form("new_monitor"):
        st.subheader("New monitor")
        st.text_input("Name", placeholder="production", key=NEW + "name")
        st.selectbox("Reference dataset (latest version)", datasets, key=NEW + "reference")
        st.text_input(
            "Watched folder (optional)",
            key=NEW + "watch",
            help="New JSONL/CSV files in this folder are read every "
            "FTSTUDIO_WATCH_INTERVAL_S seconds (30 by default); a check starts by itself "
            "once the monitor's min_window of new prompts has arrived.",
        )
        st.toggle(
            "Auto-approve retraining plans",
            key=NEW + "auto",
            help=MonitorConfig.model_fields["auto_approve"].description,
        )
        st.form_submit_button("Create monitor", disabled=not datasets, on_click=_create_monitor)
    say("new_monitor")
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
        chosen = selected
        st.subheader(f"Settings of {md_escape(chosen)}")
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
            with j1:
                data["quality"]["judge_base_url"] = endpoint.picker(
                    "monitoring_judge",
                    allow_key=False,
                    current=cfg.quality.judge_base_url,
                    label="quality: judge endpoint",
                    follow_configured=True,
                ).base_url
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
                    st.error(md_escape(str(exc)))

with tab_data:
    if not monitors:
        st.info(
            "Create a monitor first (Monitors tab), then upload production prompts here or "
            "with `ftstudio monitor ingest FILE`."
        )
    else:
        target = selected
        upload = st.file_uploader(
            "Production prompts (JSONL or CSV: prompt, optional response and timestamp)",
            type=["jsonl", "json", "csv"],
            key="monitoring_upload",
        )
        if upload is not None and st.button("Ingest batch"):
            try:  # read in chunks up to the batch size limit, checked by its content
                b = actions.ingest_upload(auth.ctx(), target, upload, upload.name)
                st.success(f"Stored {b['n_records']} prompts ({b['n_responses']} with responses).")
            except AlreadyDone as exc:
                st.info(md_escape(str(exc)))
            except ValueError as exc:
                st.error(md_escape(str(exc)))
        if st.button("Check every monitor now", type="primary"):
            try:
                folders.scan_watched(auth.ctx())
                results = actions.run_checks(auth.ctx())
            except ValueError as exc:  # a refusal (PermissionDenied) included
                st.error(md_escape(str(exc)))
                results = []
            for r in results:
                st.text(
                    f"{r['monitor']}: "
                    + (
                        f"skipped ({r['skipped']})"
                        if "skipped" in r
                        else f"drift job {r['job_id']} queued"
                    )
                )
        live_active_jobs("No drift check is running.")
        monitor_id = mon.get_monitor(store, target)["id"]
        rows = production.batches(store, monitor_id)
        if rows:
            st.dataframe(
                pd.DataFrame(rows).drop(columns=["content_hash", "monitor_id"]), hide_index=True
            )
            newest = rows[-1]
            st.caption(f"Newest batch ({newest['n_records']} prompts, first 50 shown)")
            records = production.batch_records(store, [newest["id"]])[:50]
            st.dataframe(  # user text in a table: drawn as text, never as markdown
                pd.DataFrame([{k: r[k] for k in ("prompt", "response", "t")} for r in records]),
                hide_index=True,
            )
        else:
            st.caption("No batches yet for this monitor.")

with tab_drift:
    reps = mon.reports(store)
    if not reps:
        st.info("No drift reports yet: ingest production prompts and run a check.")
    else:
        mid = mon.get_monitor(store, selected)["id"]
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
                st.caption(md_escape(by["topics"]["details"].get("source", "")))
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
                f"Run {md_escape(last_q.iloc[0]['details'].get('run_id'))} scored on "
                f"{int(last_q.iloc[0]['n_window'])} window responses against "
                f"{int(last_q.iloc[0]['n_reference'])} {source} examples; a window "
                "above the dashed line (below it for the judge score) raises an alert like "
                "drift does."
            )


with tab_alerts:
    alerts_tab(store)
