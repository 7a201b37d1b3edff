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


DEMO_DATASET = "tasklane-support"


def continue_demo(store: Store, ws: Workspace) -> str | None:
    """Once the demo model is built, queue one short demo training run on the sample dataset,
    so Compare has curves. Runs once per workspace (recorded in demo.json); returns the job id
    it queued, or None."""
    import json

    marker = ws.root / "demo.json"
    try:
        state = json.loads(marker.read_text()) if marker.exists() else {}
    except ValueError:
        state = {}
    if state.get("train_job") or not (demo_model_path(ws) / "config.json").exists():
        return None
    if store.scalar("SELECT count(*) FROM runs") or store.scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'train'"
    ):
        state["train_job"] = "skipped: runs already exist"
    else:
        from backend.store.datasets import DatasetNotFound
        from backend.train.config import ConfigError
        from backend.train.launch import dataset_file, make_config, submit_run

        try:
            fields = dataset_file(store, ws, DEMO_DATASET)
        except (ConfigError, DatasetNotFound):
            return None  # no sample dataset (yet): nothing to train on
        config = make_config(
            {
                **fields,
                "base_model": str(demo_model_path(ws)),
                "max_steps": 30,
                "eval_steps": 10,
                "save_steps": 10,
                "batch_size": 4,
                "learning_rate": 2e-3,
                "lora_r": 8,
                "lora_alpha": 16,
                "max_length": 256,
                "n_eval_prompts": 2,
                "max_new_tokens": 24,
            }
        )
        state["train_job"] = submit_run(ws, config)
    from backend.workspace import atomic_write_text

    atomic_write_text(marker, json.dumps(state))
    return state["train_job"] if not state["train_job"].startswith("skipped") else None
