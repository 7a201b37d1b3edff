"""The CUDA path, checked on CPU: which worker slot a job that loads a local model takes, one
model load per job whatever the threads, out-of-memory handled by halving batches (the error
raised for real at the batch boundary by a small wrapper around the real model call), a
training run that runs out of memory failing with settings that would fit, and sweeps that
free each trial's model before the next."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from backend import device
from backend.integrations.llm import LocalProvider
from backend.integrations.oom import in_batches
from backend.jobs import queue
from backend.jobs.kinds import job_resource

PROMPTS = [[{"role": "user", "content": f"How do I export report {i}?"}] for i in range(8)]


def oom(what: str) -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError(f"CUDA out of memory while {what} (raised at the boundary)")


def test_torch_build_is_read_without_importing_it():
    assert device.torch_cuda_build() == torch.version.cuda
    assert device.uses_cuda("cpu") is False and device.uses_cuda("cuda") is True
    if torch.version.cuda is None:  # a CPU build computes on the CPU, GPU or not
        assert device.uses_cuda("auto") is False


def test_local_model_jobs_take_the_gpu_slot_on_cuda(ws, monkeypatch, tiny_model_dir):
    local = {"provider": "local", "model": str(tiny_model_dir)}
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cuda")
    for kind in ("generate", "judge", "answer"):
        assert job_resource(kind, local) == "gpu", kind
        assert job_resource(kind, {"provider": "openai"}) == "api", kind
    assert job_resource("score", {}) == job_resource("train", {}) == "gpu"
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cpu")
    assert job_resource("generate", local) == "cpu"  # beside training, but two at most

    # on the real queue: a scoring job holds the GPU, so a local answer job waits for it
    monkeypatch.setenv("FTSTUDIO_DEVICE", "cuda")
    scoring = queue.submit(ws, "score", {"examples_path": "x.jsonl", "model_path": "m"})
    assert queue.claim_next(ws) == scoring
    answer = queue.submit(ws, "answer", {**local, "prompts": ["hi"]})
    endpoint = queue.submit(ws, "answer", {"provider": "openai", "model": "m", "prompts": ["h"]})
    assert queue.claim_next(ws) == endpoint  # an endpoint job runs beside it
    assert queue.claim_next(ws) is None
    queue.release(ws, scoring)
    assert queue.claim_next(ws) == answer


def test_the_local_model_loads_once_however_many_threads_ask(tiny_model_dir):
    provider = LocalProvider(tiny_model_dir, batch_size=2)

    def ask(prompt):
        return provider.generate_texts([prompt], temperature=0.0, max_tokens=2)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, PROMPTS))
    assert len(answers) == 8 and provider.loads == 1

    async def judge_like() -> list:  # the judge's shape: eight completions in flight at once
        return await asyncio.gather(
            *(provider.complete([p], schema={}, temperature=0.0, max_tokens=2) for p in PROMPTS)
        )

    provider = again = LocalProvider(tiny_model_dir, batch_size=2)
    results = asyncio.run(judge_like())
    assert all(r[0].error is None for r in results) and again.loads == 1


class FitsAtMost:
    """The real model behind a wrapper that raises CUDA's out-of-memory error when a batch is
    larger than `limit` rows, as a GPU with less memory would."""

    def __init__(self, lm, limit: int):
        self.lm, self.limit, self.sizes = lm, limit, []

    def generate(self, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        self.sizes.append(rows)
        if rows > self.limit:
            raise oom(f"generating {rows} rows")
        return self.lm.generate(**kwargs)


def test_generation_halves_its_batch_on_out_of_memory(tiny_model_dir):
    notes: list[str] = []
    provider = LocalProvider(tiny_model_dir, batch_size=8, note=notes.append)
    provider._load()
    provider._lm = FitsAtMost(provider._lm, limit=2)
    texts = provider.generate_texts(PROMPTS, temperature=0.0, max_tokens=4)
    assert provider._lm.sizes == [8, 4, 2, 2, 2, 2]
    assert notes == [
        "out of memory on a generation batch of 8: freed the cache, retrying with 4",
        "out of memory on a generation batch of 4: freed the cache, retrying with 2",
    ]
    plain = LocalProvider(tiny_model_dir, batch_size=2)
    assert texts == plain.generate_texts(PROMPTS, temperature=0.0, max_tokens=4)
    # one prompt that does not fit on its own is an error, reported per completion
    provider._lm.limit = 0
    results = asyncio.run(provider.complete(PROMPTS[:1], schema={}, temperature=0, max_tokens=2))
    assert results[0].text is None and "out of memory" in results[0].error


def test_scoring_halves_its_batch_on_out_of_memory(tiny_model_dir):
    from backend.review.scoring import load_model, score_batch, score_examples

    tok, model = load_model(str(tiny_model_dir))
    examples = [
        {"id": str(i), "messages": [*p, {"role": "assistant", "content": f"Open Reports {i}."}]}
        for i, p in enumerate(PROMPTS)
    ]
    sizes: list[int] = []

    def fits_three(model, batch, pad, chunk):
        sizes.append(len(batch))
        if len(batch) > 3:
            raise oom(f"scoring {len(batch)} examples")
        return score_batch(model, batch, pad, chunk)

    notes: list[str] = []
    rows = score_examples(
        tok, model, examples, batch_size=8, note=notes.append, score_fn=fits_three
    )
    assert sizes == [8, 4, 2, 2, 2, 2] and len(notes) == 2
    plain = score_examples(tok, model, examples, batch_size=8)
    for a, b in zip(rows, plain, strict=True):
        assert a["id"] == b["id"] and a["nll"] == pytest.approx(b["nll"], rel=1e-4)


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def broken(chunk):
        calls.append(len(chunk))
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        in_batches(list(range(8)), broken, 8)
    assert calls == [8]


def test_a_training_run_out_of_memory_fails_with_settings_that_fit(ws, tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    from backend.jobs.context import JobContext
    from backend.jobs.status import read_status
    from backend.train.callbacks import StudioCallback
    from backend.train.common import fit, load_model
    from backend.train.config import file_fields, make_config
    from backend.train.fit import TrainingOutOfMemory
    from backend.train.runtime import decide
    from backend.train.sft import build_trainer

    row = {"messages": [PROMPTS[0][0], {"role": "assistant", "content": "Open Reports."}]}
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(row) for _ in range(8)) + "\n")
    spec = make_config(
        {
            "base_model": str(tiny_model_dir),
            **file_fields(data),
            "batch_size": 4,
            "max_length": 64,
            "max_steps": 2,
            "eval_split": 0.0,
            "quant": "none",
        }
    )
    job_id = queue.submit(ws, "train", spec)
    ctx = JobContext(ws, ws.job_dir(job_id), read_status(ws.job_dir(job_id)))

    class OutOfMemoryAtTheFirstBatch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            raise oom("training step 1")

    rt = decide("none", "cpu")
    tok, model = load_model(spec, rt)
    callback = StudioCallback(ctx)
    trainer = build_trainer(
        spec,
        rt,
        model,
        tok,
        [row] * 8,
        [],
        tmp_path / "ck",
        [callback, OutOfMemoryAtTheFirstBatch()],
    )
    with pytest.raises(TrainingOutOfMemory) as info:
        fit(ctx, spec, rt, trainer, callback, tok, tmp_path / "run", tmp_path / "ck")
    message = str(info.value)
    assert message.startswith("out of memory on CPU") and "Settings that would fit" in message
    assert "batch size 1 with 4 accumulation steps (same 4 examples per update)" in message
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)


@pytest.mark.slow
def test_sweep_trials_free_their_model_before_the_next(ws, tiny_model_dir, run_inline, tmp_path):
    from backend.jobs.kinds import validate_spec
    from backend.jobs.status import JobState
    from backend.train.config import file_fields, make_config

    row = {"messages": [PROMPTS[0][0], {"role": "assistant", "content": "Open Reports."}]}
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(row) for _ in range(12)) + "\n")
    base = make_config(
        {
            "base_model": str(tiny_model_dir),
            **file_fields(data),
            "batch_size": 4,
            "max_length": 64,
            "max_steps": 2,
            "eval_split": 0.25,
            "save_steps": 1,
            "quant": "none",
        }
    )
    spec = validate_spec(
        "sweep-optuna",
        {"base": base.model_dump(mode="json"), "n_trials": 3, "ranks": [8], "seed": 1},
    )
    job_id = queue.submit(ws, "sweep-optuna", spec)
    status = run_inline(ws, job_id)
    assert status.state == JobState.succeeded, status.error
    rows = [json.loads(x) for x in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines()]
    held = [r["value"] for r in rows if r["name"] == "trial_mem_bytes"]
    assert len(held) == 3
    from transformers import AutoModelForCausalLM

    weights = sum(
        p.numel() * 4 for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters()
    )
    # memory after three trials is memory after one: a trial left behind would add its weights
    assert abs(held[2] - held[0]) < weights / 4, (held, weights)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the bench's answer without CUDA")
def test_gpu_bench_exits_non_zero_without_cuda_when_required():
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench" / "gpu_qlora.py"
    plain = subprocess.run([sys.executable, str(bench)], capture_output=True, text=True)
    assert plain.returncode == 0 and "no CUDA device" in plain.stdout
    required = subprocess.run(
        [sys.executable, str(bench), "--require-gpu"], capture_output=True, text=True
    )
    assert required.returncode == 2 and "Nothing measured" in required.stdout
