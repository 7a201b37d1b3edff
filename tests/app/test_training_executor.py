"""The run form's Compute group (studio/components/executor.py): the executor, processes and
FSDP reach the queued run's spec; a ray run without a cluster address is refused with the
setting that gives one, and the form says where ray runs go."""

from __future__ import annotations

import pytest

from backend.jobs import queue, worker
from tests.app.test_training_page import page, seed_dataset


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def test_the_executor_choice_reaches_the_run(ws, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))
    monkeypatch.delenv("FTSTUDIO_RAY_ADDRESS", raising=False)
    seed_dataset(ws)
    at = page(ws)
    assert at.selectbox(key="training_new_executor").value == "local"
    assert any("FTSTUDIO_RAY_ADDRESS" in c.value for c in at.caption)

    at.selectbox(key="training_new_executor").set_value("ray")
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("FTSTUDIO_RAY_ADDRESS" in e.value for e in at.error), [e.value for e in at.error]
    assert queue.job_ids(ws) == []

    at.selectbox(key="training_new_executor").set_value("accelerate")
    at.number_input(key="training_new_processes").set_value(2)
    at.button(key="training_start_run").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    [job_id] = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert (spec["executor"], spec["processes"], spec["fsdp"]) == ("accelerate", 2, False)
