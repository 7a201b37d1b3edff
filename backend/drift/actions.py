"""Monitoring actions: the only way a page, a CLI command, the folder watch or the ingestion
loop changes a monitor, its production data, its checks or its retraining plans.

Each one checks the role, re-checks inside its transaction the state it depends on, and writes
the change with its audit row in that transaction:
  create_monitor  edit_data (+ approve_plan to switch auto-approve on)  monitor.create
  set_config      edit_data (+ approve_plan to switch auto-approve on)  monitor.settings
  ingest          edit_data   monitor.ingest   the same file twice: AlreadyDone; files and
                                               uploads are read in chunks up to a size limit
  run_check       launch_job  monitor.check    the drift job and the quality-report jobs; a
                                               window taken by another check: AlreadyDone
  approve_plan    approve_plan  plan.approve   queues the review step; twice: AlreadyDone
  reject_plan     approve_plan  plan.reject    twice: AlreadyDone
  acknowledge_alert approve_plan  monitor.alert_ack      who and when; twice: AlreadyDone
  resolve_alert   approve_plan  monitor.alert_resolve    who and when; twice: AlreadyDone
`apply_rules` runs the trigger rules (backend/drift/triggers.py) for the ingestion loop and
`ftstudio monitor check`; a plan of an auto-approving monitor is approved there as
`auto-approve`, audited like any approval.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store
from backend.auth import Actor, require
from backend.changes import CHANGES
from backend.drift import checks, judging, plans, quality, triggers
from backend.drift.examples import Prepared
from backend.drift.monitors import MonitorConfig, config_of, parse_config
from backend.jobs import queue, worker
from backend.jobs.kinds import SpecError
from backend.security import allowed_roots, check_upload, confine_any
from backend.settings import endpoints
from backend.store import drift_quality as dq
from backend.store import monitoring as mon
from backend.store import production

SYSTEM = Actor("system", "lead")  # the ingestion loop applying the trigger rules
AUTO = Actor("auto-approve", "lead")  # approves the plans of auto-approving monitors
_RULES = threading.Lock()  # one rules pass at a time in a process


def _auto_on(ctx: Ctx, cfg: MonitorConfig, before: MonitorConfig | None = None) -> None:
    """Switching auto-approve on approves every future plan: it needs approve_plan."""
    if cfg.auto_approve and not (before and before.auto_approve):
        require(ctx.actor, "approve_plan")


# monitors ------------------------------------------------------------------------------------


def create_monitor(
    ctx: Ctx,
    name: str,
    *,
    reference: str,
    version: str | int | None = None,
    config: MonitorConfig | dict | None = None,
    watch_dir: str | Path | None = None,
) -> dict:
    """A monitor over a reference dataset version (the latest when `version` is None). A
    watched folder typed by a signed-in user must lie inside the workspace."""
    require(ctx.actor, "edit_data")
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ActionError(f"monitor name {name!r} must be 1-80 characters")
    cfg = config if isinstance(config, MonitorConfig) else parse_config(config)
    _auto_on(ctx, cfg)
    endpoints.vet(ctx, cfg.quality.judge_base_url)  # the judge's endpoint: listed, or an admin's
    folder = None
    if watch_dir is not None and str(watch_dir).strip():
        folder = str(
            confine_any(str(watch_dir), allowed_roots(ctx.settings, ctx.ws))
            if ctx.actor is not None
            else Path(watch_dir).expanduser().resolve()
        )

    def fn(cur) -> dict:
        try:
            return mon.create_monitor(
                ctx.store,
                name,
                reference=reference,
                version=version,
                config=cfg.model_dump(mode="json"),
                watch_dir=folder,
            )
        except mon.MonitorExists as exc:
            raise AlreadyDone(str(exc), mon.get_monitor(ctx.store, name)) from None

    need_store(ctx)
    try:
        return action.change(
            ctx,
            "edit_data",
            "monitor.create",
            name,
            fn,
            detail=lambda m: {
                "reference": m["reference_dataset"],
                "version": m["reference_version_id"],
                "watch_dir": folder,
                "auto_approve": cfg.auto_approve,
            },
        )
    except ValueError:
        raise
    except Exception:  # the commit failed: another caller created it first?
        try:
            existing = mon.get_monitor(ctx.store, name)
        except mon.MonitorNotFound:
            raise  # noqa: B904  (the commit's own error)
        raise AlreadyDone(f"a monitor named {name!r} already exists", existing) from None


def set_config(ctx: Ctx, monitor: str, config: MonitorConfig | dict) -> dict:
    """Replace a monitor's settings; the next check uses them."""
    require(ctx.actor, "edit_data")
    cfg = config if isinstance(config, MonitorConfig) else parse_config(config)
    changed: list[str] = []

    def fn(cur) -> dict:
        m = mon.get_monitor(ctx.store, monitor)
        before = config_of(m)
        _auto_on(ctx, cfg, before)
        if cfg.quality.judge_base_url != before.quality.judge_base_url:
            endpoints.vet(ctx, cfg.quality.judge_base_url)  # listed, or chosen by an admin
        old, new = before.model_dump(mode="json"), cfg.model_dump(mode="json")
        changed[:] = [k for k in new if new[k] != old.get(k)]
        return mon.set_config(ctx.store, m["id"], new)

    need_store(ctx)
    return action.change(
        ctx, "edit_data", "monitor.settings", monitor, fn, detail=lambda m: {"changed": changed}
    )


