"""Compare: which run is best, and what differs. The runs table (from run_summary) with row
selection on top; below it curves, sweep views, side-by-side outputs and a config diff."""

from __future__ import annotations

import hashlib
import math

import streamlit as st

from backend.demo_workspace import NOISE_NOTE, demo_model_path
from backend.store import compare as cmp
from studio import auth, live, resources, state
from studio.components import compare_charts as charts
from studio.components.eval_suites import suite_section

# This page's session-state keys; those of widgets bound to the URL are its query parameters.
KIND = "compare_kind"  # which kind of run (method on a dataset version) is compared
PICKED = "compare_runs"  # the runs picked for curves, outputs and the diff (ids)
SHOWN_IDS = "compare_shown_ids"  # the table's run ids in the order last drawn
TAB = "compare_tab"
SWEEP = "compare_sweep"
ALL_KINDS = "all kinds (kept apart)"

auth.guard("compare")

st.title("Compare runs")
st.caption(
    "Which run is best, and what differs: pick runs in the table to overlay their curves, "
    "read their answers side by side and diff their configs. Figures are ranked only "
    "within one kind of run: one method on one dataset version."
)
state.init()
live.follow("runs", "jobs")

store, ws = resources.store(), resources.workspace()
kinds = cmp.kinds(store)


def fmt(value, digits: int = 4) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}g}"
    )


if not kinds:
    cols = st.columns(4)
    for col, name in zip(cols, ["Runs", "Sweeps", "Lowest eval loss", "Running"], strict=True):
        col.metric(name, 0 if name != "Lowest eval loss" else "–")
    st.info(
        "No training runs yet. Start one on the Training page (or `ftstudio train run`); "
        "start a sweep there to compare many runs at once."
    )
    suite_section(store)
    st.stop()

kind = st.selectbox(
    "Runs of",
    [k["kind"] for k in kinds] + ([ALL_KINDS] if len(kinds) > 1 else []),
    key=KIND,
    bind="query-params",
    help="A kind of run is one method (SFT, DPO...) on one dataset version. Losses of "
    "different methods, or on different versions' held-out rows, are different figures: "
    "they are never ranked together.",
)
one_kind = None if kind == ALL_KINDS else kind
everything = cmp.runs_table(store, kind=one_kind)
running = len(cmp.runs_table(store, states=["running"]))

cols = st.columns(4)
cols[0].metric("Runs", len(everything))
cols[1].metric("Sweeps", int(everything["group_id"].nunique()) if len(everything) else 0)
if one_kind:
    best = cmp.leaderboard(store, kind=one_kind, limit=1)
    cols[2].metric(
        cmp.best_at(one_kind, capital=True),
        fmt(best["best_eval_loss"].iloc[0]) if len(best) else "–",
        help=f"run {best['run_id'].iloc[0]}"
        if len(best)
        else "No run of this kind has reported an eval loss yet.",
    )
else:
    cols[2].metric("Kinds of run", len(kinds), help="Each is ranked on its own; see below.")
cols[3].metric("Running", running, help="Runs training now, of every kind.")

if not one_kind:
    board = cmp.leaderboard(store, limit=1)
    if len(board):
        board = board.assign(best_at=[cmp.best_at(k) for k in board["kind"]])
        st.caption("The best run of each kind, each ranked only against its own kind:")
        st.dataframe(
            board[["best_at", "run_id", "best_eval_loss", "state"]],
            hide_index=True,
            column_config={
                "best_at": "best at",
                "run_id": "run",
                "best_eval_loss": st.column_config.NumberColumn("value", format="%.4f"),
            },
        )

# --- the runs table ---------------------------------------------------------------------------
groups = sorted(g for g in everything["group_id"].dropna().unique())
f = st.columns([2, 2, 3, 2, 1, 1])
group = f[0].selectbox("Sweep group", ["all runs", *groups], key="compare_group")
states = f[1].multiselect(
    "State", sorted(everything["state"].dropna().unique()), key="compare_states"
)
search = f[2].text_input("Search", placeholder="run id, title or dataset", key="compare_search")
sort = f[3].selectbox("Sort by", cmp.SORTABLE, key="compare_sort")
descending = f[4].toggle("Descending", key="compare_descending")
by_group = f[5].toggle("By sweep", help="Keep each sweep's runs together.", key="compare_by_sweep")
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
        kind=one_kind,
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
    "kind",
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
    "mfu",
    "est_mem_mib",
    "peak_mem_mib",
    "last_step",
]
view = table[SHOWN]
all_ids = everything["run_id"].tolist()
shown_ids = view["run_id"].tolist()
st.session_state[SHOWN_IDS] = shown_ids


def _picked_in_table() -> None:
    """Rows ticked in the table become the picked runs (by id, so a table that reorders as
    runs report never swaps what is compared)."""
    event = st.session_state.get(table_key) or {}
    rows = (event.get("selection") or {}).get("rows") or []
    ids = st.session_state.get(SHOWN_IDS) or []
    st.session_state[PICKED] = [ids[i] for i in rows if i < len(ids)]


