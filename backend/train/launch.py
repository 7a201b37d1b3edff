"""Turn a run request into a queued `train` job: resolve the dataset version, write its
examples to a file the job can read (a job never opens DuckDB), validate, then queue.

The dataset file is content-addressed (exports/<name>-v<N>-<hash>.jsonl), so runs and sweeps
on the same version share it and it never changes under a running job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.auth import Actor, require
from backend.jobs import queue
from backend.store.db import Store
from backend.train.config import ConfigError, SFTRunConfig, preflight
from backend.workspace import Workspace


def dataset_file(
    store: Store, ws: Workspace, dataset: str, version: str | int | None = None
) -> dict[str, Any]:
    """Resolve a dataset version and write its JSONL export; returns the spec fields
    (dataset, dataset_version_id, dataset_hash, data_path)."""
    from backend.store.datasets import DatasetNotFound, resolve_version, write_version_jsonl

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


def file_fields(path: Path) -> dict[str, Any]:
    """Spec fields for training straight from a JSONL file (no dataset in the store)."""
    import hashlib

    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"dataset: no file {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "dataset": path.name,
        "dataset_version_id": None,
        "dataset_hash": digest,
        "data_path": str(path),
    }


def make_config(fields: dict[str, Any]) -> SFTRunConfig:
    """Validate fields into a config and run the preflight checks; ConfigError on failure."""
    from backend.jobs.kinds import SpecError, validate_spec

    try:
        config = validate_spec("train", fields)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    preflight(config)
    return config


def submit_run(
    ws: Workspace,
    config: SFTRunConfig | dict[str, Any],
    *,
    group_id: str | None = None,
    actor: Actor | None = None,
) -> str:
    """Validate (pydantic + preflight) and queue a train job; nothing is queued on error.
    `actor` must hold launch_job (None: the trusted shell)."""
    require(actor, "launch_job")
    if isinstance(config, dict):
        config = make_config(config)
    else:
        preflight(config)
    return queue.submit(ws, "train", config, group_id=group_id, actor=actor)