# production data -----------------------------------------------------------------------------


def ingest(
    ctx: Ctx, monitor: str | None, data: bytes, name: str, *, source: str = "upload"
) -> dict:
    """Parse and store one batch for a monitor (the only one when `monitor` is None); a file
    ingested before for this monitor answers AlreadyDone."""
    require(ctx.actor, "edit_data")
    m = mon.the_monitor(need_store(ctx), monitor)
    if len(data) > checks.MAX_BATCH_BYTES:
        raise checks.BatchTooLarge(name, checks.MAX_BATCH_BYTES, len(data))
    check_upload(name, data, {"jsonl", "json", "csv"}, max_bytes=checks.MAX_BATCH_BYTES)
    records = checks.parse_production(data, name)
    digest = hashlib.sha256(data).hexdigest()

    def fn(cur) -> dict:
        try:
            return production.add_batch(
                ctx.store, m["id"], records, source=source, name=name, content_hash=digest
            )
        except production.BatchExists as exc:
            raise AlreadyDone(str(exc)) from None

    try:
        return action.change(
            ctx,
            "edit_data",
            "monitor.ingest",
            m["name"],
            fn,
            detail=lambda b: {
                "batch": b["id"],
                "file": name,
                "source": source,
                "n_records": b["n_records"],
            },
        )
    except ValueError:
        raise
    except Exception:  # the commit failed: another caller stored the same file first?
        if production.find_batch(ctx.store, m["id"], digest) is not None:
            raise AlreadyDone(f"{name} was already ingested for this monitor") from None
        raise


def ingest_file(ctx: Ctx, monitor: str | None, path: Path, *, source: str = "cli") -> dict:
    """`ingest` of a file (the CLI, a watched folder), read in chunks up to the batch limit:
    a larger file is refused by name and limit without being read whole."""
    require(ctx.actor, "edit_data")
    path = Path(path)
    try:
        data = checks.read_file(path)
    except OSError as exc:
        raise ActionError(f"cannot read {path}: {exc.strerror or exc}") from None
    return ingest(ctx, monitor, data, path.name, source=source)


def ingest_upload(ctx: Ctx, monitor: str | None, stream: BinaryIO, name: str) -> dict:
    """`ingest` of an upload's stream, read in chunks up to the batch limit."""
    require(ctx.actor, "edit_data")
    if getattr(
        stream, "seekable", lambda: False
    )():  # an upload drawn before may have been read already
        stream.seek(0)
    return ingest(ctx, monitor, checks.read_capped(stream, name), name, source="upload")


# checks --------------------------------------------------------------------------------------


def _stage_side(ctx: Ctx, side: Prepared, check_id: str, staged: list) -> dict[str, Any]:
    """Stage a quality side's jobs (hidden until the check commits) and fill in its row."""
    mine = []
    try:
        if side.baseline_spec is not None:
            mine.append(
                queue.stage(
                    ctx.ws, side.kind, side.baseline_spec, group_id=check_id, actor=ctx.actor
                )
            )
            side.row["baseline_job_id"] = mine[-1].job_id
        mine.append(
            queue.stage(ctx.ws, side.kind, side.window_spec, group_id=check_id, actor=ctx.actor)
        )
        side.row["window_job_id"] = mine[-1].job_id
    except (SpecError, ValueError, OSError) as exc:
        for s in mine:
            s.discard()
        return {"reason": f"not {'judged' if side.kind == 'quality-judge' else 'scored'}: {exc}"}
    staged += mine
    return {"jobs": [s.job_id for s in mine]}


