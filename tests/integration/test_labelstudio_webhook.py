"""Against a REAL Label Studio: register the webhook receiver on a pushed batch's project (once,
however often), annotate through the REST API as a reviewer would, and the delivery lands in the
inbox; ingesting it stores exactly what a pull stores, a pull afterwards changes nothing, and an
updated annotation replaces the verdict once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.review_inbox import ingest_workspace_inbox
from backend.integrations.labelstudio import webhook as hook
from backend.review import labelstudio_actions as ls_actions
from backend.store import Store
from backend.store import review as rstore
from backend.workspace import Workspace
from tests.support.labelstudio_api import (
    annotate,
    delete_annotation,
    review_result,
    update_annotation,
)
from tests.support.seed_review import flagged_batch, scored_dataset

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


@pytest.fixture(scope="module")
def pushed(server, tmp_path_factory):
    """A workspace with a store holding a 6-example dataset, flagged (top 3) and pushed."""
    _, info, token = server
    ws = Workspace(tmp_path_factory.mktemp("hook") / "workspace").ensure()
    store = Store.open(ws.db_path)
    scored_dataset(
        store, "faq", 6, job_id="score-faq", question="faq question {i}", answer="faq answer {i}"
    )
    batch = flagged_batch(store, "faq", "score-faq", 3)
    result = ls_actions.push_batch(_ctx(store, ws, info.url, token), batch["id"], overlap_share=0)
    yield ws, store, batch["id"], result["project_id"]
    store.close()


def _ctx(store, ws, url: str, token: str) -> Ctx:
    """The shell acting on this store, talking to the session's Label Studio at `url`."""
    settings = Settings(label_studio_url=url, label_studio_token=token)
    return Ctx(store=store, ws=ws, settings=settings, actor=None)


def _wait_lines(ws: Workspace, n: int, timeout: float = 20.0) -> list[dict]:
    path, deadline = hook.inbox_path(ws), time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= n:
                return lines
        time.sleep(0.1)
    raise AssertionError(f"the inbox did not reach {n} lines in {timeout}s")


def test_webhook_delivery_equals_pull_and_update_replaces(server, live_server, pushed):
    info, token = live_server
    ws, store, batch_id, project_id = pushed
    auth = {"Authorization": f"Token {token}"}
    receiver = hook.Receiver(ws, 0, reviewer_of=hook.user_emails(info.url, token)).start()
    try:
        first = hook.register(info.url, token, project_id, receiver.url, receiver.secret)
        again = hook.register(info.url, token, project_id, receiver.url, receiver.secret)
        assert first["created"] and not again["created"]
        assert again["webhook_id"] == first["webhook_id"]
        hooks = httpx.get(
            f"{info.url}/api/webhooks/", params={"project": project_id}, headers=auth
        ).json()
        assert [h["url"] for h in hooks if h["project"] == project_id] == [receiver.url]

        item = rstore.batch_items(store, batch_id)[0]
        ann_id = annotate(info.url, token, item["ls_task_id"], review_result("accept"))
        (line,) = _wait_lines(ws, 1)
        assert (line["action"], line["annotation_id"]) == ("ANNOTATION_CREATED", ann_id)
        assert (line["batch_id"], line["example_id"]) == (batch_id, item["example_id"])

        got = ingest_workspace_inbox(store, ws)
        assert got.stored == {"new": 1, "updated": 0, "unchanged": 0} and not got.errors
        by_hook = rstore.reviews(store, batch_id)
        assert [(r["id"], r["verdict"]) for r in by_hook] == [(f"ls:{ann_id}", "accept")]
        assert by_hook[0]["reviewer"] == "studio-admin@localhost"

        pulled = ls_actions.pull_batch(_ctx(store, ws, info.url, token), batch_id)
        assert (pulled["new"], pulled["updated"], pulled["unchanged"]) == (0, 0, 1)
        assert rstore.reviews(store, batch_id) == by_hook  # the pull stores the same row

        update_annotation(info.url, token, ann_id, review_result("reject"))
        lines = _wait_lines(ws, 2)
        assert lines[1]["action"] == "ANNOTATION_UPDATED"
        upd = ingest_workspace_inbox(store, ws)
        assert upd.stored == {"new": 0, "updated": 1, "unchanged": 0}
        assert ingest_workspace_inbox(store, ws).lines == 0  # nothing new: no change
        after = rstore.reviews(store, batch_id)
        assert [(r["id"], r["verdict"]) for r in after] == [(f"ls:{ann_id}", "reject")]
        final = ls_actions.pull_batch(_ctx(store, ws, info.url, token), batch_id)
        assert (final["new"], final["updated"], final["unchanged"]) == (0, 0, 1)
        assert rstore.reviews(store, batch_id) == after
        assert store.scalar("SELECT count(*) FROM reviews") == 1

        delete_annotation(info.url, token, ann_id)  # the reviewer takes it back
        gone = _wait_lines(ws, 3)[-1]
        assert (gone["action"], gone["annotation_id"]) == ("ANNOTATIONS_DELETED", ann_id)
        dropped = ingest_workspace_inbox(store, ws)
        assert (dropped.removed, dropped.kept, dropped.errors) == (1, 0, [])
        assert rstore.reviews(store, batch_id) == []
        final = ls_actions.pull_batch(_ctx(store, ws, info.url, token), batch_id)
        assert (final["new"], final["removed"]) == (0, 0)
    finally:
        receiver.stop()


