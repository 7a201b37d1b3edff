"""KTO from reviewers' verdicts pulled from a REAL Label Studio (the session's shared server,
see conftest.py): accept = desirable, reject = undesirable, a correction = the corrected answer
desirable and the original undesirable; the rows export as kto-jsonl and TRL's KTOTrainer
trains on them with the tiny model, the weights set from the class counts."""

from __future__ import annotations

import json

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.jobs import queue, worker
from backend.prefs.kto_actions import export_feedback, kto_fields
from backend.review import labelstudio_actions as ls_actions
from backend.store import review as rstore
from backend.store.runs import get_run, run_metrics
from backend.train.actions import start_run
from tests.support.labelstudio_api import annotate, review_result
from tests.support.seed_review import flagged_batch, scored_dataset

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def test_kto_run_from_label_studio_verdicts(
    server, ws, store, tiny_model_dir, run_inline, monkeypatch, tmp_path
):
    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)  # run_inline runs it
    _, info, token = server
    ctx = Ctx(
        store=store,
        ws=ws,
        settings=Settings(label_studio_url=info.url, label_studio_token=token),
    )
    scored_dataset(
        store, "kto-support", n=8, job_id="score-kto", question="q {i}?", answer="answer {i}"
    )
    batch = flagged_batch(store, "kto-support", "score-kto", 6)
    ls_actions.push_batch(ctx, batch["id"], overlap_share=0.0)
    items = rstore.batch_items(store, batch["id"])
    verdicts = ["accept", "accept", "accept", "reject", "reject"]
    for item, verdict in zip(items, verdicts, strict=False):
        annotate(info.url, token, item["ls_task_id"], review_result(verdict))
    annotate(info.url, token, items[5]["ls_task_id"], review_result("accept", corrected="fixed"))
    pulled = ls_actions.pull_batch(ctx, batch["id"])
    assert pulled["new"] == 6

    fields = kto_fields(ctx, dataset="kto-support")
    sources = fields["sources"]
    # 3 accepted + the correction = 4 desirable; 2 rejected + the corrected original = 3
    assert (sources["desirable"], sources["undesirable"]) == (4, 3)
    assert sorted(sources["reviews"]["ids"]) == sorted(
        r["id"] for r in rstore.reviews(store, batch["id"])
    )
    rows = [json.loads(line) for line in open(fields["data_path"], encoding="utf-8")]
    fixed = [r for r in rows if r["completion"][0]["content"] == "fixed"]
    assert len(fixed) == 1 and fixed[0]["label"] is True
    original = [
        r
        for r in rows
        if r["prompt"] == fixed[0]["prompt"] and r["completion"][0]["content"] != "fixed"
    ]
    assert len(original) == 1 and original[0]["label"] is False

    out = export_feedback(ctx, tmp_path / "kto.jsonl", dataset="kto-support")
    assert out["written"] == 7
    from datasets import load_dataset

    ds = load_dataset("json", data_files=out["path"], split="train")
    assert set(ds.column_names) == {"prompt", "completion", "label"} and sum(ds["label"]) == 4

    job_id = start_run(
        ctx,
        {
            "base_model": str(tiny_model_dir),
            **fields,
            "learning_rate": 5e-3,
            "batch_size": 2,
            "max_steps": 2,
            "max_length": 48,
            "eval_split": 0.0,
            "save_steps": 2,
            "lora_r": 4,
            "lora_alpha": 8,
            "n_eval_prompts": 1,
            "max_new_tokens": 2,
            "quant": "none",
        },
        start_worker=False,
    )
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert spec["method"] == "kto" and spec["sources"]["desirable"] == 4
    status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    events = (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert "KTO weights: desirable 1, undesirable 1.3333 (4 desirable, 3 undesirable" in events
    names = set(run_metrics(store, [job_id])["name"])
    assert {"loss", "kl", "rewards/chosen", "logps/chosen"} <= names
    run = get_run(store, job_id)
    assert run["method"] == "kto" and run["config"]["sources"]["reviews"]["dataset"] == (
        "kto-support"
    )
    from safetensors.torch import load_file

    weights = load_file(ws.runs / job_id / "adapter" / "adapter_model.safetensors")
    assert any(float(t.abs().max()) > 0 for k, t in weights.items() if "lora_B" in k)
