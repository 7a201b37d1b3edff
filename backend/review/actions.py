"""Review actions: every change a user makes to the review loop, from the Review page,
`ftstudio review ...` or the drift plans (the Label Studio ones, push, pull, webhooks and the
local server, are in backend/review/labelstudio_actions.py).

Each one checks the role, validates its inputs, re-reads what it depends on inside its
transaction and writes the change with one audit row (backend/action.py), or queues its job
through `action.launch`. Double submissions answer `AlreadyDone`: a batch applied twice (the
second apply conflicts on the batch row and then sees it applied), a batch flagged twice from
the same scoring run, signal and policy (its id is derived from them). Paths typed by a
dashboard user are confined to the workspace and the models' folder; the shell (actor None)
is trusted. Permissions: scoring and judging `launch_job`; flagging and applying `edit_data`;
in-app verdicts `review`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store, typed_path
from backend.auth import LOCAL_ADMIN, require
from backend.review import inputs, verdicts
from backend.review.flagging import FlagPolicy, batch_items, cut_value
from backend.review.verdicts import Verdict, apply_decisions
from backend.settings import endpoints
from backend.store import datasets as ds
from backend.store import review as rstore

T = TypeVar("T")


# --- scoring and judging ----------------------------------------------------------------------


def launch_scoring(
    ctx: Ctx,
    dataset: str,
    model_path: str | Path,
    *,
    adapter_path: str | Path | None = None,
    base_only: bool = False,
    version: str | int | None = None,
    batch_size: int = 16,
    only_unreviewed: bool = True,
) -> dict:
    """Queue a `score` job over a dataset version (by default what reviewers have not judged
    yet) with the newest succeeded run's adapter on this base model, unless `adapter_path`
    or `base_only` says otherwise. Returns {job_id, examples, version, round, adapter}."""
    require(ctx.actor, "launch_job")
    store = need_store(ctx)
    model = typed_path(ctx, model_path, models=True)
    adapter = typed_path(ctx, adapter_path) if adapter_path else None
    choice = inputs.choose_adapter(
        store,
        str(model),
        adapter_path=adapter and str(adapter),
        base_only=base_only,
        root=ctx.ws.root,
    )
    spec, n, ver = inputs.prepare_spec(
        store,
        ctx.ws,
        dataset,
        str(model),
        adapter_path=choice.path,
        version=version,
        batch_size=batch_size,
        only_unreviewed=only_unreviewed,
    )
    detail = {"examples": n, "version": ver["id"], "adapter": choice.path}
    job_id = _queue(ctx, "score", spec, "review.score", dataset, detail)
    return {
        "job_id": job_id,
        "examples": n,
        "version": ver,
        "round": spec["round"],
        "adapter": choice,
    }


def launch_judge(
    ctx: Ctx,
    dataset: str,
    judge_model: str,
    *,
    version: str | int | None = None,
    only_unreviewed: bool = True,
    criteria: str | None = None,
    base_url: str | None = None,
    concurrency: int = 8,
    api_key: str | None = None,
) -> dict:
    """Queue a `quality-judge` job: an LLM rates every example 1-10, stored as judge_flaw =
    10 - rating (a second review signal). Returns {job_id, examples, version, round}.
    `base_url`: the configured endpoint or an allowed one (any, for an admin); `api_key`
    (admins) reaches the job beside its spec, never in it."""
    require(ctx.actor, "launch_job")
    store = need_store(ctx)
    parsed = urlparse(base_url or "")
    if base_url and not (parsed.scheme in ("http", "https") and parsed.netloc):
        raise ActionError(f"the judge's base URL must be http(s)://host/..., not {base_url!r}")
    base_url = endpoints.vet(ctx, base_url, api_key)
    spec, n, ver = inputs.prepare_judge_spec(
        store,
        ctx.ws,
        dataset,
        judge_model,
        settings=ctx.settings,
        version=version,
        only_unreviewed=only_unreviewed,
        criteria=criteria,
        base_url=base_url,
        concurrency=concurrency,
    )
    detail = {"examples": n, "version": ver["id"], "judge_model": spec["model"]}
    fn = endpoints.hand_key(ctx, base_url, api_key)
    job_id = _queue(ctx, "quality-judge", spec, "review.judge", dataset, detail, fn=fn)
    return {"job_id": job_id, "examples": n, "version": ver, "round": spec["round"]}


def _queue(ctx: Ctx, kind: str, spec: dict, name: str, target: str, detail: dict, fn=None) -> str:
    try:
        job_id, _ = action.launch(ctx, kind, spec, name=name, target=target, detail=detail, fn=fn)
    except BaseException:
        Path(spec["examples_path"]).unlink(missing_ok=True)  # no job reads it
        raise
    return job_id


# --- batches ------------------------------------------------------------------------------------


def _batch_id(score_job_id: str, method: str, policy: FlagPolicy) -> str:
    key = f"{score_job_id}|{method}|{policy.model_dump_json()}"
    return f"rb-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def create_batch(
    ctx: Ctx, dataset: str, score_job_id: str, policy: FlagPolicy, *, method: str = "nll"
) -> dict:
    """Flag the scored examples of one scoring run under `policy` and record them (plus the
    QC sample) as the dataset's next review batch. Returns the batch row with n_flagged and
    n_qc. The same run, signal and policy flagged again answer AlreadyDone with that batch."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)
    batch_id = _batch_id(score_job_id, method, policy)

    def txn(cur) -> dict:
        done = rstore.find_batch(store, batch_id)
        if done is not None:
            raise AlreadyDone(
                f"batch {batch_id} already flags scoring run {score_job_id} ({method}) with "
                "this policy",
                done,
            )
        scores = rstore.scores_of(store, score_job_id, method)
        if not scores:
            raise ActionError(f"scoring run {score_job_id} has no {method!r} scores")
        source = rstore.score_source(store, score_job_id)
        if source["dataset"] not in (None, dataset):
            raise ActionError(
                f"scoring run {score_job_id} scored {source['dataset']!r}, not {dataset!r}"
            )
        pending = rstore.pending_qc(store, source["version_id"])
        items, n_flagged, n_qc = batch_items(scores, policy, pending, seed=batch_id)
        row = rstore.insert_batch(
            store,
            batch_id=batch_id,
            dataset=dataset,
            version_id=source["version_id"],
            score_job_id=score_job_id,
            method=method,
            model=source["model"],
            policy=policy.model_dump_json(),
            n_scored=len(scores),
            cut=cut_value(scores, policy),
            items=items,
        )
        return {**row, "n_flagged": n_flagged, "n_qc": n_qc}

    def detail(b: dict) -> dict:
        return {
            "batch": b["id"],
            "score_job": score_job_id,
            "flagged": b["n_flagged"],
            "qc": b["n_qc"],
        }

    return action.change(ctx, "edit_data", "review.create_batch", dataset, txn, detail=detail)


