"""The local transformers provider on the tiny model: batched left-padded generation, and a
generate job whose noisy outputs all become rejects with reasons."""

from __future__ import annotations

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.integrations.llm import LocalProvider
from backend.store import synth as sstore
from backend.synth.actions import generate


def test_batched_left_padded_generation_matches_one_by_one(tiny_model_dir):
    p = LocalProvider(tiny_model_dir, batch_size=4, device="cpu")
    prompts = [
        [{"role": "user", "content": "Hi"}],
        [
            {"role": "system", "content": "Be brief and kind to every customer."},
            {"role": "user", "content": "How do I export my whole project to a CSV file?"},
        ],
    ]
    batched = p.generate_texts(prompts, temperature=0.0, max_tokens=8)
    single = [p.generate_texts([q], temperature=0.0, max_tokens=8)[0] for q in prompts]
    assert p._tok.padding_side == "left"
    assert batched == single


def test_generate_job_with_local_provider(ws, store, tiny_model_dir, run_inline):
    job_id = generate(
        Ctx(store=store, ws=ws, settings=Settings(), actor=None),
        "local-demo",
        recipe={
            "topics": ["billing", "exports"],
            "per_topic": 3,
            "provider": "local",
            "model": str(tiny_model_dir),
            "max_tokens": 16,
        },
        batch_size=4,
        start_worker=False,  # run here instead
    )
    status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    rejects = sstore.rejects(store, job_id=job_id)
    assert len(rejects) == 6  # the tiny model's text is noise: no JSON in it
    assert {r["stage"] for r in rejects} == {"parse"}
    assert all(r["reason"] for r in rejects)
    run = sstore.run_for_job(store, job_id)
    assert run["version_id"] is None and run["report"]["kept"] == 0
