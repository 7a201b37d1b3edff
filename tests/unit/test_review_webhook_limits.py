"""The webhook receiver's limits, against the real receiver over loopback: a bad
Content-Length gets 400 at once, a client that stops sending is dropped when its socket times
out, handler threads are capped (a request beyond the cap gets 503), a deletion only removes
verdicts of the project it came from, and one large delivery never stalls the inbox."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from backend.ingest import review_inbox
from backend.ingest.review_inbox import ingest_workspace_inbox
from backend.integrations.labelstudio import webhook as hook
from backend.store import review as rstore
from tests.support.seed_review import flagged_batch, scored_dataset
from tests.unit.test_review_webhook import PROJECT, _inbox, _payload, _post

T = "2026-11-29T10:00:00Z"


@pytest.fixture
def receiver(ws):
    r = hook.Receiver(ws, 0, timeout_s=1.0, max_threads=3).start()
    yield r
    r.stop()


@pytest.fixture
def batch(store):
    """A pushed-looking batch (project 7) of 4 examples."""
    _, ids = scored_dataset(store, n=4)
    b = flagged_batch(store, "support", "score-1", 4)
    rstore.set_project(
        store, b["id"], "http://ls", PROJECT, {e: 100 + i for i, e in enumerate(ids)}
    )
    return b["id"], ids


def _connect(receiver) -> socket.socket:
    host, port = receiver.server.server_address[:2]
    s = socket.create_connection((host, port), timeout=5)
    return s


def _raw(receiver, head: str, body: bytes = b"") -> bytes:
    """Send a hand-made request and read the answer until the server closes (5 s at most:
    a server that waits for more than was sent fails the test with a timeout)."""
    with _connect(receiver) as s:
        s.sendall(head.encode() + body)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def _head(receiver, length: str) -> str:
    return (
        f"POST / HTTP/1.1\r\nHost: x\r\n{hook.HEADER}: {receiver.secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )


@pytest.mark.parametrize("length", ["-1", "-5000", "abc", "1e3", " ", "+12"])
def test_a_negative_or_non_numeric_content_length_gets_400(ws, receiver, length):
    t0 = time.monotonic()
    answer = _raw(receiver, _head(receiver, length), b'{"action": "ANNOTATION_CREATED"}')
    assert answer.startswith(b"HTTP/1.0 400"), answer[:200]
    assert b"Content-Length must be" in answer  # the length itself is named, not the body
    assert time.monotonic() - t0 < 0.9  # answered at once, not after the socket timeout
    assert _inbox(ws) == []


def test_conflicting_and_missing_lengths_are_refused(ws, receiver):
    two = _head(receiver, "5").replace("\r\n\r\n", "\r\nContent-Length: 9\r\n\r\n")
    assert _raw(receiver, two, b"12345").startswith(b"HTTP/1.0 400")
    none = _head(receiver, "0").replace("Content-Length: 0\r\n", "")
    assert _raw(receiver, none).startswith(b"HTTP/1.0 411")


def test_a_client_that_stops_sending_is_dropped(ws, receiver):
    for partial in ("POST / HTTP/1.1\r\nHost: x\r\nContent-Le", _head(receiver, "100") + "{}"):
        with _connect(receiver) as s:
            s.sendall(partial.encode())
            t0 = time.monotonic()
            try:  # the server closes (or answers) once its 1 s socket timeout passes
                s.recv(65536)
            except TimeoutError:
                pytest.fail("the receiver kept a silent client's connection open for 5 s")
            assert time.monotonic() - t0 < 4
    r = _post(receiver, _payload("b", "e", 1, "accept", T))
    assert r.status_code == 200  # and it still serves everyone else


def _handler_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def test_handler_threads_are_capped(ws, receiver, monkeypatch):
    monkeypatch.setattr(hook, "BUSY_WAIT_S", 0.3)
    slow = [_connect(receiver) for _ in range(8)]
    try:
        for s in slow:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # headers that never end
        time.sleep(0.5)
        assert _handler_threads() <= 3
    finally:
        for s in slow:
            s.close()
    deadline = time.monotonic() + 10
    while _handler_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    held = [_connect(receiver) for _ in range(3)]
    try:
        for s in held:
            s.sendall(b"POST / HTTP/1.1\r\n")
        time.sleep(0.2)
        busy = httpx.post(receiver.url, json={}, headers={hook.HEADER: receiver.secret}, timeout=5)
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert _post(receiver, _payload("b", "e", 1, "accept", T)).status_code == 200


def test_a_deletion_only_removes_verdicts_of_its_own_project(ws, store, receiver, batch):
    batch_id, ids = batch
    assert _post(receiver, _payload(batch_id, ids[0], 5, "accept", T)).is_success
    assert ingest_workspace_inbox(store, ws).stored["new"] == 1
    nameless = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 5}]}
    r = _post(receiver, nameless)
    assert r.status_code == 400 and "project" in r.json()["error"]
    other = {**nameless, "project": {"id": PROJECT + 1}}
    assert _post(receiver, other).is_success
    report = ingest_workspace_inbox(store, ws)
    assert report.removed == 0 and "another project" in report.errors[0]
    assert [r["id"] for r in rstore.reviews(store, batch_id)] == ["ls:5"]
    assert _post(receiver, {**nameless, "project": {"id": PROJECT}}).is_success
    assert ingest_workspace_inbox(store, ws).removed == 1
    assert rstore.reviews(store, batch_id) == []


@pytest.mark.slow
def test_one_large_delivery_does_not_stall_the_inbox(ws, store, batch):
    """A body under the body limit whose text is not ASCII (written escaped, it grew 3 times
    past what a pass reads) is stored or refused, and the deliveries after it go on."""
    batch_id, ids = batch
    big = _payload(batch_id, ids[0], 5, "accept", T)
    big["annotation"]["meta"] = {"pad": "é" * (11 << 20)}  # 22 MiB as UTF-8
    body = httpx.Request("POST", "http://x", json=big).content
    assert len(body) < hook.MAX_BODY
    receiver = hook.Receiver(ws, 0).start()
    try:
        r = httpx.post(
            receiver.url,
            content=body,
            headers={hook.HEADER: receiver.secret, "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code in (200, 413)
        del big, body
        assert _post(receiver, _payload(batch_id, ids[1], 6, "reject", T)).is_success
    finally:
        receiver.stop()
    path = hook.inbox_path(ws)
    assert max(len(x) for x in path.read_bytes().splitlines(keepends=True)) <= hook.MAX_LINE
    ingest_workspace_inbox(store, ws)
    assert "ls:6" in {r["id"] for r in rstore.reviews(store, batch_id)}


def test_an_over_long_line_is_stepped_over(ws, store, batch, monkeypatch):
    """With small limits: the receiver refuses a delivery whose line would pass MAX_LINE
    (413), and a longer line written by something else is reported and skipped."""
    monkeypatch.setattr(hook, "MAX_LINE", 2000)
    monkeypatch.setattr(review_inbox, "PASS_BYTES", 2001)
    batch_id, ids = batch
    receiver = hook.Receiver(ws, 0).start()
    try:
        big = _payload(batch_id, ids[0], 5, "accept", T)
        big["annotation"]["meta"] = {"pad": "x" * 3000}
        r = _post(receiver, big)
        assert r.status_code == 413 and "over 2000 bytes" in r.json()["error"]
        with open(hook.inbox_path(ws), "ab") as fh:
            fh.write(b'{"annotation": "' + b"y" * 5000 + b'"}\n')
        assert _post(receiver, _payload(batch_id, ids[1], 6, "reject", T)).is_success
    finally:
        receiver.stop()
    report = ingest_workspace_inbox(store, ws)
    assert any("over the 2000 a pass reads" in e for e in report.errors)
    assert [r["id"] for r in rstore.reviews(store, batch_id)] == ["ls:6"]