# the grid's selection is by row position: a new order (a run reported) starts it afresh
table_key = f"{state.COMPARE_TABLE}:{hashlib.sha1('|'.join(shown_ids).encode()).hexdigest()[:10]}"
st.dataframe(
    view,
    key=table_key,
    on_select=_picked_in_table,
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
        "mfu": st.column_config.NumberColumn("MFU", format="percent", help="CUDA only"),
        "est_mem_mib": st.column_config.NumberColumn("memory estimate (MiB)", format="%.0f"),
        "peak_mem_mib": st.column_config.NumberColumn(
            "peak memory (MiB)", format="%.0f", help="CUDA peak allocated; CPU peak RSS"
        ),
        "last_step": "steps",
    },
)
selected = st.multiselect(
    "Runs to compare",
    all_ids,
    key=PICKED,
    bind="query-params",
    help="Tick rows in the table, or pick runs here; they stay picked while the table redraws.",
)
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
        st.dataframe(cmp.sweep_groups(store, kind=one_kind), hide_index=True)

names = {r: charts.short_name(r) for r in everything["run_id"]}
run_kind = dict(zip(everything["run_id"], everything["kind"], strict=True))
curves_tab, sweep_tab, outputs_tab, diff_tab = st.tabs(
    ["Curves", "Sweep", "Outputs side by side", "Config diff"], key=TAB, bind="query-params"
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
                "Metric",
                metrics,
                index=metrics.index("loss") if "loss" in metrics else 0,
                key="compare_metric",
            )
            x = c[1].radio(
                "x axis",
                list(cmp.X_AXES),
                horizontal=True,
                format_func={"step": "step", "tokens": "tokens", "wall": "wall time"}.get,
                key="compare_x",
            )
            smoothing = c[2].slider(
                "EMA smoothing",
                0.0,
                0.99,
                0.6,
                0.01,
                help="Weight of the previous smoothed value (0 = raw).",
                key="compare_smoothing",
            )
            band = c[3].toggle(
                "min/max", value=True, help="Shade each bucket's min to max.", key="compare_band"
            )
            # one chart per kind: a DPO loss never shares axes with an SFT loss
            by_kind: dict[str, list[str]] = {}
            for run_id in selected:
                by_kind.setdefault(run_kind.get(run_id, "?"), []).append(run_id)
            for k, ids in by_kind.items():
                if len(by_kind) > 1:
                    st.subheader(k)
                curves = cmp.curves(store, ids, metric, x=x)
                if not curves:
                    st.info(f"None of the selected {k} runs reported {metric} against {x}.")
                    continue
                st.plotly_chart(
                    charts.curves_figure(
                        curves, metric, x, smoothing=smoothing, band=band, names=names
                    ),
                    key=f"compare_curves_{k}",
                )
            st.caption(
                f"Each line: at most {cmp.MAX_POINTS} bucket means per run, "
                "computed in DuckDB; shaded: the min-max of each bucket."
                + (" One chart per kind of run." if len(by_kind) > 1 else "")
            )

with sweep_tab:
    sweeps = cmp.sweep_groups(store, kind=one_kind)
    if sweeps.empty:
        st.info(
            "No sweep of these runs yet: a sweep view compares the runs of one sweep. "
            "Launch one on the Training page's Sweep tab."
        )
    else:
        about = {r["group_id"]: r for r in sweeps.to_dict("records")}
        options = list(about)
        c = st.columns([2, 2, 1, 2])
        sweep = c[0].selectbox(
            "Sweep",
            options,
            index=options.index(group) if group in options else 0,
            key=SWEEP,
            bind="query-params",
            help="The runs of one sweep: one method on one dataset version, so their "
            "figures compare. The newest sweep first.",
        )
        sweep_kind = about[sweep]["kind"]
        pool = cmp.runs_table(store, group=sweep)
        metric = c[1].selectbox(
            "Judge by",
            cmp.SUMMARY_METRICS,
            key="compare_sweep_metric",
            format_func=lambda m: cmp.best_at(sweep_kind, m),
        )
        best_k = c[2].number_input("Highlight best", 1, 20, 3, key="compare_best_k")
        st.caption(f"{sweep}: {about[sweep]['runs']} runs of {sweep_kind}.")
        hparams = cmp.varying_hparams(pool)
        if len(pool.dropna(subset=[metric])) < 2 or not hparams:
            st.info(
                "A sweep view needs two or more runs that differ in a hyperparameter and have "
                f"a {metric}: this sweep has not got them yet."
            )
        else:
            st.plotly_chart(
                charts.parallel_figure(pool, hparams, metric, best_k=int(best_k)),
                key="compare_parallel",
            )
            hparam = c[3].selectbox("Hyperparameter", hparams, key="compare_hparam")
            st.plotly_chart(
                charts.scatter_figure(pool, hparam, metric, best_k=int(best_k), names=names),
                key="compare_scatter",
            )
            board = cmp.leaderboard(store, metric=metric, limit=int(best_k), group=sweep)
            st.caption(f"Best {len(board)} by {cmp.best_at(sweep_kind, metric)}, in {sweep}:")
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
        a = c[0].selectbox("Run A", selected, index=0, format_func=names.get, key="compare_diff_a")
        b = c[1].selectbox("Run B", selected, index=1, format_func=names.get, key="compare_diff_b")
        all_fields = c[2].toggle("All fields", key="compare_diff_all")
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

suite_section(store)
