"""KTO feedback actions: a thumbs rating of one response, a kto-jsonl import or export, and the
data of a KTO run (review verdicts of a dataset and/or a feedback set).

    rate_response(ctx, item_id, 0, up=True)                 # Preferences page thumbs
    import_feedback(ctx, "support-kto", "kto.jsonl")        # prefs import --format kto-jsonl
    fields = kto_fields(ctx, dataset="support", feedback="support-kto")
    start_run(ctx, {"base_model": ..., **fields})           # ftstudio train --method kto
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store, typed_path
from backend.auth import LOCAL_ADMIN, require
from backend.prefs import kto as K
from backend.store import feedback as F
from backend.store import prefs as S

RATINGS = "ratings"  # the feedback set thumbs go to unless a page names another


def rate_response(
    ctx: Ctx,
    item_id: str,
    response: int,
    up: bool,
    *,
    rater: str | None = None,
    set_name: str = RATINGS,
) -> dict:
    """A thumbs up (desirable) or down on one response of a comparison item into feedback set
    `set_name`, by `rater` (a signed-in user rates under their own name; default: the acting
    user); rating again replaces the rater's rating. The same rating again answers
    AlreadyDone. Returns {id, label, set}."""
    require(ctx.actor, "rank")
    store = need_store(ctx)
    item = S.get_item(store, item_id)
    if not 0 <= response < len(item["responses"]):
        raise ActionError(f"item {item_id} has no response {response}")
    who = (rater or "").strip() or ctx.who
    if ctx.actor is not None and ctx.actor != LOCAL_ADMIN and who != ctx.actor.username:
        raise ActionError(f"{ctx.actor.username} rates under their own name, not {who!r}")
    row_id = f"rate:{set_name}:{item_id}:{response}:{who}"
    if F.rating_of(store, row_id) is not None and F.rating_of(store, row_id) == bool(up):
        raise AlreadyDone(f"{who} already rated this response {'up' if up else 'down'}")
    row = {
        "id": row_id,
        "set_name": set_name,
        "prompt": item["prompt"],
        "completion": item["responses"][response]["text"],
        "label": bool(up),
        "source": "rating",
        "origin": {"item_id": item_id, "response": response},
        "who": who,
    }
    action.change(
        ctx,
        "rank",
        "prefs.rate",
        set_name,
        lambda cur: F.upsert_feedback(cur, [row]),
        detail={"item_id": item_id, "response": response, "up": bool(up)},
    )
    return {"id": row_id, "label": bool(up), "set": set_name}


def import_feedback(ctx: Ctx, name: str, source: Path | str, *, skip_invalid: bool = False) -> dict:
    """A kto-jsonl file (prompt, completion, label per line) into feedback set `name`. By
    default one invalid line stores nothing (ValueError naming it); with `skip_invalid` the
    valid rows are stored and the invalid ones reported. Rows already in the set are kept
    once. Returns {set, new, unchanged, updated, invalid: [{line, reason}]}."""
    require(ctx.actor, "import_export")
    need_store(ctx)
    path = typed_path(ctx, source)
    if not Path(path).is_file():
        raise ActionError(f"no file {path}")
    parsed, invalid = K.read_file(path, skip_invalid=skip_invalid)
    if not parsed:
        raise ActionError(f"{Path(path).name} has no valid kto-jsonl rows")
    rows = [
        {
            "id": K.row_id(r["prompt"], r["completion"], r["label"]) + f":{name}",
            "set_name": name,
            "prompt": r["prompt"],
            "completion": r["completion"],
            "label": r["label"],
            "source": "import",
            "origin": {"file": Path(path).name, "line": r["line"]},
            "who": ctx.who,
        }
        for r in parsed
    ]
    counts = action.change(
        ctx,
        "import_export",
        "prefs.import_kto",
        name,
        lambda cur: F.upsert_feedback(cur, rows),
        detail=lambda c: {"file": Path(path).name, **c, "invalid": len(invalid)},
    )
    return {"set": name, **counts, "invalid": invalid}


def _gather(
    store: Any, dataset: str | None, feedback: str | None
) -> tuple[list[dict], dict[str, Any]]:
    """KTO rows and their lineage from a dataset's verdicts and/or a feedback set."""
    rows: list[dict] = []
    sources: dict[str, Any] = {}
    if dataset:
        got, review_ids = K.rows_from_verdicts(F.dataset_verdicts(store, dataset))
        rows += got
        sources["reviews"] = {"dataset": dataset, "ids": review_ids, "rows": len(got)}
    if feedback:
        stored = F.feedback_rows(store, feedback)
        rows += [K.feedback_to_row(r) for r in stored]
        sources["feedback"] = {
            "set": feedback,
            "ids": [r["id"] for r in stored],
            "ratings": sum(r["source"] == "rating" for r in stored),
            "imports": sum(r["source"] == "import" for r in stored),
        }
    sources["desirable"] = sum(r["label"] for r in rows)
    sources["undesirable"] = len(rows) - sources["desirable"]
    return rows, sources


def export_feedback(
    ctx: Ctx,
    out: Path | str,
    *,
    feedback: str | None = None,
    dataset: str | None = None,
) -> dict:
    """Write the KTO rows of a feedback set and/or a dataset's review verdicts to `out` as
    kto-jsonl (audited `prefs.export_kto`). Returns {path, written, desirable, undesirable}."""
    require(ctx.actor, "import_export")
    rows, sources = _gather(need_store(ctx), dataset, feedback)
    if not rows:
        raise ActionError("nothing to export: no verdicts or ratings found")
    path = Path(typed_path(ctx, out))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(K.jsonl_text(rows), encoding="utf-8")
    tmp.replace(path)
    counts = {k: sources[k] for k in ("desirable", "undesirable")}
    action.record(
        ctx,
        "import_export",
        "prefs.export_kto",
        feedback or dataset,
        {"file": path.name, "written": len(rows), **counts},
    )
    return {"path": str(path), "written": len(rows), **counts}


def kto_counts(ctx: Ctx, *, dataset: str | None = None, feedback: str | None = None) -> dict:
    """What a KTO run on these sources would train on, for a form to show before queueing:
    {desirable, undesirable, reviews?, feedback?}. Reads only."""
    return _gather(need_store(ctx), dataset, feedback)[1]


def kto_fields(
    ctx: Ctx, *, dataset: str | None = None, feedback: str | None = None
) -> dict[str, Any]:
    """Spec fields of a KTO run: the rows of `dataset`'s review verdicts and/or feedback set
    `feedback`, written to a content-addressed file under exports/, and their lineage
    (`sources`: the review and feedback ids, counts per class). Nothing is audited until the
    run is queued."""
    if not dataset and not feedback:
        raise ActionError("a KTO run needs review verdicts (a dataset) or a feedback set")
    rows, sources = _gather(need_store(ctx), dataset, feedback)
    if not rows:
        where = " and ".join(
            x for x in (dataset and f"dataset {dataset!r}", feedback and f"set {feedback!r}") if x
        )
        raise ActionError(f"no verdicts or ratings to train on in {where}")
    if not sources["desirable"] or not sources["undesirable"]:
        raise ActionError(
            f"KTO needs both desirable and undesirable answers; found {sources['desirable']} "
            f"desirable and {sources['undesirable']} undesirable"
        )
    name = "+".join(x for x in (dataset, feedback) if x)
    path, digest = K.write_rows(ctx.ws.exports, name, rows)
    return {
        "method": "kto",
        "dataset": name,
        "dataset_version_id": None,
        "dataset_hash": digest,
        "data_path": str(path),
        "sources": sources,
    }
