"""`ftstudio train`, `ftstudio sweep` and `ftstudio runs list|show|rerun`.

    ftstudio train --dataset support --base-model workspace/models/tiny-llama --max-steps 20
    ftstudio train --config run.yaml --detach
    ftstudio train --dataset support --base-model M --batch-size 8 --dry-run --json
    ftstudio train --method kto --dataset support --feedback ratings --base-model M
    ftstudio train --dataset math --base-model M --reward 'regex:[0-9]+$@1' --reward reference
    ftstudio sweep --dataset support --base-model M --lr 1e-4,5e-5 --rank 8,16
    ftstudio runs list --json
    ftstudio runs show RUN_ID --json
    ftstudio runs rerun RUN_ID --json   # train again from the record; max_loss_diff

Fields come from the run config's defaults, then `--config run.yaml` (any field of the
method's run config), then the flags. Everything is validated before a job is queued (exit
code 2 on a bad config). Runs and sweeps are queued by backend.train.actions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from backend.action import Ctx
from backend.cli import common
from backend.train import actions

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


def _is_file(dataset: str | None) -> bool:
    return bool(dataset) and dataset.endswith(".jsonl") and Path(dataset).is_file()


@contextmanager
def _context(needs_store: bool) -> Iterator[Ctx]:
    """The shell's action context: with the store when the command reads a dataset from it
    (exits naming the process that holds it otherwise), else with the store only when this
    process can hold it (beside a dashboard, the job folder records the launch)."""
    if needs_store:
        with common.opened() as ctx:
            yield ctx
        return
    store = common.try_open_store(common.workspace())
    try:
        yield common.shell(store)
    finally:
        if store is not None:
            store.close()


def build_fields(
    dataset: str | None,
    base_model: str | None,
    method: str | None,
    quant: str | None,
    max_steps: int | None,
    config: Path | None,
    version: str | None = None,
) -> tuple[dict[str, Any], str, str | None]:
    """Run fields from the YAML file and the flags; returns (fields, dataset, version) with
    the data fields still to resolve."""
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
    return fields, dataset, version


EXECUTOR_HELP = "local | accelerate | ray (default local): where the run trains."
RAY_HELP = "Ray Jobs API address for --executor ray (default: FTSTUDIO_RAY_ADDRESS)."


def compute_fields(
    fields: dict[str, Any], executor: str | None, processes: int | None, ray_address: str | None
) -> None:
    """The executor flags into the run fields (a flag overrides the YAML file)."""
    for key, value in (
        ("executor", executor),
        ("processes", processes),
        ("ray_address", ray_address),
    ):
        if value is not None:
            fields[key] = value


def _queue(
    fields: dict[str, Any],
    dataset: str,
    version: str | None,
    start: Callable[[Ctx, dict[str, Any]], Any],
    resolve: Callable[[], dict[str, Any]] | None = None,
) -> Any:
    """Resolve the data fields and call `start(ctx, fields)`; a bad config exits with 2."""
    if resolve is not None:
        fields.update(resolve())  # opens and closes the store itself
    with _context(needs_store=resolve is None and not _is_file(dataset)) as ctx:
        try:
            if resolve is None:
                fields.update(actions.data_fields(ctx, dataset, version))
            return start(ctx, fields)
        except ValueError as exc:  # ConfigError, ActionError, PermissionDenied
            common.fail(str(exc), code=2)


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


def _dry_run(ctx: Ctx, fields: dict[str, Any]) -> dict[str, Any]:
    """The validated run and its memory estimate; nothing is queued."""
    from backend.train.config import make_config
    from backend.train.estimate import suggestions
    from backend.train.fit import advice, for_run

    config = make_config(fields)
    found = for_run(config)
    out: dict[str, Any] = {"config": config.model_dump(mode="json"), "queued": False}
    if found is None:
        out["estimate"] = None
        out["note"] = f"{config.base_model} is not a local model folder: no estimate"
        return out
    est, shape, plan = found
    out["estimate"] = est.as_dict()
    out["suggestions"] = [] if est.fits else suggestions(shape, plan, est.capacity or 0)
    out["advice"] = None if est.fits else advice(est, shape, plan)
    return out


def _print_estimate(out: dict[str, Any]) -> None:
    from backend.train.estimate import human

    est = out["estimate"]
    if est is None:
        typer.echo(out["note"])
        return
    typer.echo(f"memory estimate on {est['device']} (nothing queued):")
    for name, value in est["parts"].items():
        typer.echo(f"  {name:12} {human(value):>10}")
    typer.echo(f"  {'total':12} {human(est['total']):>10}")
    typer.echo(
        f"  activations {human(est['activations_without_checkpointing'])} without gradient "
        f"checkpointing, {human(est['activations_with_checkpointing'])} with"
    )
    typer.echo(
        f"  device has {human(est['capacity'])}: " + ("fits" if est["fits"] else "does NOT fit")
    )
    if out.get("advice"):
        typer.echo(out["advice"])


def train_cmd(
    dataset: str = typer.Option(None, help="Dataset name (latest version) or a .jsonl file."),
    base_model: str = typer.Option(None, help="Local model folder (or hub id)."),
    version: str = typer.Option(None, help="Dataset version number or id (default: latest)."),
    method: str = typer.Option(None, help="Training method: sft | dpo (default sft)."),
    quant: str = typer.Option(None, help="auto | 4bit | none."),
    max_steps: int = typer.Option(None, help="Stop after N optimiser steps."),
    config: Annotated[Path | None, typer.Option(help="YAML file of run config fields.")] = None,
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
    prefs: str = typer.Option(None, help="Preference set to train on (method dpo)."),
    executor: str = typer.Option(None, help=EXECUTOR_HELP),
    processes: int = typer.Option(None, help="Processes for --executor accelerate."),
    ray_address: str = typer.Option(None, help=RAY_HELP),
    feedback: str = typer.Option(
        None, help="Feedback set (thumbs ratings, kto-jsonl imports) to train on (method kto)."
    ),
    reward: Annotated[
        list[str] | None,
        typer.Option(
            "--reward",
            help="GRPO reward SPEC[@WEIGHT], repeatable: regex:PATTERN, json-schema:FILE, "
            "reference, reference:numeric:TOL, length:MIN-MAX, judge:RUBRIC_FILE, "
            "file:rewards/NAME.py:FUNCTION.",
        ),
    ] = None,
    batch_size: int = typer.Option(None, help="Examples per device per step."),
    max_length: int = typer.Option(None, help="Longest example in tokens."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and print the memory estimate; queue nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: print JSON."),
) -> None:
    """Train a LoRA/QLoRA adapter as a background job (waits for it unless --detach).
    KTO trains on --dataset's review verdicts and/or a --feedback set; GRPO on --dataset's
    prompts with --reward functions."""
    resolve = None
    if reward:
        if method not in (None, "grpo"):
            common.fail(f"--reward is for method grpo, not {method}", code=2)
        method = "grpo"
    if feedback or method == "kto":  # KTO on verdicts and ratings instead of a dataset's rows
        from backend.cli.prefs import kto_fields

        if method not in (None, "kto"):
            common.fail(f"--feedback trains with method kto, not {method}", code=2)
        if version:
            common.fail("--version does not apply to KTO: it reads every verdict", code=2)
        method = "kto"
        resolve = partial(kto_fields, dataset, feedback)
        dataset = dataset or feedback
    if prefs:  # DPO on a preference set version instead of a dataset
        from backend.cli.prefs import dpo_fields

        if method not in (None, "dpo"):
            common.fail(f"--prefs trains with method dpo, not {method}", code=2)
        method, dataset = "dpo", prefs
        resolve = partial(dpo_fields, prefs, version)
    fields, dataset, version = build_fields(
        dataset, base_model, method, quant, max_steps, config, version
    )
    if reward:
        fields["rewards"] = list(reward)
    compute_fields(fields, executor, processes, ray_address)
    for key, value in (("batch_size", batch_size), ("max_length", max_length)):
        if value is not None:
            fields[key] = value
    if dry_run:
        out = _queue(fields, dataset, version, _dry_run, resolve)
        if as_json:
            common.emit_json(out)
        else:
            _print_estimate(out)
        if out["estimate"] is not None and not out["estimate"]["fits"]:
            raise typer.Exit(1)
        return
    job_id = _queue(fields, dataset, version, actions.start_run, resolve)
    if detach:
        typer.echo(f"queued train job {job_id}")
        return
    common.follow(job_id)
    _summary(job_id)


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
    executor: str = typer.Option(None, help=EXECUTOR_HELP),
    processes: int = typer.Option(None, help="Processes for --executor accelerate."),
    ray_address: str = typer.Option(None, help=RAY_HELP),
) -> None:
    """Queue a sweep: a group of runs (grid / random) or one optuna job."""
    from backend.train.sweep import parse_values

    base, dataset, version = build_fields(dataset, base_model, None, quant, max_steps, config)
    compute_fields(base, executor, processes, ray_address)
    try:
        lrs = parse_values("learning_rate", lr) if lr else None
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
    except ValueError as exc:
        common.fail(str(exc), code=2)

    def start(ctx: Ctx, fields: dict[str, Any]) -> tuple[str, list[str]]:
        if mode != "optuna":
            return actions.start_sweep(ctx, fields, space, mode, trials, seed)
        job_id = actions.start_optuna(
            ctx,
            fields,
            n_trials=trials or 8,
            seed=seed,
            lr_range=(min(lrs), max(lrs)) if lrs else (1e-5, 1e-3),
            ranks=space.get("lora_r"),
        )
        return job_id, [job_id]

    group, ids = _queue(base, dataset, version, start)
    typer.echo(f"queued {len(ids)} job(s) in {group}")
    if detach:
        typer.echo("\n".join(ids))
        return
    ws = common.workspace()
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
    from backend.export.ollama import serve_command
    from backend.store.exports import list_exports
    from backend.store.runs import RunNotFound, get_run

    ws = common.workspace()
    common.ingest_now(ws)
    store = common.open_store(ws)
    try:
        run = get_run(store, run_id)
        run["exports"] = list_exports(store, run_id)
    except RunNotFound as exc:
        common.fail(str(exc))
    finally:
        store.close()
    run["vllm_command"] = serve_command(run)
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
        "executor",
        "world_size",
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
    typer.echo(f"{'vllm':14} {run['vllm_command']}")
    for e in run["exports"]:
        mark = "verified" if e["verified"] else "FAILED"
        typer.echo(f"{'export':14} {e['format']} {e['quant'] or ''} {mark} {e['path']}")


@app.command("rerun")
def runs_rerun(
    run_id: str,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    detach: bool = typer.Option(False, help="Queue and return without waiting."),
) -> None:
    """Train a run again from its record (config, dataset version, base model, seed) and
    compare the per-step loss with the original's (max_loss_diff)."""
    from backend.train.reruns import rerun_report

    with common.opened() as ctx:
        try:
            new_id, warnings = actions.rerun_run(ctx, run_id)
        except ValueError as exc:  # ActionError, ConfigError, PermissionDenied
            common.fail(str(exc), code=2)
    for w in warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    if detach:
        common.out({"run_id": new_id, "rerun_of": run_id, "warnings": warnings}, as_json)
        return
    status = common.follow(new_id, quiet=as_json, check=False)
    ws = common.workspace()
    store = common.open_store(ws)
    try:
        report = rerun_report(store, new_id) or {}
    finally:
        store.close()
    report["state"] = str(status.state)
    common.out(report, as_json)
    if status.state != "succeeded":
        common.fail(f"re-run {new_id} {status.state}: {status.error or ''}".rstrip(": "))
