"""The `ray` executor: a run submitted to a Ray cluster through the Ray Jobs API.

The job's process here (claimed by the worker like any job) submits
`python -m backend.train.rank <workspace as the cluster sees it> <job id>` as a Ray job, with
the submission id `ftstudio-<job id>-a<attempt>` recorded in the job folder (ray.json). It
then supervises it like any ranks (backend.jobs.ranks.supervise): Ray's job status is polled,
the Ray job's log is appended to log.txt, rank 0's progress is mirrored into status.json, and a
cancel is answered by the rank at the end of its step (the cancel file is on the shared path),
or, after the grace period, by `stop_job`. The job folder lives on the shared path
(`FTSTUDIO_RAY_SHARED_PATH`, default: the workspace's own path), so ingestion reads a Ray run
as it reads a local one, and a resumed run continues from its last checkpoint there.

The cluster's nodes run the studio from the same project and Python paths as here (shared
storage, or the same image).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from typing import Any

from backend.config import PROJECT, Settings
from backend.jobs.context import JobContext
from backend.jobs.ranks import clear, supervise
from backend.train.config import RunConfig

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 143}
LOG_EVERY_S = 2.0
PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME")


def client(address: str):
    """A Jobs API client for `address`; RuntimeError naming it when the cluster is not there."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ray raises ConnectionError, ValueError or RuntimeError
        raise RuntimeError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def status_of(jobs: Any, submission_id: str) -> str:
    """A Ray job's status as a plain name (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    status = jobs.get_job_status(submission_id)
    return str(getattr(status, "value", status))


def _stop_earlier(ctx: JobContext, jobs: Any) -> None:
    """An earlier attempt's Ray job still running (its owner died) is stopped first, so two
    attempts never write one job folder."""
    try:
        earlier = json.loads((ctx.dir / "ray.json").read_text())["submission_id"]
    except (OSError, ValueError, KeyError):
        return
    try:
        if status_of(jobs, earlier) not in TERMINAL:
            ctx.log(f"stopping the earlier attempt's Ray job {earlier}")
            jobs.stop_job(earlier)
            deadline = time.time() + 60
            while status_of(jobs, earlier) not in TERMINAL and time.time() < deadline:
                time.sleep(0.5)
    except Exception as exc:  # an unknown id (a restarted cluster) has nothing to stop
        ctx.log(f"earlier Ray job {earlier}: {exc}")


def run_on_ray(ctx: JobContext, spec: RunConfig) -> None:
    """Submit the run to the cluster and supervise it until it ends."""
    settings = Settings()
    address = spec.ray_address or settings.ray_address
    if not address:
        raise RuntimeError("the ray executor needs a cluster address (FTSTUDIO_RAY_ADDRESS)")
    jobs = client(address)
    _stop_earlier(ctx, jobs)
    clear(ctx.dir)
    shared = str(settings.ray_shared_path or ctx.workspace.root)
    submission_id = f"ftstudio-{ctx.id}-a{ctx.status.attempt}"
    env = {name: value for name in PASSED_ENV if (value := os.environ.get(name)) is not None}
    env.update(
        FTSTUDIO_WORKSPACE=shared,
        FTSTUDIO_RAY_ADDRESS=address,
        FTSTUDIO_DEVICE=settings.device,
        PYTHONPATH=str(PROJECT),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS") or "1",
    )
    entrypoint = shlex.join([sys.executable, "-m", "backend.train.rank", shared, ctx.id])
    jobs.submit_job(
        entrypoint=entrypoint,
        submission_id=submission_id,
        runtime_env={"env_vars": env},
        entrypoint_num_gpus=1 if settings.device == "cuda" else 0,
        metadata={"studio_job": ctx.id},
    )
    (ctx.dir / "ray.json").write_text(
        json.dumps({"address": address, "submission_id": submission_id, "shared_path": shared})
    )
    ctx.event(
        f"submitted to the Ray cluster at {address} as {submission_id}",
        executor="ray",
        submission_id=submission_id,
    )
    logs = _LogTail(ctx, jobs, submission_id)
    seen: list[str] = []

    def poll() -> int | None:
        state = status_of(jobs, submission_id)
        if not seen or seen[-1] != state:  # PENDING (waiting for the cluster), RUNNING, ...
            seen.append(state)
            ctx.log(f"Ray job {submission_id}: {state}")
        logs.pull()
        if state in TERMINAL:
            logs.pull(force=True)
            return EXIT_CODES[state]
        return None

    try:
        supervise(ctx, poll, lambda: jobs.stop_job(submission_id), f"Ray job {submission_id}")
    except RuntimeError as exc:
        message = jobs.get_job_info(submission_id).message or ""
        raise RuntimeError(f"{exc} (Ray: {message})" if message else str(exc)) from None


class _LogTail:
    """Appends what the Ray job printed since the last pull to the job's log.txt."""

    def __init__(self, ctx: JobContext, jobs: Any, submission_id: str):
        self.ctx, self.jobs, self.id = ctx, jobs, submission_id
        self.seen = 0
        self.last = 0.0

    def pull(self, force: bool = False) -> None:
        if not force and time.time() - self.last < LOG_EVERY_S:
            return
        self.last = time.time()
        try:
            text = self.jobs.get_job_logs(self.id)
        except Exception:  # the log is a convenience; the job's state does not depend on it
            return
        if len(text) > self.seen:
            with open(self.ctx.dir / "log.txt", "a", encoding="utf-8") as fh:
                fh.write(text[self.seen :])
            self.seen = len(text)
