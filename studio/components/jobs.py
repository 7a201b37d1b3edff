"""Job widgets shared by pages: a progress row, one job's live progress bar, and the live
list of active jobs.

Pages redraw by themselves when a job's state or data change (`studio.live.follow`); the
fragments here, on a timer, are only for the progress bars of jobs that run."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from backend.jobs import read as jobs
from backend.jobs.status import TERMINAL, JobState, JobStatus, JobStatusError
from studio import auth, resources

PROGRESS_EVERY_S = 2.0
JOBS_PAGE_PARAM = "jobs_selected"  # the Jobs page's selected job, bound to the URL

STATE_ICON = {
    JobState.queued: ":material/schedule:",
    JobState.running: ":material/progress_activity:",
    JobState.succeeded: ":material/check_circle:",
    JobState.failed: ":material/error:",
    JobState.cancelled: ":material/cancel:",
    JobState.interrupted: ":material/pause_circle:",
}


def progress_row(status: JobStatus) -> None:
    """One job: its progress bar with "done/total · rate · ETA", and a link to its detail."""
    label = f"{status.title or status.kind} · {status.state} · {status.progress_line()}"
    st.progress(status.fraction, text=label)
    if status.message:
        st.caption(status.message)


@st.fragment(run_every=PROGRESS_EVERY_S)
def live_progress(job_id: str) -> None:
    """One job's progress bar, redrawn every few seconds while the job is queued or runs;
    a job that ended draws once (its page redraws when its state moves)."""
    try:
        status = jobs.get(resources.workspace(), job_id)
    except (jobs.JobError, JobStatusError) as exc:
        st.error(str(exc))
        return
    progress_row(status)


def progress(status: JobStatus) -> None:
    """A job's progress: live while it runs, drawn once when it has ended."""
    if status.state in TERMINAL:
        progress_row(status)
    else:
        live_progress(status.id)


def active_jobs(limit: int = 10) -> list[JobStatus]:
    ws = resources.workspace()
    items = [s for s in jobs.list_jobs(ws) if isinstance(s, JobStatus)]
    return [s for s in items if s.state in (JobState.queued, JobState.running)][-limit:]


@st.fragment(run_every=PROGRESS_EVERY_S)
def live_active_jobs(empty_text: str = "No job is running.") -> None:
    """Active jobs with live progress; reruns on its own every 2 s."""
    jobs = active_jobs()
    if not jobs:
        st.caption(empty_text)
        return
    for status in jobs:
        progress_row(status)
        if auth.can_open("jobs"):
            try:
                st.page_link(
                    "../pages/jobs.py",
                    label=f"Open job {status.id}",
                    icon=":material/open_in_new:",
                    query_params={JOBS_PAGE_PARAM: status.id},
                )
            except StreamlitAPIException:  # a page run on its own, outside the navigation
                st.caption(f"Job {status.id}: see the Jobs page.")