def run_check(ctx: Ctx, monitor: str, *, force: bool = False, start_worker: bool = True) -> dict:
    """Queue a drift job over the monitor's unchecked batches, with the score and judge jobs
    of its quality report. Returns {"check_id", "job_id", ...} or {"skipped": reason} when the
    window is smaller than the monitor's `min_window`. The check takes its batches inside the
    transaction: two checks of the same window give one, the other caller gets AlreadyDone."""
    require(ctx.actor, "launch_job")
    store = need_store(ctx)
    m = mon.get_monitor(store, monitor)
    inputs = checks.prepare(store, ctx.ws, m, force=force)
    if isinstance(inputs, str):
        return {"monitor": m["name"], "skipped": inputs}
    cfg = config_of(m)
    out: dict[str, Any] = {
        "monitor": m["name"],
        "check_id": inputs.check_id,
        "n_window": len(inputs.records),
        "n_reference": inputs.n_reference,
    }
    staged: list = []
    rows: list[tuple[str, dict]] = []
    try:
        sides = {
            "quality": quality.prepare(
                store, ctx.ws, m, inputs.check_id, inputs.records, cfg.quality, seed=cfg.seed
            ),
            "judge": judging.prepare(
                store,
                ctx.ws,
                ctx.settings,
                m,
                inputs.check_id,
                inputs.records,
                cfg.quality,
                seed=cfg.seed,
            ),
        }
        for key, side in sides.items():
            if not isinstance(side, Prepared):
                out |= side
                continue
            got = _stage_side(ctx, side, inputs.check_id, staged)
            if "reason" in got:
                out[key] = got["reason"]
                continue
            out |= {f"{key}_jobs": got["jobs"], **side.result}
            rows.append((key, side.row))

        def fn(cur, job_id: str) -> None:
            if not mon.record_check(store, **inputs.row(m, job_id)):
                raise AlreadyDone(f"the new prompts of {m['name']} are already being checked")
            for key, row in rows:
                (dq.record_quality if key == "quality" else dq.record_judge)(store, **row)

        job_id, _ = action.launch(
            ctx,
            "drift",
            inputs.spec,
            name="monitor.check",
            target=m["name"],
            fn=fn,
            detail={k: v for k, v in out.items() if k != "monitor"},
            start_worker=False,
        )
    except BaseException:
        for s in staged:
            s.discard()
        shutil.rmtree(inputs.folder, ignore_errors=True)
        raise
    for s in staged:
        s.commit()
    if start_worker:
        worker.ensure_worker(ctx.ws)
    return {"monitor": m["name"], "check_id": inputs.check_id, "job_id": job_id, **out}


def run_checks(ctx: Ctx, *, force: bool = False, start_worker: bool = True) -> list[dict]:
    """One check per monitor (those with too little new data, or already being checked, say
    why they were skipped)."""
    require(ctx.actor, "launch_job")
    out = []
    for m in mon.list_monitors(need_store(ctx)):
        try:
            out.append(run_check(ctx, m["id"], force=force, start_worker=start_worker))
        except AlreadyDone as exc:
            out.append({"monitor": m["name"], "skipped": str(exc)})
    return out


# plans ---------------------------------------------------------------------------------------


def _proposed(plan: dict, verb: str, done: tuple[str, ...]) -> None:
    if plan["state"] in done:
        raise AlreadyDone(f"plan {plan['id']} is already {plan['state']}", plan)
    if plan["state"] != "proposed":
        raise ActionError(
            f"plan {plan['id']} is {plan['state']}; only a proposed plan can be {verb}"
        )


