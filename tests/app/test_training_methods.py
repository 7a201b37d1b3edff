"""The Training page's method choice: GRPO queues with the rewards picked on the form (a bad
pick is refused, nothing queued), adding a reward file is offered, KTO says what its data
lacks and queues on the review verdicts with the weights it shows, and a GRPO run shows its
reward curves and sampled answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.jobs import queue, worker
from backend.store import Store
from backend.store.feedback import ingest_completions
from backend.store.jobs import ingest_metrics
from tests.app.test_training_page import seed_dataset

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "training.py")


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def pick(at: AppTest, method: str) -> None:
    at.radio(key="training_method").set_value(method)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_grpo_queues_with_the_rewards_picked(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    seed_dataset(ws)
    at = page()
    pick(at, "grpo")
    at.button(key="training_start_run").click()
    at.run()
    assert any("give at least one reward function" in e.value for e in at.error)
    at.checkbox(key="training_new_rw_json-schema_on").check()
    at.text_input(key="training_new_rw_json-schema_arg").set_value("missing.json")
    at.button(key="training_start_run").click()
    at.run()
    assert any("cannot read" in e.value for e in at.error), [e.value for e in at.error]
    assert queue.job_ids(ws) == []

    at.checkbox(key="training_new_rw_json-schema_on").uncheck()
    at.checkbox(key="training_new_rw_regex_on").check()
    at.number_input(key="training_new_rw_regex_w").set_value(2.0)
    at.checkbox(key="training_new_rw_reference_on").check()
    at.number_input(key="training_new_rw_reference_arg").set_value(0.5)
    at.number_input(key="training_new_num_generations").set_value(2)
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["method"] == "grpo" and spec["num_generations"] == 2
    assert spec["rewards"] == [r"regex:\d@2", "reference:numeric:0.5"]
    assert "init_adapter" not in spec and "packing" not in spec

    # the run shows its reward curves and the answers it sampled
    store = Store.open(ws.db_path)
    rows = [
        {"run_id": job_id, "step": 1, "prompt": "p", "completion": "a1", "rewards": {"regex": 1}}
    ]
    with store.transaction() as cur:
        metrics = [
            {"step": 1, "name": name, "value": value, "t": 1.0}
            for name, value in (("reward/regex", 1.0), ("reward/regex/std", 0.0))
        ]
        ingest_metrics(cur, job_id, "".join(json.dumps(m) + "\n" for m in metrics).encode())
        ingest_completions(cur, job_id, "".join(json.dumps(r) + "\n" for r in rows).encode())
    store.close()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["training_run"] = job_id  # queued, not yet read as a run
    at.session_state["training_tab"] = "Run"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Sampled answers with their rewards (1)" in e.label for e in at.expander)


def test_grpo_offers_to_add_a_reward_file(ws):
    seed_dataset(ws)
    at = page()
    pick(at, "grpo")
    assert any(e.label == "Add a reward function file" for e in at.expander)


def test_kto_says_what_its_data_lacks(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    seed_dataset(ws)
    at = page()
    pick(at, "kto")
    assert any("0 desirable and 0 undesirable" in w.value for w in at.warning)
    at.button(key="training_start_run").click()
    at.run()
    assert any("no verdicts or ratings to train on" in e.value for e in at.error)
    assert queue.job_ids(ws) == []


def test_kto_shows_the_weights_and_queues_on_in_app_verdicts(ws, tiny_model_dir, monkeypatch):
    from backend.action import Ctx
    from backend.config import Settings
    from backend.review import actions as review
    from backend.review.verdicts import Verdict
    from tests.support.seed_review import flagged_batch, scored_dataset

    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    store = Store.open(ws.db_path)
    try:
        _, ids = scored_dataset(store, "support", n=6)
        batch = flagged_batch(store, "support", "score-1", 4)
        ctx = Ctx(store=store, ws=ws, settings=Settings())
        for example_id, verdict in zip(
            ids[-4:], ("accept", "accept", "accept", "reject"), strict=True
        ):
            review.record_verdict(
                ctx, batch["id"], Verdict(example_id=example_id, reviewer="rita", verdict=verdict)
            )
    finally:
        store.close()
    at = page()
    pick(at, "kto")
    captions = " ".join(c.value for c in at.caption)
    assert "3 desirable and 1 undesirable answers" in captions
    assert "desirable 1, undesirable 3" in captions
    at.number_input(key="training_new_batch_size").set_value(2)
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["method"] == "kto" and spec["dataset"] == "support"
    assert len(spec["sources"]["reviews"]["ids"]) == 4 and spec["desirable_weight"] is None
