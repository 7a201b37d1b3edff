"""`ftstudio dataset ...` and `ftstudio generate ...`.

ftstudio dataset create NAME [--format messages|prompt-completion] [--recipe recipe.json]
ftstudio dataset list [--json]
ftstudio dataset show NAME [--json]        versions oldest first: id, created, examples, hash
ftstudio dataset import NAME FILE|hf:OWNER/NAME [--map FIELD=COLUMN,...] [--split S]
                        [--config C] [--skip-invalid] [--json]
                             JSONL, a JSON array, CSV, Parquet, a HF save_to_disk folder or a
                             hub dataset; rows in messages (with tools), ShareGPT,
                             prompt/completion or Alpaca shape, or any columns through --map;
                             all or nothing, or with --skip-invalid the valid rows, each
                             skipped row printed
ftstudio dataset diff NAME OLD NEW [--sample N] [--json]
                             what changed between two versions (numbers, "v3" or ids):
                             added, removed, edited (with counts and a sample)
ftstudio dataset dups NAME [--version N] [--threshold 0.8] [--json]
                             near-duplicate groups of a version (MinHash + LSH, not all pairs)
ftstudio dataset export NAME --format messages-jsonl|prompt-completion-jsonl|parquet|hf
                             --out PATH [--version N] [--overwrite] [--json]
ftstudio generate --dataset NAME --provider openai|local --base-url URL --model M
                  --topics "a,b,c" --per-topic K --concurrency C [--json] [--detach]
                  [--tools FUNCTIONS.json]   (turns may then call those tools)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
    file: str = typer.Argument(
        ..., help="A file, a HF save_to_disk folder, or hf:OWNER/NAME for a hub dataset."
    ),
    mapping: str = typer.Option(
        None,
        "--map",
        help="Which of your columns holds each studio field, e.g. "
        "'prompt=question,completion=answer,system=persona,topic=category'. Fields: "
        "messages, conversations, prompt, completion, instruction, input, output, system, "
        "history, topic, tools.",
    ),
    split: str = typer.Option(None, help="The split of a hub dataset or DatasetDict (train)."),
    config: str = typer.Option(None, help="The config (subset) of a hub dataset."),
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
    from backend.synth import import_actions

    with common.opened(ingest=False) as ctx:
        try:
            v = import_actions.import_file(
                ctx,
                name,
                file,
                create=create,
                skip_invalid=skip_invalid,
                mapping=mapping,
                split=split,
                config=config,
            )
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


def _turns_line(messages: list[dict] | None) -> str:
    if not messages:
        return ""
    first = next((m for m in messages if m["role"] == "user"), messages[0])
    return " ".join(first["content"].split())[:100]


@app.command("diff")
def diff(
    name: str,
    old: str = typer.Argument(..., help="The older version: a number, v3, or an id."),
    new: str = typer.Argument(None, help="The newer version (default: the newest)."),
    sample: int = typer.Option(5, help="Examples shown of each kind of change."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What changed between two versions: added, removed and edited examples."""
    from backend.store import datasets as dstore
    from backend.store.dataset_diff import diff_versions

    with common.opened() as ctx:
        try:
            a = dstore.resolve_version(ctx.store, name, old)
            b = dstore.resolve_version(ctx.store, name, new)
            data = diff_versions(ctx.store, a, b, sample=sample)
        except dstore.DatasetNotFound as exc:
            common.fail(str(exc))
    if as_json:
        common.emit_json(data)
        return
    c = data["counts"]
    typer.echo(
        f"{data['dataset']} v{data['from']['number']} -> v{data['to']['number']}: "
        f"{c['added']} added, {c['removed']} removed, {c['edited']} edited, "
        f"{c['unchanged']} unchanged"
    )
    for kind, sign in (("added", "+"), ("removed", "-")):
        for r in data[kind]:
            typer.echo(f"  {sign} {r['id'][:12]}  {_turns_line(r['messages'])}")
    for r in data["edited"]:
        typer.echo(f"  ~ {r['old_id'][:12]} -> {r['new_id'][:12]}  {_turns_line(r['new'])}")


@app.command("dups")
def dups(
    name: str,
    version: str = typer.Option(None, help="Version number or id (default: latest)."),
    threshold: float = typer.Option(
        0.8, min=0.1, max=1.0, help="Least estimated Jaccard similarity of word 3-grams."
    ),
    show: int = typer.Option(10, help="Groups printed (all with --json)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Near-duplicate groups in a version, found by MinHash and LSH (never all pairs)."""
    from backend.store import datasets as dstore
    from backend.store.dataset_diff import iter_version_messages
    from backend.synth.minhash import version_near_duplicates

    with common.opened() as ctx:
        try:
            v = dstore.resolve_version(ctx.store, name, version)
        except dstore.DatasetNotFound as exc:
            common.fail(str(exc))
        found = version_near_duplicates(iter_version_messages(ctx.store, v["id"]), threshold)
    found = {"dataset": v["dataset"], "version": v["number"], **found}
    if as_json:
        common.emit_json(found)
        return
    groups = found["groups"]
    typer.echo(
        f"{v['dataset']} v{v['number']}: {len(groups)} near-duplicate groups "
        f"({sum(len(g['ids']) for g in groups)} of {found['examples']} examples) at "
        f"similarity >= {threshold}"
    )
    for g in groups[:show]:
        ids = ", ".join(i[:12] for i in g["ids"][:6]) + (" ..." if len(g["ids"]) > 6 else "")
        typer.echo(f"  {len(g['ids'])} examples, similarity >= {g['similarity']}: {ids}")


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
    from backend.synth import import_actions

    with common.opened(ingest=False) as ctx:
        try:
            info = import_actions.export_version(
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


def _tools_file(path: Path) -> list[dict]:
    """The function definitions in a --tools file, or a clear failure naming what is wrong."""
    from backend.synth.recipe import tools_problem

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        common.fail(f"--tools {path}: cannot read it ({exc.strerror})", code=2)
    except ValueError as exc:
        common.fail(f"--tools {path}: not JSON ({exc})", code=2)
    tools = data.get("tools") if isinstance(data, dict) else data
    why = tools_problem(tools)
    if why:
        common.fail(f"--tools {path}: {why}", code=2)
    return tools


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
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            help="Repeatable: URL[@N] of one of several endpoints (e.g. vLLM replicas) to "
            "spread requests over, N in flight at most there (default 8); instead of "
            "--base-url.",
        ),
    ] = None,
    rpm: float = typer.Option(None, help="Most requests per minute."),
    task: str = typer.Option(None, help="The task, in plain words."),
    system_prompt: str = typer.Option(None, help="System prompt of every example."),
    temperature: float = typer.Option(None, help="Sampling temperature."),
    qc_share: float = typer.Option(0.07, help="Share marked for human QC (0.05-0.10)."),
    max_retries: int = typer.Option(4, help="Retries on 429/5xx/timeouts."),
    timeout: float = typer.Option(60.0, help="Per-request timeout in seconds."),
    tools: Path = typer.Option(  # noqa: B008
        None,
        help='A JSON file of OpenAI function definitions (a list, or {"tools": [...]}) the '
        "assistant may call: generated turns may then carry tool calls and their results.",
    ),
    detach: bool = typer.Option(False, help="Queue and return."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Generate examples for a dataset from its recipe (options override the recipe)."""
    from backend.integrations.pool import parse_endpoint
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
        "tools": _tools_file(tools) if tools is not None else None,
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
                endpoints=[parse_endpoint(e) for e in endpoint or []] or None,
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