def approve_plan(ctx: Ctx, plan_id: str, *, auto: bool = False, start_worker: bool = True) -> dict:
    """Approve a proposed plan: queue its review step (the `score` job); the train step is
    queued by the trigger rules once the review is done. Twice: AlreadyDone, one job."""
    require(ctx.actor, "approve_plan")
    store = need_store(ctx)
    staged: list = []

    def fn(cur) -> dict:
        for s in staged:  # a retried attempt: the earlier job folder goes
            s.discard()
        staged.clear()
        plan = mon.get_plan(store, plan_id)
        _proposed(plan, "approved", ("approved", "done"))
        # claim the plan first: a second approver's update conflicts here and re-reads it
        mon.save_plan(store, plan_id, state="approved", approved_by=ctx.who, auto_approved=auto)
        monitor = mon.get_monitor(store, plan["monitor_id"])
        steps, spec = plans.approval(store, ctx.ws, ctx.settings, monitor, plan)
        if spec is not None:
            try:
                staged.append(queue.stage(ctx.ws, "score", spec, group_id=plan_id, actor=ctx.actor))
                steps[0] = {**steps[0], "state": "queued", "job_id": staged[0].job_id}
            except SpecError as exc:
                steps[0] = plans.blocked(steps[0], str(exc))
        return mon.save_plan(store, plan_id, steps=plans.train_waits(steps))

    try:
        plan = action.change(
            ctx,
            "approve_plan",
            "plan.approve",
            plan_id,
            fn,
            detail=lambda p: {
                "auto": auto,
                "monitor": p["monitor"],
                "review_job": p["steps"][0].get("job_id"),
            },
        )
    except BaseException:
        for s in staged:
            s.discard()
        raise
    for s in staged:
        s.commit()
    if staged and start_worker:
        worker.ensure_worker(ctx.ws)
    return plan


def reject_plan(ctx: Ctx, plan_id: str) -> dict:
    """Reject a proposed plan; nothing is queued. Twice: AlreadyDone."""

    def fn(cur) -> dict:
        plan = mon.get_plan(ctx.store, plan_id)
        _proposed(plan, "rejected", ("rejected",))
        return mon.save_plan(ctx.store, plan_id, state="rejected", approved_by=ctx.who)

    need_store(ctx)
    return action.change(
        ctx, "approve_plan", "plan.reject", plan_id, fn, detail=lambda p: {"monitor": p["monitor"]}
    )


# the trigger rules ---------------------------------------------------------------------------


def apply_rules(ctx: Ctx, *, start_worker: bool = False) -> list[dict]:
    """The trigger rules, once: finished checks -> alerts and plans (a plan of an
    auto-approving monitor approved as `auto-approve`, audited), approved plans moved on.
    Returns the alerts that fired. Run by the ingestion loop after each ingest pass and by
    `ftstudio monitor check`; never by a page."""
    require(ctx.actor, "approve_plan")
    store = need_store(ctx)
    with _RULES:
        before = mon.rules_fingerprint(store)
        fired = triggers.evaluate(store, ctx.ws, ctx.settings)
        for alert in fired:
            m = mon.get_monitor(store, alert["monitor"])
            if alert["plan_id"] and config_of(m).auto_approve:
                auto = Ctx(store, ctx.ws, ctx.settings, AUTO)
                try:
                    approve_plan(auto, alert["plan_id"], auto=True, start_worker=start_worker)
                except AlreadyDone:
                    pass
        triggers.advance(ctx)
        if mon.rules_fingerprint(store) != before:  # the rules changed something: redraw
            CHANGES.bump("drift")
    return fired


# alerts --------------------------------------------------------------------------------------


def acknowledge_alert(ctx: Ctx, alert_id: str) -> dict:
    """Say that someone has seen an alert (who and when are kept; it stays open). Twice:
    AlreadyDone naming who acknowledged it first."""

    def fn(cur) -> dict:
        alert = mon.get_alert(ctx.store, alert_id)
        if alert["acknowledged_by"]:
            raise AlreadyDone(
                f"alert {alert_id} was already acknowledged by {alert['acknowledged_by']} "
                f"at {alert['acknowledged_at']}",
                alert,
            )
        return mon.acknowledge_alert(ctx.store, alert_id, ctx.who)

    need_store(ctx)
    return action.change(
        ctx,
        "approve_plan",
        "monitor.alert_ack",
        alert_id,
        fn,
        detail=lambda a: {"monitor": a["monitor"]},
    )


def resolve_alert(ctx: Ctx, alert_id: str) -> dict:
    """Close an open alert by hand (who and when are kept); its monitor is `ok` again, so the
    next drifting check opens a new alert. A resolved alert: AlreadyDone."""

    def fn(cur) -> dict:
        alert = mon.get_alert(ctx.store, alert_id)
        if alert["state"] == "resolved":
            by = f" by {alert['resolved_by']}" if alert["resolved_by"] else ""
            raise AlreadyDone(
                f"alert {alert_id} was already resolved{by} at {alert['resolved']}", alert
            )
        return mon.resolve_alert(ctx.store, alert_id, ctx.who)

    need_store(ctx)
    return action.change(
        ctx,
        "approve_plan",
        "monitor.alert_resolve",
        alert_id,
        fn,
        detail=lambda a: {"monitor": a["monitor"]},
    )
