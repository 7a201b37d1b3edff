"""A small built-in job kind, `sleep`, that counts through steps: used to try the machinery
(queue, worker, progress, cancel, interruption) without loading a model."""

from __future__ import annotations

import time

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec


class SleepSpec(JobSpec):
    steps: int = Field(10, ge=1, le=1_000_000, description="How many steps to count through.")
    seconds_per_step: float = Field(0.1, ge=0, le=60, description="Pause after each step.")
    fail_at: int | None = Field(None, description="Raise an error at this step (for testing).")

    def title(self) -> str:
        return f"sleep {self.steps} steps"


def run_sleep(ctx: JobContext, spec: SleepSpec) -> None:
    start = ctx.read_checkpoint().get("step", 0)
    ctx.progress(start, spec.steps, unit="steps")
    for step in range(start + 1, spec.steps + 1):
        ctx.check_cancelled()
        time.sleep(spec.seconds_per_step)
        if spec.fail_at == step:
            raise RuntimeError(f"asked to fail at step {step}")
        ctx.metric(step, value=float(step), square=float(step * step))
        ctx.write_checkpoint({"step": step})
        ctx.progress(step, spec.steps)
    ctx.event(f"counted to {spec.steps}")
