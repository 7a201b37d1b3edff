"""The demo workspace: what a fresh `make run` sets up so a newcomer can walk the whole loop
with no keys and no GPU. Every step is idempotent; the dashboard calls `bootstrap` at start."""

from __future__ import annotations

import importlib.util

from backend.jobs import queue
from backend.jobs.status import JobState, JobStatus
from backend.store.db import Store
from backend.train.demo_model import NOISE_NOTE
from backend.workspace import Workspace

DEMO_MODEL = "tiny-llama"

__all__ = ["NOISE_NOTE", "bootstrap", "demo_model_path"]


def demo_model_path(ws: Workspace):
    return ws.models / DEMO_MODEL


def _jobs_of(ws: Workspace, kind: str) -> list[JobStatus]:
    return [s for s in queue.list_jobs(ws) if isinstance(s, JobStatus) and s.kind == kind]


def bootstrap(store: Store, ws: Workspace) -> list[str]:
    """Queue what the demo needs and is missing. Returns what was done, for the Overview."""
    done: list[str] = []
    model_jobs = _jobs_of(ws, "demo-model")
    if not demo_model_path(ws).exists() and not any(
        s.state in (JobState.queued, JobState.running, JobState.succeeded) for s in model_jobs
    ):
        job_id = queue.submit(ws, "demo-model", {"name": DEMO_MODEL})
        done.append(f"queued job {job_id} to build the tiny demo model")
    if importlib.util.find_spec("backend.synth.demo") is not None:
        from backend.synth.demo import seed_demo_dataset

        seeded = seed_demo_dataset(store)
        if seeded:
            done.append("imported the sample dataset tasklane-support")
    return done
