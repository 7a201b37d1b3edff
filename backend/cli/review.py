"""`ftstudio review score|judge|push|pull|apply|webhook`: score, flag and review uncertain
examples (Label Studio or here). The Label Studio token is read from settings
(LABEL_STUDIO_API_KEY) or from the 0600 credentials file of the workspace's local server.
"""

from __future__ import annotations

import typer

from backend.cli import common
from backend.cli.labelstudio import connection

app = typer.Typer(
    no_args_is_help=True, help="Score, flag and review uncertain examples (Label Studio or here)."
)


@app.command("score")
def score(
    dataset: str = typer.Option(..., help="Dataset name."),
    model: str = typer.Option(..., help="Base model folder."),
    adapter: str = typer.Option(
        None,
        help="LoRA adapter folder (default: the newest "
        "succeeded run's adapter on this base model).",
    ),
    base_only: bool = typer.Option(
        False,
        "--base-only",
        help="Score with the base model alone, even when a run's adapter exists.",
    ),
    include_reviewed: bool = typer.Option(
        False, "--include-reviewed", help="Also score examples reviewed in earlier rounds."
    ),
    version: str = typer.Option(None, help="Version id or number (default: latest)."),
    batch_size: int = typer.Option(16),
    detach: bool = typer.Option(False),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score every example of a dataset version (job kind `score`) not yet reviewed."""
    from backend.review.scoring import choose_adapter, prepare_spec

    ws = common.workspace()
    store = common.open_store(ws)
    try:
        choice = choose_adapter(
            store, model, adapter_path=adapter, base_only=base_only, root=ws.root
        )
        spec, n, ver = prepare_spec(
            store,
            ws,
            dataset,
            model,
            adapter_path=choice.path,
            version=version,
            batch_size=batch_size,
            only_unreviewed=not include_reviewed,
        )
    except (ValueError, OSError) as exc:
        common.fail(str(exc))
    finally:
        store.close()
    if not as_json:
        typer.echo(choice.describe())
    status = common.run_job("score", spec, detach=detach, quiet=as_json)
    if as_json:
        common.emit_json(
            {
                "job_id": status.id,
                "state": status.state,
                "examples": n,
                "version_id": ver["id"],
                "adapter": choice.path,
                "adapter_run_id": choice.run_id,
                "round": spec["round"],
            }
        )
    else:
        typer.echo(
            f"{status.id}: {status.state} ({n} examples of {dataset} v{ver['number']}, "
            f"round {spec['round']})"
        )


@app.command("judge")
def judge(
    dataset: str = typer.Option(..., help="Dataset name."),
    judge_model: str = typer.Option(..., "--judge-model", help="Judge model id at the endpoint."),
    base_url: str = typer.Option(
        None, help="OpenAI-compatible base URL (default: Settings OPENAI_BASE_URL)."
    ),
    criteria: str = typer.Option(None, help="What makes a response good (default: built in)."),
    include_reviewed: bool = typer.Option(
        False, "--include-reviewed", help="Also judge examples reviewed in earlier rounds."
    ),
    version: str = typer.Option(None, help="Version id or number (default: latest)."),
    concurrency: int = typer.Option(8, help="Examples judged at once."),
    detach: bool = typer.Option(False),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Have an LLM judge rate every example 1-10 (a second review signal, method judge_flaw
    = 10 - rating); flag with `review push --method judge_flaw`."""
    from backend.review.judge import prepare_judge_spec

    ws = common.workspace()
    store = common.open_store(ws)
    try:
        spec, n, ver = prepare_judge_spec(
            store,
            ws,
            dataset,
            judge_model,
            version=version,
            only_unreviewed=not include_reviewed,
            criteria=criteria,
            base_url=base_url,
            concurrency=concurrency,
        )
    except (ValueError, OSError) as exc:
        common.fail(str(exc))
    finally:
        store.close()
    status = common.run_job("quality-judge", spec, detach=detach, quiet=as_json)
    if as_json:
        common.emit_json(
            {
                "job_id": status.id,
                "state": status.state,
                "examples": n,
                "version_id": ver["id"],
                "judge_model": judge_model,
                "round": spec["round"],
            }
        )
    else:
        typer.echo(
            f"{status.id}: {status.state} ({n} examples of {dataset} v{ver['number']} judged "
            f"by {judge_model}, round {spec['round']})"
        )


def _make_batch(
    store,
    dataset: str,
    top: int | None,
    threshold: float | None,
    percentile: float | None,
    method: str,
    qc_share: float,
) -> dict:
    from backend.review.flagging import FlagPolicy
    from backend.store import review as rstore

    chosen = [
        (k, v)
        for k, v in (("top_k", top), ("threshold", threshold), ("percentile", percentile))
        if v is not None
    ]
    if len(chosen) > 1:
        common.fail("choose one of --top, --threshold, --percentile")
    kind, value = chosen[0] if chosen else ("top_k", 20)
    policy = FlagPolicy(kind=kind, value=value, qc_share=qc_share)
    return rstore.create_batch(
        store,
        dataset=dataset,
        score_job_id=rstore.latest_score_job(store, dataset, method),
        policy=policy,
        method=method,
    )


@app.command("push")
def push(
    dataset: str = typer.Option(...),
    top: int = typer.Option(None, help="Flag the k least certain."),
    threshold: float = typer.Option(None),
    percentile: float = typer.Option(None),
    method: str = typer.Option(
        "nll", help="nll, entropy, or judge_flaw (10 - an LLM judge's rating)."
    ),
    qc_share: float = typer.Option(0.05),
    overlap: float = typer.Option(0.2, help="Share of tasks that two reviewers see."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Flag the latest scores of a dataset and push the batch to Label Studio."""
    from backend.review import labelstudio as lsync

    url, token = connection()
    store = common.open_store(common.workspace())
    try:
        batch = _make_batch(store, dataset, top, threshold, percentile, method, qc_share)
        result = lsync.push_batch(store, batch["id"], url, token, overlap_share=overlap)
    except (ValueError, lsync.LabelStudioError) as exc:
        common.fail(str(exc))
    finally:
        store.close()
    result.update(n_flagged=batch["n_flagged"], n_qc=batch["n_qc"])
    if as_json:
        common.emit_json(result)
    else:
        typer.echo(
            f"batch {batch['id']}: {batch['n_flagged']} flagged + {batch['n_qc']} QC "
            f"-> {result['url']}"
        )


@app.command("pull")
def pull(
    dataset: str = typer.Option(...),
    batch: str = typer.Option(None, help="Batch id (default: the dataset's latest)."),
    apply: bool = typer.Option(
        False, help="Also write the next dataset version from the verdicts."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Pull verdicts from Label Studio (idempotent), optionally applying them."""
    from backend.review import labelstudio as lsync
    from backend.store import review as rstore

    url, token = connection()
    store = common.open_store(common.workspace())
    try:
        batch_id = batch or rstore.latest_batch(store, dataset)["id"]
        result = lsync.pull_batch(store, batch_id, url, token)
        result["progress"] = lsync.progress(store, batch_id)
        if apply:
            applied = rstore.apply_batch(store, batch_id)
            result["version"] = applied["version"]
            result["counts"] = applied["counts"]
    except (ValueError, lsync.LabelStudioError) as exc:
        common.fail(str(exc))
    finally:
        store.close()
    if as_json:
        common.emit_json(result)
        return
    typer.echo(
        f"batch {result['batch']}: {result['annotations']} annotations "
        f"({result['new']} new, {result['updated']} updated, {result['unchanged']} same, "
        f"{result['removed']} deleted in Label Studio)"
    )
    if "version" in result:
        typer.echo(f"new version v{result['version']['number']}: {result['version']['note']}")


@app.command("apply")
def apply_cmd(
    dataset: str = typer.Option(...),
    batch: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write the next dataset version from a batch's verdicts."""
    from backend.store import review as rstore

    store = common.open_store(common.workspace())
    try:
        result = rstore.apply_batch(store, batch or rstore.latest_batch(store, dataset)["id"])
    except ValueError as exc:
        common.fail(str(exc))
    finally:
        store.close()
    if as_json:
        common.emit_json(result)
    else:
        typer.echo(f"v{result['version']['number']}: {result['version']['note']}")


@app.command("webhook")
def webhook_cmd(
    port: int = typer.Option(8091, help="Port on 127.0.0.1 (0: any free one)."),
    dataset: str = typer.Option(None, help="Register on this dataset's pushed batches only."),
    project: str = typer.Option(
        None, help="Label Studio project ids, comma-separated (when a dashboard holds the store)."
    ),
    ingest: bool = typer.Option(
        True, help="Also store arriving verdicts every few seconds unless a dashboard does."
    ),
) -> None:
    """Receive Label Studio annotations as they are made (ANNOTATION_CREATED/UPDATED), until
    Ctrl-C: the verdicts land in the review inbox, which the dashboard ingests live."""
    import signal
    import threading

    from backend.integrations.labelstudio import webhook as hook
    from backend.review import labelstudio as lsync

    url, token = connection()
    ws = common.workspace()
    try:
        projects = [int(p) for p in (project or "").split(",") if p.strip()]
    except ValueError:
        common.fail(f"--project takes comma-separated project ids, not {project!r}")
    if not projects:
        from backend.store import review as rstore

        store = common.try_open_store(ws)
        if store is None:
            common.fail(
                "a dashboard holds the database, so the pushed batches cannot be listed here: "
                "pass --project ID (the Label Studio project of the batch)"
            )
        try:
            projects = [
                b["ls_project_id"] for b in rstore.batches(store, dataset) if b["ls_project_id"]
            ]
        finally:
            store.close()
        if not projects:
            common.fail(
                f"no batch of {dataset or 'any dataset'} was pushed to Label Studio yet: "
                "run `ftstudio review push` first"
            )
    try:
        receiver = hook.Receiver(ws, port, reviewer_of=hook.user_emails(url, token))
    except OSError as exc:
        common.fail(f"cannot listen on 127.0.0.1:{port} ({exc}); choose another --port")
    receiver.start()
    typer.echo(f"url: {receiver.url}")
    try:
        for pid in sorted(set(projects)):
            done = hook.register(url, token, pid, receiver.url, receiver.secret)
            how = "registered" if done["created"] else "already registered"
            typer.echo(f"project {pid}: {how} (webhook {done['webhook_id']})")
    except lsync.LabelStudioError as exc:
        receiver.stop()
        common.fail(
            f"{exc}\nA Label Studio refuses loopback webhooks unless started with "
            "USE_DEFAULT_BANNED_SUBNETS=false (or SSRF_PROTECTION_ENABLED=false); the one from "
            "`ftstudio labelstudio up` allows them once restarted (`labelstudio down`, `up`)."
        )
    typer.echo(f"inbox: {hook.inbox_path(ws)}  (Ctrl-C stops)")
    # Ctrl-C / SIGTERM only set a flag: an interrupt raised inside a database call could be
    # swallowed there and leave the loop running.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(3.0):
            if ingest:
                _ingest_inbox_once(ws)
    finally:
        receiver.stop()
    typer.echo("stopped")


def _ingest_inbox_once(ws) -> None:
    """Store the inbox's new verdicts when this process can hold the database."""
    from backend.ingest.review_inbox import ingest_workspace_inbox
    from backend.integrations.labelstudio.webhook import inbox_path

    if not inbox_path(ws).exists():
        return
    store = common.try_open_store(ws)
    if store is None:
        return  # the dashboard's ingestor stores them
    try:
        report = ingest_workspace_inbox(store, ws)
    finally:
        store.close()
    if report.lines:
        s = report.stored
        typer.echo(
            f"{report.lines} deliveries: {s['new']} new, {s['updated']} updated, "
            f"{s['unchanged']} same, {report.removed} deleted, {report.skipped} skipped, "
            f"{len(report.errors)} bad"
        )
    for err in report.errors:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
