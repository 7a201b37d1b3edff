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

import json
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.jobs.context import JobCancelled, JobContext
from backend.train.callbacks import StudioCallback
from backend.train.config import ConfigError, SFTRunConfig, preflight
from backend.train.runtime import Runtime, decide

REWARD_PREFIXES = ("rewards/", "eval_rewards/", "logps/", "eval_logps/")


class DPOCallback(StudioCallback):
    """StudioCallback plus the DPO reward figures of each logged step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        extra = {k: v for k, v in (logs or {}).items()
                 if k.startswith(REWARD_PREFIXES) and isinstance(v, int | float)}
        if extra:
            self.ctx.metric(state.global_step, **extra)


def load_pairs(path: Path) -> list[dict]:
    """prompt / chosen / rejected rows; a bad line is a ConfigError naming it."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path} line {n}: not JSON ({exc})") from None
            if not isinstance(row, dict) or any(k not in row for k in
                                                ("prompt", "chosen", "rejected")):
                raise ConfigError(f"{path} line {n}: a DPO row needs prompt, chosen and "
                                  "rejected")
            rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if not rows:
        raise ConfigError(f"{path} has no preference pairs")
    return rows


def split_pairs(rows: list[dict], eval_split: float, seed: int) -> tuple[list, list]:
    from backend.train.sft import split

    return split(rows, eval_split, seed)


def dpo_args(config: SFTRunConfig, rt: Runtime, output_dir: Path, has_eval: bool,
             **overrides: Any):
    """TRL DPOConfig for this run (float32 on CPU, bf16 where CUDA has it)."""
    from trl import DPOConfig

    eval_steps = config.eval_steps or config.save_steps
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir), learning_rate=config.learning_rate, beta=config.beta,
        lr_scheduler_type="cosine", warmup_steps=config.warmup_ratio,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, seed=config.seed, data_seed=config.seed,
        max_length=config.max_length, use_cpu=rt.use_cpu, bf16=rt.bf16, fp16=rt.fp16,
        dataloader_pin_memory=rt.pin_memory, activation_checkpointing=rt.device == "cuda",
        logging_steps=1, save_strategy="steps",
        save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no", eval_steps=eval_steps if has_eval else None,
        report_to="none", disable_tqdm=True, dataset_num_proc=None,
    )
    kwargs.update(overrides)
    return DPOConfig(**kwargs)


def build_dpo_trainer(config: SFTRunConfig, rt: Runtime, model, tokenizer, train_rows: list,
                      eval_rows: list, output_dir: Path, callbacks: list, **overrides: Any):
    """DPOTrainer with a LoRA adapter; ref_model=None makes the adapter-off base the
    reference."""
    from datasets import Dataset
    from trl import DPOTrainer

    from backend.train.sft import lora_config

    return DPOTrainer(
        model=model, ref_model=None,
        args=dpo_args(config, rt, output_dir, bool(eval_rows), **overrides),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer, peft_config=lora_config(config), callbacks=callbacks,
    )


def _prompt_text(row: dict) -> str | None:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") for m in prompt if m.get("role") == "user"]
    return users[-1] if users else None


def run_dpo(ctx: JobContext, spec: SFTRunConfig) -> None:
    """The `train` job's runner for method dpo (called from backend.train.sft.run_train)."""
    from backend.evaluate.heldout import generate
    from backend.train.sft import (
        last_checkpoint,
        load_model,
        run_row,
        save_adapter,
        save_merged,
    )

    preflight(spec)
    rt = decide(spec.quant, Settings().device)
    run_dir = ctx.workspace.runs / ctx.id
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ctx.output("run.jsonl", [run_row(ctx, spec, rt, "running", run_dir=str(run_dir))])
    ctx.event(f"DPO training on {rt.describe()}", device=rt.device, dtype=rt.dtype,
              quantize_4bit=rt.quantize_4bit)
    rows = load_pairs(Path(spec.data_path))
    train_rows, eval_rows = split_pairs(rows, spec.eval_split, spec.seed)
    ctx.event(f"{len(train_rows)} training and {len(eval_rows)} held-out pairs")
    tok, model = load_model(spec, rt)
    callback = DPOCallback(ctx)
    trainer = build_dpo_trainer(spec, rt, model, tok, train_rows, eval_rows, ckpt_dir,
                                [callback])
    resume = last_checkpoint(ckpt_dir)
    if resume is not None:
        ctx.event(f"resuming from {resume.name}", checkpoint=str(resume))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if callback.cancelled:
        ctx.output("run.jsonl", [run_row(ctx, spec, rt, "cancelled")])
        raise JobCancelled("cancelled by request after saving a checkpoint")
    step = trainer.state.global_step
    adapter = save_adapter(trainer.model, tok, run_dir)
    ctx.event(f"adapter saved to {adapter}", path=str(adapter))
    ctx.progress(step, step, message="evaluating")
    result: dict[str, Any] = {"run_id": ctx.id, "step": step, "n_eval": len(eval_rows),
                              "n_train": len(train_rows)}
    if eval_rows:
        result["eval_loss"] = trainer.evaluate().get("eval_loss")
        ctx.metric(step, eval_loss=result["eval_loss"])
    prompts = spec.eval_prompts or list(dict.fromkeys(
        p for p in map(_prompt_text, [*eval_rows, *train_rows]) if p))[: spec.n_eval_prompts]
    gens = generate(trainer.model, tok, prompts, max_new_tokens=spec.max_new_tokens,
                    temperature=spec.temperature, seed=spec.seed)
    ctx.output("generations.jsonl", [{"run_id": ctx.id, "step": step, **g} for g in gens])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result.update(first_loss=losses[0] if losses else None,
                  last_loss=losses[-1] if losses else None)
    ctx.output("run_eval.jsonl", [result])
    merged = save_merged(spec, rt, adapter, run_dir) if spec.merge else None
    ctx.output("run.jsonl", [run_row(ctx, spec, rt, "succeeded", adapter_path=str(adapter),
                                     merged_path=str(merged) if merged else None,
                                     run_dir=str(run_dir))])
    ctx.event(f"done at step {step}")
