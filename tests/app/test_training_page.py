"""The Training page: empty state, the new-run form queues a validated run (and refuses a bad
one), and a finished run shows its curves, generations, config and artefacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.store import Store
from backend.store.datasets import add_version, create_dataset
from backend.train import actions

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "training.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Queued jobs stay queued: the tests run them inline when they need them run."""
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def seed_dataset(ws, n=12):
    store = Store.open(ws.db_path)
    try:
        create_dataset(store, "support")
        add_version(
            store,
            "support",
            [
                {
                    "messages": [
                        {"role": "user", "content": f"How do I export sprint {i}?"},
                        {
                            "role": "assistant",
                            "content": "Open Reports, pick the sprint, choose Export.",
                        },
                    ]
                }
                for i in range(n)
            ],
        )
    finally:
        store.close()


def page(ws) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_workspace_says_what_to_do(ws):
    at = page(ws)
    assert at.title[0].value == "Training"
    infos = " ".join(i.value for i in at.info)
    assert "No datasets yet" in infos and "No runs yet" in infos


def test_form_queues_a_run_and_refuses_a_bad_one(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))  # its folder is allowed
    seed_dataset(ws)
    at = page(ws)
    assert at.text_input(key="new_base_model").value == tiny_model_dir.name
    for typed, why in (
        (str(tiny_model_dir), "not an absolute one"),
        (f"../{tiny_model_dir.name}", "'..' is not allowed"),
    ):
        at.text_input(key="new_base_model").set_value(typed)
        at.button(key="FormSubmitter:new_run-Start run").click()
        at.run()
        assert any(why in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="new_base_model").set_value(tiny_model_dir.name)
    at.text_area(key="new_target_modules").set_value("q_proj\nnot_a_module")
    at.button(key="FormSubmitter:new_run-Start run").click()
    at.run()
    assert not at.exception
    assert any("not_a_module" in e.value for e in at.error)
    assert queue.job_ids(ws) == []

    at.text_area(key="new_target_modules").set_value("all-linear")
    at.number_input(key="new_max_steps").set_value(3)
    at.button(key="FormSubmitter:new_run-Start run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["max_steps"] == 3 and spec["dataset"] == "support" and spec["dataset_hash"]
    assert spec["base_model"] == str(tiny_model_dir.resolve())


@pytest.mark.slow
def test_finished_run_shows_curves_generations_and_what_ran(ws, tiny_model_dir, run_inline):
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    fields = {
        "base_model": str(tiny_model_dir),
        **actions.dataset_file(store, ws, "support"),
        "max_steps": 4,
        "max_length": 64,
        "learning_rate": 1e-3,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "eval_split": 0.25,
        "quant": "none",
    }
    job_id = actions.start_run(Ctx(store=store, ws=ws, settings=Settings()), fields)
    store.close()
    assert run_inline(ws, job_id).state == "succeeded"
    store = Store.open(ws.db_path)
    ingest_all(store, ws)
    store.close()

    at = page(ws)
    assert at.metric[0].value == "1"  # runs
    texts = " ".join(t.value for t in at.text)
    assert "How do I export sprint" in texts  # the eval prompt, shown as text
    assert "adapter:" in texts and "device: CPU" in texts
    codes = " ".join(c.value for c in at.code)
    assert '"max_steps": 4' in codes and '"trl"' in codes
    assert len(at.get("plotly_chart")) == 3
    # a succeeded run can be neither cancelled nor resumed
    assert at.button(key="resume_run").disabled and at.button(key="cancel_run").disabled


def test_form_starts_a_run_from_an_earlier_adapter(ws, tiny_model_dir, monkeypatch):
    """init_adapter is typed relative to the workspace: '..' is refused, a folder that is not
    an adapter is named in the error, a run's adapter folder reaches the spec resolved."""
    import json

    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    seed_dataset(ws)
    adapter = ws.runs / "run-prev" / "adapter"
    adapter.mkdir(parents=True)
    at = page(ws)
    for typed, why in (
        ("../elsewhere/adapter", "'..' is not allowed"),
        ("runs/run-prev/adapter", "has no adapter_config.json"),
    ):
        at.text_input(key="new_init_adapter").set_value(typed)
        at.button(key="FormSubmitter:new_run-Start run").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(why in e.value for e in at.error), [e.value for e in at.error]
    assert queue.job_ids(ws) == []

    base = str(tiny_model_dir.resolve())
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    at.button(key="FormSubmitter:new_run-Start run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["init_adapter"] == str(adapter.resolve()) and spec["base_model"] == base


def test_cancel_and_resume_buttons_go_through_the_actions(ws, tiny_model_dir):
    """A queued run cancelled from the Run tab never starts; Resume queues it again."""
    seed_dataset(ws)
    store = Store.open(ws.db_path)
    try:
        fields = {"base_model": str(tiny_model_dir), **actions.dataset_file(store, ws, "support")}
        job_id = actions.start_run(Ctx(store=store, ws=ws, settings=Settings()), fields)
        ingest_all(store, ws)
    finally:
        store.close()
    at = page(ws)
    at.button(key="cancel_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert queue.get(ws, job_id).state == "cancelled"
    at.run()
    assert at.button(key="cancel_run").disabled
    at.button(key="resume_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert queue.get(ws, job_id).state == "queued"
