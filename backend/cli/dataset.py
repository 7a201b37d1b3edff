"""`ftstudio dataset ...` and `ftstudio generate ...`.

ftstudio dataset create NAME [--format messages|prompt-completion] [--recipe recipe.json]
ftstudio dataset list [--json]
ftstudio dataset show NAME [--json]        versions oldest first: id, created, examples, hash
ftstudio dataset import NAME FILE [--skip-invalid] [--json]
                             JSONL, CSV, Parquet or a HF save_to_disk folder; all or nothing,
                             or with --skip-invalid the valid rows, each skipped row printed
ftstudio dataset export NAME --format messages-jsonl|prompt-completion-jsonl|parquet|hf
                             --out PATH [--version N] [--overwrite] [--json]
ftstudio generate --dataset NAME --provider openai|local --base-url URL --model M
                  --topics "a,b,c" --per-topic K --concurrency C [--json] [--detach]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from backend.action import AlreadyDone
from backend.cli import common

app = typer.Typer(no_args_is_help=True, help="Create, list, show, import and export datasets.")


@app.command("create")
def create(
    name: str,
    format: str = typer.Option("messages", "--format", help="messages or prompt-completion."),
    recipe: Path = typer.Option(None, help="A recipe JSON file."),  # noqa: B008
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an empty dataset (optionally with a recipe)."""
    from backend.synth import actions
    from backend.synth.recipe import Recipe

    rec = None
    if recipe is not None:
        try:
            rec = Recipe.model_validate(json.loads(recipe.read_text())).model_dump(mode="json")
        except (OSError, ValueError) as exc:
            common.fail(f"recipe {recipe}: {exc}", code=2)
    with common.opened(ingest=False) as ctx:
        try:
            ds = actions.create_dataset(ctx, name, format=format, recipe=rec)
        except ValueError as exc:
            common.fail(str(exc))
    common.out(ds, as_json, f"created dataset {ds['name']} ({ds['id']})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every dataset with its version count and latest size."""
    from backend.store import datasets as dstore

    with common.opened() as ctx:
        rows = dstore.list_datasets(ctx.store)
    if as_json:
        common.emit_json(rows)
        return
    if not rows:
        typer.echo("no datasets yet: `ftstudio dataset import NAME FILE` or `ftstudio generate`")
    for r in rows:
        typer.echo(
            f"{r['name']:30} {r['format']:18} {r['versions']:3} versions {r['examples']:6} examples"
        )


def show_dict(store, name: str) -> dict:
    """A dataset and its versions, oldest first (what `dataset show --json` prints)."""
    from backend.store import datasets as dstore

    ds = dstore.get_dataset(store, name)
    versions = [
        {
            "id": v["id"],
            "number": v["number"],
            "created": v["created"],
            "examples": v["n_examples"],
            "hash": v["hash"],
            "parent_version_id": v["parent_version_id"],
            "note": v["note"],
            "skipped": v["skipped"],
        }
        for v in dstore.list_versions(store, name)
    ]
    return {**ds, "versions": versions}


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One dataset: its recipe and versions (oldest first)."""
    from backend.store.datasets import DatasetNotFound

    with common.opened() as ctx:
        try:
            data = show_dict(ctx.store, name)
        except DatasetNotFound as exc:
            common.fail(str(exc))
    if as_json:
        common.emit_json(data)
        return
    typer.echo(f"{data['name']} ({data['id']}, {data['format']})")
    for v in data["versions"]:
        typer.echo(
            f"  v{v['number']:<3} {v['created'][:19]} {v['examples']:6} examples "
            f"{v['hash'][:12]}  {v['note'] or ''}"
        )
    if not data["versions"]:
        typer.echo("  no versions yet")


@app.command("import")
def import_(
    name: str,
    file: Path,
    create: bool = typer.Option(True, help="Create the dataset when missing."),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Store the valid rows and skip the flawed ones (each printed with its line and "
        "reason, and kept beside the version). Without it the import is all or nothing.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a file as a new version; all or nothing, bad rows named (or --skip-invalid)."""
    from backend.synth import actions

    with common.opened(ingest=False) as ctx:
        try:
            v = actions.import_file(ctx, name, file, create=create, skip_invalid=skip_invalid)
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except ValueError as exc:
            common.fail(str(exc))
    common.out(
        v,
        as_json,
        f"imported {v['n_examples']} examples into {name} v{v['number']} (hash {v['hash'][:12]})",
    )
    skipped = v.get("skipped")
    if skipped and not as_json:
        typer.echo(f"skipped {skipped['invalid']} invalid {skipped['unit']}s of {skipped['file']}:")
        for row in skipped["rows"]:
            typer.echo(f"  {skipped['unit']} {row['line']}: {row['reason']}")
        if skipped["invalid"] > len(skipped["rows"]):
            typer.echo(f"  (and {skipped['invalid'] - len(skipped['rows'])} more)")


@app.command("export")
def export(
    name: str,
    format: str = typer.Option(
        ..., "--format", help="messages-jsonl, prompt-completion-jsonl, parquet or hf."
    ),
    out: Path = typer.Option(..., "--out", help="File or folder to write."),  # noqa: B008
    version: str = typer.Option(None, help="Version number or id (default: latest)."),
    overwrite: bool = typer.Option(
        False, help="Replace an existing file, or a folder an earlier export made."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Export a version for training (TRL / HF datasets)."""
    from backend.synth import actions

    with common.opened(ingest=False) as ctx:
        try:
            info = actions.export_version(
                ctx, name, format, out, version=version, overwrite=overwrite
            )
        except ValueError as exc:
            common.fail(str(exc))
    common.out(
        info,
        as_json,
        f"wrote {info['examples']} examples of {name} v{info['version']} to {info['path']}",
    )


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def generate(
    dataset: str = typer.Option(..., help="Dataset to add to (created when missing)."),
    provider: str = typer.Option(None, help="openai or local (default: the recipe's)."),
    base_url: str = typer.Option(
        None,
        help="OpenAI-compatible base URL (default: "
        "OPENAI_BASE_URL). The configured key (OPENAI_API_KEY) goes only to that one.",
    ),
    api_key: str = common.API_KEY_OPTION,
    model: str = typer.Option(None, help="Endpoint model name or local model folder."),
    topics: str = typer.Option(None, help="Comma-separated topics to cover."),
    per_topic: int = typer.Option(None, help="Examples per topic."),
    concurrency: int = typer.Option(8, help="Requests in flight at once."),
    rpm: float = typer.Option(None, help="Most requests per minute."),
    task: str = typer.Option(None, help="The task, in plain words."),
    system_prompt: str = typer.Option(None, help="System prompt of every example."),
    temperature: float = typer.Option(None, help="Sampling temperature."),
    qc_share: float = typer.Option(0.07, help="Share marked for human QC (0.05-0.10)."),
    max_retries: int = typer.Option(4, help="Retries on 429/5xx/timeouts."),
    timeout: float = typer.Option(60.0, help="Per-request timeout in seconds."),
    detach: bool = typer.Option(False, help="Queue and return."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Generate examples for a dataset from its recipe (options override the recipe)."""
    from backend.jobs import read as jobs
    from backend.store import synth as sstore
    from backend.synth import actions

    changes = {
        "provider": provider,
        "model": model,
        "topics": _split(topics),
        "per_topic": per_topic,
        "task": task,
        "system_prompt": system_prompt,
        "temperature": temperature,
    }
    with common.opened(ingest=False) as ctx:
        try:
            job_id = actions.generate(
                ctx,
                dataset,
                changes=changes,
                base_url=base_url,
                api_key=api_key,
                concurrency=concurrency,
                rpm=rpm,
                qc_share=qc_share,
                max_retries=max_retries,
                timeout_s=timeout,
            )
        except ValueError as exc:
            common.fail(str(exc), code=2)
    if detach:
        if not as_json:
            typer.echo(f"queued generate job {job_id}")
        status = jobs.get(ctx.ws, job_id)
    else:
        status = common.follow(job_id, quiet=as_json)
    result: dict = {"job": status.id, "state": str(status.state), "dataset": dataset}
    if not detach:
        store = common.try_open_store(ctx.ws)
        if store is not None:
            try:
                run = sstore.run_for_job(store, status.id)
                if run:
                    result["version_id"] = run["version_id"]
                    result["report"] = run["report"]
            finally:
                store.close()
    if as_json:
        common.emit_json(result)
        return
    rep = result.get("report")
    if rep:
        typer.echo(
            f"{dataset}: kept {rep['kept']} of {rep['generated']} valid outputs, "
            f"{rep.get('rejected', 0)} rejected, {rep['removed']} filtered, "
            f"{rep.get('qc_sampled', 0)} marked for QC"
        )
