"""Jobs: every job with its state, progress and timings; one job in detail.

Live: the counters, the table and the job shown redraw by themselves when a job's state moves
(`live.follow("jobs")`); only the shown job's progress bar ticks on a timer while it runs. The
job shown is in the URL (`?jobs_selected=<id>`), so a link opens it and a reload keeps it."""

import streamlit as st

from backend.action import AlreadyDone
from backend.jobs import actions as job_actions
from backend.jobs import read as jobs
from backend.jobs.status import RESUMABLE, TERMINAL, JobStatusError, format_seconds
from backend.store import jobs as jobs_store
from studio import auth, live, resources, state
from studio.components.jobs import JOBS_PAGE_PARAM, progress

# This page's session-state keys; those of widgets bound to the URL are its query parameters.
SELECTED = JOBS_PAGE_PARAM  # the job shown in detail
TABLE = "jobs_table"  # the table's row selection
TABLE_IDS = "jobs_table_ids"  # the table's job ids in the order last drawn
DETAIL_TAB = "jobs_detail_tab"
LEGACY_PARAM = "job"  # links made before the job was bound to the URL

auth.guard("jobs")

st.title("Jobs")
st.caption(
    "Everything that runs in the background: generation, scoring, training, judging, "
    "drift checks. Jobs keep running when you close the browser."
)
state.show_flash()
live.follow("jobs")

store, ws = resources.store(), resources.workspace()
ingestor = resources.ingestor()

if LEGACY_PARAM in st.query_params:  # ?job=ID from an older link: open that job
    st.session_state[SELECTED] = st.query_params.get(LEGACY_PARAM)
    del st.query_params[LEGACY_PARAM]


def _picked_in_table() -> None:
    """A row clicked in the table becomes the job shown (by id, so a table that gains rows
    as jobs arrive never swaps the job shown)."""
    event = st.session_state.get(TABLE) or {}
    rows = (event.get("selection") or {}).get("rows") or []
    ids = st.session_state.get(TABLE_IDS) or []
    if rows and rows[0] < len(ids):
        st.session_state[SELECTED] = ids[rows[0]]


def job_list() -> None:
    """The counters, the jobs table and the job shown."""
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
    ids = table["id"].tolist()
    st.session_state[TABLE_IDS] = ids
    st.dataframe(
        table,
        hide_index=True,
        on_select=_picked_in_table,
        selection_mode="single-row",
        key=TABLE,
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
    wanted = st.session_state.get(SELECTED)
    if wanted and wanted not in ids:  # queued a moment ago: not read into the database yet
        try:
            ids.insert(0, jobs.checked_id(ws, wanted))
        except jobs.JobError:
            pass
    job_id = (  # no default option: a job picked is always named in the URL
        st.selectbox(
            "Job",
            ids,
            index=None,
            key=SELECTED,
            bind="query-params",
            placeholder=f"the newest: {ids[0]}",
            help="The job shown below (newest first); a click on a row of the table shows it too.",
        )
        or ids[0]
    )
    detail(job_id)


def _act(call, done: str) -> None:
    """Cancel or resume through the job actions; the page redraws on the same job."""
    try:
        call()
    except AlreadyDone as exc:
        st.info(str(exc))
    except (ValueError, jobs.JobError) as exc:
        st.error(str(exc))
    else:
        state.flash(done)
        st.rerun()


def detail(job_id: str) -> None:
    try:
        status = jobs.get(ws, job_id)
        kind, spec = jobs.read_spec(ws.job_dir(job_id))
    except (jobs.JobError, JobStatusError) as exc:
        st.error(str(exc))
        return
    st.subheader(f"{status.title or kind}")
    st.caption(f"{job_id} · {kind} · attempt {status.attempt}")
    progress(status)
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
        "Cancel", key=f"jobs_cancel-{job_id}", icon=":material/cancel:"
    ):  # the request is recorded now; the signals follow on a background thread
        _act(
            lambda: job_actions.cancel(auth.ctx(), job_id, background=True),
            f"Cancel requested for {job_id}.",
        )
    if status.state in RESUMABLE and b2.button(
        "Resume", key=f"jobs_resume-{job_id}", icon=":material/play_arrow:"
    ):
        _act(
            lambda: job_actions.resume(auth.ctx(), job_id),
            f"Job {job_id} queued again; it continues from its last checkpoint.",
        )
    tab_log, tab_events, tab_spec = st.tabs(
        ["Log", "Events", "Spec"], key=DETAIL_TAB, bind="query-params"
    )
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
