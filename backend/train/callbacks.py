"""The bridge from a transformers Trainer to a studio job: metrics every step, progress,
and cancel.

Metrics go through `JobContext.metric` to the job's metrics.jsonl (ingested into `metrics`):
loss, grad_norm, learning_rate, epoch, tokens_seen, tokens_per_s, eval_loss and, on CUDA,
peak_gpu_mem_mb, plus the figures logged under a method's own prefixes (DPO's rewards/*). A
cancel request (the cancel file or SIGTERM) makes the trainer save a checkpoint and stop at the
end of the current step, so `resume` continues from there. On CUDA each tokens/s report
comes with `mfu` (model-FLOPs utilisation); when training ends, backend/train/measure.py writes
the run's peak memory beside its estimate (resources.jsonl).
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from backend.jobs.context import JobContext
from backend.train.runtime import any_rank, peak_gpu_memory_mb

LOGGED = ("loss", "grad_norm", "learning_rate", "epoch", "eval_loss", "mean_token_accuracy")


class StudioCallback(TrainerCallback):
    """Reports each logged step to the job and stops cleanly on cancel. `prefixes`: logged
    names a method adds to the metrics besides LOGGED (e.g. DPO's "rewards/")."""

    def __init__(self, ctx: JobContext, prefixes: tuple[str, ...] = ()):
        self.ctx = ctx
        self.prefixes = prefixes
        self.cancelled = False
        self._t: float | None = None
        self._tokens: float | None = None
        self.first_step: int | None = None
        self._mfu: tuple[float, float] | None = None  # (FLOPs per token, peak FLOP/s)
        self.rates: list[tuple[float, float | None]] = []  # (tokens/s, mfu) per report

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_step = state.global_step
        self._t = time.perf_counter()
        self._tokens = 0.0 if state.global_step == 0 else None
        from backend.train.measure import mfu_setup

        self._mfu = mfu_setup(kwargs.get("model"), args)
        self.ctx.progress(state.global_step, state.max_steps, unit="steps", message="training")
        if state.global_step:
            self.ctx.event(f"resumed from step {state.global_step}", step=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        values = {
            k: v
            for k, v in logs.items()
            if (k in LOGGED or (self.prefixes and k.startswith(self.prefixes)))
            and isinstance(v, int | float)
        }
        tokens = logs.get("num_tokens", state.num_input_tokens_seen or None)
        now = time.perf_counter()
        if isinstance(tokens, int | float) and tokens > 0:
            values["tokens_seen"] = tokens
            if (
                self._tokens is not None
                and self._t is not None
                and tokens > self._tokens
                and now > self._t
            ):
                values["tokens_per_s"] = (tokens - self._tokens) / (now - self._t)
                if self._mfu is not None:
                    values["mfu"] = values["tokens_per_s"] * self._mfu[0] / self._mfu[1]
                self.rates.append((values["tokens_per_s"], values.get("mfu")))
            if "loss" in logs:  # only train logs move the rate window
                self._tokens, self._t = tokens, now
        peak = peak_gpu_memory_mb()
        if peak is not None:
            values["peak_gpu_mem_mb"] = peak
        if values:
            self.ctx.metric(state.global_step, **values)

    def on_step_end(self, args, state, control, **kwargs):
        self.ctx.progress(state.global_step, state.max_steps)
        # every rank asks every step, so all of them stop (and save) at the same step
        if any_rank(self.ctx.cancel_requested) and not self.cancelled:
            self.cancelled = True
            control.should_save = True
            control.should_training_stop = True
            self.ctx.event(
                f"cancel requested: saving a checkpoint at step {state.global_step} and stopping",
                level="warning",
            )
        return control

    def on_train_end(self, args, state, control, **kwargs):
        from backend.train.measure import report

        tps = [r for r, _ in self.rates]
        mfus = [m for _, m in self.rates if m is not None]
        report(
            self.ctx,
            args,
            tokens_per_s=sum(tps) / len(tps) if tps else None,
            mfu=sum(mfus) / len(mfus) if mfus else None,
        )

    def on_save(self, args, state, control, **kwargs):
        self.ctx.write_checkpoint({"step": state.global_step})
        self.ctx.log(f"checkpoint at step {state.global_step}")
