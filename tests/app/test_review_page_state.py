"""The Review page keeps its view in the URL (tab, dataset, scoring run, signal, policy) and
dependent choices follow their parent; an admin starts, stops and sees the status of the
workspace's Label Studio there, with its credentials shown only when asked for (and audited);
reviewer notes and texts are drawn as plain text; labels speak the user's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.integrations.labelstudio import server as lss
from backend.store import Store, users
from backend.store import review as rstore
from tests.support.seed_review import flagged_batch, scored_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "review.py")
TOKEN = "tok-0123456789abcdef"
PASSWORD = "pw-very-secret"


def _seed(ws) -> None:
    """Two datasets, each scored twice (the second run of `faq` by nll and entropy)."""
    store = Store.open(ws.db_path)
    try:
        scored_dataset(store, "support", 6, job_id="score-s1")
        scored_dataset(store, "faq", 6, job_id="score-f1", methods=("nll", "entropy"))
        rows = rstore.score_jobs(store, "faq")
        assert [r["job_id"] for r in rows] == ["score-f1"]
    finally:
        store.close()


def _page(query: dict | None = None, who=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if who:
        at.session_state["actor"] = who
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_opens_the_same_view(ws):
    _seed(ws)
    at = _page(  # as the browser writes them: the choices' labels
        {
            "review_tab": "Flag",
            "review_dataset": "faq",
            "review_run": "score-f1 (tiny)",
            "review_signal": "How unsure the model is, word by word",
            "review_policy": "Everything above a percentile",
        }
    )
    assert at.session_state["review_tab"] == "Flag"
    assert at.selectbox(key="review_dataset").value == "faq"
    assert at.selectbox(key="review_run").value == "score-f1"
    assert at.radio(key="review_signal").value == "entropy"
    assert at.radio(key="review_policy").value == "percentile"
    assert at.number_input(key="flag_value_percentile").label == "Percentile"
    assert any("entropy" in c.proto.spec for c in at.get("plotly_chart"))


def test_a_link_to_something_gone_falls_back(ws):
    _seed(ws)
    at = _page({"review_dataset": "nope", "review_run": "no-such-run", "review_signal": "x"})
    assert at.selectbox(key="review_dataset").value == "support"
    assert at.selectbox(key="review_run").value == "score-s1"
    assert at.radio(key="review_signal").value == "nll"


def test_the_scoring_run_follows_the_dataset(ws):
    _seed(ws)
    at = _page({"review_tab": "Flag", "review_dataset": "faq"})
    at.radio(key="review_signal").set_value("entropy").run()
    assert at.selectbox(key="review_run").value == "score-f1"
    at.selectbox(key="review_dataset").set_value("support").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="review_run").value == "score-s1"
    assert at.radio(key="review_signal").value == "nll"  # support has no entropy scores
    assert at.session_state["review_tab"] == "Flag"


def test_creating_a_batch_keeps_the_tab_and_shows_the_result(ws):
    _seed(ws)
    at = _page({"review_tab": "Flag"})
    at.number_input(key="flag_value_top_k").set_value(2.0)
    [b for b in at.button if b.label == "Create review batch"][0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["review_tab"] == "Flag"
    assert any(s.value.startswith("Batch ") and "2 flagged" in s.value for s in at.success)


def test_labels_in_words_with_the_library_term_in_help(ws):
    _seed(ws)
    store = Store.open(ws.db_path)
    try:
        flagged_batch(store, "support", "score-s1", 2)
    finally:
        store.close()
    at = _page({"review_tab": "Flag"})
    signal = at.radio(key="review_signal")
    assert signal.label == "Flag by" and "nll" in signal.help
    assert signal.options == ["How surprising the answer is"]
    policy = at.radio(key="review_policy")
    assert "top_k" in policy.help and "top_k" not in " ".join(policy.options)
    metrics = {m.label: m for m in at.metric}
    assert "Cohen's kappa" in metrics["Agreement between two reviewers"].proto.help
    assert "Fleiss' kappa" in metrics["Agreement among all reviewers"].proto.help
    assert "kappa" not in " ".join(metrics)


def test_notes_and_texts_are_plain_text(ws):
    store = Store.open(ws.db_path)
    try:
        scored_dataset(
            store,
            n=3,
            question="[click me](http://evil.example/{i})",
            answer="![img](http://evil.example/{i}.png) **bold**",
            note="<img src=x onerror=alert({i})> [judge](http://evil.example)",
        )
        flagged_batch(store, "support", "score-1", 3)
    finally:
        store.close()
    at = _page({"review_tab": "Review here"})
    at.text_input(key="reviewer").set_value("ana").run()
    texts = [t.value for t in at.text]
    assert "[click me](http://evil.example/2)" in texts
    assert "![img](http://evil.example/2.png) **bold**" in texts
    assert "<img src=x onerror=alert(2)> [judge](http://evil.example)" in texts
    drawn = [
        e.value
        for kind in ("markdown", "caption", "success", "info", "warning", "error")
        for e in at.get(kind)
    ]
    assert not any("evil.example" in d for d in drawn), drawn


@pytest.fixture
def fake_ls(monkeypatch, ws):
    """The workspace's local Label Studio as the page sees it, without starting one."""
    running = {"on": False}

    def status(_ws):
        if not running["on"]:
            return {"running": False, "message": "no local Label Studio was started here"}
        return {"running": True, "url": "http://127.0.0.1:8099", "port": 8099, "pid": 4242}

    def up(_ws, port=8080, **_):
        running["on"] = True
        return lss.ServerInfo("http://127.0.0.1:8099", 8099, 4242, "data", 0.0, 1.5), TOKEN

    def down(_ws):
        was, running["on"] = running["on"], False
        return was

    creds = {
        "url": "http://127.0.0.1:8099",
        "username": lss.ADMIN_EMAIL,
        "password": PASSWORD,
        "token": TOKEN,
    }
    monkeypatch.setattr(lss, "status", status)
    monkeypatch.setattr(lss, "up", up)
    monkeypatch.setattr(lss, "down", down)
    monkeypatch.setattr(lss, "healthy", lambda url, timeout=2.0: running["on"])
    monkeypatch.setattr(lss, "local_credentials", lambda _ws: creds if running["on"] else None)
    yield running
    st.cache_resource.clear()


