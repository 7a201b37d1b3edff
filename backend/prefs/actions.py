"""Preference actions: every change a user makes to preference data, whether from the
Preferences page or `ftstudio prefs ...`.

Each one checks the role, validates its inputs, re-reads what it depends on inside its
transaction and writes the change with one audit row (backend/action.py), or queues its job
through `action.launch`. Double submissions answer `AlreadyDone`: a preference set version whose
pairs equal the newest version's, a second push of a set to Label Studio (the push is claimed in
its own transaction before the project is made), the same judgement by the same annotator
twice, a judge job already queued for the same set and model. Paths typed by a dashboard user
are confined to the workspace (and the models' folder); the shell (actor None) is trusted.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store, typed_path
from backend.auth import LOCAL_ADMIN, require
from backend.integrations.labelstudio.client import connection
from backend.prefs import export as E
from backend.prefs import labelstudio as pls
from backend.prefs import pairs as P
from backend.security import check_upload
from backend.store import Store
from backend.store import prefs as S
from backend.store import prefs_ls as L
from backend.synth.exporters import target_problem

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_CHUNK = 1 << 16  # bytes read at a time from an upload


def _change(ctx: Ctx, permission: str, name: str, target: str | None, fn, *, detail=None):
    need_store(ctx)
    return action.change(ctx, permission, name, target, fn, detail=detail)


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise ActionError(
            f"{what} name {name!r} is not allowed: use 1-80 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return name.strip()


# --- comparison sets and judgements ---------------------------------------------------------


def create_comparison_set(
    ctx: Ctx,
    name: str,
    *,
    sources: list[str] | None = None,
    items: list[dict] | None = None,
    mode: str = "pairwise",
    analysts: list[str],
    overlap: float = 0.2,
    raters: int = 2,
    seed: int = 0,
) -> dict:
    """A blind comparison set from the stored outputs of `sources` (run ids, base:/endpoint:
    sources) or from prebuilt `items` (`pairs.build_items`), assigned to `analysts`.
    A name in use answers AlreadyDone with that set."""
    require(ctx.actor, "edit_data")
    name = _check_name(name, "comparison set")
    store = need_store(ctx)
    if (sources is None) == (items is None):
        raise ActionError("name the sources to compare, or give the items")
    if mode not in P.MODES:
        raise ActionError(f"mode {mode!r} is unknown; use one of {', '.join(P.MODES)}")
    if sources is not None:
        outputs = S.generation_outputs(store, sources)
        empty = [s for s, o in outputs.items() if not o]
        if empty:
            raise ActionError(
                f"no generations for {', '.join(empty)}; `ftstudio runs list` shows runs"
            )
        items = P.build_items(outputs, mode=mode, seed=seed)
    if not items:
        raise ActionError(
            "no items: the sources share no prompt (each prompt needs answers "
            "from at least two sources)"
        )
    analysts = [a.strip() for a in analysts if a.strip()]
    plan = P.assign(len(items), analysts, overlap=overlap, raters=raters, seed=seed)

    def create(cur) -> dict:
        found = S.find_comparison_set(store, name)
        if found is not None:
            raise AlreadyDone(f"a comparison set named {name!r} already exists", found)
        return S.create_comparison_set(
            store, name, items, plan, mode=mode, analysts=analysts, overlap=overlap, seed=seed
        )

    return _change(
        ctx,
        "edit_data",
        "prefs.create_set",
        name,
        create,
        detail=lambda cs: {"mode": mode, "items": cs["n_items"], "analysts": analysts},
    )


def judge_item(
    ctx: Ctx, item_id: str, annotator: str, verdict: str, *, ranking: list[int] | None = None
) -> str:
    """Record an analyst's judgement of one item (A / B / tie / both_bad, or a ranking);
    returns its id. The same judgement again by the same analyst answers AlreadyDone; a
    different one supersedes it. A signed-in user judges under their own name."""
    require(ctx.actor, "rank")
    annotator = (annotator or "").strip()
    if not annotator:
        raise ActionError("a judgement needs the analyst's name")
    if ctx.actor is not None and ctx.actor != LOCAL_ADMIN and annotator != ctx.actor.username:
        raise ActionError(f"{ctx.actor.username} judges under their own name, not {annotator!r}")
    store = need_store(ctx)

    def record(cur) -> str:
        item = S.get_item(store, item_id)
        P.check_verdict(verdict, len(item["responses"]), ranking)
        before = S.annotator_judgements(store, item_id, annotator)
        if before and (before[0]["verdict"], before[0]["ranking"]) == (verdict, ranking):
            raise AlreadyDone(f"{annotator} already judged this item: {verdict}", before[0]["id"])
        return S.record_judgement(store, item_id, annotator, verdict, ranking=ranking)

    detail = {"verdict": verdict, "annotator": annotator}
    return _change(ctx, "rank", "prefs.judgement", item_id, record, detail=detail)


def skip_item(ctx: Ctx, item_id: str, annotator: str) -> None:
    """Move an item to the end of the analyst's queue."""
    require(ctx.actor, "rank")
    store = need_store(ctx)

    def skip(cur) -> None:
        if not S.skip_item(store, item_id, annotator):
            raise ActionError(f"item {item_id} is not assigned to {annotator!r}")

    _change(ctx, "rank", "prefs.skip", item_id, skip, detail={"annotator": annotator})


