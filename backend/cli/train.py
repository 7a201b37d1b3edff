"""`ftstudio train`, `ftstudio sweep` and `ftstudio runs list|show`.

    ftstudio train --dataset support --base-model workspace/models/tiny-llama --max-steps 20
    ftstudio train --config run.yaml --detach
    ftstudio sweep --dataset support --base-model M --lr 1e-4,5e-5 --rank 8,16
    ftstudio runs list --json
    ftstudio runs show RUN_ID --json

Fields come from the run config's defaults, then `--config run.yaml` (any SFTRunConfig field),
then the flags. Everything is validated before a job is queued (exit code 2 on a bad config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from backend.cli import common
from backend.train.config import ConfigError

app = typer.Typer(no_args_is_help=True, help="List and inspect training runs.")


def _load_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        common.fail(f"cannot read {path}: {exc.strerror or exc}", code=2)
    except yaml.YAMLError as exc:
        common.fail(f"{path} is not valid YAML: {exc}", code=2)
    if not isinstance(data, dict):
        common.fail(f"{path} must hold a mapping of run config fields", code=2)
    return data


def _dataset_fields(dataset: str, version: str | None) -> dict[str, Any]:
    """A JSONL file path trains on that file; anything else is a dataset name in the store."""
    from backend.train.launch import dataset_file, file_fields

    if dataset.endswith(".jsonl") and Path(dataset).exists():
        return file_fields(Path(dataset))
    ws = common.workspace()
    store = common.open_store(ws)
    try:
        return dataset_file(store, ws, dataset, version)
    finally:
        store.close()  # the job's ingest reopens it


def build_fields(
    dataset: str | None,
    base_model: str | None,
    method: str | None,
    quant: str | None,
    max_steps: int | None,
    config: Path | None,
    version: str | None = None,
    resolve=None,
) -> dict[str, Any]:
    fields = _load_yaml(config)
    for key, value in (
        ("base_model", base_model),
        ("method", method),
        ("quant", quant),
        ("max_steps", max_steps),
    ):
        if value is not None:
            fields[key] = value
    dataset = dataset or fields.pop("dataset", None)
    version = version or fields.pop("dataset_version", None)
    for key in ("dataset_version_id", "dataset_hash", "data_path"):
        fields.pop(key, None)  # always taken from the dataset itself
    if not dataset:
        common.fail("--dataset is required (a dataset name, or a .jsonl file)", code=2)
    if not fields.get("base_model"):
        common.fail("--base-model is required (a local model folder)", code=2)
    try:
        fields.update(resolve() if resolve else _dataset_fields(dataset, version))
    except ConfigError as exc:
        common.fail(str(exc), code=2)
    return fields


def _summary(run_id: str) -> None:
    from backend.store.runs import get_run

    store = common.try_open_store(common.workspace())
    if store is None:
        return
    try:
        run = get_run(store, run_id)
    finally:
        store.close()
    typer.echo(
        f"run {run_id}: {run['state']}; loss {run['first_loss']} -> {run['last_loss']};"
        f" eval loss {run['eval_loss']}; adapter {run['adapter_path']}"
    )


def train_cmd(
    dataset: str = typer.Option(None, help="Dataset name (latest version) or a .jsonl file."),
    base_model: str = typer.Option(None, help="Local model folder (or hub id)."),
    version: str = typer.Option(None, help="Dataset version number or id (default: latest)."),
    method: str = typer.Option(None, help="Training method (sft)."),
    quant: str = typer.Option(None, help="auto | 4bit | none."),
    max_steps: int = typer.Option(None, help="Stop after N optimiser steps."),
    config: Annotated[Path | None, typer.Option(help="YAML file of run config fields.")] = None,
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
    prefs: str = typer.Option(None, help="Preference set to train on (method dpo)."),
) -> None:
    """Train a LoRA/QLoRA adapter as a background job (waits for it unless --detach)."""
    from backend.train.launch import make_config

    if prefs:  # DPO on a preference set version instead of a dataset
        from backend.cli.prefs import dpo_fields

        if method not in (None, "dpo"):
            common.fail(f"--prefs trains with method dpo, not {method}", code=2)
        fields = build_fields(
            prefs,
            base_model,
            "dpo",
            quant,
            max_steps,
            config,
            version,
            resolve=lambda: dpo_fields(prefs, version),
        )
    else:
        fields = build_fields(dataset, base_model, method, quant, max_steps, config, version)
    try:
        run_config = make_config(fields)
    except ConfigError as exc:
        common.fail(str(exc), code=2)
    status = common.run_job("train", run_config, detach=detach)
    if not detach:
        _summary(status.id)


def sweep_cmd(
    dataset: str = typer.Option(None, help="Dataset name (latest version) or a .jsonl file."),
    base_model: str = typer.Option(None, help="Local model folder (or hub id)."),
    lr: str = typer.Option(None, help="Learning rates, comma-separated."),
    rank: str = typer.Option(None, help="LoRA ranks, comma-separated."),
    batch_size: str = typer.Option(None, help="Batch sizes, comma-separated."),
    epochs: str = typer.Option(None, help="Epoch counts, comma-separated."),
    mode: str = typer.Option("grid", help="grid | random | optuna."),
    trials: int = typer.Option(None, help="random: runs to draw; optuna: trials to train."),
    seed: int = typer.Option(0, help="Seed for random / optuna sampling."),
    quant: str = typer.Option(None, help="auto | 4bit | none."),
    max_steps: int = typer.Option(None, help="Stop each run after N optimiser steps."),
    config: Annotated[Path | None, typer.Option(help="YAML file of shared run fields.")] = None,
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
) -> None:
    """Queue a sweep: a group of runs (grid / random) or one optuna job."""
    from backend.jobs import worker
    from backend.train.sweep import parse_values, submit_optuna, submit_sweep

    base = build_fields(dataset, base_model, None, quant, max_steps, config)
    ws = common.workspace()
    try:
        if mode == "optuna":
            lrs = parse_values("learning_rate", lr) if lr else [1e-5, 1e-3]
            ranks = parse_values("lora_r", rank) if rank else None
            ids = [
                submit_optuna(
                    ws,
                    base,
                    n_trials=trials or 8,
                    seed=seed,
                    lr_range=(min(lrs), max(lrs)),
                    ranks=ranks,
                )
            ]
            group = ids[0]
        else:
            space = {
                name: parse_values(name, text)
                for name, text in (
                    ("learning_rate", lr),
                    ("lora_r", rank),
                    ("batch_size", batch_size),
                    ("epochs", epochs),
                )
                if text
            }
            group, ids = submit_sweep(ws, base, space, mode, trials, seed)
    except ConfigError as exc:
        common.fail(str(exc), code=2)
    worker.ensure_worker(ws)
    typer.echo(f"queued {len(ids)} job(s) in {group}")
    if detach:
        typer.echo("\n".join(ids))
        return
    failed = 0
    for job_id in ids:
        s = common.wait_with_progress(ws, job_id)
        typer.echo(f"{job_id}: {s.state}")
        failed += s.state != "succeeded"
        common.ingest_now(ws)
    if failed:
        common.fail(f"{failed} of {len(ids)} sweep jobs did not succeed")


@app.command("list")
def runs_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every run, oldest first."""
    from backend.store.runs import list_runs

    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        runs = list_runs(store)
    finally:
        store.close()
    if as_json:
        common.emit_json(runs)
        return
    if not runs:
        typer.echo("no runs yet: start one with `ftstudio train --dataset NAME --base-model DIR`")
    for r in runs:
        loss = f"{r['last_loss']:.4f}" if r["last_loss"] is not None else "-"
        typer.echo(f"{r['id']:45} {r['state']:11} loss {loss:8} {r['title']}")


@app.command("show")
def runs_show(run_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One run: state, exact config, losses, evaluation, device, packages, artefacts."""
    from backend.store.runs import RunNotFound, get_run

    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        run = get_run(store, run_id)
    except RunNotFound as exc:
        common.fail(str(exc))
    finally:
        store.close()
    if as_json:
        common.emit_json(run)
        return
    for key in (
        "id",
        "state",
        "method",
        "base_model",
        "dataset",
        "dataset_hash",
        "device",
        "first_loss",
        "last_loss",
        "eval_loss",
        "perplexity",
        "adapter_path",
        "error",
    ):
        typer.echo(f"{key:14} {run.get(key)}")
    typer.echo(f"{'packages':14} {run.get('packages')}")
    typer.echo(f"{'config':14} {run['config']}")
