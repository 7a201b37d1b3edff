"""The Datasets page: empty state, recipe form, generation through a loopback endpoint,
examples shown as text, quality and versions."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.jobs import queue
from backend.store import Store
from backend.store import datasets as dstore
from backend.synth.actions import seed_demo_dataset
from tests.support.openai_server import OpenAIServer

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "datasets.py")


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_state_creates_a_dataset(ws):
    at = run_page()
    assert any("No datasets yet" in i.value for i in at.info)
    at.text_input[0].input("support-bot")
    at.button[0].click().run()
    assert not at.exception
    assert at.selectbox[0].value == "support-bot"
    assert any("write its recipe" in s.value for s in at.success)


def _seeded(ws):
    store = Store.open(ws.db_path)
    try:
        seed_demo_dataset(Ctx(store=store, ws=ws, settings=Settings(), actor=None))
        dstore.create_dataset(store, "evil")
        dstore.add_version(
            store,
            "evil",
            [
                {
                    "messages": [
                        {"role": "user", "content": "<script>alert(1)</script> **bold**"},
                        {"role": "assistant", "content": "<b>not html</b>"},
                    ]
                }
            ],
        )
    finally:
        store.close()


def test_demo_dataset_shows_metrics_examples_as_text_and_versions(ws):
    _seeded(ws)
    at = run_page()
    assert at.title[0].value == "Datasets"
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Examples"]) >= 35 and metrics["Versions"] == "1"
    assert [t.label for t in at.tabs] == ["Recipe", "Generate", "Examples", "Quality", "Versions"]
    # the recipe form is filled from the stored recipe
    assert "gantt chart" in at.text_area[2].value
    at.selectbox[0].set_value("evil").run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert "<script>alert(1)</script> **bold**" in texts and "<b>not html</b>" in texts
    assert not any("<script>" in m.value for m in at.markdown)


def test_recipe_save_and_generate_through_an_endpoint(ws, run_inline):
    with OpenAIServer() as srv:
        at = run_page()
        at.text_input[0].input("gen-ds")
        at.button[0].click().run()
        form = at.get("text_area")
        form[0].input("Answer Tasklane questions")  # task
        form[2].input("billing\nexports")  # topics
        at.number_input[0].set_value(3)  # per topic
        model = [t for t in at.text_input if t.label == "Generator model"][0]
        model.input("test-model")
        [b for b in at.button if b.label == "Save recipe"][0].click().run()
        assert not at.exception, [e.value for e in at.exception]
        [t for t in at.text_input if t.label == "Endpoint base URL"][0].input(srv.base_url)
        [b for b in at.button if b.label == "Generate"][0].click().run()
        assert not at.exception, [e.value for e in at.exception]
        jobs = [s for s in queue.list_jobs(ws) if s.kind == "generate"]
        assert len(jobs) == 1
        spec = queue.read_spec(ws.job_dir(jobs[0].id))[1]
        assert spec["recipe"]["topics"] == ["billing", "exports"]
        assert spec["base_url"] == srv.base_url
        # run it here (the page's worker may race us; claim_next tells who got it)
        if queue.claim_next(ws) == jobs[0].id:
            from backend.jobs.run import run_job

            run_job(ws, jobs[0].id, heartbeat_s=0.5)
            queue.release(ws, jobs[0].id)
        assert queue.wait(ws, jobs[0].id, timeout_s=60).state == "succeeded"
        for _ in range(20):  # the page's ingestion thread picks the result up
            at.run()
            metrics = {m.label: m.value for m in at.metric}
            if metrics["Examples"] != "0":
                break
            time.sleep(0.5)
    assert not at.exception
    assert metrics["Examples"] != "0", metrics
    assert any(m.label == "Kept" for m in at.metric)


def test_search_saves_its_matches_as_a_version_once(ws):
    _seeded(ws)
    at = run_page()
    [search] = [t for t in at.text_input if t.label == "Search text"]
    search.input("gantt").run()
    [save] = [b for b in at.button if b.label == "Save the matches as a new version"]
    save.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("matching examples" in s.value for s in at.success), [s.value for s in at.success]
    assert {m.label: m.value for m in at.metric}["Versions"] == "2"
    [save] = [b for b in at.button if b.label == "Save the matches as a new version"]
    save.click().run()  # the same content again: no third version
    assert any("already holds" in i.value for i in at.info), [i.value for i in at.info]
    store = Store.open(ws.db_path)
    try:
        assert len(dstore.list_versions(store, "tasklane-support")) == 2
    finally:
        store.close()
