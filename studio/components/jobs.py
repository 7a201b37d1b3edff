"""Job widgets shared by pages: a progress row, and the live list of active jobs."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from backend.jobs import read as jobs
from backend.jobs.status import JobState, JobStatus
from studio import auth, resources

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


def active_jobs(limit: int = 10) -> list[JobStatus]:
    ws = resources.workspace()
    items = [s for s in jobs.list_jobs(ws) if isinstance(s, JobStatus)]
    return [s for s in items if s.state in (JobState.queued, JobState.running)][-limit:]


@st.fragment(run_every=2)
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
                    query_params={"job": status.id},
                )
            except StreamlitAPIException:  # a page run on its own, outside the navigation
                st.caption(f"Job {status.id}: see the Jobs page.")
