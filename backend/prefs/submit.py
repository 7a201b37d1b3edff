"""Submitters for preference work, shared by the page and the CLI: they read the store, write
what a job needs into a file (a job never opens DuckDB), validate, then queue.

- `submit_judge`: the pairs of a comparison set to a judge job.
- `prefs_train_fields`: a preference set version as the data file of a DPO `train` job.
- `build_preference_set`: judgements -> a new preference set version (ties etc. dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.auth import Actor, require
from backend.jobs import queue
from backend.prefs.export import dpo_row, import_rows, pairs_from_judgements
from backend.prefs.judge import items_file
from backend.store import prefs as S
from backend.store.db import Store
from backend.store.users import audit, audited
from backend.workspace import Workspace


def submit_judge(
    store: Store,
    ws: Workspace,
    comparison_set: str,
    *,
    model: str,
    provider: str = "openai",
    base_url: str | None = None,
    rejudge: bool = False,
    limit: int | None = None,
    actor: Actor | None = None,
    **fields: Any,
) -> str:
    """Queue a judge job over the set's items (those this judge model has not judged yet,
    unless `rejudge`): pairs get a verdict, ranking items a round-robin ranking. ValueError
    when there is nothing to judge; `actor` must hold launch_job."""
    require(actor, "launch_job")
    cs = S.get_comparison_set(store, comparison_set)
    items = [it for it in S.set_items(store, cs["id"]) if len(it["responses"]) >= 2]
    if not items:
        raise ValueError(
            f"comparison set {cs['name']!r} has no items with two or more responses to judge"
        )
    if not rejudge:
        name = model.rstrip("/").rsplit("/", 1)[-1] if provider == "local" else model
        done = {
            r["item_id"]
            for r in store.rows(
                "SELECT item_id FROM comparisons WHERE set_id = ? AND annotator = ?",
                [cs["id"], f"judge:{name}"],
            )
        }
        items = [it for it in items if it["id"] not in done]
        if not items:
            raise ValueError(
                f"judge {model!r} has already judged every item of "
                f"{cs['name']!r} (set rejudge to ask again)"
            )
    items = items[:limit] if limit else items
    path = items_file(ws.exports, cs["name"], items)
    spec = {
        "comparison_set": cs["name"],
        "items_path": str(path),
        "provider": provider,
        "model": model,
        "base_url": base_url,
        **fields,
    }
    return queue.submit(ws, "judge", spec, actor=actor)


@audited("edit_data", "prefs.build", "name")
def build_preference_set(
    store: Store,
    name: str,
    comparison_sets: list[str],
    *,
    sources: tuple[str, ...] = ("human", "judge"),
    note: str = "",
) -> dict:
    """A new version of preference set `name` from the decided pairs of comparison sets.
    Returns the version with `dropped` (counts by reason)."""
    rows: list[dict] = []
    for cs_name in comparison_sets:
        cs = S.get_comparison_set(store, cs_name)
        rows += [r for r in S.judgements(store, set_id=cs["id"]) if r["source"] in sources]
    pairs, dropped = pairs_from_judgements(rows)
    if not pairs:
        raise ValueError(
            f"no decided pairs in {', '.join(comparison_sets)} (dropped: "
            f"{dropped or 'none judged yet'})"
        )
    version = S.add_preference_version(
        store, name, pairs, note=note or f"from {', '.join(comparison_sets)}"
    )
    return {**version, "dropped": dropped}


def import_preference_file(
    store: Store,
    name: str,
    path: Path,
    fmt: str,
    *,
    label: str | None = None,
    actor: Actor | None = None,
) -> dict:
    """A preference file (HH-RLHF, DPO JSONL, ratings) as a new version of `name`; refused
    unless `actor` holds import_export; audited. Returns the version with `dropped`."""
    require(actor, "import_export")
    pairs, dropped = import_rows(path, fmt)
    src = label or Path(path).name
    version = S.add_preference_version(store, name, pairs, note=f"imported {src} ({fmt})")
    audit(
        store,
        actor,
        "prefs.import",
        name,
        {"file": src, "format": fmt, "version": version["number"], "pairs": version["n_pairs"]},
    )
    return {**version, "dropped": dropped}


def export_preference_jsonl(
    store: Store, name: str, *, conversational: bool = True, actor: Actor | None = None
) -> tuple[dict, str]:
    """(latest version, its TRL DPO JSONL text) for a download; refused unless `actor` holds
    import_export. The caller audits the download itself (`prefs.export`) when it happens."""
    require(actor, "import_export")
    v = S.resolve_preference_version(store, name)
    body = "".join(
        json.dumps(dpo_row(p, conversational), ensure_ascii=False) + "\n"
        for p in S.version_pairs(store, v["id"])
    )
    return v, body


def prefs_train_fields(
    store: Store, ws: Workspace, name: str, version: str | int | None = None
) -> dict[str, Any]:
    """Spec fields of a DPO run on a preference set version (written to a content-addressed
    file under exports/, so runs on the same version share it)."""
    v = S.resolve_preference_version(store, name, version)
    if not v["n_pairs"]:
        raise ValueError(f"preference set {name!r} v{v['number']} has no pairs")
    path = ws.exports / f"prefs-{v['name']}-v{v['number']}-{v['hash'][:12]}.jsonl"
    if not path.exists():
        S.write_preference_jsonl(store, v["id"], path, conversational=True)
    return {
        "method": "dpo",
        "dataset": v["name"],
        "dataset_version_id": v["id"],
        "dataset_hash": v["hash"],
        "data_path": str(path),
    }
