"""What every training method does the same way: the skeleton of a `train` job.

`run_method(ctx, spec, method)` is the whole run: preflight, the runtime (4-bit or not), the
run folders and the first run.jsonl row; the rows and their deterministic train/eval split; the
model and a LoRA (or a previous adapter); training from the last complete checkpoint (a cancel
saves one first); the adapter; evaluation, eval-prompt generations, the optional merged model
and the final run.jsonl row. A `Method` (backend.train.sft, backend.train.dpo) supplies only
what differs: how rows are read, which TRL trainer is built, which prompts it answers.
"""

from __future__ import annotations

import random
import shutil
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.evaluate.heldout import generate
from backend.jobs.context import JobCancelled, JobContext
from backend.train.config import ALL_LINEAR, RunConfig, preflight
from backend.train.lineage import model_hash
from backend.train.runtime import (
    Runtime,
    decide,
    local_rank,
    model_kwargs,
    package_versions,
    world_size,
)
from backend.train.trackers import mirror_run


def prompt_text(row: dict) -> str | None:
    """The prompt of a preference or labelled row as text: the string itself, or the last
    user turn of a conversational prompt (what the eval generations are asked)."""
    prompt = row["prompt"]
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content") for m in prompt if m.get("role") == "user"]
    return users[-1] if users else None


