"""GRPO runs: the `train` job with method `grpo` (TRL GRPOTrainer + LoRA).

The job reads a dataset version's chat examples ({"messages": [...]}) from `spec.data_path`:
each example's turns before its last assistant answer are the prompt, and that answer is the
`reference` the reference reward compares with. For each prompt the policy samples
`num_generations` answers; the reward functions of `spec.rewards` (backend.train.rewards, and
the LLM judge of backend.train.judge_reward) score them, weighted, and each answer is pushed
towards or away from its group's mean. Each function's mean and spread per step become the
metrics reward/<function> and reward/<function>/std (with reward, reward_std, kl and
completions/mean_length); a sample of the answers with their rewards is written per logged
step to completions.jsonl (ingested into run_completions); the judge's requests, cache hits
and tokens become judge/* metrics. Checkpoints, cancel, resume and the adapter are the shared
skeleton's (backend.train.common).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.jobs.context import JobContext
from backend.jsonl import read_jsonl
from backend.train.common import Method, lora_config, trainer_kwargs
from backend.train.config import ConfigError, GRPORunConfig, RunConfig
from backend.train.rewards import (
    Recorder,
    RewardSpec,
    build_rewards,
    file_digests,
    parse_spec,
)
from backend.train.runtime import Runtime

COMPLETIONS = "completions.jsonl"
KEPT = ("reward", "reward_std", "kl", "completions/mean_length", "frac_reward_zero_std")


def prompt_rows(examples: list[dict]) -> list[dict]:
    """{"prompt": turns before the last assistant answer, "reference": that answer} per example
    (reference None when the example ends with a user turn).

    >>> prompt_rows([{"messages": [{"role": "user", "content": "2+2?"},
    ...                            {"role": "assistant", "content": "4"}]}])
    [{'prompt': [{'role': 'user', 'content': '2+2?'}], 'reference': '4'}]
    """
    rows = []
    for ex in examples:
        msgs = ex["messages"]
        cut = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        prompt = msgs[:cut] if cut is not None else msgs
        if not any(m.get("role") == "user" for m in prompt):
            continue
        turns = [{"role": m["role"], "content": m.get("content") or ""} for m in prompt]
        reference = msgs[cut].get("content") if cut is not None else None
        rows.append({"prompt": turns, "reference": reference})
    return rows


def grpo_args(config: GRPORunConfig, rt: Runtime, output_dir: Path, has_eval: bool, **overrides):
    """TRL GRPOConfig for this run (no max_length: prompts are short and answers are capped by
    max_completion_length)."""
    from trl import GRPOConfig

    kwargs = trainer_kwargs(config, rt, output_dir, has_eval)
    for key in ("max_length", "dataset_num_proc"):
        kwargs.pop(key)
    kwargs.update(
        per_device_eval_batch_size=config.num_generations,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.gen_temperature,
        beta=config.kl_beta,
        scale_rewards=config.scale_rewards,
        log_completions=False,  # the studio keeps its own sample (completions.jsonl)
        shuffle_dataset=True,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def log_values(logs: dict[str, Any]) -> dict[str, float]:
    """The GRPO figures of one log line under the studio's names: TRL's rewards/<f>/mean and
    rewards/<f>/std become reward/<f> and reward/<f>/std.

    >>> log_values({"rewards/regex/mean": 0.5, "rewards/regex/std": 0.1, "reward": 0.5})
    {'reward/regex': 0.5, 'reward/regex/std': 0.1, 'reward': 0.5}
    """
    values: dict[str, float] = {}
    for key, value in logs.items():
        if not isinstance(value, int | float):
            continue
        if key.startswith("rewards/") and key.endswith("/mean"):
            values["reward/" + key[len("rewards/") : -len("/mean")]] = value
        elif key.startswith("rewards/") and key.endswith("/std"):
            values["reward/" + key[len("rewards/") :]] = value
        elif key in KEPT:
            values[key] = value
    return values


def grpo_callback(ctx: JobContext, recorder: Recorder, judges: list[Any]):
    """A trainer callback writing reward/<function> metrics, the judge's cost, and each logged
    step's sampled answers (transformers is imported here, inside the job)."""
    from transformers import TrainerCallback

    class GRPOCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            _log(ctx, recorder, judges, state.global_step, logs or {})

    return GRPOCallback()


