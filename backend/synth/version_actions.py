"""Dataset version actions: new versions made by editing an example, keeping a selection or a
filtered search of a version, or storing given examples.

Each one checks the role, re-reads the version it builds on inside its transaction, and writes
the version together with one audit row (backend/action.py). A version whose content (its
ordered example ids) equals the newest version's answers `AlreadyDone` with that version, so a
double click or two users at once never make a duplicate version (backend/synth/actions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.action import ActionError, AlreadyDone, Ctx, need_store
from backend.auth import require
from backend.examples import example_id, message_problem
from backend.store import datasets as dstore
from backend.synth import versions
from backend.synth.actions import Version, _already, _change, _save, _version_detail


def edit_example(
    ctx: Ctx, dataset: str, example: str, messages: list[dict], *, note: str = ""
) -> dict:
    """A new version in which one example of the newest version is replaced by an edited copy
    naming its parent. The same edit again answers `AlreadyDone`."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)
    valid = message_problem(messages) is None

    def fn(cur) -> dict:
        latest = dstore.resolve_version(store, dataset)
        items = dstore.version_examples(store, latest["id"])
        where = f"{latest['dataset']} v{latest['number']}"
        if not any(e["id"] == example for e in items):
            if valid and any(
                e["parent_id"] == example and e["id"] == example_id(messages, e.get("tools"))
                for e in items
            ):
                raise AlreadyDone(f"example {example[:12]} is already edited so in {where}", latest)
            raise dstore.DatasetNotFound(f"example {example[:12]} is not in {where}")
        out = versions.with_edit(items, example, messages)
        note_ = note or f"edited example {example[:12]}"
        return _save(store, dataset, out, parent=latest["id"], note=note_)

    def detail(v: dict) -> dict:
        return {"dataset": v["dataset"], **_version_detail(v)}

    return _change(ctx, "edit_data", "dataset.edit_example", example, fn, detail=detail)


def _version_from(
    ctx: Ctx,
    dataset: str,
    version: Version,
    pick: Callable[[Any, dict], tuple[dict, str]],
    what: dict,
) -> dict:
    """A new version made of the examples of a source version that `pick(cur, source)`
    selects ({text, topic, ids}), with the note it gives: worked out in SQL, so a filter over
    a million examples never loads them."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)

    def fn(cur) -> dict:
        source = dstore.resolve_version(store, dataset, version)
        select, note = pick(cur, source)
        if not dstore.count_matching(cur, source["id"], **select):
            raise ActionError(
                f"no examples of {source['dataset']} v{source['number']} are selected: "
                "nothing to make a version of"
            )
        try:
            return dstore.derive_version(
                cur, dataset, source["id"], note=note, refuse_same=True, **select
            )
        except dstore.SameAsLatest as exc:
            raise _already(exc.latest) from None

    def detail(v: dict) -> dict:
        return {**what, **_version_detail(v)}

    return _change(ctx, "edit_data", "dataset.version", dataset, fn, detail=detail)


def save_selection(
    ctx: Ctx, dataset: str, example_ids: list[str], *, version: Version = None, note: str = ""
) -> dict:
    """A new version holding the selected examples of a version (the newest by default), in
    their order there. Ids not in that version are refused, naming them."""

    def pick(cur, source: dict) -> tuple[dict, str]:
        missing = dstore.missing_ids(cur, source["id"], example_ids)
        where = f"{source['dataset']} v{source['number']}"
        if missing:
            shown = ", ".join(m[:12] for m in missing[:3])
            raise dstore.DatasetNotFound(
                f"{len(missing)} selected examples are not in {where}: {shown}"
            )
        of = f"{source['n_examples']} examples of v{source['number']}"
        return {"ids": list(example_ids)}, note or f"{len(set(example_ids))} selected of {of}"

    return _version_from(ctx, dataset, version, pick, {"selected": len(set(example_ids))})


def save_filtered(
    ctx: Ctx,
    dataset: str,
    *,
    text: str = "",
    topic: str | None = None,
    version: Version = None,
    note: str = "",
) -> dict:
    """A new version holding the examples of a version that match a search (text in the
    messages, case-insensitive, and/or a topic), in their order there."""
    require(ctx.actor, "edit_data")
    if not text and not topic:
        raise ActionError("give a search text or a topic to filter by")

    def pick(cur, source: dict) -> tuple[dict, str]:
        n = dstore.count_matching(cur, source["id"], text=text, topic=topic)
        terms = versions.search_terms(text, topic)
        select = {"text": text, "topic": topic}
        return select, note or f"{n} examples of v{source['number']} matching {terms}"

    return _version_from(ctx, dataset, version, pick, {"text": text, "topic": topic})


def save_version(
    ctx: Ctx,
    dataset: str,
    examples: list[dict],
    *,
    parent_version_id: str | None = None,
    note: str = "",
) -> dict:
    """Store `examples` as the next version of `dataset`, all or nothing."""
    require(ctx.actor, "edit_data")
    store = need_store(ctx)

    def fn(cur) -> dict:
        return _save(store, dataset, examples, parent=parent_version_id, note=note)

    return _change(ctx, "edit_data", "dataset.version", dataset, fn, detail=_version_detail)