def test_pull_drops_verdicts_deleted_in_label_studio(server, live_server, pushed):
    """Without the receiver: an annotation deleted in Label Studio leaves the store at the
    next pull (its batch is not applied yet)."""
    info, token = live_server
    ws, store, batch_id, _ = pushed
    item = rstore.batch_items(store, batch_id)[2]
    ann_id = annotate(info.url, token, item["ls_task_id"], review_result("accept"))
    assert ls_actions.pull_batch(_ctx(store, ws, info.url, token), batch_id)["new"] == 1
    delete_annotation(info.url, token, ann_id)
    pulled = ls_actions.pull_batch(_ctx(store, ws, info.url, token), batch_id)
    assert (pulled["removed"], pulled["kept_deleted"]) == (1, 0)
    assert f"ls:{ann_id}" not in {r["id"] for r in rstore.reviews(store, batch_id)}


def test_cli_serves_registers_once_and_stops_on_ctrl_c(server, live_server, pushed):
    info, token = live_server
    ws, store, batch_id, project_id = pushed
    env = {
        **os.environ,
        "FTSTUDIO_WORKSPACE": str(ws.root),
        "LABEL_STUDIO_URL": info.url,
        "LABEL_STUDIO_API_KEY": token,
        "HF_HUB_OFFLINE": "1",
    }
    ftstudio = str(Path(sys.executable).parent / "ftstudio")
    cmd = [ftstudio, "review", "webhook", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--project", str(project_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = []
        deadline = time.monotonic() + 30
        while not any(x.startswith("inbox:") for x in out) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line.strip())
        url = next(x for x in out if x.startswith("url: "))[5:]
        assert url.startswith("http://127.0.0.1:")
        assert f"project {project_id}: registered" in "\n".join(out), out
        hooks = httpx.get(
            f"{info.url}/api/webhooks/",
            params={"project": project_id},
            headers={"Authorization": f"Token {token}"},
        ).json()
        # the earlier receiver's webhook (another port) was replaced, not kept beside it
        assert [h["url"] for h in hooks if h["project"] == project_id] == [url]
        inbox = hook.inbox_path(ws)
        before = len(inbox.read_text().splitlines()) if inbox.exists() else 0
        item = rstore.batch_items(store, batch_id)[1]
        ann_id = annotate(info.url, token, item["ls_task_id"], review_result("reject"))
        assert _wait_lines(ws, before + 1)[-1]["annotation_id"] == ann_id
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_review_page_live_toggle_receives_verdicts(server, live_server, ws, monkeypatch):
    """The Review page's "Live verdicts" toggle starts the dashboard's receiver, registers it
    on the batch's project, and an annotation made in Label Studio shows in the batch's
    progress after the next ingestion pass (the dashboard's ingestor runs it every 2 s)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from backend.ingest.jobs import ingest_all
    from studio import resources

    info, token = live_server
    monkeypatch.setenv("LABEL_STUDIO_URL", info.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    store = Store.open(ws.db_path)
    try:
        scored_dataset(store, "live", 4, job_id="score-live")
        batch = flagged_batch(store, "live", "score-live", 2)
        pushed = ls_actions.push_batch(_ctx(store, ws, info.url, token), batch["id"])
        project_id = pushed["project_id"]
        item = rstore.batch_items(store, batch["id"])[0]
    finally:
        store.close()
    st.cache_resource.clear()
    page = str(Path(__file__).resolve().parents[2] / "pages" / "review.py")
    at = AppTest.from_file(page, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [p.proto.text for p in at.get("progress")] == ["0/2 items reviewed"]
    try:
        at.toggle(key="ls_live").set_value(True).run()
        assert not at.exception, [e.value for e in at.exception]
        receiver = resources.webhook_receiver(info.url, token)  # the page's, same process
        assert any(receiver.url in c.value for c in at.caption)
        auth = {"Authorization": f"Token {token}"}
        hooks = httpx.get(
            f"{info.url}/api/webhooks/", params={"project": project_id}, headers=auth
        ).json()
        assert [h["url"] for h in hooks if h["project"] == project_id] == [receiver.url]
        annotate(info.url, token, item["ls_task_id"], review_result("accept"))
        _wait_lines(ws, 1)
        ingest_all(resources.store(), ws)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [p.proto.text for p in at.get("progress")] == ["1/2 items reviewed"]
    finally:
        st.cache_resource.clear()  # stops the receiver and closes the page's store
