"""`ftstudio monitor ...`: create monitors, ingest production batches, run checks (cron-able).

ftstudio monitor create NAME --reference DATASET [--version N] [--watch DIR] [--auto-approve]
ftstudio monitor ingest FILE|DIR [--monitor NAME]
ftstudio monitor check [--json] [--force]     exit 1 when an alert fired
ftstudio monitor list [--json]
ftstudio monitor approve PLAN_ID                    (as the shell user)
ftstudio monitor alerts [--all] [--json]
ftstudio monitor ack ALERT_ID                      (seen: who and when are kept)
ftstudio monitor resolve ALERT_ID

Every change is a monitoring action (backend/drift/actions.py) run as the trusted shell.
"""

from __future__ import annotations

from pathlib import Path

import typer

from backend.action import AlreadyDone
from backend.cli import common

app = typer.Typer(
    no_args_is_help=True, help="Watch production data for drift and propose retraining."
)


@app.command("create")
def create(
    name: str,
    reference: str = typer.Option(..., help="Reference dataset name."),
    version: str = typer.Option(None, help="Version number or id (default: latest)."),
    watch: Path = typer.Option(  # noqa: B008
        None, help="Folder of JSONL/CSV the dashboard reads every FTSTUDIO_WATCH_INTERVAL_S s."
    ),
    auto_approve: bool = typer.Option(False, help="Approve retraining plans at once."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a monitor comparing production prompts with a reference dataset version."""
    from backend.drift import actions

    with common.opened(ingest=False) as ctx:
        try:
            m = actions.create_monitor(
                ctx,
                name,
                reference=reference,
                version=version,
                config={"auto_approve": auto_approve},
                watch_dir=watch,
            )
        except ValueError as exc:
            common.fail(str(exc))
    if as_json:
        common.emit_json(m)
        return
    typer.echo(
        f"monitor {m['name']} ({m['id']}) on {m['reference_dataset']} "
        f"version {m['reference_version_id']}"
    )


@app.command("ingest")
def ingest(
    path: Path = typer.Argument(..., help="JSONL/CSV of prompts, or a folder."),  # noqa: B008
    monitor: str = typer.Option(None, help="Monitor name (default: the only one)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a batch of production prompts (a folder: every file not seen before)."""
    from backend.drift import actions, watch
    from backend.store import monitoring as mon

    with common.opened(ingest=False) as ctx:
        try:
            if path.is_dir():
                m = mon.the_monitor(ctx.store, monitor)
                new, errors = watch.scan_folder(ctx, m["id"], path)
            else:
                new, errors = [actions.ingest_file(ctx, monitor, path)], []
        except ValueError as exc:  # AlreadyDone: the same file was ingested before
            common.fail(str(exc))
    if as_json:
        common.emit_json({"batches": new, "errors": errors})
    else:
        for b in new:
            typer.echo(
                f"batch {b['id']}: {b['n_records']} prompts ({b['n_responses']} with "
                f"responses), window {b['window_start']} .. {b['window_end']}"
            )
        for e in errors:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    if errors:
        raise typer.Exit(1)


@app.command("check")
def check(
    as_json: bool = typer.Option(False, "--json"),
    force: bool = typer.Option(False, help="Check even below a monitor's min_window."),
    timeout: float = typer.Option(1800, help="Seconds to wait for the drift jobs."),
) -> None:
    """Run every monitor once (scan watched folders, drift job, trigger rules). Exit status 1
    when an alert fired, so cron can mail it."""
    from backend.drift import actions, watch
    from backend.ingest.jobs import ingest_all
    from backend.jobs import read as jobs
    from backend.store import monitoring as mon

    with common.opened() as ctx:
        _, scan_errors = watch.scan_watched(ctx)
        submitted = actions.run_checks(ctx, force=force)
        waiting = [s["job_id"] for s in submitted if "job_id" in s]
        waiting += [j for s in submitted for j in s.get("quality_jobs", [])]  # model-side
        waiting += [j for s in submitted for j in s.get("judge_jobs", [])]  # LLM-judge scores
        for job_id in waiting:
            if as_json:
                jobs.wait(ctx.ws, job_id, timeout_s=timeout)
            else:
                common.wait_with_progress(ctx.ws, job_id)
        ingest_all(ctx.store, ctx.ws)
        fired = actions.apply_rules(ctx)
        results = []
        for s in submitted:
            reps = mon.reports(ctx.store, check_id=s["check_id"]) if "check_id" in s else []
            results.append(
                {
                    **s,
                    "reports": [
                        {k: r[k] for k in ("method", "statistic", "threshold", "verdict")}
                        for r in reps
                    ],
                }
            )
    if as_json:
        common.emit_json({"checks": results, "alerts": fired, "errors": scan_errors})
    else:
        for r in results:
            if "skipped" in r:
                typer.echo(f"{r['monitor']}: skipped ({r['skipped']})")
                continue
            typer.echo(f"{r['monitor']}: {r['n_window']} prompts against {r['n_reference']}")
            for rep in r["reports"]:
                typer.echo(
                    f"  {rep['method']:11} {rep['statistic']:8.4f} > "
                    f"{rep['threshold']:8.4f}? {rep['verdict']}"
                )
        for a in fired:
            plan = (
                f"plan {a['plan_id']}"
                if a["plan_id"]
                else f"no plan: {a['no_plan']}; to unblock: {a['unblock']}"
            )
            typer.secho(f"ALERT {a['id']} {a['message']} ({plan})", fg=typer.colors.RED)
        for e in scan_errors:
            typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    if fired:
        raise typer.Exit(1)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Monitors with their state, open alerts and plans."""
    from backend.store import monitoring as mon

    with common.opened(ingest=False) as ctx:
        rows = [{k: v for k, v in m.items() if k != "config"} for m in mon.list_monitors(ctx.store)]
        plans = mon.plans(ctx.store)
    if as_json:
        common.emit_json({"monitors": rows, "plans": plans})
        return
    for m in rows:
        typer.echo(
            f"{m['name']:20} {m['state']:9} {m['reference_dataset']} batches {m['n_batches']}"
        )
    for p in plans:
        typer.echo(
            f"plan {p['id']} ({p['monitor']}): {p['state']} "
            + "; ".join(f"{s['name']} {s['state']}" for s in p["steps"])
        )


@app.command("approve")
def approve(plan_id: str) -> None:
    """Approve a proposed retraining plan: queue the review scoring (training follows it).
    The command acts as the shell user (recorded as "shell"); people approve on the page."""
    from backend.drift import actions

    with common.opened() as ctx:
        try:
            plan = actions.approve_plan(ctx, plan_id)
        except AlreadyDone as exc:
            typer.echo(str(exc))
            return
        except ValueError as exc:
            common.fail(str(exc))
    for s in plan["steps"]:
        typer.echo(f"{s['name']}: {s['state']} {s.get('job_id') or s.get('reason') or ''}")


@app.command("alerts")
def alerts_cmd(
    show_all: bool = typer.Option(False, "--all", help="Resolved alerts too."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Alerts (open ones by default) with who acknowledged or resolved them, and when."""
    from backend.store import monitoring as mon

    with common.opened(ingest=False) as ctx:
        rows = mon.alerts(ctx.store, state=None if show_all else "open")
    if as_json:
        common.emit_json(rows)
        return
    if not rows:
        typer.echo("no open alerts" if not show_all else "no alerts")
    for a in rows:
        seen = (
            f"acknowledged by {a['acknowledged_by']} at {a['acknowledged_at']}"
            if a["acknowledged_by"]
            else "not acknowledged"
        )
        done = (
            f"; resolved by {a['resolved_by'] or 'system'} at {a['resolved']}"
            if a["state"] == "resolved"
            else ""
        )
        typer.echo(f"{a['id']} {a['state']:8} {a['created']} {a['message']}")
        typer.echo(f"    {seen}{done}")
        if a["plan_id"]:
            typer.echo(f"    plan {a['plan_id']}")
        elif a["no_plan_reason"]:
            typer.echo(f"    no plan: {a['no_plan_reason']}; to unblock: {a['no_plan_unblock']}")


def _alert_action(verb: str, alert_id: str) -> None:
    from backend.drift import actions

    fn = actions.acknowledge_alert if verb == "ack" else actions.resolve_alert
    with common.opened(ingest=False) as ctx:
        try:
            a = fn(ctx, alert_id)
        except AlreadyDone as exc:
            return common.already(exc, False)
        except ValueError as exc:
            common.fail(str(exc))
    if verb == "ack":
        who, when = a["acknowledged_by"], a["acknowledged_at"]
        typer.echo(f"alert {a['id']} acknowledged by {who} at {when}")
    else:
        typer.echo(f"alert {a['id']} resolved by {a['resolved_by']} at {a['resolved']}")


@app.command("ack")
def ack_cmd(alert_id: str) -> None:
    """Acknowledge an alert: someone has seen it (it stays open until resolved)."""
    _alert_action("ack", alert_id)


@app.command("resolve")
def resolve_cmd(alert_id: str) -> None:
    """Resolve an open alert by hand; the next drifting check opens a new one."""
    _alert_action("resolve", alert_id)
