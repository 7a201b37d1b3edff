"""Tracker mirroring, off by default: at the end of a training run, its params (the exact
config, dataset hash, base model hash, package versions), every metric it logged (per step)
and its artefacts (the adapter, its evaluation and generations) are copied to MLflow
(FTSTUDIO_MLFLOW_URI: a local folder such as ./mlruns, a file:// URI, or a tracking
server; MLflow 3 keeps its file store in maintenance mode, so the job opts in to it)
and/or to a W&B run in offline mode (FTSTUDIO_WANDB_MODE=offline, written under
workspace/wandb; `wandb sync` uploads it later). The studio stays the record: a tracker that
fails gives a warning event, never a failed run.

Called by the train job (backend.train.common.run_method); `mlflow` and `wandb` are imported
only when mirroring is on (`pip install 'finetune-studio[trackers]'`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from backend.config import Settings
from backend.jobs.context import JobContext

EXPERIMENT = "ftstudio"
MAX_PARAM = 500  # MLflow keeps at most this many characters of a param value


def flat_params(record: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts flattened to dotted keys; lists and values as text.

    >>> flat_params({"config": {"lora_r": 8}, "packages": {"trl": "1.16"}})
    {'config.lora_r': '8', 'packages.trl': '1.16'}
    """
    out: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}."))
        elif value is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            out[name] = text[:MAX_PARAM]
    return out


def job_metrics(job_dir: Path) -> list[dict[str, Any]]:
    """Every metric line the job wrote ({step, name, value, t})."""
    path = job_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mlflow(uri: str, run_id: str, params: dict, metrics: list[dict], artefacts: list) -> str:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    if "://" not in uri and not uri.startswith(("databricks", "sqlite")):
        uri = Path(uri).expanduser().resolve().as_uri()  # a plain folder: a local file store
    if uri.startswith("file:"):  # MLflow 3 keeps its file store only on request
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(EXPERIMENT)
    run = client.create_run(exp_id, run_name=run_id, tags={"ftstudio.run_id": run_id})
    rid = run.info.run_id
    items = list(params.items())
    for i in range(0, len(items), 100):  # log_batch takes at most 100 params a call
        client.log_batch(rid, params=[Param(k, v) for k, v in items[i : i + 100]])
    rows = [
        Metric(m["name"], float(m["value"]), int(m["t"] * 1000), int(m["step"])) for m in metrics
    ]
    for i in range(0, len(rows), 1000):
        client.log_batch(rid, metrics=rows[i : i + 1000])
    client.log_batch(rid, tags=[RunTag("ftstudio.dataset_hash", params.get("dataset_hash", ""))])
    for path, where in artefacts:
        if path.is_dir():
            client.log_artifacts(rid, str(path), where)
        elif path.is_file():
            client.log_artifact(rid, str(path), where)
    client.set_terminated(rid)
    return rid


def _wandb(folder: Path, run_id: str, params: dict, metrics: list[dict], artefacts: list) -> str:
    import wandb

    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        mode="offline",
        dir=str(folder),
        project=EXPERIMENT,
        name=run_id,
        id=run_id.replace(":", "-")[-64:],
        config=params,
        reinit="create_new",
    )
    try:
        by_step: dict[int, dict[str, float]] = {}
        for m in metrics:
            by_step.setdefault(int(m["step"]), {})[m["name"]] = float(m["value"])
        for step in sorted(by_step):
            run.log(by_step[step], step=step)
        art = wandb.Artifact(f"adapter-{run.id}", type="model")
        for path, where in artefacts:
            if path.is_dir():
                art.add_dir(str(path), name=where)
            elif path.is_file():
                art.add_file(str(path), name=f"{where}/{path.name}")
        run.log_artifact(art)
        return run.dir
    finally:
        run.finish()


def mirror_run(ctx: JobContext, record: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Mirror one finished run to the trackers switched on in Settings; returns where each
    copy went ({"mlflow": run id, "wandb": folder}). A tracker's error is a warning event."""
    cfg = Settings()
    if not cfg.mlflow_uri and cfg.wandb_mode != "offline":
        return {}
    params = flat_params(record)
    metrics = job_metrics(ctx.dir)
    artefacts = [
        (run_dir / "adapter", "adapter"),
        (ctx.dir / "run_eval.jsonl", "eval"),
        (ctx.dir / "generations.jsonl", "eval"),
    ]
    done: dict[str, str] = {}
    if cfg.mlflow_uri:
        try:
            done["mlflow"] = _mlflow(cfg.mlflow_uri, ctx.id, params, metrics, artefacts)
            ctx.event(f"mirrored to MLflow run {done['mlflow']}", tracker="mlflow")
        except Exception as exc:  # the studio keeps the record; the mirror is a copy
            ctx.event(f"MLflow mirroring failed: {type(exc).__name__}: {exc}", level="warning")
    if cfg.wandb_mode == "offline":
        try:
            done["wandb"] = _wandb(ctx.workspace.root / "wandb", ctx.id, params, metrics, artefacts)
            ctx.event(f"mirrored to a W&B offline run in {done['wandb']}", tracker="wandb")
        except Exception as exc:
            ctx.event(f"W&B mirroring failed: {type(exc).__name__}: {exc}", level="warning")
    return done