def prompts_of_rows(config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
    """The eval prompts given, else the distinct `prompt_text` of the rows (eval rows first),
    at most `n_eval_prompts`: what a preference or labelled run's generations are asked."""
    if config.eval_prompts:
        return list(config.eval_prompts)
    texts = (p for p in map(prompt_text, [*eval_rows, *train_rows]) if p)
    return list(dict.fromkeys(texts))[: config.n_eval_prompts]


def lora_trainer(
    trainer_class, args, config: RunConfig, model, tokenizer, train_rows, eval_rows, callbacks: list
):
    """A TRL trainer on a LoRA adapter whose reference is the adapter-off base
    (ref_model=None): DPO and KTO build theirs the same way."""
    from datasets import Dataset

    return trainer_class(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )


def split(rows: list[dict], eval_split: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A deterministic hold-out: the same seed gives the same split on every attempt."""
    if eval_split <= 0 or len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(rows) - 1, max(1, round(len(rows) * eval_split)))
    held = set(order[:n_eval])
    return (
        [r for i, r in enumerate(rows) if i not in held],
        [r for i, r in enumerate(rows) if i in held],
    )


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint-N folder (one with trainer_state.json), or None."""
    if not folder.is_dir():
        return None
    done = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
    ]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def trainer_kwargs(
    config: RunConfig, rt: Runtime, output_dir: Path, has_eval: bool
) -> dict[str, Any]:
    """Arguments every studio trainer shares (SFT and DPO): schedule, batch, seeds, the
    runtime's precision, checkpoints and evaluation cadence, logging every step."""
    eval_steps = config.eval_steps or config.save_steps
    return dict(
        output_dir=str(output_dir),
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        seed=config.seed,
        data_seed=config.seed,
        max_length=config.max_length,
        use_cpu=rt.use_cpu,
        bf16=rt.bf16,
        fp16=rt.fp16,
        dataloader_pin_memory=rt.pin_memory,
        activation_checkpointing=rt.device == "cuda",
        # a LoRA model uses every trainable parameter; the default (True for a PEFT model)
        # breaks activation checkpointing under DDP and costs a graph walk per step
        ddp_find_unused_parameters=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        report_to="none",
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def lora_config(config: RunConfig):
    """The PEFT LoraConfig of a fresh adapter."""
    from peft import LoraConfig

    targets = ALL_LINEAR if config.target_modules == [ALL_LINEAR] else config.target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_model(config: RunConfig, rt: Runtime):
    """Tokenizer and base model under the runtime (4-bit NF4 when it says so)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(config.base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        config.base_model, use_safetensors=True, **model_kwargs(rt)
    )
    if rt.device == "cuda" and not rt.quantize_4bit:
        model = model.to(f"cuda:{local_rank()}")  # each rank on its own GPU
    return tok, model


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a fully written folder into place (the old one goes only after the new is ready)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def sharded(config: RunConfig) -> bool:
    """Whether the run's weights are sharded over its processes (FSDP)."""
    return getattr(config, "fsdp", False) and world_size() > 1


def save_sharded_adapter(trainer, tokenizer, run_dir: Path, main: bool) -> None:
    """FSDP: every rank takes part in gathering the full adapter; rank 0 alone writes it."""
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    tmp = run_dir / ".adapter.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # collective; writes on rank 0 only
    if main:
        tokenizer.save_pretrained(tmp)
        _replace_dir(tmp, run_dir / "adapter")


def save_adapter(model, tokenizer, run_dir: Path) -> Path:
    tmp = run_dir / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _replace_dir(tmp, run_dir / "adapter")
    return run_dir / "adapter"


def save_merged(config: RunConfig, rt: Runtime, adapter: Path, run_dir: Path) -> Path:
    """Merge the adapter into an unquantized copy of the base model (merging into 4-bit
    weights would round the update away)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(
        config.base_model, dtype=rt.torch_dtype(), use_safetensors=True
    )
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tmp = run_dir / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(tmp)
    _replace_dir(tmp, run_dir / "merged")
    return run_dir / "merged"


def run_row(ctx: JobContext, config: RunConfig, rt: Runtime, state: str, **extra: Any) -> dict:
    """One run.jsonl row: the run's state, exact config, device and package versions."""
    return {
        "id": ctx.id,
        "method": config.method,
        "base_model": config.base_model,
        "dataset": config.dataset,
        "dataset_version_id": config.dataset_version_id,
        "dataset_hash": config.dataset_hash,
        "base_model_hash": model_hash(config.base_model),
        "config": config.model_dump(mode="json"),
        "state": state,
        "device": rt.describe(),
        "runtime": rt.as_dict(),
        "packages": package_versions(),
        "attempt": ctx.status.attempt,
        "executor": config.executor,
        "world_size": world_size(),
        "t": time.time(),
        **extra,
    }


class Method(ABC):
    """What one training method does its own way; `run_method` does the rest."""

    what = "training"  # the first event: "<what> on <device>"
    unit = "examples"  # "<n> training and <m> held-out <unit>"
    metric_prefixes: tuple[str, ...] = ()  # logged names kept besides the common ones

    @abstractmethod
    def load_rows(self, path: Path) -> list[dict]:
        """The job's rows from its data file; a bad line is a ConfigError naming it."""

    @abstractmethod
    def build_trainer(
        self,
        config: RunConfig,
        rt: Runtime,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        eval_rows: list[dict],
        output_dir: Path,
        callbacks: list,
        **overrides: Any,
    ) -> Any:
        """The TRL trainer of this method; `overrides` replace its training arguments."""

    @abstractmethod
    def prompts(self, config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
        """The prompts answered after training."""

    def evaluate(self, trainer: Any) -> dict[str, Any]:
        """Figures of the held-out rows for the run's evaluation row."""
        return {"eval_loss": trainer.evaluate().get("eval_loss")}


def open_run(ctx: JobContext, spec: RunConfig, what: str) -> tuple[Runtime, Path, Path]:
    """Checks, runtime and folders of a run, and its first run.jsonl row.
    Returns (runtime, run_dir, checkpoint_dir)."""
    preflight(spec)
    rt = decide(spec.quant, Settings().device)
    run_dir = ctx.workspace.runs / ctx.id
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ctx.output("run.jsonl", [run_row(ctx, spec, rt, "running", run_dir=str(run_dir))])
    ctx.event(
        f"{what} on {rt.describe()}",
        device=rt.device,
        dtype=rt.dtype,
        quantize_4bit=rt.quantize_4bit,
    )
    return rt, run_dir, ckpt_dir


def fit(
    ctx: JobContext,
    spec: RunConfig,
    rt: Runtime,
    trainer: Any,
    callback: Any,
    tok: Any,
    run_dir: Path,
    ckpt_dir: Path,
) -> tuple[int, Path]:
    """Train (from the last complete checkpoint when there is one) and save the adapter.
    A cancel saves a checkpoint first, then ends the job as cancelled."""
    resume = last_checkpoint(ckpt_dir)
    if resume is not None:
        ctx.event(f"resuming from {resume.name}", checkpoint=str(resume))
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except Exception as exc:
        from backend.train.fit import out_of_memory

        failed = out_of_memory(exc, spec, rt.device)
        if failed is exc:
            raise
        raise failed from exc  # with the settings that would fit
    if callback.cancelled:
        ctx.output("run.jsonl", [run_row(ctx, spec, rt, "cancelled")])
        raise JobCancelled("cancelled by request after saving a checkpoint")
    step = trainer.state.global_step
    adapter = run_dir / "adapter"
    if sharded(spec):
        save_sharded_adapter(trainer, tok, run_dir, ctx.is_main)
    elif ctx.is_main:  # the other ranks hold the same weights: one writer
        save_adapter(trainer.model, tok, run_dir)
    ctx.event(f"adapter saved to {adapter}", path=str(adapter))
    ctx.progress(step, step, message="evaluating")
    return step, adapter


def finish_run(
    ctx: JobContext,
    spec: RunConfig,
    rt: Runtime,
    trainer: Any,
    tok: Any,
    adapter: Path,
    run_dir: Path,
    result: dict[str, Any],
    prompts: list[str],
) -> None:
    """Generations on the eval prompts, the run's evaluation row, the optional merged model
    and the final run.jsonl row."""
    if not ctx.is_main and not sharded(spec):  # generations, merged model, rows: rank 0's
        return
    step = result["step"]
    gens = generate(  # under FSDP every rank runs the same forward passes; rank 0 writes
        trainer.model,
        tok,
        prompts,
        max_new_tokens=spec.max_new_tokens,
        temperature=spec.temperature,
        seed=spec.seed,
    )
    if not ctx.is_main:
        return
    ctx.output("generations.jsonl", [{"run_id": ctx.id, "step": step, **g} for g in gens])
    train_loss = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result.update(
        first_loss=train_loss[0] if train_loss else None,
        last_loss=train_loss[-1] if train_loss else None,
    )
    ctx.output("run_eval.jsonl", [result])
    merged = save_merged(spec, rt, adapter, run_dir) if spec.merge else None
    ctx.output(
        "run.jsonl",
        [
            run_row(
                ctx,
                spec,
                rt,
                "succeeded",
                adapter_path=str(adapter),
                merged_path=str(merged) if merged else None,
                run_dir=str(run_dir),
            )
        ],
    )
    ctx.event(
        f"done at step {step}"
        + (f", eval loss {result['eval_loss']:.4f}" if result.get("eval_loss") is not None else "")
    )


def run_method(ctx: JobContext, spec: RunConfig, method: Method) -> None:
    """One whole run of `spec` with `method`: the body of the `train` job."""
    from backend.train.callbacks import StudioCallback  # imports transformers: only in jobs

    rt, run_dir, ckpt_dir = open_run(ctx, spec, method.what)
    rows = method.load_rows(Path(spec.data_path))
    train_rows, eval_rows = split(rows, spec.eval_split, spec.seed)
    ctx.event(f"{len(train_rows)} training and {len(eval_rows)} held-out {method.unit}")
    tok, model = load_model(spec, rt)
    callback = StudioCallback(ctx, method.metric_prefixes)
    trainer = method.build_trainer(
        spec, rt, model, tok, train_rows, eval_rows, ckpt_dir, [callback]
    )
    step, adapter = fit(ctx, spec, rt, trainer, callback, tok, run_dir, ckpt_dir)
    result: dict[str, Any] = {
        "run_id": ctx.id,
        "step": step,
        "n_eval": len(eval_rows),
        "n_train": len(train_rows),
    }
    if eval_rows:
        figures = method.evaluate(trainer)
        result.update(figures)
        ctx.metric(step, eval_loss=figures.get("eval_loss"))
    prompts = method.prompts(spec, eval_rows, train_rows)
    finish_run(ctx, spec, rt, trainer, tok, adapter, run_dir, result, prompts)
    if getattr(ctx, "is_main", True):  # one copy per run, from rank 0
        mirror_run(ctx, run_row(ctx, spec, rt, "succeeded", **result), run_dir)
