"""Overview: the workspace at a glance, active jobs, and what to do next."""

import streamlit as st

from backend.demo_workspace import NOISE_NOTE, demo_model_path
from backend.store import compare, monitoring
from backend.store import overview as ov
from studio import auth, resources
from studio.components.jobs import live_active_jobs

st.title("Overview")
st.caption(
    "Your fine-tuning project at a glance: each stage of the loop, running jobs, "
    "and what to do next."
)

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
    best = compare.leaderboard(store, limit=3)
    if best.empty:
        st.caption("No evaluated run yet: launch one on the Training page.")
    else:
        st.dataframe(
            best[["rank", "run_id", "best_eval_loss", "final_train_loss", "state"]], hide_index=True
        )
        if auth.can_open("compare"):
            st.page_link(
                "../pages/compare.py", label="Compare runs", icon=":material/compare_arrows:"
            )
with right:
    st.subheader("Open alerts")
    open_alerts = monitoring.alerts(store, state="open")
    if not open_alerts:
        st.caption("No open drift alert.")
    for alert in open_alerts[:5]:
        st.warning(f"{alert['monitor']}: drift in {', '.join(map(str, alert['methods']))}")

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
