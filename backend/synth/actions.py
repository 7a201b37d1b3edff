"""Dataset actions: every change a user makes to datasets, whether from the Datasets page,
`ftstudio dataset ...` / `ftstudio generate`, or the demo bootstrap. This module creates
datasets, saves recipes, queues generation and seeds the demo dataset; imports, upload previews
and exports are backend/synth/import_actions.py's, versions made by edits, filters and
selections backend/synth/version_actions.py's, both built on the helpers here.

Each one checks the role, re-reads what it depends on inside its transaction, and writes the
change together with one audit row (backend/action.py). Saving a version whose content (its
ordered example ids) equals the newest version's answers `AlreadyDone` with that version, so a
double click, an import run twice or two users at once never make a duplicate version.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from backend import action
from backend.action import AlreadyDone, Ctx, need_store
from backend.auth import require
from backend.integrations.pool import Endpoint
from backend.settings import endpoints
from backend.store import Store
from backend.store import datasets as dstore
from backend.synth import demo, versions
from backend.synth.generate import GenerateSpec
from backend.synth.importers import read_examples
from backend.synth.recipe import Recipe

T = TypeVar("T")
Version = str | int | None  # a version id, number ("3", "v3") or None for the newest


def _change(ctx: Ctx, permission: str, name: str, target: str | None, fn, *, detail=None):
    return action.change(ctx, permission, name, target, fn, detail=detail)


def _save(
    store: Store,
    dataset: str,
    examples: list[dict],
    *,
    parent: str | None,
    note: str,
    skipped: dict | None = None,
):
    """Store `examples` as the next version unless the newest version holds the same ones."""
    try:
        return dstore.add_version(
            store,
            dataset,
            examples,
            parent_version_id=parent,
            note=note,
            skipped=skipped,
            refuse_same=True,
        )
    except dstore.SameAsLatest as exc:
        raise _already(exc.latest) from None


def _already(latest: dict) -> AlreadyDone:
    return AlreadyDone(
        f"{latest['dataset']} v{latest['number']} already holds these "
        f"{latest['n_examples']} examples; no new version was made",
        latest,
    )


def _version_detail(v: dict) -> dict:
    return {"version": v["number"], "examples": v["n_examples"], "hash": v["hash"][:16]}


def create_dataset(
    ctx: Ctx, name: str, *, format: str = "messages", recipe: dict | None = None
) -> dict:
    """Create an empty dataset. A name in use raises `DatasetExists`: a dataset made by a
    double click or by someone else is not this one's to claim."""
    require(ctx.actor, "edit_data")
    name = name.strip() if isinstance(name, str) else name
    if recipe is not None:
        Recipe.model_validate(recipe)
    store = need_store(ctx)

    def fn(cur) -> dict:
        return dstore.create_dataset(store, name, format=format, recipe=recipe)

    return _change(ctx, "edit_data", "dataset.create", name, fn, detail={"format": format})


def save_recipe(ctx: Ctx, dataset: str, recipe: Recipe | dict) -> dict:
    """Store a dataset's recipe; the same recipe again answers `AlreadyDone`."""
    require(ctx.actor, "edit_data")
    new = versions.recipe_for(None, recipe, None)[0].model_dump(mode="json")
    store = need_store(ctx)

    def fn(cur) -> dict:
        ds = dstore.get_dataset(store, dataset)
        if ds["recipe"] == new:
            raise AlreadyDone(f"the recipe of {ds['name']} is already saved as it is", ds)
        return dstore.set_recipe(store, ds["id"], new)

    return _change(ctx, "edit_data", "dataset.recipe", dataset, fn)


