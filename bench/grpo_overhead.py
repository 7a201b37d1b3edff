"""What the studio costs a GRPO run: the same GRPO (model, prompts, rewards, steps, seed) through
a studio `train` job and through a bare TRL GRPOTrainer script, in one process, alternating,
best of `--repeats`.

Both sides reward the same two functions (a regular expression and a length range); the
studio's are built from specs and also keep a sample of answers with their rewards per step
(completions.jsonl) and write reward/<function> metrics. Throughput is the tokens TRL counts
(prompts and sampled answers) per second between the first and the last logged step (model
loading and adapter saving are excluded on both sides). Prints both and the ratio last
(goal >= 0.9).

    .venv/bin/python bench/grpo_overhead.py [--steps 10] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import train_overhead  # noqa: E402
from bench.train_overhead import rate  # noqa: E402

REWARDS = [r"regex:\d@1", "length:4-12@0.5"]


def write_prompts(path: Path, n: int = 32) -> Path:
    with open(path, "w") as fh:
        for i in range(n):
            msgs = [
                {"role": "user", "content": f"What is {i} plus {i + 1}? Reply with the number."},
                {"role": "assistant", "content": str(2 * i + 1)},
            ]
            fh.write(json.dumps({"messages": msgs}) + "\n")
    return path


def run_bare(fields: dict) -> float:
    """Plain TRL: the same GRPO settings and rewards, no studio code in the loop."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    points: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                points.append((time.perf_counter(), logs["num_tokens"]))

    def regex(completions, **kw):
        return [float(bool(re.search(r"\d", c[0]["content"]))) for c in completions]

    def length(completions, completion_ids, **kw):
        return [1.0 if 4 <= len(ids) <= 12 else 0.0 for ids in completion_ids]

    tok = AutoTokenizer.from_pretrained(fields["base_model"])
    tok.pad_token = tok.pad_token or tok.eos_token
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(fields["base_model"], dtype=torch.float32)
    rows = []
    for line in Path(fields["data_path"]).read_text().splitlines():
        msgs = json.loads(line)["messages"]
        rows.append({"prompt": msgs[:-1], "reference": msgs[-1]["content"]})
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out,
            learning_rate=fields["learning_rate"],
            lr_scheduler_type="cosine",
            warmup_steps=0.03,
            per_device_train_batch_size=fields["batch_size"],
            max_steps=fields["max_steps"],
            seed=fields["seed"],
            data_seed=fields["seed"],
            num_generations=fields["num_generations"],
            max_completion_length=fields["max_completion_length"],
            reward_weights=[1.0, 0.5],
            use_cpu=True,
            bf16=False,
            dataloader_pin_memory=False,
            activation_checkpointing=False,  # as the studio on CPU (TRL's default is on)
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[regex, length],
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


def run_studio(fields: dict, ws_root: Path) -> float:
    """The studio path (bench/train_overhead.py's), which must also keep sampled answers."""
    return train_overhead.run_studio(fields, ws_root, outputs=("completions.jsonl",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for both sides (1: a busy shared CPU cannot stall one side's "
        "thread pool and swing the figure many times over)",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from backend.train.config import file_fields
    from backend.train.demo_model import build_tiny_model

    tmp = Path(tempfile.mkdtemp(prefix="ftstudio-bench-"))
    model = build_tiny_model(tmp / "model", hidden_size=128, layers=4)
    fields = {
        "base_model": str(model),
        "method": "grpo",
        **file_fields(write_prompts(tmp / "prompts.jsonl")),
        "rewards": REWARDS,
        "num_generations": 4,
        "max_completion_length": 16,
        "learning_rate": 1e-4,
        "batch_size": 8,
        "max_steps": args.steps,
        "seed": 7,
        "lora_r": 16,
        "lora_alpha": 32,
        "eval_split": 0.0,
        "n_eval_prompts": 1,
        "max_new_tokens": 4,
        "quant": "none",
        "save_steps": 10_000,
    }
    os.environ["FTSTUDIO_WORKSPACE"] = str(tmp / "ws0")
    bare, studio = [], []
    try:
        for i in range(args.repeats):
            bare.append(run_bare(fields))
            studio.append(run_studio(fields, tmp / f"ws{i}"))
            print(
                f"repeat {i + 1}: bare TRL {bare[-1]:.0f} tok/s, studio job {studio[-1]:.0f} tok/s",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b, s = max(bare), max(studio)
    print(f"bare TRL tokens/s: {b:.0f}")
    print(f"studio job tokens/s: {s:.0f}")
    print(f"ratio studio/bare: {s / b:.3f}")


if __name__ == "__main__":
    main()
