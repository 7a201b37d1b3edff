"""DPO runs: the `train` job with method `dpo` (TRL DPOTrainer + LoRA).

The job reads prompt / chosen / rejected rows (TRL's conversational DPO format, written by the
submitter from a preference set version) from `spec.data_path`. The policy is the base model
with a LoRA adapter; the reference is the same base with the adapter switched off (TRL does this
when `ref_model=None` and the model is a PEFT model), so no second copy is loaded. Besides the
loss, each logged step records rewards/chosen, rewards/rejected, rewards/margins and
rewards/accuracies into the run's metrics, so Compare plots them. Checkpoints, cancel, resume,
adapter saving and eval generations are the SFT runner's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.jobs.context import JobContext
from backend.jsonl import read_jsonl
from backend.train.callbacks import StudioCallback
from backend.train.config import ConfigError, SFTRunConfig
from backend.train.runtime import Runtime

REWARD_PREFIXES = ("rewards/", "eval_rewards/", "logps/", "eval_logps/")


class DPOCallback(StudioCallback):
    """StudioCallback plus the DPO reward figures of each logged step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        extra = {
            k: v
            for k, v in (logs or {}).items()
            if k.startswith(REWARD_PREFIXES) and isinstance(v, int | float)
        }
        if extra:
            self.ctx.metric(state.global_step, **extra)


def load_pairs(path: Path) -> list[dict]:
    """prompt / chosen / rejected rows; a bad line is a ConfigError naming it."""

    def row(obj: dict) -> dict:
        if any(k not in obj for k in ("prompt", "chosen", "rejected")):
            raise ValueError("a DPO row needs prompt, chosen and rejected")
        return {k: obj[k] for k in ("prompt", "chosen", "rejected")}

    rows = list(read_jsonl(path, row, ConfigError))
    if not rows:
        raise ConfigError(f"{path} has no preference pairs")
    return rows


def split_pairs(rows: list[dict], eval_split: float, seed: int) -> tuple[list, list]:
    from backend.train.sft import split

    return split(rows, eval_split, seed)


def dpo_args(config: SFTRunConfig, rt: Runtime, output_dir: Path, has_eval: bool, **overrides: Any):
    """TRL DPOConfig for this run (float32 on CPU, bf16 where CUDA has it)."""
    from trl import DPOConfig

    from backend.train.sft import trainer_kwargs

    kwargs = trainer_kwargs(config, rt, output_dir, has_eval)
    kwargs.update(beta=config.beta)
    kwargs.update(overrides)
    return DPOConfig(**kwargs)


def build_dpo_trainer(
    config: SFTRunConfig,
    rt: Runtime,
    model,
    tokenizer,
    train_rows: list,
    eval_rows: list,
    output_dir: Path,
    callbacks: list,
    **overrides: Any,
):
    """DPOTrainer with a LoRA adapter; ref_model=None makes the adapter-off base the
    reference."""
    from datasets import Dataset
    from trl import DPOTrainer

    from backend.train.sft import lora_config

    return DPOTrainer(
        model=model,
        ref_model=None,
        args=dpo_args(config, rt, output_dir, bool(eval_rows), **overrides),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


def _prompt_text(row: dict) -> str | None:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") for m in prompt if m.get("role") == "user"]
    return users[-1] if users else None


def run_dpo(ctx: JobContext, spec: SFTRunConfig) -> None:
    """The `train` job's runner for method dpo (called from backend.train.sft.run_train)."""
    from backend.train.sft import finish_run, fit, load_model, start_run

    rt, run_dir, ckpt_dir = start_run(ctx, spec, "DPO training")
    rows = load_pairs(Path(spec.data_path))
    train_rows, eval_rows = split_pairs(rows, spec.eval_split, spec.seed)
    ctx.event(f"{len(train_rows)} training and {len(eval_rows)} held-out pairs")
    tok, model = load_model(spec, rt)
    callback = DPOCallback(ctx)
    trainer = build_dpo_trainer(spec, rt, model, tok, train_rows, eval_rows, ckpt_dir, [callback])
    step, adapter = fit(ctx, spec, rt, trainer, callback, tok, run_dir, ckpt_dir)
    result: dict[str, Any] = {
        "run_id": ctx.id,
        "step": step,
        "n_eval": len(eval_rows),
        "n_train": len(train_rows),
    }
    if eval_rows:
        result["eval_loss"] = trainer.evaluate().get("eval_loss")
        ctx.metric(step, eval_loss=result["eval_loss"])
    prompts = (
        spec.eval_prompts
        or list(dict.fromkeys(p for p in map(_prompt_text, [*eval_rows, *train_rows]) if p))[
            : spec.n_eval_prompts
        ]
    )
    finish_run(ctx, spec, rt, trainer, tok, adapter, run_dir, result, prompts)
