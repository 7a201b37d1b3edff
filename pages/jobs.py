"""Jobs: every job with its state, progress and timings; one job in detail."""

import streamlit as st

from backend.action import AlreadyDone
from backend.jobs import actions as job_actions
from backend.jobs import read as jobs
from backend.jobs.status import RESUMABLE, TERMINAL, JobStatusError, format_seconds
from backend.store import jobs as jobs_store
from studio import auth, resources, state
from studio.components.jobs import progress_row

auth.guard("jobs")

st.title("Jobs")
st.caption(
    "Everything that runs in the background: generation, scoring, training, judging, "
    "drift checks. Jobs keep running when you close the browser."
)
state.show_flash()

store, ws = resources.store(), resources.workspace()
ingestor = resources.ingestor()


@st.fragment(run_every=2)
def job_list() -> None:
    """The jobs table and the selected job, refreshed live."""
    table = jobs_store.list_jobs(store)
    cols = st.columns(4)
    for col, name in zip(cols, ["running", "queued", "succeeded", "failed"], strict=True):
        col.metric(name.capitalize(), int((table["state"] == name).sum()) if len(table) else 0)
    if ingestor.last_error:
        st.warning(f"Ingestion problem: {ingestor.last_error}")
    if table.empty:
        st.info(
            "No jobs yet. Jobs appear here when you generate data, score, train or check "
            "drift; the demo model job starts on first launch."
        )
        return
    selection = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="jobs_table",
        column_order=[
            "id",
            "kind",
            "title",
            "state",
            "done",
            "total",
            "seconds",
            "attempt",
            "error",
        ],
        column_config={"seconds": st.column_config.NumberColumn("seconds", format="%.1f")},
    )
    rows = selection.selection.rows if selection else []
    if rows:
        st.session_state[state.SELECTED_JOB] = table.iloc[rows[0]]["id"]
    elif st.query_params.get("job"):
        st.session_state[state.SELECTED_JOB] = st.query_params.get("job")
    detail(st.session_state.get(state.SELECTED_JOB) or table.iloc[0]["id"])


def detail(job_id: str) -> None:
    try:
        status = jobs.get(ws, job_id)
        kind, spec = jobs.read_spec(ws.job_dir(job_id))
    except (jobs.JobError, JobStatusError) as exc:
        st.error(str(exc))
        return
    st.subheader(f"{status.title or kind}")
    st.caption(f"{job_id} · {kind} · attempt {status.attempt}")
    progress_row(status)
    if status.error:
        st.error(status.error)
    timing = []
    if status.started:
        end = status.finished or status.heartbeat or status.started
        timing.append(f"ran {format_seconds(end - status.started)}")
    if timing:
        st.caption(" · ".join(timing))
    b1, b2, _ = st.columns([1, 1, 4])
    if status.state not in TERMINAL and b1.button(
        "Cancel", key=f"cancel-{job_id}", icon=":material/cancel:"
    ):
        try:  # the request is recorded now; the signals follow on a background thread
            job_actions.cancel(auth.ctx(), job_id, background=True)
        except AlreadyDone as exc:
            st.info(str(exc))
        except (ValueError, jobs.JobError) as exc:
            st.error(str(exc))
        else:
            state.flash(f"Cancel requested for {job_id}.")
            st.rerun()
    if status.state in RESUMABLE and b2.button(
        "Resume", key=f"resume-{job_id}", icon=":material/play_arrow:"
    ):
        try:
            job_actions.resume(auth.ctx(), job_id)
        except AlreadyDone as exc:
            st.info(str(exc))
        except (ValueError, jobs.JobError) as exc:
            st.error(str(exc))
        else:
            state.flash(f"Job {job_id} queued again; it continues from its last checkpoint.")
            st.rerun()
    tab_log, tab_events, tab_spec = st.tabs(["Log", "Events", "Spec"])
    with tab_log:
        st.code(jobs.log_tail(ws, job_id, lines=200) or "(no output yet)", language=None)
    with tab_events:
        events = jobs_store.job_events(store, job_id)
        for ev in events:
            st.text(f"{ev['t']:%H:%M:%S}  {ev['level']:8} {ev['message']}")
        if not events:
            st.caption("No events ingested yet.")
    with tab_spec:
        st.json(spec)


job_list()