# --- preference sets ------------------------------------------------------------------------


def _save_version(
    store: Store, name: str, rows: list[dict], note: str, *, skipped: dict | None = None
) -> dict:
    """Store `rows` as the next version of `name` unless the newest version holds the same
    pairs (AlreadyDone with that version); `skipped`: the rows an import did not store."""
    pairs, digest, duplicates = E.version_rows(rows)
    latest = S.latest_version(store, name)
    if latest is not None and latest["hash"] == digest:
        raise AlreadyDone(
            f"{name} v{latest['number']} already holds these {len(pairs)} pairs; "
            "no new version was made",
            latest,
        )
    version = S.add_preference_version(store, name, pairs, digest, note=note, skipped=skipped)
    return {**version, "duplicates_dropped": duplicates}


def _version_detail(v: dict) -> dict:
    return {"version": v["number"], "pairs": v["n_pairs"], "hash": v["hash"][:16]}


def build_preference_set(
    ctx: Ctx,
    name: str,
    comparison_sets: list[str],
    *,
    sources: tuple[str, ...] = ("human", "judge"),
    note: str = "",
) -> dict:
    """A new version of preference set `name` from the decided pairs of comparison sets
    (ties, disagreements... dropped). Returns the version with `dropped` (counts by reason)."""
    require(ctx.actor, "edit_data")
    name = _check_name(name, "preference set")
    store = need_store(ctx)
    if not comparison_sets:
        raise ActionError("name one or more comparison sets to build from")

    def build(cur) -> dict:
        rows: list[dict] = []
        for cs_name in comparison_sets:
            cs = S.get_comparison_set(store, cs_name)
            rows += [r for r in S.judgements(store, set_id=cs["id"]) if r["source"] in sources]
        pairs, dropped = E.pairs_from_judgements(rows)
        if not pairs:
            raise ActionError(
                f"no decided pairs in {', '.join(comparison_sets)} (dropped: "
                f"{dropped or 'none judged yet'})"
            )
        note_ = note or f"from {', '.join(comparison_sets)}"
        return {**_save_version(store, name, pairs, note_), "dropped": dropped}

    return _change(ctx, "edit_data", "prefs.build", name, build, detail=_version_detail)


def _spool(stream: BinaryIO, label: str, folder: Path) -> Path:
    """Copy an upload to a private temporary file in chunks, refusing it (`TooLarge`, naming
    the file and the limit) as soon as it passes the import limit; its first line is checked
    for what the file really is."""
    path = folder / "upload.jsonl"
    seen, head = 0, b""
    with open(path, "wb") as out:
        while chunk := stream.read(_CHUNK):
            seen += len(chunk)
            if seen > E.MAX_IMPORT_BYTES:
                raise E.TooLarge(label, E.MAX_IMPORT_BYTES)
            if len(head) < _CHUNK:
                head += chunk[: _CHUNK - len(head)]
            out.write(chunk)
    # judged by its first non-blank line: a stray bad line further on is the reader's to
    # report (and to skip), not a reason to call the whole file binary
    first = next((line for line in head.splitlines() if line.strip()), b"")
    check_upload(label, first, {"jsonl"})
    return path


