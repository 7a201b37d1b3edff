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


def test_recipe_save_and_generate_through_an_endpoint(ws, run_inline, monkeypatch):
    with OpenAIServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)  # the configured endpoint
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


LEAD = ("lee", "lead")


def lead_page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = LEAD
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _versions(ws, name: str) -> list[dict]:
    store = Store.open(ws.db_path)
    try:
        return dstore.list_versions(store, name)
    finally:
        store.close()


def test_tab_dataset_and_version_come_from_the_url_and_actions_keep_the_tab(ws):
    _seeded(ws)
    at = lead_page(datasets_tab="Versions", datasets_dataset="evil")
    assert at.session_state["datasets_tab"] == "Versions"
    assert at.selectbox(key="datasets_dataset").value == "evil"
    # export: the result is shown on the Versions tab, which stays open
    at.button(key="FormSubmitter:export-Export").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Wrote 1 examples of v1 to exports/evil-v1" in s.value for s in at.success)
    assert at.session_state["datasets_tab"] == "Versions"
    assert "Versions" in str(at.query_params["datasets_tab"])
    # the version list follows the dataset: an older version chosen on one dataset is not
    # carried to the next
    at.selectbox(key="datasets_dataset").set_value("tasklane-support").run()
    at.selectbox(key="datasets_version").set_value(1).run()
    assert at.selectbox(key="datasets_version").value == 1
    at.selectbox(key="datasets_dataset").set_value("evil").run()
    assert at.selectbox(key="datasets_version").value == "newest"
    assert at.session_state["datasets_tab"] == "Versions"

    # an edit on the Examples tab: still there, on the new newest version with the edit shown
    at = lead_page(datasets_tab="Examples", datasets_dataset="tasklane-support")
    [answer] = [t for t in at.text_area if t.label == "The answer"]
    answer.input("Open Settings > Gantt, then pick a colour.")
    at.button(key="FormSubmitter:edit_example-Save as new version").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved v2 with the edited example" in s.value for s in at.success)
    assert at.session_state["datasets_tab"] == "Examples"
    assert at.selectbox(key="datasets_version").value == "newest"
    assert "Open Settings > Gantt, then pick a colour." in [t.value for t in at.text]
    assert [v["number"] for v in _versions(ws, "tasklane-support")] == [1, 2]
    # an older version is browsed, not edited
    at.selectbox(key="datasets_version").set_value(1).run()
    assert not [t for t in at.text_area if t.label == "The answer"]
    assert any("Edits start from the newest version" in c.value for c in at.caption)


def test_import_all_or_nothing_or_skipping_flawed_rows_shown_on_versions(ws, tmp_path):
    from tests.unit.test_synth_import import flawed_support_file

    _seeded(ws)
    path, good = flawed_support_file(tmp_path)
    at = lead_page(datasets_tab="Versions", datasets_dataset="evil")
    at.file_uploader(key="datasets_upload").set_value(
        (path.name, path.read_bytes(), "application/octet-stream")
    )
    at.run()
    [imp] = [b for b in at.button if b.label == "Import"]
    imp.click().run()
    assert any("3 of" in e.value and "nothing was imported" in e.value for e in at.error)
    assert len(_versions(ws, "evil")) == 1
    at.checkbox(key="datasets_skip_invalid").check().run()
    [imp] = [b for b in at.button if b.label == "Import"]
    imp.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(
        f"Imported {good} examples into evil v2. Skipped 3 flawed lines" in s.value
        for s in at.success
    ), [s.value for s in at.success]
    assert at.session_state["datasets_tab"] == "Versions"
    assert {m.label: m.value for m in at.metric}["Examples"] == str(good)
    assert any("3 lines of support-export.jsonl were flawed" in t.value for t in at.text)
    skipped = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert skipped and list(skipped[0]["line"]) == [5, 12, 20]


def test_text_users_typed_is_drawn_as_plain_text(ws, tmp_path):
    link = "[click me](http://evil.example/x) ![img](http://evil.example/i.png)"
    store = Store.open(ws.db_path)
    try:
        dstore.create_dataset(store, "plain")
        dstore.add_version(
            store,
            "plain",
            [
                {
                    "messages": [
                        {"role": "user", "content": "Where?"},
                        {"role": "assistant", "content": "Here."},
                    ],
                    "topic": link,
                }
            ],
            note=link,
        )
    finally:
        store.close()
    at = lead_page(datasets_tab="Versions", datasets_dataset="plain")
    bad = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    at.file_uploader(key="datasets_upload").set_value((f"{link}.jsonl", bad, "image/png"))
    at.run()
    [b for b in at.button if b.label == "Import"][0].click().run()
    assert not at.exception
    assert at.error, "the refused upload is reported"
    drawn = [
        e.value
        for kind in ("markdown", "caption", "success", "error", "info", "warning")
        for e in at.get(kind)
    ]
    assert drawn and not any("](http" in text for text in drawn), drawn
    assert any(link in t.value for t in at.text)  # the topic, as text
    assert any("click me" in e.value for e in at.error)  # named, escaped


def test_labels_in_the_users_words_and_forms_use_what_they_show(ws):
    _seeded(ws)
    at = lead_page(datasets_tab="Versions", datasets_dataset="tasklane-support")
    helps = {
        w.label: w.help or ""
        for kind in ("number_input", "slider", "selectbox")
        for w in at.get(kind)
    }
    assert "Concurrency" in helps["Requests at once"]
    assert "temperature" in helps["Variety"]
    assert "max_tokens" in helps["Longest example (about ¾ word per unit)"]
    assert "QC" in helps["Share set aside for a human check"]
    assert "messages" in helps["File type"] and "save_to_disk" in helps["File type"]
    # the export path follows the file type chosen above it, and the form writes what it shows
    at.selectbox(key="datasets_export_format").set_value("parquet").run()
    [box] = [t for t in at.text_input if t.label.startswith("Write to")]
    assert box.value == "exports/tasklane-support-v1-parquet.parquet"
    at.button(key="FormSubmitter:export-Export").click().run()
    assert (ws.exports / "tasklane-support-v1-parquet.parquet").is_file()

    # "Write to: ." with the overwrite box ticked is refused, and nothing is lost
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    [box] = [t for t in at.text_input if t.label.startswith("Write to")]
    box.set_value(".")
    [over] = [c for c in at.checkbox if c.label.startswith("Replace an earlier export")]
    over.check()
    at.button(key="FormSubmitter:export-Export").click().run()
    assert any("it is the workspace itself" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    after = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    assert set(before) <= set(after) and (ws.root / "studio.duckdb").is_file()
