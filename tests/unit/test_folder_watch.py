"""The dashboard's folder watch on a real store and real job folders: a file dropped in a
monitor's watched folder becomes a batch, a check starts by itself once the window is big
enough, and after the drift job the ingestion loop's next pass fires one alert and one plan,
with nobody at the Monitoring page. Unchanged files are not read again; a bad file is reported
once."""

from __future__ import annotations

import os

import pytest

from backend.drift.synthetic import sample
from backend.drift.watch import FolderWatch
from backend.ingest.loop import Ingestor
from backend.jobs import queue
from backend.store import monitoring as mon
from backend.store import production
from backend.store.audit import rows as audit_rows
from tests.unit.test_monitoring import FAST, fake_model_at, jsonl, seed_reference


@pytest.fixture
def watched(store, tmp_path):
    seed_reference(store)
    folder = tmp_path / "production"
    folder.mkdir()
    mon.create_monitor(store, "prod", reference="support", config=FAST, watch_dir=str(folder))
    return folder


def test_dropped_files_start_checks_and_fire_one_plan(store, ws, watched, run_inline):
    fake_model_at(ws)  # a model to score with: the plan can run
    watch = FolderWatch(store, ws, interval_s=3600)
    loop = Ingestor(store, ws)  # its passes, one at a time (no thread)
    assert watch.tick() == {"batches": 0, "errors": [], "checks": []}
    assert watch.tick() is None  # not due again for an hour

    (watched / "mon.jsonl").write_bytes(jsonl(sample(4, seed=1)))
    small = watch.tick(force=True)
    assert small["batches"] == 1 and small["checks"] == []  # 4 prompts < min_window 10

    (watched / "tue.jsonl").write_bytes(jsonl(sample(60, seed=3, shifted=True)))
    (watched / "bad.csv").write_text("nothing,here\n1,2\n")
    got = watch.tick(force=True)
    assert got["batches"] == 1 and len(got["checks"]) == 1
    assert len(got["errors"]) == 1 and "bad.csv:2" in got["errors"][0]
    (job,) = [j for j in queue.list_jobs(ws) if j.kind == "drift"]
    assert job.submitted_by == "folder-watch"
    audit = audit_rows(store)
    assert {
        (r["actor"], r["action"]) for r in audit.to_dict("records") if "monitor." in r["action"]
    } == {
        ("folder-watch", "monitor.ingest"),
        ("folder-watch", "monitor.check"),
    }
    assert run_inline(ws, job.id).state == "succeeded"

    after = watch.tick(force=True)  # nothing new to read; the watch applies no rule
    assert (after["batches"], after["errors"], after["checks"]) == (0, [], [])
    assert mon.alerts(store) == []
    loop.tick()  # the loop's pass ingests the drift job and applies the rules
    assert len(mon.alerts(store)) == 1 and len(mon.plans(store)) == 1
    assert mon.plans(store)[0]["state"] == "proposed"
    loop.tick()  # evaluated once
    assert len(mon.alerts(store)) == 1 and len(mon.plans(store)) == 1

    stamp = (watched / "tue.jsonl").stat().st_mtime_ns + 10**9
    os.utime(watched / "tue.jsonl", ns=(stamp, stamp))  # touched: read again, same content
    again = watch.tick(force=True)
    assert (again["batches"], again["errors"], again["checks"]) == (0, [], [])
    assert len(production.batches(store)) == 2

    path = watched / "mon.jsonl"  # same size and modification time: never read again
    was = path.stat()
    path.write_bytes(b"x" * was.st_size)
    os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert watch.tick(force=True)["errors"] == []
    os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns + 10**9))  # now it is
    assert "mon.jsonl:1: not valid JSON" in watch.tick(force=True)["errors"][0]


def test_no_watched_folder_reads_nothing(store, ws):
    seed_reference(store)
    mon.create_monitor(store, "prod", reference="support", config=FAST)
    assert FolderWatch(store, ws, interval_s=0).tick() is None  # 0: only on demand
    assert FolderWatch(store, ws).tick(force=True)["batches"] == 0


def test_a_file_over_the_limit_is_reported_by_name_and_never_read_whole(
    store, ws, watched, monkeypatch
):
    """A watched folder's file (or an upload) past the batch limit is refused with its name and
    the limit, reading no more than the limit; the rest of the folder is still read."""
    import io

    from backend.drift import checks

    monkeypatch.setattr(checks, "MAX_BATCH_BYTES", 4096)
    (watched / "huge.jsonl").write_bytes(jsonl(sample(60, seed=3)))
    (watched / "fine.jsonl").write_bytes(jsonl(sample(5, seed=4)))
    got = FolderWatch(store, ws, interval_s=3600).tick(force=True)
    assert got["batches"] == 1
    (error,) = got["errors"]
    assert "huge.jsonl is" in error and "over the 4 KiB limit for a production batch" in error
    assert [b["name"] for b in production.batches(store)] == ["fine.jsonl"]

    class Endless(io.RawIOBase):  # an upload that never ends, counting what was read
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            buf[:] = b"x" * len(buf)
            self.read_bytes += len(buf)
            return len(buf)

    stream = Endless()
    from backend.action import Ctx
    from backend.config import Settings
    from backend.drift import actions

    with pytest.raises(ValueError, match="endless.jsonl is over the 4 KiB limit"):
        actions.ingest_upload(Ctx(store, ws, Settings()), "prod", stream, "endless.jsonl")
    assert stream.read_bytes <= 4097
