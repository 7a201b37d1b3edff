"""Training actions: the only way a page or a CLI command starts, sweeps, resumes or cancels a
training run.

Each checks the role first (launch_job, or cancel_job to cancel), validates the run fields
(pydantic, then the preflight: model folder, data file, target modules, adapter) before
anything is queued, and queues through the action kernel, so the job and its audit row appear
together and a worker is started. Typed paths from a form are confined to the allowed folders
(`form_fields`); fields built by code (the CLI, the Preferences page, retraining plans) are
taken as given.

    job_id = start_run(ctx, {"base_model": ..., **data_fields(ctx, "support")})
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx
from backend.auth import require
from backend.jobs import actions as job_actions
from backend.jobs import queue, read, worker
from backend.jobs.status import JobState, JobStatus
from backend.security import allowed_roots, confine_any
from backend.store import Store
from backend.store.datasets import DatasetNotFound, resolve_version, write_version_jsonl
from backend.train.config import ConfigError, file_fields, make_config
from backend.train.fit import check_fits
from backend.train.reward_actions import vet_rewards
from backend.train.sweep import OptunaSweepSpec, expand
from backend.workspace import Workspace

TRAIN_KINDS = ("train", "sweep-optuna")
CANCEL_GRACE_S = 300.0  # a cancelled run saves a checkpoint first; SIGKILL only after this


def dataset_file(
    store: Store, ws: Workspace, dataset: str, version: str | int | None = None
) -> dict[str, Any]:
    """Resolve a dataset version and write its JSONL export; returns the spec fields
    (dataset, dataset_version_id, dataset_hash, data_path). The file is content-addressed
    (exports/<name>-v<N>-<hash>.jsonl): runs on one version share it and it never changes
    under a running job."""
    try:
        v = resolve_version(store, dataset, version)
    except DatasetNotFound as exc:
        raise ConfigError(f"dataset: {exc}") from None
    if not v["n_examples"]:
        raise ConfigError(f"dataset: {dataset!r} version {v['number']} has no examples")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in v["dataset"])
    path = ws.exports / f"{safe}-v{v['number']}-{v['hash'][:12]}.jsonl"
    if not path.exists():
        write_version_jsonl(store, v["id"], path)
    return {
        "dataset": v["dataset"],
        "dataset_version_id": v["id"],
        "dataset_hash": v["hash"],
        "data_path": str(path),
    }


def data_fields(ctx: Ctx, dataset: str, version: str | int | None = None) -> dict[str, Any]:
    """The data fields of a run: a dataset version in the store, or (for the shell only) an
    existing .jsonl file. Writes nothing but the content-addressed export the run reads."""
    require(ctx.actor, "launch_job")
    if ctx.actor is None and dataset.endswith(".jsonl") and Path(dataset).is_file():
        return file_fields(Path(dataset))
    if ctx.store is None:
        raise ActionError(f"dataset {dataset!r}: reading it needs the database")
    return dataset_file(ctx.store, ctx.ws, dataset, version)


def form_fields(
    ctx: Ctx, typed: dict[str, Any], dataset: str, version: str | None = None
) -> dict[str, Any]:
    """Run fields from a form: `base_model` confined to the workspace or the configured local
    model's folder, `init_adapter` to the workspace (UnsafePathError says why a typed path is
    refused), and the data fields of the chosen dataset version."""
    require(ctx.actor, "launch_job")
    fields = dict(typed)
    roots = allowed_roots(ctx.settings, ctx.ws, models=True)
    fields["base_model"] = str(confine_any(str(fields.get("base_model") or ""), roots))
    if fields.get("init_adapter"):
        ws_roots = allowed_roots(ctx.settings, ctx.ws)
        fields["init_adapter"] = str(confine_any(fields["init_adapter"], ws_roots))
    fields.update(data_fields(ctx, dataset, version))
    return fields


def start_run(
    ctx: Ctx,
    fields: dict,
    *,
    group_id: str | None = None,
    name: str = "train.start",
    start_worker: bool = True,
) -> str:
    """Validate a run's fields and queue its `train` job (audit row `name`); returns the job
    id. Nothing is queued on a refusal or a bad config (ConfigError names the field).
    `start_worker` False leaves the job for a caller that runs it itself (tests, benches)."""
    require(ctx.actor, "launch_job")
    config = make_config(fields)
    if config.method == "grpo":  # reward files exist and their functions fit, before queueing
        vet_rewards(ctx, config.rewards, config.judge_base_url)
    check_fits(config)  # a run that cannot fit is refused with the settings that would
    job_id, _ = action.launch(
        ctx,
        "train",
        config,
        name=name,
        target=config.dataset_version_id or config.dataset,
        group_id=group_id,
        detail={"method": config.method, "base_model": config.base_model},
        start_worker=start_worker,
    )
    return job_id


def start_sweep(
    ctx: Ctx,
    base: dict[str, Any],
    space: dict[str, list],
    mode: str = "grid",
    n: int | None = None,
    seed: int = 0,
) -> tuple[str, list[str]]:
    """Queue one run per point of `space` (grid, or `n` random points) as one group, with one
    `train.sweep` audit row. Every run is validated before any is queued. Returns
    (group_id, job ids)."""
    require(ctx.actor, "launch_job")
    configs = [make_config(f) for f in expand(base, space, mode, n, seed)]
    for config in configs:
        check_fits(config)
    for config in configs[:1]:  # one sweep, one set of rewards
        if config.method == "grpo":
            vet_rewards(ctx, config.rewards, config.judge_base_url)
    if not configs:
        raise ConfigError("the sweep has no runs: give at least one value per field")
    group = f"sweep-{uuid.uuid4().hex[:8]}"
    staged: list[queue.Staged] = []
    try:
        for config in configs:
            staged.append(queue.stage(ctx.ws, "train", config, group_id=group, actor=ctx.actor))
        ids = [s.job_id for s in staged]
        if ctx.store is not None:  # without it, each job's status names who queued it
            detail = {"jobs": ids, "mode": mode, "space": space}
            action.record(ctx, "launch_job", "train.sweep", group, detail)
    except BaseException:
        for s in staged:
            s.discard()
        raise
    for s in staged:
        s.commit()
    worker.ensure_worker(ctx.ws)
    return group, ids


def start_optuna(
    ctx: Ctx,
    base: dict[str, Any],
    *,
    n_trials: int = 8,
    lr_range: tuple[float, float] = (1e-5, 1e-3),
    ranks: list[int] | None = None,
    seed: int = 0,
) -> str:
    """Validate the shared run fields, then queue one optuna sweep job (audit row
    `train.optuna`); returns its job id."""
    require(ctx.actor, "launch_job")
    config = make_config(base)
    if config.eval_split <= 0:
        raise ConfigError("eval_split: an optuna sweep prunes on eval loss; hold some out")
    check_fits(config.model_copy(update={"lora_r": max(ranks or [8, 16, 32])}))
    spec = OptunaSweepSpec(
        base=config.model_dump(mode="json"),
        n_trials=n_trials,
        lr_range=lr_range,
        ranks=ranks or [8, 16, 32],
        seed=seed,
    )
    job_id, _ = action.launch(
        ctx,
        "sweep-optuna",
        spec,
        name="train.optuna",
        target=config.dataset_version_id or config.dataset,
        detail={"n_trials": n_trials},
    )
    return job_id


def _training_job(ctx: Ctx, run_id: str) -> JobStatus:
    try:
        status = read.get(ctx.ws, run_id)
    except read.JobError as exc:
        raise ActionError(str(exc)) from None
    if status.kind not in TRAIN_KINDS:
        raise ActionError(f"job {run_id} is a {status.kind} job, not a training run")
    return status


def resume_run(ctx: Ctx, run_id: str) -> JobStatus:
    """Queue an interrupted, failed or cancelled run again; it continues from its last
    checkpoint. A run queued or running already answers AlreadyDone. Audited as
    `job.resume` from the job folder."""
    require(ctx.actor, "launch_job")
    _training_job(ctx, run_id)
    return job_actions.resume(ctx, run_id)


def cancel_run(ctx: Ctx, run_id: str) -> JobStatus:
    """Cancel a run: a queued one never starts; a running one saves a checkpoint at the end of
    its step and stops (the page does not wait for it). A run that ended, or one already
    asked to stop, answers AlreadyDone. Audited as `job.cancel` from the job folder."""
    require(ctx.actor, "cancel_job")
    status = _training_job(ctx, run_id)
    running = status.state == JobState.running
    if running and (ctx.ws.job_dir(run_id) / "cancel").exists():
        raise AlreadyDone(f"run {run_id} is already stopping at its next checkpoint", status)
    return job_actions.cancel(ctx, run_id, grace_s=CANCEL_GRACE_S, background=running)


def rerun_run(ctx: Ctx, run_id: str, *, start_worker: bool = True) -> tuple[str, list[str]]:
    """Train `run_id` again from its stored record alone: its exact config and seed, its
    dataset version (checked by content hash) and its base model (checked by content hash).
    A changed dataset or model is refused (ActionError names which); package versions that
    differ from the record come back as warnings, and are kept with the re-run (audit row
    `train.rerun`). Returns (new run id, warnings)."""
    from backend.store import lineage
    from backend.store.runs import RunNotFound, get_run
    from backend.train.lineage import model_hash, package_drift
    from backend.train.runtime import package_versions

    require(ctx.actor, "launch_job")
    store = action.need_store(ctx)
    try:
        run = get_run(store, run_id)
    except RunNotFound as exc:
        raise ActionError(str(exc)) from None
    fields = dict(run["config"])
    recorded = run.get("base_model_hash")
    now = model_hash(fields["base_model"])
    if recorded and now != recorded:
        raise ActionError(
            f"run {run_id}: base model {fields['base_model']} changed since the run "
            f"(content hash {str(now)[:12]} is not the recorded {recorded[:12]})"
        )
    warnings = [] if recorded else ["the run recorded no base model hash; not checked"]
    if fields.get("dataset_version_id"):
        data = dataset_file(store, ctx.ws, fields["dataset"], fields["dataset_version_id"])
    else:
        data = file_fields(Path(fields["data_path"]))
    if fields.get("dataset_hash") and data["dataset_hash"] != fields["dataset_hash"]:
        raise ActionError(
            f"run {run_id}: dataset {fields['dataset']!r} no longer has the content hash the "
            f"run trained on ({fields['dataset_hash'][:12]})"
        )
    fields.update(data)
    warnings += package_drift(run.get("packages"), package_versions())
    config = make_config(fields)
    job_id, _ = action.launch(
        ctx,
        "train",
        config,
        name="train.rerun",
        target=run_id,
        fn=lambda cur, new_id: lineage.record_rerun(cur, new_id, run_id, warnings),
        detail={"rerun_of": run_id, "warnings": warnings},
        start_worker=start_worker,
    )
    return job_id, warnings
