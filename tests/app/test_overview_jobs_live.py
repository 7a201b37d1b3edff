"""Overview and Jobs are live views: their counters follow jobs (Running 1 while a run
runs), Overview's best runs are ranked within one kind of run and say best at what, and the
Jobs page's shown job lives in the URL (old ?job= links still open it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.ingest.jobs import ingest_all
from backend.jobs import worker
from backend.jobs.status import JobState, read_status, write_status
from backend.store import Store
from tests.support.seed_runs import run_id_for, seed_runs, train_spec, write_run

ROOT = Path(__file__).resolve().parents[2]
OVERVIEW = str(ROOT / "pages" / "overview.py")
JOBS = str(ROOT / "pages" / "jobs.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """No worker, and no ingestion thread: the test ingests itself, at the moments it
    chooses (two writers on one database would conflict)."""
    from backend.ingest.loop import Ingestor

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    monkeypatch.setattr(Ingestor, "start", lambda self: self)


def _set_state(ws, run_id: str, new: JobState) -> None:
    status = read_status(ws.job_dir(run_id))
    status.state = new
    status.finished = None if new in (JobState.queued, JobState.running) else status.finished
    write_status(ws.job_dir(run_id), status)


def _run(path: str, **params) -> AppTest:
    at = AppTest.from_file(path, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview_counts_a_running_run_and_ranks_within_a_kind(ws):
    (ws.models / "tiny-llama").mkdir(parents=True)  # no demo-model job
    store = Store.open(ws.db_path)
    try:
        ids = seed_runs(ws, 4, steps=30, store=store)
        dpo = run_id_for(50, prefix="dpo")
        write_run(ws, dpo, train_spec(2, method="dpo", dataset="prefs-a", max_steps=30), steps=30)
        _set_state(ws, ids[0], JobState.running)
        assert not ingest_all(store, ws).errors
    finally:
        store.close()
    at = _run(OVERVIEW)
    assert "live:jobs,runs,datasets,reviews,prefs,drift" in at.session_state
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running jobs"] == "1"
    kind = at.selectbox(key="overview_kind")
    assert set(kind.options) == {"SFT on tasklane-support", "DPO on prefs-a"}
    kind.set_value("SFT on tasklane-support").run()
    assert any(
        "three best by lowest SFT eval loss on tasklane-support" in c.value for c in at.caption
    )
    best = at.dataframe[0].value
    assert len(best) == 3 and set(best["run_id"]) <= set(ids) and dpo not in set(best["run_id"])
    kind.set_value("DPO on prefs-a").run()
    assert at.dataframe[0].value["run_id"].tolist() == [dpo]


def test_jobs_page_follows_jobs_and_keeps_the_job_in_the_url(ws):
    (ws.models / "tiny-llama").mkdir(parents=True)
    store = Store.open(ws.db_path)
    try:
        first, second = seed_runs(ws, 2, steps=5, store=store)
        _set_state(ws, first, JobState.queued)
        ingest_all(store, ws)
        at = _run(JOBS, jobs_selected=first)
        assert "live:jobs" in at.session_state
        assert at.selectbox(key="jobs_selected").value == first
        assert {m.label: m.value for m in at.metric}["Queued"] == "1"
        _set_state(ws, first, JobState.running)
        ingest_all(store, ws)
    finally:
        store.close()
    at.run()  # what the watcher does when the jobs counter moved
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running"] == "1" and metrics["Queued"] == "0"
    assert at.selectbox(key="jobs_selected").value == first  # still the same job

    old_link = _run(JOBS, job=second)  # ?job= from a link made before the binding
    assert old_link.selectbox(key="jobs_selected").value == second
    assert any(second in c.value for c in old_link.caption)
