"""The Label Studio webhook receiver against a real local server, and the inbox ingest: 403
without the secret, 400 naming what is wrong, whole lines, a torn last line waits, a bad line
is reported without blocking later ones, repeated and older deliveries change nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from backend.ingest.jobs import ingest_all
from backend.ingest.review_inbox import ingest_workspace_inbox
from backend.integrations.labelstudio import webhook as hook
from backend.store import review as rstore
from tests.support.seed_review import flagged_batch, scored_dataset

PROJECT = 7


@pytest.fixture
def receiver(ws):
    r = hook.Receiver(ws, 0, reviewer_of=lambda uid: {1: "ann@example.com"}.get(uid)).start()
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


def _payload(batch_id, example_id, ann_id, verdict, updated, action="ANNOTATION_CREATED"):
    ann = {
        "id": ann_id,
        "task": 100 + ann_id,
        "completed_by": 1,
        "was_cancelled": False,
        "created_at": "2026-11-29T10:00:00.000000Z",
        "updated_at": updated,
        "result": [
            {"from_name": "verdict", "type": "choices", "value": {"choices": [verdict]}},
            {"from_name": "issues", "type": "choices", "value": {"choices": ["factual error"]}},
        ],
    }
    task = {
        "id": 100 + ann_id,
        "project": PROJECT,
        "data": {"batch_id": batch_id, "example_id": example_id, "instruction": "q"},
    }
    return {"action": action, "annotation": ann, "task": task, "project": {"id": PROJECT}}


def _post(receiver, body, secret=True):
    headers = {hook.HEADER: receiver.secret} if secret else {}
    if isinstance(body, (dict, list)):
        return httpx.post(receiver.url, json=body, headers=headers, timeout=10)
    return httpx.post(receiver.url, content=body, headers=headers, timeout=10)


def _inbox(ws) -> list[dict]:
    path = hook.inbox_path(ws)
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_secret_is_required_and_stable(ws, receiver):
    body = _payload("b", "e", 1, "accept", "2026-11-29T10:00:00Z")
    assert _post(receiver, body, secret=False).status_code == 403
    wrong = httpx.post(receiver.url, json=body, headers={hook.HEADER: "nope"}, timeout=10)
    assert wrong.status_code == 403 and hook.HEADER in wrong.json()["error"]
    assert _inbox(ws) == []
    assert receiver.url.startswith("http://127.0.0.1:")
    assert hook.shared_secret(ws) == receiver.secret  # a restarted receiver keeps it
    assert (hook.webhook_dir(ws) / "secret").stat().st_mode & 0o777 == 0o600


def test_bad_requests_get_400_naming_the_problem(ws, receiver):
    r = _post(receiver, b'{"action": "ANNOTATION_CREATED", ')
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    r = _post(receiver, {"action": "PROJECT_DELETED"})
    assert r.status_code == 400 and "unknown action 'PROJECT_DELETED'" in r.json()["error"]
    r = _post(receiver, {"action": "ANNOTATION_CREATED"})
    assert r.status_code == 400 and "send_payload" in r.json()["error"]
    body = _payload("b", "e", 1, "accept", "2026-11-29T10:00:00Z")
    body["task"]["data"] = {"text": "a task the studio did not push"}
    r = _post(receiver, body)
    assert r.status_code == 400 and "batch_id/example_id" in r.json()["error"]
    r = _post(receiver, {"action": "ANNOTATIONS_DELETED", "annotations": [{"task": 3}]})
    assert r.status_code == 400 and "a list of {id}" in r.json()["error"]
    assert _inbox(ws) == []


def test_accepted_deliveries_are_whole_lines(ws, receiver):
    r = _post(receiver, _payload("b1", "e1", 1, "accept", "2026-11-29T10:00:00Z"))
    assert r.status_code == 200 and r.json() == {"stored": 1}
    many = _payload("b1", "e2", 2, "reject", "2026-11-29T10:00:00Z", "ANNOTATIONS_CREATED")
    second = _payload("b1", "e3", 3, "accept", "2026-11-29T10:00:00Z")
    many["annotation"] = [many["annotation"], second["annotation"]]
    many["task"] = [second["task"], many["task"]]  # matched by task id, not position
    assert _post(receiver, many).json() == {"stored": 2}
    lines = _inbox(ws)
    assert [(x["annotation_id"], x["example_id"], x["action"]) for x in lines] == [
        (1, "e1", "ANNOTATION_CREATED"),
        (2, "e2", "ANNOTATIONS_CREATED"),
        (3, "e3", "ANNOTATIONS_CREATED"),
    ]
    assert all(x["reviewer"] == "ann@example.com" and x["project_id"] == PROJECT for x in lines)
    assert all(x["received"] > 0 and x["batch_id"] == "b1" for x in lines)


def test_ingest_once_torn_line_waits_bad_line_skipped(ws, store, receiver, batch):
    batch_id, ids = batch
    assert _post(
        receiver, _payload(batch_id, ids[0], 1, "accept", "2026-11-29T10:00:00Z")
    ).is_success
    path = hook.inbox_path(ws)
    with open(path, "ab") as fh:
        fh.write(b"this is not json\n")
    assert _post(
        receiver, _payload(batch_id, ids[1], 2, "reject", "2026-11-29T10:00:00Z")
    ).is_success
    last = json.loads(path.read_text().splitlines()[-1])
    whole = json.dumps(last | {"annotation_id": 3, "example_id": ids[2]})
    whole = whole.replace('"id": 2,', '"id": 3,')
    with open(path, "ab") as fh:
        fh.write(whole[:40].encode())  # a writer caught mid-line
    first = ingest_workspace_inbox(store, ws)
    assert first.stored == {"new": 2, "updated": 0, "unchanged": 0}
    assert len(first.errors) == 1 and "unreadable" in first.errors[0]
    rows = {r["id"]: r for r in rstore.reviews(store, batch_id)}
    assert set(rows) == {"ls:1", "ls:2"}
    assert rows["ls:1"]["reviewer"] == "ann@example.com" and rows["ls:2"]["verdict"] == "reject"
    assert rows["ls:1"]["categories"] == ["factual error"]
    again = ingest_workspace_inbox(store, ws)
    assert again.lines == 0  # the torn line waits
    with open(path, "ab") as fh:
        fh.write(whole[40:].encode() + b"\n")
    report = ingest_all(store, ws)  # the dashboard's timer pass picks the inbox up too
    assert report.rows["review/webhooks/inbox.jsonl"] == 1
    assert {r["id"] for r in rstore.reviews(store, batch_id)} == {"ls:1", "ls:2", "ls:3"}


def test_repeated_updated_and_older_deliveries(ws, store, receiver, batch):
    batch_id, ids = batch
    first = _payload(batch_id, ids[0], 5, "accept", "2026-11-29T10:00:00.000000Z")
    assert (
        _post(receiver, first).is_success and _post(receiver, first).is_success
    )  # delivered twice
    assert ingest_workspace_inbox(store, ws).stored["new"] == 1
    newer = _payload(
        batch_id, ids[0], 5, "reject", "2026-11-29T11:00:00.000000Z", "ANNOTATION_UPDATED"
    )
    assert _post(receiver, newer).is_success
    assert ingest_workspace_inbox(store, ws).stored["updated"] == 1
    assert _post(receiver, first).is_success  # a late retry of the older state
    late = ingest_workspace_inbox(store, ws)
    assert (late.stored["updated"], late.skipped) == (0, 1)
    rows = rstore.reviews(store, batch_id)
    assert [(r["id"], r["verdict"]) for r in rows] == [("ls:5", "reject")]
    other = _payload("no-such-batch", ids[1], 6, "accept", "2026-11-29T10:00:00Z")
    assert _post(receiver, other).is_success
    bad = ingest_workspace_inbox(store, ws)
    assert bad.stored["new"] == 0 and "'no-such-batch' is not in this store" in bad.errors[0]


def test_a_drained_inbox_is_rotated_and_a_shorter_one_reread(
    ws, store, receiver, batch, monkeypatch
):
    """Past ROTATE_BYTES and all stored, the inbox is copied to inbox.jsonl.1 and emptied;
    deliveries go on into it. An inbox found shorter than the stored offset (emptied by hand)
    is read from its start, and reading a line twice stores nothing twice."""
    from backend.ingest import review_inbox

    batch_id, ids = batch
    path = hook.inbox_path(ws)
    monkeypatch.setattr(review_inbox, "ROTATE_BYTES", 1)
    t = "2026-11-29T10:00:00Z"
    assert _post(receiver, _payload(batch_id, ids[0], 5, "accept", t)).is_success
    old = path.read_bytes()
    assert ingest_workspace_inbox(store, ws).stored["new"] == 1
    assert path.read_bytes() == b"" and path.with_name("inbox.jsonl.1").read_bytes() == old
    assert _post(receiver, _payload(batch_id, ids[1], 6, "reject", t)).is_success
    assert ingest_workspace_inbox(store, ws).stored["new"] == 1
    assert sorted(r["id"] for r in rstore.reviews(store, batch_id)) == ["ls:5", "ls:6"]

    monkeypatch.setattr(review_inbox, "ROTATE_BYTES", 1 << 30)  # no rotation from here on
    for ann_id, verdict in ((7, "accept"), (8, "reject")):
        assert _post(receiver, _payload(batch_id, ids[2], ann_id, verdict, t)).is_success
    assert ingest_workspace_inbox(store, ws).stored["new"] == 2
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])  # shorter than the offset
    again = ingest_workspace_inbox(store, ws)
    assert again.lines == 1 and again.stored["new"] == 0
    assert len(rstore.reviews(store, batch_id)) == 4
