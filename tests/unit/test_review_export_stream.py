"""A Label Studio export is streamed to a temporary file and parsed from there task by task: a
pull never holds the export as bytes and as objects at once (measured with tracemalloc on a
10 MB export), a download that breaks midway fails before anything is parsed, a bad export is
a LabelStudioError, and a log is read from its tail."""

from __future__ import annotations

import json
import tracemalloc

import httpx
import pytest

from backend.integrations.labelstudio import client as lsc
from backend.integrations.labelstudio import server as lss
from backend.review import labelstudio as lsync


def _task(i: int) -> dict:
    ann = {
        "id": i,
        "completed_by": 1,
        "created_at": "2026-11-29T10:00:00Z",
        "updated_at": "2026-11-29T10:00:00Z",
        "result": [{"from_name": "verdict", "value": {"choices": ["accept"]}}],
    }
    return {
        "id": i,
        "data": {"example_id": f"ex-{i}", "response": "r" * 5000},
        "annotations": [ann],
    }


class FakeLS:
    """The SDK surface the export uses: `projects.exports.download_sync` yielding chunks."""

    def __init__(self, body: bytes, chunk: int = 64 << 10, fail_after: int | None = None):
        self.body, self.chunk, self.fail_after = body, chunk, fail_after
        self.projects = self
        self.exports = self

    def download_sync(self, project_id, **_):
        for n, at in enumerate(range(0, len(self.body), self.chunk)):
            if self.fail_after is not None and n >= self.fail_after:
                raise httpx.ReadError("the server went away")
            yield self.body[at : at + self.chunk]


def test_a_large_export_is_never_held_whole():
    n = 2000
    body = json.dumps([_task(i) for i in range(n)]).encode()
    assert len(body) > 10 << 20
    ls = FakeLS(body)
    stages = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        rows, skipped, present = lsync.parse_export(
            lsc.iter_export(ls, "http://ls", 7, stages.append), {1: "ann@example.com"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(rows), skipped, len(present)) == (n, 0, n)
    assert rows[0]["reviewer"] == "ann@example.com"
    assert stages == ["export", "parse"]
    assert peak < len(body) / 3, f"peak {peak / 1e6:.1f} MB for a {len(body) / 1e6:.1f} MB export"


def test_full_export_still_gives_a_list():
    body = json.dumps([_task(i) for i in range(5)]).encode()
    assert [t["id"] for t in lsc.full_export(FakeLS(body, chunk=7), "http://ls", 7)] == list(
        range(5)
    )


def test_a_broken_download_fails_before_anything_is_parsed():
    body = json.dumps([_task(i) for i in range(50)]).encode()
    stages = []
    with pytest.raises(lsc.LabelStudioError, match="did not answer.*Nothing was changed"):
        lsc.iter_export(FakeLS(body, chunk=1000, fail_after=3), "http://ls", 7, stages.append)
    assert stages == ["export"]


def test_an_export_that_is_not_json_is_a_clear_error():
    for bad in (b'[{"id": 1}, {"id": ', b'{"detail": "not an export"}', b"\xff\xfe[]"):
        with pytest.raises(lsc.LabelStudioError, match="is not JSON"):
            list(lsc.iter_export(FakeLS(bad, chunk=5), "http://ls", 7))


def test_a_log_is_read_from_its_tail(tmp_path):
    log = tmp_path / "server.log"
    log.write_bytes(b"x" * (5 << 20) + b"\nthe last line\n")
    tail = lss.log_tail(log, 100)
    assert len(tail) == 100 and tail.endswith("the last line\n")
    assert lss.log_tail(log, 100, start=log.stat().st_size - 5) == "line\n"
    assert lss.log_tail(tmp_path / "missing.log") == ""