def generate(
    ctx: Ctx,
    dataset: str,
    *,
    recipe: Recipe | dict | None = None,
    changes: dict[str, Any] | None = None,
    create: bool = True,
    start_worker: bool = True,
    api_key: str | None = None,
    **overrides: Any,
) -> str:
    """Queue a `generate` job for `dataset` and return its id.

    The recipe is the stored one, or `recipe`, with `changes` (None values ignored) laid over
    it; a new or changed recipe is stored with the launch, and a missing dataset is created
    when `create`. `overrides` are GenerateSpec fields (base_url, concurrency, rpm, qc_share,
    ...). The dataset's current examples go to a file the job dedupes against: the job never
    opens the database. `base_url` must be the configured endpoint or an allowed one unless an
    admin gives it; `api_key` (admins) reaches the job beside its spec, never in it."""
    require(ctx.actor, "launch_job")
    store = need_store(ctx)
    overrides["base_url"] = endpoints.vet(ctx, overrides.get("base_url"), api_key)
    if overrides.get("endpoints"):  # a pool: each endpoint vetted like base_url
        pool = [Endpoint.model_validate(e) for e in overrides["endpoints"]]
        overrides["endpoints"] = [
            e.model_copy(update={"base_url": endpoints.vet(ctx, e.base_url)}) for e in pool
        ]
    ds = dstore.find_dataset(store, dataset)
    if ds is None and not create:
        raise dstore.DatasetNotFound(f"no dataset named {dataset!r}")
    new, given = versions.recipe_for(ds["recipe"] if ds else None, recipe, changes)
    new_json = new.model_dump(mode="json")
    save = given and (ds is None or new_json != ds["recipe"])
    if ds is None or save:
        require(ctx.actor, "edit_data")
    fields = {"dataset": ds["name"] if ds else dataset, "provider": new.provider}
    fields |= {"model": new.model, "recipe": new_json}
    fields |= {k: v for k, v in overrides.items() if v is not None}
    spec = GenerateSpec.model_validate(fields)
    latest = dstore.latest_version(store, ds["id"]) if ds else None
    base_file = None
    if latest and latest["n_examples"]:
        base_file = ctx.ws.root / "inputs" / f"{ds['id']}-{uuid.uuid4().hex[:8]}.jsonl"
        dstore.write_version_jsonl(store, latest["id"], base_file)
        spec = spec.model_copy(update={"base_jsonl": str(base_file)})

    def rows(cur, job_id: str) -> dict:
        current = dstore.find_dataset(store, dataset)
        if current is None:
            if not create:
                raise dstore.DatasetNotFound(f"no dataset named {dataset!r}")
            saved = new_json if save else None
            return dstore.create_dataset(store, dataset, format=new.format, recipe=saved)
        if save and current["recipe"] != new_json:
            return dstore.set_recipe(store, current["id"], new_json)
        return current

    detail = {"created": ds is None, "recipe_saved": save}
    try:
        job_id, _ = action.launch(
            ctx,
            "generate",
            spec,
            name="dataset.generate",
            target=dataset,
            fn=endpoints.hand_key(ctx, spec.base_url, api_key, rows),
            detail=detail,
            start_worker=start_worker,
        )
    except BaseException:
        if base_file is not None:
            base_file.unlink(missing_ok=True)
        raise
    return job_id


def seed_demo_dataset(ctx: Ctx) -> dict | None:
    """Import the Tasklane sample as dataset "tasklane-support" with its recipe when absent;
    return its version, or None when it is there already (the bootstrap runs at every start)."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)
    if dstore.find_dataset(store, demo.DEMO_DATASET) is not None:
        return None
    examples = read_examples(demo.SAMPLE)
    for ex in examples:
        ex["origin"] = {"source": "import", "file": demo.SAMPLE.name}

    def fn(cur) -> dict:
        if dstore.find_dataset(store, demo.DEMO_DATASET) is not None:
            raise AlreadyDone(f"the sample dataset {demo.DEMO_DATASET} is there already")
        dstore.create_dataset(store, demo.DEMO_DATASET, recipe=demo.DEMO_RECIPE)
        return dstore.add_version(store, demo.DEMO_DATASET, examples, note=demo.NOTE)

    def detail(v: dict) -> dict:
        return {"file": demo.SAMPLE.name, **_version_detail(v)}

    try:
        return _change(ctx, "edit_data", "dataset.import", demo.DEMO_DATASET, fn, detail=detail)
    except AlreadyDone:
        return None
