"""`ftstudio review score|judge|push|pull|apply|webhook`: score, flag and review uncertain
examples (Label Studio or here). Every change is a review action (backend/review/actions.py,
labelstudio_actions.py); this module parses options and prints results. The Label Studio
token is read from settings (LABEL_STUDIO_API_KEY) or from the 0600 credentials file of the
workspace's local server.
"""

from __future__ import annotations

import typer

from backend.action import AlreadyDone
from backend.cli import common
from backend.cli.labelstudio import connection
from backend.integrations.labelstudio.client import LabelStudioError
from backend.jobs import read as jobs
from backend.jobs.status import JobStatus
from backend.review import actions, stats
from backend.review import labelstudio_actions as ls_actions
from backend.review.flagging import FlagPolicy
from backend.store import review as rstore

app = typer.Typer(
    no_args_is_help=True, help="Score, flag and review uncertain examples (Label Studio or here)."
)


def _queued(kind: str, job_id: str, detach: bool, as_json: bool) -> JobStatus:
    """Wait for a job the action queued (or, with --detach, say it was queued)."""
    if not detach:
        return common.follow(job_id, quiet=as_json)
    if not as_json:
        typer.echo(f"queued {kind} job {job_id}")
    return jobs.get(common.workspace(), job_id)


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
    with common.opened() as ctx:
        try:
            out = actions.launch_scoring(
                ctx,
                dataset,
                model,
                adapter_path=adapter,
                base_only=base_only,
                version=version,
                batch_size=batch_size,
                only_unreviewed=not include_reviewed,
            )
        except (ValueError, OSError) as exc:
            common.fail(str(exc))
    choice, ver = out["adapter"], out["version"]
    if not as_json:
        typer.echo(choice.describe())
    status = _queued("score", out["job_id"], detach, as_json)
    if as_json:
        common.emit_json(
            {
                "job_id": status.id,
                "state": status.state,
                "examples": out["examples"],
                "version_id": ver["id"],
                "adapter": choice.path,
                "adapter_run_id": choice.run_id,
                "round": out["round"],
            }
        )
    else:
        typer.echo(
            f"{status.id}: {status.state} ({out['examples']} examples of {dataset} "
            f"v{ver['number']}, round {out['round']})"
        )