def import_preferences(
    ctx: Ctx,
    name: str,
    source: Path | str | bytes | BinaryIO,
    fmt: str,
    *,
    label: str | None = None,
    skip_invalid: bool = False,
) -> dict:
    """A preference file (HH-RLHF, DPO JSONL, ratings) as a new version of `name`: a path, the
    bytes of an upload, or an upload's stream (read in chunks up to the import limit, checked,
    never saved under its own name). By default one invalid row stores nothing; with
    `skip_invalid` the valid rows are stored and the version keeps each skipped row's line and
    reason (`skipped`). Returns the version with `dropped` and `skipped`; the same pairs as the
    newest version answer AlreadyDone."""
    require(ctx.actor, "import_export")
    name = _check_name(name, "preference set")
    store = need_store(ctx)
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    if hasattr(source, "read"):
        label = label or getattr(source, "name", None) or "upload.jsonl"
        if getattr(
            source, "seekable", lambda: False
        )():  # an upload drawn before may have been read already
            source.seek(0)
        with tempfile.TemporaryDirectory() as tmp:
            path = _spool(source, label, Path(tmp))
            got = E.read_import(path, fmt, skip_invalid=skip_invalid, name=label)
    else:
        path = typed_path(ctx, source)
        label = label or path.name
        got = E.read_import(path, fmt, skip_invalid=skip_invalid, name=label)
    report = got.report()
    note = f"imported {label} ({fmt})"
    if got.invalid:
        note += f"; {len(got.invalid)} invalid rows skipped"

    def save(cur) -> dict:
        version = _save_version(store, name, got.pairs, note, skipped=report)
        return {**version, "dropped": got.dropped}

    return _change(
        ctx,
        "import_export",
        "prefs.import",
        name,
        save,
        detail=lambda v: {
            "file": label,
            "format": fmt,
            **_version_detail(v),
            **({"skipped_invalid": len(got.invalid)} if skip_invalid else {}),
        },
    )


def export_jsonl(
    ctx: Ctx, name: str, *, version: str | int | None = None, conversational: bool = True
) -> tuple[dict, str]:
    """(version, its TRL DPO JSONL text) for a download button: the role check only; the
    download itself is recorded by `record_download` when it happens."""
    require(ctx.actor, "import_export")
    store = need_store(ctx)
    v = S.resolve_preference_version(store, name, version)
    return v, E.dpo_jsonl(S.version_pairs(store, v["id"]), conversational=conversational)


def record_download(ctx: Ctx, name: str, version: dict) -> None:
    """Audit a download of a preference set version (`prefs.export`)."""
    require(ctx.actor, "import_export")
    action.record(ctx, "import_export", "prefs.export", name, _version_detail(version))


def export_file(
    ctx: Ctx,
    name: str,
    out: Path | str,
    *,
    version: str | int | None = None,
    conversational: bool = True,
) -> dict:
    """Write a version in TRL's DPO format (prompt / chosen / rejected) to `out`, audited.
    Returns the version with `written` (pairs) and `path`."""
    require(ctx.actor, "import_export")
    path = typed_path(ctx, out)
    problem = target_problem(path, ctx.ws.root)
    if problem:  # never onto the workspace or the studio's own files: under exports/ only
        raise ActionError(f"cannot export to {out}: {problem}. Nothing was written")
    store = need_store(ctx)

    def write(cur) -> dict:
        v = S.resolve_preference_version(store, name, version)
        n = E.write_dpo_jsonl(S.version_pairs(store, v["id"]), path, conversational=conversational)
        return {**v, "written": n, "path": str(path)}

    return _change(
        ctx,
        "import_export",
        "prefs.export",
        name,
        write,
        detail=lambda v: {**_version_detail(v), "file": path.name},
    )


# --- Label Studio -----------------------------------------------------------------------------