def _log(ctx: JobContext, recorder: Recorder, judges: list, step: int, logs: dict) -> None:
    values = log_values(logs)
    for judge in judges:
        values.update({f"judge/{k}": float(v) for k, v in judge.cost.items()})
    if values:
        ctx.metric(step, **values)
    rows = recorder.take(step)
    if rows:
        ctx.output(COMPLETIONS, [{"run_id": ctx.id, **r, "step": step} for r in rows])


class GRPO(Method):
    """Group relative policy optimisation on a dataset's prompts, with reward functions."""

    what = "GRPO training"
    unit = "prompts"

    def load_rows(self, path: Path) -> list[dict]:
        def row(obj: dict) -> dict:
            if not isinstance(obj.get("messages"), list) or not obj["messages"]:
                raise ValueError('needs a non-empty "messages" list')
            return {"messages": obj["messages"]}

        rows = prompt_rows(list(read_jsonl(path, row, ConfigError)))
        if not rows:
            raise ConfigError(f"{path} has no examples with a user turn to use as a prompt")
        return rows

    def build_trainer(
        self,
        config: GRPORunConfig,
        rt: Runtime,
        model: Any,
        tokenizer: Any,
        train_rows: list[dict],
        eval_rows: list[dict],
        output_dir: Path,
        callbacks: list,
        **overrides: Any,
    ) -> Any:
        """GRPOTrainer with a fresh LoRA and the run's weighted reward functions."""
        from datasets import Dataset
        from trl import GRPOTrainer

        from backend.config import Settings
        from backend.train.judge_reward import JudgeReward

        ctx = getattr(callbacks[0], "ctx", None) if callbacks else None
        root = ctx.workspace.root if ctx is not None else Path(Settings().workspace)
        recorder = Recorder(keep=config.completions_logged)
        judges: list[JudgeReward] = []

        def judge(spec: RewardSpec) -> JudgeReward:
            if not config.judge_model:
                raise ConfigError("judge_model: a judge reward needs the judge's model name")
            judges.append(
                JudgeReward(
                    spec,
                    root,
                    model=config.judge_model,
                    base_url=config.judge_base_url,
                    cache_dir=ctx.dir if ctx is not None else output_dir,
                )
            )
            return judges[-1]

        funcs, weights = build_rewards(config.rewards, root, recorder, judge)
        if ctx is not None:  # lineage: which functions at which weights, and the files' hashes
            ctx.event(
                "rewards: "
                + ", ".join(f"{f.__name__} x{w:g}" for f, w in zip(funcs, weights, strict=True)),
                rewards=config.rewards,
                files=file_digests([parse_spec(r) for r in config.rewards], root),
            )
        tokenizer.padding_side = "left"  # generation pads on the left
        extra = [grpo_callback(ctx, recorder, judges)] if ctx is not None else []
        return GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=grpo_args(
                config, rt, output_dir, bool(eval_rows), reward_weights=weights, **overrides
            ),
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
            processing_class=tokenizer,
            peft_config=lora_config(config),
            callbacks=[*callbacks, *extra],
        )

    def prompts(self, config: RunConfig, eval_rows: list[dict], train_rows: list[dict]) -> list:
        """The eval prompts given, else the last user turn of the held-out prompts."""
        if config.eval_prompts:
            return list(config.eval_prompts)
        texts = (
            next((m["content"] for m in reversed(r["prompt"]) if m["role"] == "user"), None)
            for r in [*eval_rows, *train_rows]
        )
        return list(dict.fromkeys(t for t in texts if t))[: config.n_eval_prompts]
