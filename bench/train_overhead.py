"""What the studio costs a training run: the same SFT (model, data, steps, seed) through a studio
`train` job and through a bare TRL script, in one process, alternating, best of `--repeats`.

Throughput is training tokens per second between the first and the last logged step (model
loading, evaluation and adapter saving are excluded on both sides). Prints both and the ratio
last (goal >= 0.9).

    .venv/bin/python bench/train_overhead.py [--steps 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ANSWERS = [
    "Open Settings, then Members, and invite them by email.",
    "Tasks need a start date and a due date to appear on the timeline.",
    "Open Reports, pick the sprint, and choose Export to get a CSV file.",
    "Invoices are sent on the first day of each month to the workspace owner.",
]


def write_data(path: Path, n: int = 64) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "messages": [
                            {
                                "role": "user",
                                "content": f"Question {i}: how does this part work, please?",
                            },
                            {"role": "assistant", "content": ANSWERS[i % 4] * 2},
                        ]
                    }
                )
                + "\n"
            )
    return path


def rate(points: list[tuple[float, float]]) -> float:
    """Tokens per second between the first and the last (time, tokens_seen) point."""
    (t0, n0), (t1, n1) = points[0], points[-1]
    return (n1 - n0) / (t1 - t0)


def run_bare(fields: dict) -> float:
    """Plain TRL: the same trainer settings, no studio code in the loop."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    points: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                points.append((time.perf_counter(), logs["num_tokens"]))

    tok = AutoTokenizer.from_pretrained(fields["base_model"])
    model = AutoModelForCausalLM.from_pretrained(fields["base_model"], dtype=torch.float32)
    rows = [
        {"messages": json.loads(line)["messages"]}
        for line in Path(fields["data_path"]).read_text().splitlines()
    ]
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(
            output_dir=out,
            learning_rate=fields["learning_rate"],
            lr_scheduler_type="cosine",
            warmup_steps=0.03,
            per_device_train_batch_size=fields["batch_size"],
            max_steps=fields["max_steps"],
            seed=fields["seed"],
            data_seed=fields["seed"],
            max_length=fields["max_length"],
            assistant_only_loss=True,
            use_cpu=True,
            bf16=False,
            dataloader_pin_memory=False,
            activation_checkpointing=False,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            callbacks=[Clock()],
            peft_config=LoraConfig(
                r=fields["lora_r"],
                lora_alpha=fields["lora_alpha"],
                lora_dropout=0.05,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
        trainer.train()
    return rate(points)


def run_studio(fields: dict, ws_root: Path, outputs: tuple[str, ...] = ()) -> float:
    """The studio path: validated config, queued job, the job runner with its callback.
    `outputs`: files the job must have written beside its metrics."""
    from backend.jobs import queue
    from backend.jobs.run import run_job
    from backend.train.config import make_config
    from backend.workspace import Workspace

    ws = Workspace(ws_root).ensure()
    job_id = queue.submit(ws, "train", make_config(fields))  # run here, not by a worker
    assert queue.claim_next(ws) == job_id
    state = run_job(ws, job_id)
    queue.release(ws, job_id)
    if state != "succeeded":
        raise SystemExit(f"studio job {state}: {queue.get(ws, job_id).error}")
    points: dict[int, list[float]] = {}
    for line in (ws.job_dir(job_id) / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["name"] == "tokens_seen":
            points[row["step"]] = [row["t"], row["value"]]
    for name in outputs:
        assert (ws.job_dir(job_id) / name).exists(), name
    return rate([tuple(points[s]) for s in sorted(points)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from backend.train.config import file_fields
    from backend.train.demo_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="ftstudio-bench-"))
    model = build_tiny_model(tmp / "model", hidden_size=128, layers=4)
    fields = {
        "base_model": str(model),
        **file_fields(write_data(tmp / "data.jsonl")),
        "learning_rate": 1e-4,
        "batch_size": 8,
        "max_steps": args.steps,
        "seed": 7,
        "max_length": 128,
        "lora_r": 16,
        "lora_alpha": 32,
        "eval_split": 0.0,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "quant": "none",
        "save_steps": 10_000,
    }
    bare, studio = [], []
    for i in range(args.repeats):
        bare.append(run_bare(fields))
        studio.append(run_studio(fields, tmp / f"ws{i}"))
        print(
            f"repeat {i + 1}: bare TRL {bare[-1]:.0f} tok/s, studio job {studio[-1]:.0f} tok/s",
            flush=True,
        )
    b, s = max(bare), max(studio)
    print(f"bare TRL tokens/s: {b:.0f}")
    print(f"studio job tokens/s: {s:.0f}")
    print(f"ratio studio/bare: {s / b:.3f}")


if __name__ == "__main__":
    main()
