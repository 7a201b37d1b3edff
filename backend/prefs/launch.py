"""Preference jobs, queued as actions: the LLM judge over a comparison set, answers of a base
model or an endpoint (a new source to compare), and a DPO run on a preference set version.

Each one checks the role first, prepares what the job reads (a job never opens DuckDB: the
items or pairs are written to content-addressed files under exports/), validates the spec and
queues it with its audit row through `action.launch`, which also makes sure a worker runs.
"""

from __future__ import annotations

import re
from typing import Any

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store, typed_path
from backend.auth import require
from backend.jobs import read as jobs
from backend.prefs import export as E
from backend.prefs.judge import items_file
from backend.settings import endpoints
from backend.store import prefs as S
from backend.train.actions import start_run

_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$")


def check_url(value: str | None) -> str | None:
    """An endpoint's base URL: http(s) only, or None."""
    if value and not _URL.match(value.strip()):
        raise ActionError(f"base URL {value!r} is not an http(s) URL")
    return value.strip() if value else None


def _active_judge(ctx: Ctx, set_name: str, model: str) -> str | None:
    """A queued or running judge job over the same set with the same model, if any."""
    for status in jobs.list_jobs(ctx.ws):
        if getattr(status, "kind", None) != "judge" or status.state not in ("queued", "running"):
            continue
        try:
            _, spec = jobs.read_spec(ctx.ws.job_dir(status.id))
        except Exception:  # a job folder being written or removed: not ours to judge
            continue
        if (spec.get("comparison_set"), spec.get("model")) == (set_name, model):
            return status.id
    return None


def launch_judge(
    ctx: Ctx,
    comparison_set: str,
    *,
    model: str,
    provider: str = "openai",
    base_url: str | None = None,
    rejudge: bool = False,
    limit: int | None = None,
    start_worker: bool = True,
    api_key: str | None = None,
    **fields: Any,
) -> str:
    """Queue a judge job over the set's items (those this judge model has not judged yet,
    unless `rejudge`): pairs get a verdict, ranking items a round-robin ranking. Returns the
    job id. Nothing left to judge, or the same judge already queued, answers AlreadyDone.
    `base_url`: the configured endpoint or an allowed one (any, for an admin); `api_key`
    (admins) reaches the job beside its spec, never in it."""
    require(ctx.actor, "launch_job")
    store = need_store(ctx)
    if provider == "local":  # a local judge is a model folder
        model = str(typed_path(ctx, model, models=True))
    base_url = endpoints.vet(ctx, check_url(base_url), api_key)
    cs = S.get_comparison_set(store, comparison_set)
    items = [it for it in S.set_items(store, cs["id"]) if len(it["responses"]) >= 2]
    if not items:
        raise ActionError(
            f"comparison set {cs['name']!r} has no items with two or more responses to judge"
        )
    if not rejudge:
        queued = _active_judge(ctx, cs["name"], model)
        if queued:
            raise AlreadyDone(f"judge job {queued} over {cs['name']!r} is already queued", queued)
        name = model.rstrip("/").rsplit("/", 1)[-1] if provider == "local" else model
        done = S.judged_items(store, cs["id"], f"judge:{name}")
        items = [it for it in items if it["id"] not in done]
        if not items:
            raise AlreadyDone(
                f"judge {model!r} has already judged every item of "
                f"{cs['name']!r} (set rejudge to ask again)"
            )
    items = items[:limit] if limit else items
    spec = {
        "comparison_set": cs["name"],
        "items_path": str(items_file(ctx.ws.exports, cs["name"], items)),
        "provider": provider,
        "model": model,
        "base_url": base_url,
        **fields,
    }
    job_id, _ = action.launch(
        ctx,
        "judge",
        spec,
        name="prefs.judge",
        target=cs["name"],
        detail={"model": model, "items": len(items)},
        start_worker=start_worker,
        fn=endpoints.hand_key(ctx, base_url, api_key),
    )
    return job_id


def launch_answers(
    ctx: Ctx,
    *,
    model: str,
    prompts_from: str,
    provider: str = "local",
    base_url: str | None = None,
    max_new_tokens: int = 64,
    start_worker: bool = True,
    api_key: str | None = None,
) -> str:
    """Queue an answer job: the base model (a local folder) or an endpoint answers the eval
    prompts of run / source `prompts_from`, making a new source for comparison sets. The
    endpoint and a typed key follow the same rule as `launch_judge`."""
    require(ctx.actor, "launch_job")
    base_url = endpoints.vet(ctx, check_url(base_url), api_key)
    prompts = list(S.generation_outputs(need_store(ctx), [prompts_from])[prompts_from])
    if not prompts:
        raise ActionError(f"no generations for {prompts_from!r}; `ftstudio runs list` shows runs")
    if provider == "local":
        model = str(typed_path(ctx, model, models=True))
    spec = {
        "provider": provider,
        "model": model,
        "base_url": check_url(base_url),
        "prompts": prompts,
        "max_new_tokens": max_new_tokens,
    }
    job_id, _ = action.launch(
        ctx,
        "answer",
        spec,
        name="prefs.answer",
        target=prompts_from,
        detail={"model": model, "prompts": len(prompts)},
        start_worker=start_worker,
        fn=endpoints.hand_key(ctx, base_url, api_key),
    )
    return job_id


def dpo_fields(ctx: Ctx, name: str, version: str | int | None = None) -> dict[str, Any]:
    """Spec fields of a DPO run on a preference set version; its pairs are written to a
    content-addressed file under exports/ (a job never opens DuckDB), shared by every run on
    the same version. Preparing a run's input: nothing is audited until the run is queued."""
    store = need_store(ctx)
    v = S.resolve_preference_version(store, name, version)
    if not v["n_pairs"]:
        raise ActionError(f"preference set {name!r} v{v['number']} has no pairs")
    path = ctx.ws.exports / f"prefs-{v['name']}-v{v['number']}-{v['hash'][:12]}.jsonl"
    if not path.exists():
        E.write_dpo_jsonl(S.version_pairs(store, v["id"]), path, conversational=True)
    return {
        "method": "dpo",
        "dataset": v["name"],
        "dataset_version_id": v["id"],
        "dataset_hash": v["hash"],
        "data_path": str(path),
    }


def launch_dpo(
    ctx: Ctx,
    name: str,
    *,
    base_model: str,
    version: str | int | None = None,
    **fields: Any,
) -> str:
    """Queue a DPO run (LoRA; the reference is the base with the adapter off) on a preference
    set version; `fields` are further run config fields. Returns the job id. The base model
    typed by a dashboard user is confined to the workspace or the configured models' folder."""
    require(ctx.actor, "launch_job")
    fields = {
        "base_model": str(typed_path(ctx, base_model, models=True)),
        **fields,
        **dpo_fields(ctx, name, version),
    }
    return start_run(ctx, fields, group_id=None, name="prefs.train_dpo")
