"""DPO runs: the `train` job with method `dpo` (TRL DPOTrainer + LoRA).

The job reads prompt / chosen / rejected rows (TRL's conversational DPO format, written by the
submitter from a preference set version) from `spec.data_path`. The policy is the base model
with a LoRA adapter; the reference is the same base with the adapter switched off (TRL does this
when `ref_model=None` and the model is a PEFT model), so no second copy is loaded. Besides the
loss, each logged step records rewards/chosen, rewards/rejected, rewards/margins and
rewards/accuracies into the run's metrics, so Compare plots them. Checkpoints, cancel, resume,
adapter saving and eval generations are the shared skeleton's (backend.train.common).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.jsonl import read_jsonl
from backend.train.common import Method, lora_trainer, prompts_of_rows, trainer_kwargs
from backend.train.config import ConfigError, DPORunConfig, RunConfig
from backend.train.runtime import Runtime

REWARD_PREFIXES = ("rewards/", "eval_rewards/", "logps/", "eval_logps/")


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


def dpo_args(config: DPORunConfig, rt: Runtime, output_dir: Path, has_eval: bool, **overrides: Any):
    """TRL DPOConfig for this run (float32 on CPU, bf16 where CUDA has it)."""
    from trl import DPOConfig

    kwargs = trainer_kwargs(config, rt, output_dir, has_eval)
    kwargs.update(beta=config.beta)
    kwargs.update(overrides)
    return DPOConfig(**kwargs)


class DPO(Method):
    """Direct preference optimisation on preference pairs."""

    what = "DPO training"
    unit = "pairs"
    metric_prefixes = REWARD_PREFIXES

    def load_rows(self, path: Path) -> list[dict]:
        return load_pairs(path)

    def build_trainer(
        self,
        config: DPORunConfig,
        rt: Runtime,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        eval_rows: list[dict],
        output_dir: Path,
        callbacks: list,
        **overrides: Any,
    ) -> Any:
        """DPOTrainer with a LoRA adapter; ref_model=None makes the adapter-off base the
        reference."""
        from trl import DPOTrainer

        args = dpo_args(config, rt, output_dir, bool(eval_rows), **overrides)
        return lora_trainer(
            DPOTrainer, args, config, model, tokenizer, train_rows, eval_rows, callbacks
        )

    def prompts(self, config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
        """The eval prompts given, else the last user turn of each pair's prompt."""
        return prompts_of_rows(config, eval_rows, train_rows)
