"""The demo workspace: what a fresh `make run` sets up so a newcomer can walk the whole loop
with no keys and no GPU. Every step is idempotent; the dashboard calls `bootstrap` at start."""

from __future__ import annotations

from backend import action
from backend.action import Ctx
from backend.config import Settings
from backend.jobs import read as jobs
from backend.jobs.status import JobState, JobStatus
from backend.store import jobs as jobs_store
from backend.store import runs as runs_store
from backend.store.db import Store
from backend.synth.actions import seed_demo_dataset
from backend.synth.demo import DEMO_DATASET
from backend.train.demo_model import NOISE_NOTE
from backend.workspace import Workspace

DEMO_MODEL = "tiny-llama"

__all__ = ["NOISE_NOTE", "bootstrap", "demo_model_path"]


def demo_model_path(ws: Workspace):
    return ws.models / DEMO_MODEL


def _jobs_of(ws: Workspace, kind: str) -> list[JobStatus]:
    return [s for s in jobs.list_jobs(ws) if isinstance(s, JobStatus) and s.kind == kind]


def bootstrap(store: Store, ws: Workspace) -> list[str]:
    """Queue what the demo needs and is missing. Returns what was done, for the Overview."""
    done: list[str] = []
    system = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    model_jobs = _jobs_of(ws, "demo-model")
    if not demo_model_path(ws).exists() and not any(
        s.state in (JobState.queued, JobState.running, JobState.succeeded) for s in model_jobs
    ):
        job_id, _ = action.launch(
            system,
            "demo-model",
            {"name": DEMO_MODEL},
            name="demo.model",
            target=DEMO_MODEL,
            start_worker=False,  # the ingestion loop starts one for queued jobs
        )
        done.append(f"queued job {job_id} to build the tiny demo model")
    if seed_demo_dataset(system):
        done.append("imported the sample dataset tasklane-support")
    return done


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
    if runs_store.list_runs(store) or len(jobs_store.list_jobs(store, kind="train", limit=1)):
        state["train_job"] = "skipped: runs already exist"
    else:
        from backend.store.datasets import DatasetNotFound
        from backend.train.actions import dataset_file, start_run
        from backend.train.config import ConfigError

        try:
            fields = dataset_file(store, ws, DEMO_DATASET)
        except (ConfigError, DatasetNotFound):
            return None  # no sample dataset (yet): nothing to train on
        fields = {
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
        system = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
        state["train_job"] = start_run(system, fields, name="demo.train", start_worker=False)
    from backend.workspace import atomic_write_text

    atomic_write_text(marker, json.dumps(state))
    return state["train_job"] if not state["train_job"].startswith("skipped") else None