def _everything(at) -> str:
    kinds = ("markdown", "caption", "success", "info", "warning", "error", "code", "text")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_an_admin_starts_and_stops_label_studio_and_sees_credentials_on_demand(ws, fake_ls):
    _seed(ws)
    store = Store.open(ws.db_path)
    try:
        users.add_user(store, "ada", "password-1", "admin")
    finally:
        store.close()
    st.cache_resource.clear()
    at = _page({"review_tab": "Label Studio"}, who=("ada", "admin"))
    assert any("Not started here yet" in i.value for i in at.info)
    assert _button(at, "Stop Label Studio").disabled
    _button(at, "Start Label Studio").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["review_tab"] == "Label Studio"
    assert any("Label Studio runs at http://127.0.0.1:8099" in s.value for s in at.success)
    at.run()
    assert any("Running at" in s.value for s in at.success)
    page = _everything(at)
    assert TOKEN not in page and PASSWORD not in page  # never by default
    _button(at, "Show credentials").click().run()
    assert not at.exception, [e.value for e in at.exception]
    codes = [c.value for c in at.code]
    assert TOKEN in codes and PASSWORD in codes and lss.ADMIN_EMAIL in codes
    assert TOKEN not in repr(at.session_state.to_dict())  # shown, never kept in state
    assert PASSWORD not in repr(at.session_state.to_dict())
    _button(at, "Hide credentials").click().run()
    assert TOKEN not in _everything(at)
    _button(at, "Stop Label Studio").click().run()
    assert any("Label Studio stopped." in s.value for s in at.success)
    store = Store.open(ws.db_path)
    try:
        done = users.audit_rows(store)["action"].tolist()
    finally:
        store.close()
    assert {"labelstudio.up", "labelstudio.reveal", "labelstudio.down"} <= set(done)


def test_a_lead_sees_no_server_controls_or_credentials(ws, fake_ls):
    _seed(ws)
    fake_ls["on"] = True
    store = Store.open(ws.db_path)
    try:
        users.add_user(store, "lee", "password-1", "lead")
    finally:
        store.close()
    st.cache_resource.clear()
    at = _page({"review_tab": "Label Studio"}, who=("lee", "lead"))
    labels = {b.label for b in at.button}
    assert not labels & {"Start Label Studio", "Stop Label Studio", "Show credentials"}
    assert TOKEN not in _everything(at)


def test_the_page_follows_scores_reviews_and_jobs(ws):
    """The page reruns when a followed counter moves (studio/live.py); webhook verdicts and
    scores stored by the ingestion pass move them, so those views redraw by themselves."""
    from backend.changes import CHANGES
    from backend.ingest.jobs import ingest_all
    from backend.integrations.labelstudio import webhook as hook
    from tests.unit.test_review_webhook import _payload, _post

    store = Store.open(ws.db_path)
    try:
        _, ids = scored_dataset(store, n=3)
        batch = flagged_batch(store, "support", "score-1", 3)
        rstore.set_project(store, batch["id"], "http://ls", 7, {e: i for i, e in enumerate(ids)})
    finally:
        store.close()
    at = _page()
    kinds = ("scores", "reviews", "jobs")
    assert at.session_state["live:" + ",".join(kinds)] == CHANGES.snapshot(kinds)
    receiver = hook.Receiver(ws, 0).start()
    try:
        body = _payload(batch["id"], ids[0], 5, "accept", "2026-11-29T10:00:00Z")
        body["project"] = {"id": 7}
        assert _post(receiver, body).status_code == 200
    finally:
        receiver.stop()
    before = CHANGES.snapshot(kinds)
    store = Store.open(ws.db_path)
    try:
        ingest_all(store, ws)
    finally:
        store.close()
    after = CHANGES.snapshot(kinds)
    assert after[1] > before[1]  # reviews moved: the watcher reruns the page
