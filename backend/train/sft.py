"""The `train` job: LoRA / QLoRA fine-tuning with TRL + PEFT inside a studio worker.

`run_train` is the job's runner: it picks the spec's method from `RUNNERS` (sft here, dpo in
backend.train.dpo, kto and grpo in backend.train.kto and backend.train.grpo) and runs it
through the shared skeleton (backend.train.common), which reads `spec.data_path`, trains with a
cosine schedule and warm-up, checkpoints every `save_steps` into runs/<job_id>/checkpoints, and
on a re-queued job (`ftstudio jobs resume ID`) continues from the last checkpoint with the same
step and data order. Afterwards it saves the adapter (runs/<id>/adapter), optionally a merged
model, evaluates, and writes run.jsonl / run_eval.jsonl / generations.jsonl for ingest.

What is SFT's own: chat rows of {"messages": [...], "tools"?: [...]}, TRL's SFTTrainer with
packing and assistant-only loss, an optional start from a previous adapter, perplexity. Tool
use reaches the chat template whole: `tools` is passed to it (TRL's `tools` column) and the
assistant's `tool_calls` and the `tool` turns are kept, each turn as its own JSON value so that
Arrow does not merge the keys of different turns and different tools' arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.evaluate.heldout import perplexity, pick_prompts
from backend.jobs.context import JobContext
from backend.jsonl import read_jsonl
from backend.train.common import (
    Method,
    load_model,
    lora_config,
    split,
    trainer_kwargs,
)
from backend.train.config import ConfigError, RunConfig, SFTRunConfig
from backend.train.dpo import DPO
from backend.train.executors import run_with_executor
from backend.train.grpo import GRPO
from backend.train.kto import KTO
from backend.train.runtime import Runtime

__all__ = [
    "RUNNERS",
    "SFT",
    "build_trainer",
    "chat_dataset",
    "load_examples",
    "load_model",
    "run_train",
    "split",
]


def load_examples(path: Path) -> list[dict]:
    """Rows of {"messages": [...]} (and "tools" when a line has them) from a JSONL file; a
    bad line is an error naming it."""

    def row(obj: dict) -> dict:
        messages = obj.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError('needs a non-empty "messages" list')
        tools = obj.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise ValueError('"tools" is not a list of tool definitions')
        return {"messages": messages, "tools": tools} if tools else {"messages": messages}

    return list(read_jsonl(path, row, ConfigError))


def chat_dataset(rows: list[dict]):
    """A datasets.Dataset of chat rows for TRL. Each turn is stored as JSON (datasets' `Json`
    feature): Arrow would otherwise give every turn the union of all turns' keys (a null
    `tool_calls` on plain turns) and every call's arguments the union of all tools' arguments,
    which the chat template would render. A `tools` column only when some row has tools."""
    from datasets import Dataset, Features, Json, List

    features = {"messages": List(Json())}
    if any(r.get("tools") for r in rows):
        features["tools"] = Json()
        rows = [{"messages": r["messages"], "tools": r.get("tools")} for r in rows]
    else:
        rows = [{"messages": r["messages"]} for r in rows]
    return Dataset.from_list(rows, features=Features(features))


def training_args(
    config: SFTRunConfig, rt: Runtime, output_dir: Path, has_eval: bool, **overrides: Any
):
    """TRL SFTConfig for this run and runtime (float32 on CPU, bf16 where CUDA has it)."""
    from trl import SFTConfig

    kwargs = trainer_kwargs(config, rt, output_dir, has_eval)
    kwargs.update(packing=config.packing, assistant_only_loss=config.assistant_only_loss)
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


class SFT(Method):
    """Supervised fine-tuning on chat examples."""

    def load_rows(self, path: Path) -> list[dict]:
        return load_examples(path)

    def build_trainer(
        self,
        config: SFTRunConfig,
        rt: Runtime,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        eval_rows: list[dict],
        output_dir: Path,
        callbacks: list,
        **overrides: Any,
    ) -> Any:
        """SFTTrainer with a fresh LoRA, or on `init_adapter` (trained further)."""
        from trl import SFTTrainer

        peft_config = lora_config(config)
        if config.init_adapter:  # continue training that adapter rather than a fresh LoRA
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
            peft_config = None
        return SFTTrainer(
            model=model,
            args=training_args(config, rt, output_dir, bool(eval_rows), **overrides),
            train_dataset=chat_dataset(train_rows),
            eval_dataset=chat_dataset(eval_rows) if eval_rows else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )

    def prompts(self, config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
        return pick_prompts(config.eval_prompts, eval_rows, train_rows, config.n_eval_prompts)

    def evaluate(self, trainer: Any) -> dict[str, Any]:
        loss = trainer.evaluate().get("eval_loss")
        return {"eval_loss": loss, "perplexity": perplexity(loss)}


# method name -> what trains it (its config class is backend.train.config.METHODS[name])
RUNNERS: dict[str, Method] = {"sft": SFT(), "dpo": DPO(), "kto": KTO(), "grpo": GRPO()}


def build_trainer(config: RunConfig, rt: Runtime, model, tokenizer, *args: Any, **kwargs: Any):
    """The trainer of `config.method` (benches and sweeps build one without a job)."""
    return RUNNERS[config.method].build_trainer(config, rt, model, tokenizer, *args, **kwargs)


def run_train(ctx: JobContext, spec: RunConfig) -> None:
    """The `train` job's runner: here, or through the run's executor (accelerate, ray)."""
    run_with_executor(ctx, spec, RUNNERS[spec.method])
