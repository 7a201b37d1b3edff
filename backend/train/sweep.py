"""Sweeps: many runs that differ in learning rate, LoRA rank, batch size or epochs.

`grid` and `random` expand a search space into run fields (`expand`); the action
(backend.train.actions.start_sweep) queues them as one group (the jobs share a `group_id`; the
worker trains them one at a time). `optuna` is one job (`run_optuna`) that trains trials
in-process with TPE sampling and median pruning on the held-out loss, writing each trial to
sweep_trials.jsonl; the trials use the base run's method. Each trial's model and trainer are
freed before the next one loads (a pruned trial's too), and the memory still held after each
trial is logged as `trial_mem_bytes` (CUDA allocated; on CPU the bytes of live tensors), so
N trials hold what one does.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from backend.config import Settings
from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec
from backend.train.common import load_model, split
from backend.train.config import ConfigError, make_config
from backend.train.runtime import decide
from backend.train.sft import RUNNERS

SWEEPABLE = {"learning_rate": float, "lora_r": int, "batch_size": int, "epochs": float}


def parse_values(name: str, text: str) -> list:
    """'1e-4,5e-5' -> [0.0001, 5e-05] for a sweepable field; a clear error otherwise."""
    if name not in SWEEPABLE:
        raise ConfigError(f"{name} cannot be swept; sweepable: {', '.join(SWEEPABLE)}")
    try:
        return [SWEEPABLE[name](v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a comma-separated list of numbers") from None


def expand(
    base: dict[str, Any],
    space: dict[str, list],
    mode: str = "grid",
    n: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run fields for every grid point, or `n` distinct random points. When the rank changes,
    alpha keeps the base alpha/rank ratio.

    >>> [p["lora_r"] for p in expand({"lora_r": 8}, {"lora_r": [4, 8]})]
    [4, 8]
    """
    for name in space:
        if name not in SWEEPABLE:
            raise ConfigError(f"{name} cannot be swept; sweepable: {', '.join(SWEEPABLE)}")
    names = list(space)
    points = [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(space[k] for k in names))
    ]
    if mode == "random":
        points = random.Random(seed).sample(points, min(n or len(points), len(points)))
    elif mode != "grid":
        raise ConfigError(f"mode: {mode!r}; use grid or random (or optuna)")
    ratio = base.get("lora_alpha", 32) / base.get("lora_r", 16)
    out = []
    for p in points:
        fields = {**base, **p}
        if "lora_r" in p:
            fields["lora_alpha"] = max(1, round(p["lora_r"] * ratio))
        out.append(fields)
    return out


def held_memory() -> float:
    """Free what the last trial left (garbage, cached CUDA blocks) and return the bytes still
    held: CUDA allocated memory, or on CPU the storage of every live tensor."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        return float(torch.cuda.memory_allocated())
    import warnings

    seen: set[int] = set()
    total = 0
    with warnings.catch_warnings():  # isinstance() on torch's deprecated module attributes
        warnings.simplefilter("ignore")
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    for obj in tensors:
        if obj.device.type != "meta":
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
    return float(total)


# --- Optuna: one job, trials in-process --------------------------------------------------------


class OptunaSweepSpec(JobSpec):
    base: dict[str, Any] = Field(description="Run fields shared by every trial (a train spec).")
    lr_range: tuple[float, float] = Field(
        (1e-5, 1e-3), description="Learning-rate range (log scale)."
    )
    ranks: list[int] = Field(default_factory=lambda: [8, 16, 32], description="LoRA ranks.")
    n_trials: int = Field(8, ge=1, le=500, description="Trials to train.")
    seed: int = Field(0, description="Sampler seed.")

    @field_validator("lr_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] < v[1]:
            raise ValueError("lr_range needs 0 < low < high")
        return v

    def title(self) -> str:
        return f"optuna sweep, {self.n_trials} trials on {self.base.get('dataset', '?')}"


def run_optuna(ctx: JobContext, spec: OptunaSweepSpec) -> None:
    """Train `n_trials` runs in this process; prune trials whose eval loss lags the median."""
    import optuna
    from transformers import TrainerCallback

    base = make_config(spec.base)
    if base.eval_split <= 0:
        raise ConfigError("eval_split: an optuna sweep prunes on eval loss; hold some out")
    method = RUNNERS[base.method]
    rt = decide(base.quant, Settings().device)
    rows = method.load_rows(Path(base.data_path))
    train_rows, eval_rows = split(rows, base.eval_split, base.seed)

    class Prune(TrainerCallback):
        def __init__(self, trial):
            self.trial = trial

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            self.trial.report(metrics["eval_loss"], state.global_step)
            if self.trial.should_prune():
                raise optuna.TrialPruned()
            ctx.check_cancelled()

    def objective(trial) -> float:
        cfg = base.model_copy(
            update={
                "learning_rate": trial.suggest_float("learning_rate", *spec.lr_range, log=True),
                "lora_r": trial.suggest_categorical("lora_r", spec.ranks),
            }
        )
        tok, model = load_model(cfg, rt)
        out = ctx.workspace.runs / ctx.id / f"trial-{trial.number}"
        trainer = method.build_trainer(
            cfg, rt, model, tok, train_rows, eval_rows, out, [Prune(trial)], save_strategy="no"
        )
        try:
            trainer.train()
            return trainer.evaluate()["eval_loss"]
        finally:
            trainer.model = trainer.model_wrapped = trainer.optimizer = None
            trainer.lr_scheduler = None
            del trainer, model, tok

    sampler = optuna.samplers.TPESampler(seed=spec.seed)
    study = optuna.create_study(
        direction="minimize", sampler=sampler, pruner=optuna.pruners.MedianPruner(n_warmup_steps=1)
    )
    trials = ctx.read_checkpoint().get("trials", [])
    for t in trials:  # a resumed sweep tells the sampler what it already learned
        study.add_trial(
            optuna.trial.create_trial(
                params=t["params"],
                value=t["eval_loss"],
                distributions={
                    "learning_rate": optuna.distributions.FloatDistribution(
                        *spec.lr_range, log=True
                    ),
                    "lora_r": optuna.distributions.CategoricalDistribution(spec.ranks),
                },
                state=optuna.trial.TrialState.COMPLETE
                if t["eval_loss"] is not None
                else optuna.trial.TrialState.PRUNED,
            )
        )
    for number in range(len(trials), spec.n_trials):
        ctx.check_cancelled()
        ctx.progress(number, spec.n_trials, unit="trials")
        trial = study.ask()
        try:
            loss, state = objective(trial), "complete"
            study.tell(trial, loss)
        except optuna.TrialPruned:
            loss, state = None, "pruned"
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        held = held_memory()  # after the handler: a pruned trial's traceback is gone
        row = {"trial": number, "params": trial.params, "eval_loss": loss, "state": state}
        ctx.output("sweep_trials.jsonl", [row])
        trials.append(row)
        ctx.write_checkpoint({"trials": trials})
        ctx.metric(number, trial_eval_loss=loss, trial_mem_bytes=held)
    ctx.progress(spec.n_trials, spec.n_trials)
    best = study.best_trial
    ctx.event(
        f"best trial {best.number}: eval loss {best.value:.4f} with {best.params}", best=best.params
    )