def apply_batch(ctx: Ctx, batch_id: str) -> dict:
    """Write the next dataset version from the batch's verdicts: accepted and unreviewed
    examples stay, rejected leave, corrected are replaced. Returns {version, counts}; a batch
    applied before answers AlreadyDone with {version}."""
    store = need_store(ctx)

    def txn(cur) -> dict:
        batch = rstore.get_batch(store, batch_id)
        if batch["applied_version_id"]:
            version = ds.resolve_version(store, batch["dataset"], batch["applied_version_id"])
            raise AlreadyDone(
                f"batch {batch_id} was already applied as version v{version['number']} "
                f"({version['id']})",
                {"version": version},
            )
        decisions = verdicts.decide(rstore.reviews(store, batch_id))
        if not decisions:
            raise ActionError(f"batch {batch_id} has no verdicts yet: review or pull first")
        base = ds.resolve_version(store, batch["dataset"])
        examples = ds.version_examples(store, batch["version_id"])
        new, counts = apply_decisions(examples, decisions, batch_id=batch_id)
        note = f"review {batch_id} (round {batch['round']}): " + ", ".join(
            f"{k} {v}" for k, v in sorted(counts.items())
        )
        version = rstore.record_applied(
            store, batch_id, batch["dataset"], new, parent_version_id=base["id"], note=note
        )
        return {"version": version, "counts": counts}

    def detail(r: dict) -> dict:
        return {"version": r["version"]["id"], **r["counts"]}

    return action.change(ctx, "edit_data", "review.apply", batch_id, txn, detail=detail)


def record_verdict(ctx: Ctx, batch_id: str, verdict: Verdict) -> str:
    """Store a reviewer's verdict from the in-app queue. One verdict per (batch, example,
    reviewer): submitting again (a second tab, a double click) replaces it; two reviewers on
    one item each keep their own. A signed-in user records verdicts under their own name."""
    who = ctx.actor
    require(who, "review")
    if who is not None and who != LOCAL_ADMIN and verdict.reviewer != who.username:
        raise ActionError(f"{who.username} cannot record a verdict as {verdict.reviewer!r}")
    store = need_store(ctx)
    rid = verdicts.in_app_id(batch_id, verdict.example_id, verdict.reviewer)

    def txn(cur) -> str:
        if verdict.example_id not in {i["example_id"] for i in rstore.batch_items(store, batch_id)}:
            rstore.get_batch(store, batch_id)  # names an unknown batch
            raise ActionError(f"example {verdict.example_id} is not an item of batch {batch_id}")
        now = datetime.now()
        row = {**verdict.model_dump(), "id": rid, "source": "in-app", "created": now}
        rstore.upsert_reviews(store, batch_id, [{**row, "updated": now}])
        return rid

    info = {"batch": batch_id, "verdict": verdict.verdict, "reviewer": verdict.reviewer}
    return action.change(ctx, "review", "review.verdict", verdict.example_id, txn, detail=info)
