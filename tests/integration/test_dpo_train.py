"""Rankings become a DPO export that `datasets` loads and TRL's DPOTrainer trains on with the
tiny model (LoRA, reference = adapter off): rewards metrics are written and ingested, the adapter
moved away from its zero start, and the run shows like any other."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.prefs import actions as prefs
from backend.prefs.export import write_dpo_jsonl
from backend.prefs.launch import dpo_fields
from backend.prefs.pairs import build_items
from backend.store import prefs as S
from backend.store.runs import get_run, run_metrics
from backend.train.actions import start_run
from backend.train.config import DPORunConfig, make_config

pytestmark = pytest.mark.slow

GOOD = [
    "Open Settings, then Members, and invite them by email.",
    "Tasks need a start and a due date to appear on the timeline.",
    "Open Reports, pick the sprint, and choose Export.",
    "Invoices are sent on the first day of each month.",
]


def test_rankings_to_dpo_run(store, ws, tiny_model_dir, run_inline, tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    ctx = Ctx(store=store, ws=ws, settings=Settings())
    outputs = {
        "run-sft": {f"Question {i}?": GOOD[i % 4] for i in range(8)},
        "base:tiny": {f"Question {i}?": f"no idea {i}" for i in range(8)},
    }
    outputs["base:tiny"]["Question 7?"] = GOOD[3]  # identical: must be dropped
    items = build_items(outputs, mode="pairwise", seed=0)
    cs = prefs.create_comparison_set(ctx, "cmp", items=items, mode="pairwise", analysts=["ann"])
    for it in S.set_items(store, cs["id"]):
        good = "A" if it["responses"][0]["source"] == "run-sft" else "B"
        verdict = "tie" if it["prompt"][0]["content"] == "Question 6?" else good
        prefs.judge_item(ctx, it["id"], "ann", verdict)
    version = prefs.build_preference_set(ctx, "support-prefs", ["cmp"])
    assert version["n_pairs"] == 6 and version["dropped"] == {"tie": 1, "identical": 1}

    out = tmp_path / "dpo.jsonl"
    write_dpo_jsonl(S.version_pairs(store, version["id"]), out, conversational=True)
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 6
    assert ds[0]["chosen"][0]["role"] == "assistant"

    fields = {
        "base_model": str(tiny_model_dir),
        **dpo_fields(ctx, "support-prefs"),
        "learning_rate": 5e-3,
        "batch_size": 2,
        "max_steps": 3,
        "max_length": 64,
        "eval_split": 0.0,
        "save_steps": 3,
        "lora_r": 8,
        "lora_alpha": 16,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "quant": "none",
        "beta": 0.1,
    }
    config = make_config(fields)
    assert config.method == "dpo" and type(config) is DPORunConfig and config.beta == 0.1
    job_id = start_run(ctx, fields)  # the action Preferences' DPO button calls
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["beta"] == 0.1 and "packing" not in spec
    status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)

    metrics = run_metrics(store, [job_id])
    names = set(metrics["name"])
    assert {"loss", "rewards/margins", "rewards/accuracies", "rewards/chosen"} <= names
    loss = metrics[metrics["name"] == "loss"].sort_values("step")["value"].tolist()
    assert len(loss) == 3 and loss[-1] < loss[0]
    margins = metrics[metrics["name"] == "rewards/margins"].sort_values("step")["value"]
    assert margins.iloc[-1] > 0

    run = get_run(store, job_id)
    assert run["method"] == "dpo" and run["dataset"] == "support-prefs"
    assert run["config"]["dataset_version_id"] == version["id"]
    adapter = ws.runs / job_id / "adapter"
    from safetensors.torch import load_file

    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and any(float(t.abs().max()) > 0 for t in lora_b)  # moved from zero init
    config_json = json.loads((adapter / "adapter_config.json").read_text())
    assert config_json["r"] == 8