def _connection(ctx: Ctx) -> tuple[str, str]:
    url, token = connection(ctx.settings, ctx.ws)
    if not url or not token:
        raise ActionError(
            "no Label Studio configured: run `ftstudio labelstudio up` (a local server) or "
            "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"
        )
    return url.rstrip("/"), token


def push_to_labelstudio(ctx: Ctx, set_name: str, *, raters: int = 2) -> dict:
    """Create a Label Studio project for the comparison set (Pairwise or Ranker) with each
    item as a task. A set is pushed once: the push is claimed first, in its own transaction,
    so a second push (or two at once) answers AlreadyDone; a failed push releases the claim."""
    require(ctx.actor, "rank")
    store = need_store(ctx)
    cs = S.get_comparison_set(store, set_name)
    items = S.set_items(store, cs["id"])
    if not items:
        raise ActionError(f"comparison set {cs['name']} has no items to push")
    url, token = _connection(ctx)
    blocking = store.write(lambda cur: L.claim_push(store, cs["id"], url))
    if blocking is not None:
        if blocking["project_id"] != L.PENDING:
            link = f"{blocking['url']}/projects/{blocking['project_id']}/data"
            raise AlreadyDone(f"comparison set {cs['name']} is already in Label Studio: {link}")
        raise AlreadyDone(
            f"comparison set {cs['name']} is already being pushed to Label Studio "
            f"(since {blocking['pushed']} UTC)"
        )
    try:
        made = pls.create_project(url, token, cs, items, raters=raters)

        def link(cur) -> None:
            L.finish_push(store, cs["id"], made["project_id"], made["task_ids"])

        detail = {"project_id": made["project_id"], "tasks": len(made["task_ids"])}
        action.change(ctx, "rank", "prefs.ls_push", cs["name"], link, detail=detail)
    except BaseException:
        L.release_push(store, cs["id"])
        raise
    return {
        "set": cs["name"],
        "mode": cs["mode"],
        "project_id": made["project_id"],
        "tasks": len(made["task_ids"]),
        "url": f"{url}/projects/{made['project_id']}/data",
    }


class _Unchanged(Exception):
    """A pull that changed nothing: its transaction is rolled back, no audit row."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts


def pull_from_labelstudio(
    ctx: Ctx, set_name: str, *, on_stage: Callable[[str], None] | None = None
) -> dict:
    """Fetch the project's annotations and upsert them as human judgements (idempotent:
    pulling twice adds nothing; an edited annotation updates its row). Every row is checked
    against its item first; one bad row stores none."""
    require(ctx.actor, "rank")
    store = need_store(ctx)
    cs = S.get_comparison_set(store, set_name)
    project = L.get_project(store, cs["id"])
    if project is None:
        raise ActionError(
            f"comparison set {cs['name']} was not pushed to Label Studio yet: "
            f"`ftstudio prefs push {cs['name']}`"
        )
    url, token = _connection(ctx)
    items = {i["id"]: i for i in S.set_items(store, cs["id"])}
    sizes = {k: len(i["responses"]) for k, i in items.items()}
    got = pls.fetch_annotations(url, token, project["project_id"], cs["mode"], sizes, on_stage)
    for r in got["rows"]:
        if r["item_id"] not in items:
            raise ActionError(f"annotation {r['id']}: item {r['item_id']} is not in {cs['name']}")
        try:
            P.check_verdict(r["verdict"], sizes[r["item_id"]], r.get("ranking"))
        except ValueError as exc:
            raise ActionError(f"annotation {r['id']} on item {r['item_id']}: {exc}") from exc
    if on_stage:
        on_stage("store")

    def upsert(cur) -> dict[str, int]:
        counts = L.upsert_ls_judgements(store, cs["id"], got["rows"])
        if not (counts["new"] or counts["updated"]):
            raise _Unchanged(counts)
        return counts

    try:
        counts = _change(ctx, "rank", "prefs.ls_pull", cs["name"], upsert, detail=dict)
    except _Unchanged as same:
        counts = same.counts
    return {
        "set": cs["name"],
        "project_id": project["project_id"],
        "tasks": got["tasks"],
        "annotations": len(got["rows"]),
        "skipped": got["skipped"],
        **counts,
    }