@app.command("judge")
def judge(
    dataset: str = typer.Option(..., help="Dataset name."),
    judge_model: str = typer.Option(..., "--judge-model", help="Judge model id at the endpoint."),
    base_url: str = typer.Option(
        None, help="OpenAI-compatible base URL (default: Settings OPENAI_BASE_URL)."
    ),
    api_key: str = common.API_KEY_OPTION,
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
    with common.opened() as ctx:
        try:
            out = actions.launch_judge(
                ctx,
                dataset,
                judge_model,
                version=version,
                only_unreviewed=not include_reviewed,
                criteria=criteria,
                base_url=base_url,
                concurrency=concurrency,
                api_key=api_key,
            )
        except (ValueError, OSError) as exc:
            common.fail(str(exc))
    ver = out["version"]
    status = _queued("quality-judge", out["job_id"], detach, as_json)
    if as_json:
        common.emit_json(
            {
                "job_id": status.id,
                "state": status.state,
                "examples": out["examples"],
                "version_id": ver["id"],
                "judge_model": judge_model,
                "round": out["round"],
            }
        )
    else:
        typer.echo(
            f"{status.id}: {status.state} ({out['examples']} examples of {dataset} "
            f"v{ver['number']} judged by {judge_model}, round {out['round']})"
        )


def _policy(top: int | None, threshold: float | None, percentile: float | None, qc: float):
    chosen = [
        (k, v)
        for k, v in (("top_k", top), ("threshold", threshold), ("percentile", percentile))
        if v is not None
    ]
    if len(chosen) > 1:
        common.fail("choose one of --top, --threshold, --percentile")
    kind, value = chosen[0] if chosen else ("top_k", 20)
    return FlagPolicy(kind=kind, value=value, qc_share=qc)


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
    with common.opened() as ctx:
        try:
            policy = _policy(top, threshold, percentile, qc_share)
            job = rstore.latest_score_job(ctx.store, dataset, method)
            try:
                batch = actions.create_batch(ctx, dataset, job, policy, method=method)
            except AlreadyDone as done:  # flagged before: push that batch (once)
                batch = {**done.result, "n_flagged": rstore.n_flagged(ctx.store, done.result["id"])}
                batch["n_qc"] = len(rstore.batch_items(ctx.store, batch["id"])) - batch["n_flagged"]
            result = ls_actions.push_batch(ctx, batch["id"], overlap_share=overlap)
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except (ValueError, LabelStudioError) as exc:
            common.fail(str(exc))
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
    with common.opened() as ctx:
        try:
            batch_id = batch or rstore.latest_batch(ctx.store, dataset)["id"]
            result = ls_actions.pull_batch(ctx, batch_id)
            result["progress"] = stats.progress(ctx.store, batch_id)
            if apply:
                applied = actions.apply_batch(ctx, batch_id)
                result["version"] = applied["version"]
                result["counts"] = applied["counts"]
        except AlreadyDone as exc:
            result["already_done"] = str(exc)
        except (ValueError, LabelStudioError) as exc:
            common.fail(str(exc))
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
    if "already_done" in result:
        typer.echo(result["already_done"])


@app.command("apply")
def apply_cmd(
    dataset: str = typer.Option(...),
    batch: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write the next dataset version from a batch's verdicts."""
    with common.opened() as ctx:
        try:
            result = actions.apply_batch(
                ctx, batch or rstore.latest_batch(ctx.store, dataset)["id"]
            )
        except AlreadyDone as exc:
            return common.already(exc, as_json)
        except ValueError as exc:
            common.fail(str(exc))
    common.out(result, as_json, lambda r: f"v{r['version']['number']}: {r['version']['note']}")


def _pushed_projects(store, dataset: str | None) -> list[int]:
    if store is None:
        common.fail(
            "a dashboard holds the database, so the pushed batches cannot be listed here: "
            "pass --project ID (the Label Studio project of the batch)"
        )
    projects = [b["ls_project_id"] for b in rstore.batches(store, dataset) if b["ls_project_id"]]
    if not projects:
        common.fail(
            f"no batch of {dataset or 'any dataset'} was pushed to Label Studio yet: "
            "run `ftstudio review push` first"
        )
    return projects


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
    remove: bool = typer.Option(
        False, "--remove", help="Remove the studio's webhooks from the projects instead, and exit."
    ),
) -> None:
    """Receive Label Studio annotations as they are made (ANNOTATION_CREATED/UPDATED), until
    Ctrl-C: the verdicts land in the review inbox, which the dashboard ingests live."""
    import signal
    import threading

    from backend.integrations.labelstudio import webhook as hook

    url, token = connection()
    ws = common.workspace()
    try:
        projects = [int(p) for p in (project or "").split(",") if p.strip()]
    except ValueError:
        common.fail(f"--project takes comma-separated project ids, not {project!r}")
    store = common.try_open_store(ws)  # None beside a dashboard: registered, not audited
    try:
        ctx = common.shell(store)
        projects = sorted(set(projects or _pushed_projects(store, dataset)))
        if remove:
            for pid in projects:
                n = ls_actions.delete_webhook(ctx, pid)
                typer.echo(f"project {pid}: {n} webhook(s) removed")
            return
        try:
            receiver = hook.Receiver(ws, port, reviewer_of=hook.user_emails(url, token))
        except OSError as exc:
            common.fail(f"cannot listen on 127.0.0.1:{port} ({exc}); choose another --port")
        receiver.start()
        typer.echo(f"url: {receiver.url}")
        try:
            for pid in projects:
                done = ls_actions.register_webhook(ctx, pid, receiver)
                how = "registered" if done["created"] else "already registered"
                typer.echo(f"project {pid}: {how} (webhook {done['webhook_id']})")
        except LabelStudioError as exc:
            receiver.stop()
            common.fail(
                f"{exc}\nA Label Studio refuses loopback webhooks unless started with "
                "USE_DEFAULT_BANNED_SUBNETS=false (or SSRF_PROTECTION_ENABLED=false); the one "
                "from `ftstudio labelstudio up` allows them once restarted (`labelstudio down`, "
                "`up`)."
            )
    finally:
        if store is not None:
            store.close()
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
