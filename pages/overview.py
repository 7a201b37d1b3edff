"""Overview: the workspace at a glance, active jobs, and what to do next.

Live: the counters, the pipeline strip, the best runs and the alerts redraw by themselves
when jobs, runs or the data behind them change; the active jobs' progress bars tick on their
own timer."""

import streamlit as st
from streamlit.errors import StreamlitAPIException

from backend.demo_workspace import NOISE_NOTE, demo_model_path
from backend.store import compare, monitoring
from backend.store import overview as ov
from studio import auth, live, resources
from studio.components.eval_suites import promoted_models
from studio.components.jobs import live_active_jobs

KIND = "overview_kind"  # the kind of run whose best runs are shown, bound to the URL

st.title("Overview")
st.caption(
    "Your fine-tuning project at a glance: each stage of the loop, running jobs, "
    "and what to do next."
)

live.follow("jobs", "runs", "datasets", "reviews", "prefs", "drift")

store, ws, cfg = resources.store(), resources.workspace(), resources.settings()
counts = ov.job_counts(store)

cols = st.columns(4)
cols[0].metric("Running jobs", counts.get("running", 0))
cols[1].metric("Queued jobs", counts.get("queued", 0))
cols[2].metric("Finished jobs", counts.get("succeeded", 0))
cols[3].metric("Failed or interrupted", counts.get("failed", 0) + counts.get("interrupted", 0))

st.subheader("Pipeline")
stages = ov.pipeline(store)
strip = st.columns(len(stages))
for col, stage in zip(strip, stages, strict=True):
    with col.container(border=True):
        st.markdown(f"**{stage['name']}**")
        st.metric(stage["what"], stage["count"], label_visibility="visible")
        st.caption(stage["state"])

st.subheader("Active jobs")
live_active_jobs("No job is running. Jobs you start on any page show here with live progress.")

left, right = st.columns(2)
with left:
    st.subheader("Best runs")
    kinds = [k["kind"] for k in compare.kinds(store)]
    kind = (
        st.selectbox(
            "Runs of",
            kinds,
            key=KIND,
            bind="query-params",
            help="One method on one dataset version: runs are ranked only against their own kind.",
        )
        if len(kinds) > 1
        else (kinds[0] if kinds else None)
    )
    best = compare.leaderboard(store, kind=kind, limit=3) if kind else None
    if best is None or best.empty:
        st.caption(
            "No evaluated run yet: launch one on the Training page."
            if not kind
            else f"No run of {kind} has reported an eval loss yet."
        )
    else:
        st.caption(f"The three best by {compare.best_at(kind)}:")
        st.dataframe(
            best[["rank", "run_id", "best_eval_loss", "final_train_loss", "state"]],
            hide_index=True,
        )
    if kind and auth.can_open("compare"):
        try:
            st.page_link(
                "../pages/compare.py", label="Compare runs", icon=":material/compare_arrows:"
            )
        except StreamlitAPIException:  # a page run on its own, outside the navigation
            st.caption("Compare them on the Compare page.")
with right:
    st.subheader("Open alerts")
    open_alerts = monitoring.alerts(store, state="open")
    if not open_alerts:
        st.caption("No open drift alert.")
    for alert in open_alerts[:5]:  # a monitor's name is user text: drawn as text
        with st.container(border=True):
            st.text(f"⚠ {alert['monitor']}: drift in {', '.join(map(str, alert['methods']))}")

promoted_models(store)

if not cfg.openai_base_url and not cfg.local_model_dir:
    with st.container(border=True):
        st.markdown("**Demo mode: no real model is connected.**")
        if demo_model_path(ws).exists():
            st.text(NOISE_NOTE)
        else:
            st.text("The tiny demo model is being built by a job (see Active jobs). " + NOISE_NOTE)
        st.markdown(
            "To use real text, set `OPENAI_BASE_URL`, `OPENAI_API_KEY` and "
            "`FTSTUDIO_LLM_MODEL` (any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, "
            "llama.cpp server), or `FTSTUDIO_LOCAL_MODEL` to a local transformers model folder, "
            "in the environment, `.env` or `.streamlit/secrets.toml`, then restart the studio. "
            "The Settings page shows what is in effect."
        )
