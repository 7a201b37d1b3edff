"""Compare: which run is best, and what differs. The runs table (from run_summary) with row
selection on top; below it curves, sweep views, side-by-side outputs and a config diff."""

from __future__ import annotations

import math

import streamlit as st

from backend.demo_workspace import NOISE_NOTE, demo_model_path
from backend.store import compare as cmp
from studio import auth, resources, state
from studio.components import compare_charts as charts

auth.guard("compare")

st.title("Compare runs")
st.caption(
    "Which run is best, and what differs: pick runs in the table to overlay their curves, "
    "read their answers side by side and diff their configs."
)
state.init()

store, ws = resources.store(), resources.workspace()
everything = cmp.runs_table(store)


def fmt(value, digits: int = 4) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}g}"
    )


cols = st.columns(4)
cols[0].metric("Runs", len(everything))
cols[1].metric("Sweeps", int(everything["group_id"].nunique()) if len(everything) else 0)
best = everything.dropna(subset=["best_eval_loss"]).head(1)
cols[2].metric(
    "Best eval loss",
    fmt(best["best_eval_loss"].iloc[0]) if len(best) else "–",
    help=f"run {best['run_id'].iloc[0]}" if len(best) else None,
)
cols[3].metric("Running", int((everything["state"] == "running").sum()) if len(everything) else 0)

if everything.empty:
    st.info(
        "No training runs yet. Start one on the Training page (or `ftstudio train run`); "
        "start a sweep there to compare many runs at once."
    )
    st.stop()

# --- the runs table ---------------------------------------------------------------------------
groups = sorted(g for g in everything["group_id"].dropna().unique())
f = st.columns([2, 2, 3, 2, 1, 1])
group = f[0].selectbox("Sweep group", ["all runs", *groups])
states = f[1].multiselect("State", sorted(everything["state"].dropna().unique()))
search = f[2].text_input("Search", placeholder="run id, title or dataset")
sort = f[3].selectbox("Sort by", cmp.SORTABLE)
descending = f[4].toggle("Descending")
by_group = f[5].toggle("By sweep", help="Keep each sweep's runs together.")
unfiltered = (
    group == "all runs"
    and not states
    and not search
    and sort == "best_eval_loss"
    and not descending
    and not by_group
)  # `everything` is already this table
table = (
    everything
    if unfiltered
    else cmp.runs_table(
        store,
        group=None if group == "all runs" else group,
        states=states,
        search=search or None,
        sort=sort,
        descending=descending,
        by_group=by_group,
    )
)

