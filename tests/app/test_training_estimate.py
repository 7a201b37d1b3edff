"""The run form's memory estimate: shown for the settings in the form, a warning with the
settings that would fit when the run is too big, and such a run refused when started."""

from __future__ import annotations

import json

import psutil
import pytest

from backend.jobs import queue, worker
from tests.app.test_training_page import page, seed_dataset


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)


def test_the_form_estimates_memory_and_refuses_a_run_that_cannot_fit(
    ws, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("FTSTUDIO_LOCAL_MODEL", str(tiny_model_dir))  # its folder is allowed
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cpu")
    seed_dataset(ws)
    at = page(ws)
    captions = " ".join(c.value for c in at.caption)
    assert "Memory estimate on CPU: about" in captions and "activations" in captions

    # a model (its config alone) whose float32 weights exceed this machine's memory
    big = ws.models / "big-model"
    big.mkdir(parents=True)
    hidden = 4096
    layers = int(1.5 * psutil.virtual_memory().total / (4 * 16 * hidden * hidden)) + 1
    (big / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "hidden_size": hidden,
                "intermediate_size": 4 * hidden,
                "num_hidden_layers": layers,
                "num_attention_heads": 32,
                "vocab_size": 32000,
            }
        )
    )
    at.text_input(key="training_new_base_model").set_value(str(big.relative_to(ws.root)))
    at.selectbox(key="training_new_quant").set_value("none")
    at.number_input(key="training_new_batch_size").set_value(1)
    at.number_input(key="training_new_max_length").set_value(64)
    at.button(key="training_estimate_memory").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warning = " ".join(w.value for w in at.warning)
    assert "This run will not fit" in warning and "4-bit" in warning
    assert queue.job_ids(ws) == []  # estimating queues nothing
    at.button(key="training_start_run").click()
    at.run()
    errors = " ".join(e.value for e in at.error)
    assert "Not queued" in errors and "Settings that would fit" in errors
    assert queue.job_ids(ws) == []
