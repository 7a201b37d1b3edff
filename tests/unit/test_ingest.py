"""Ingestion: complete lines only, rows and offset in one transaction, idempotent."""

from __future__ import annotations

import json

from backend.ingest.jobs import ingest_all
from backend.jobs import queue


def _metrics_file(ws, job_id):
    return ws.job_dir(job_id) / "metrics.jsonl"


def test_torn_line_waits_and_reingest_adds_nothing(ws, store):
    job_id = queue.submit(ws, "sleep", {"steps": 1})
    path = _metrics_file(ws, job_id)
    line = json.dumps({"step": 1, "name": "loss", "value": 2.5, "t": 1.0}) + "\n"
    torn = '{"step": 2, "name": "loss", "va'
    path.write_text(line + torn)
    report = ingest_all(store, ws)
    assert report.rows == {"metrics.jsonl": 1}
    assert store.scalar("SELECT count(*) FROM metrics") == 1
    assert ingest_all(store, ws).rows == {}
    # the writer finishes the line: exactly the new row arrives
    with open(path, "a") as fh:
        fh.write('lue": 2.0, "t": 2.0}\n')
    assert ingest_all(store, ws).rows == {"metrics.jsonl": 1}
    rows = store.rows("SELECT step, value FROM metrics WHERE job_id = ? ORDER BY step", [job_id])
    assert rows == [{"step": 1, "value": 2.5}, {"step": 2, "value": 2.0}]
    assert ingest_all(store, ws).rows == {}


def test_jobs_table_mirrors_status(ws, store, run_inline):
    job_id = queue.submit(ws, "sleep", {"steps": 3, "seconds_per_step": 0})
    ingest_all(store, ws)
    assert store.scalar("SELECT state FROM jobs WHERE id = ?", [job_id]) == "queued"
    run_inline(ws, job_id)
    report = ingest_all(store, ws)
    assert report.rows == {"metrics.jsonl": 6, "events.jsonl": 1}
    row = store.rows("SELECT state, done, total FROM jobs WHERE id = ?", [job_id])[0]
    assert row == {"state": "succeeded", "done": 3.0, "total": 3.0}


def test_bad_line_rolls_back_its_chunk_and_others_go_on(ws, store):
    bad_job = queue.submit(ws, "sleep", {"steps": 1})
    good_job = queue.submit(ws, "sleep", {"steps": 1})
    _metrics_file(ws, bad_job).write_text(
        '{"step": 1, "name": "loss", "value": 1.0}\n{"step": "x"}\n'
    )
    _metrics_file(ws, good_job).write_text('{"step": 1, "name": "loss", "value": 3.0}\n')
    report = ingest_all(store, ws)
    assert len(report.errors) == 1 and "metrics.jsonl: cannot ingest" in report.errors[0]
    assert bad_job in report.errors[0]
    rows = store.rows("SELECT job_id, value FROM metrics")
    assert rows == [{"job_id": good_job, "value": 3.0}]  # nothing half-ingested from the bad file
    assert store.scalar("SELECT count(*) FROM ingest_offsets WHERE job_id = ?", [bad_job]) == 0


def test_corrupt_status_is_reported_not_fatal(ws, store):
    good = queue.submit(ws, "sleep", {"steps": 1})
    bad = queue.submit(ws, "sleep", {"steps": 1})
    ingest_all(store, ws)
    (ws.job_dir(bad) / "status.json").write_text("{not json")
    report = ingest_all(store, ws)
    assert any("corrupt" in e for e in report.errors)
    row = store.rows("SELECT state, error FROM jobs WHERE id = ?", [bad])[0]
    assert row["state"] == "queued" and "corrupt" in row["error"]  # last known state kept
    assert store.scalar("SELECT state FROM jobs WHERE id = ?", [good]) == "queued"