SHOWN = [
    "run_id",
    "group_id",
    "state",
    "dataset",
    "dataset_version",
    "method",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "batch_size",
    "grad_accum",
    "epochs",
    "max_steps",
    "best_eval_loss",
    "best_eval_step",
    "final_eval_loss",
    "final_train_loss",
    "perplexity",
    "duration_s",
    "tokens_per_s",
    "last_step",
]
view = table[SHOWN]
event = st.dataframe(
    view,
    key=state.COMPARE_TABLE,
    on_select="rerun",
    selection_mode="multi-row",
    hide_index=True,
    column_config={
        "run_id": st.column_config.TextColumn("run", pinned=True),
        "group_id": "sweep",
        "dataset_version": "version",
        "learning_rate": st.column_config.NumberColumn("learning rate", format="%.1e"),
        "best_eval_loss": st.column_config.NumberColumn("best eval loss", format="%.4f"),
        "best_eval_step": "best at step",
        "final_eval_loss": st.column_config.NumberColumn("final eval loss", format="%.4f"),
        "final_train_loss": st.column_config.NumberColumn("final train loss", format="%.4f"),
        "perplexity": st.column_config.NumberColumn("perplexity", format="%.2f"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.0f"),
        "tokens_per_s": st.column_config.NumberColumn("tokens/s", format="%.0f"),
        "last_step": "steps",
    },
)
rows = [i for i in event.selection.rows if i < len(view)]
selected = [view["run_id"].iloc[i] for i in rows]
st.session_state[state.SELECTED_RUNS] = selected
left, right = st.columns([3, 1])
left.caption(
    f"{len(view)} of {len(everything)} runs · {len(selected)} selected: tick rows to "
    "compare them below."
)
right.download_button(
    "Download table (CSV)",
    view.to_csv(index=False),
    "runs.csv",
    "text/csv",
    icon=":material/download:",
)
if by_group and groups:
    with st.expander("Sweep groups"):
        st.dataframe(cmp.sweep_groups(store), hide_index=True)

names = {r: charts.short_name(r) for r in everything["run_id"]}
curves_tab, sweep_tab, outputs_tab, diff_tab = st.tabs(
    ["Curves", "Sweep", "Outputs side by side", "Config diff"]
)

with curves_tab:
    if not selected:
        st.info("Select runs in the table above to overlay their curves.")
    else:
        metrics = cmp.metric_names(store, selected)
        if not metrics:
            st.info("The selected runs have not reported any metrics yet.")
        else:
            c = st.columns([2, 3, 2, 1])
            metric = c[0].selectbox(
                "Metric", metrics, index=metrics.index("loss") if "loss" in metrics else 0
            )
            x = c[1].radio(
                "x axis",
                list(cmp.X_AXES),
                horizontal=True,
                format_func={"step": "step", "tokens": "tokens", "wall": "wall time"}.get,
            )
            smoothing = c[2].slider(
                "EMA smoothing",
                0.0,
                0.99,
                0.6,
                0.01,
                help="Weight of the previous smoothed value (0 = raw).",
            )
            band = c[3].toggle("min/max", value=True, help="Shade each bucket's min to max.")
            curves = cmp.curves(store, selected, metric, x=x)
            if not curves:
                st.info(f"None of the selected runs reported {metric} against {x}.")
            else:
                st.plotly_chart(
                    charts.curves_figure(
                        curves, metric, x, smoothing=smoothing, band=band, names=names
                    )
                )
                st.caption(
                    f"Each line: at most {cmp.MAX_POINTS} bucket means per run, "
                    "computed in DuckDB; shaded: the min-max of each bucket."
                )

with sweep_tab:
    pool = everything if group == "all runs" else everything[everything["group_id"] == group]
    c = st.columns([2, 1, 2])
    metric = c[0].selectbox("Judge by", cmp.SUMMARY_METRICS, key="sweep_metric")
    best_k = c[1].number_input("Highlight best", 1, 20, 3)
    hparams = cmp.varying_hparams(pool)
    if len(pool.dropna(subset=[metric])) < 2 or not hparams:
        st.info(
            "A sweep view needs two or more runs that differ in a hyperparameter and have "
            f"a {metric}. Launch a sweep on the Training page, or pick a sweep group above."
        )
    else:
        st.plotly_chart(charts.parallel_figure(pool, hparams, metric, best_k=int(best_k)))
        hparam = c[2].selectbox("Hyperparameter", hparams)
        st.plotly_chart(
            charts.scatter_figure(pool, hparam, metric, best_k=int(best_k), names=names)
        )
        board = cmp.leaderboard(
            store, metric=metric, limit=int(best_k), group=None if group == "all runs" else group
        )
        st.dataframe(board[["rank", "run_id", metric, *hparams]], hide_index=True)

with outputs_tab:
    if not selected:
        st.info("Select runs in the table to read their answers to the same eval prompts.")
    else:
        shown = selected[:4]
        if len(selected) > 4:
            st.caption("Showing the first four selected runs.")
        demo = str(demo_model_path(ws))
        if everything.set_index("run_id").loc[shown, "base_model"].eq(demo).any():
            st.text(NOISE_NOTE)
        items = cmp.side_by_side(store, shown)
        if not items:
            st.info(
                "The selected runs have no generations yet: a run answers its eval "
                "prompts when training ends."
            )
        for item in items:
            with st.container(border=True):
                st.caption("Prompt")
                st.text(item["prompt"])
                for col, run_id in zip(st.columns(len(shown)), shown, strict=True):
                    col.caption(names[run_id])
                    output = item["outputs"][run_id]
                    col.code(
                        output if output is not None else "(no answer)",
                        language=None,
                        wrap_lines=True,
                    )

with diff_tab:
    if len(selected) < 2:
        st.info("Select two runs in the table to diff their configs.")
    else:
        c = st.columns([2, 2, 1])
        a = c[0].selectbox("Run A", selected, index=0, format_func=names.get)
        b = c[1].selectbox("Run B", selected, index=1, format_func=names.get)
        all_fields = c[2].toggle("All fields")
        if a == b:
            st.info("Pick two different runs.")
        else:
            diff = cmp.config_diff(store, a, b, all_fields=all_fields)
            if diff.empty:
                st.success("Same config: the runs differ only in data order or chance.")
            else:
                st.dataframe(
                    diff.rename(columns={a: f"A: {names[a]}", b: f"B: {names[b]}"}), hide_index=True
                )
