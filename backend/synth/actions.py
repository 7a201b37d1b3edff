"""Dataset actions: every change a user makes to datasets, whether from the Datasets page,
`ftstudio dataset ...` / `ftstudio generate`, or the demo bootstrap.

Each one checks the role, re-reads what it depends on inside its transaction, and writes the
change together with one audit row (backend/action.py). Saving a version whose content (its
ordered example ids) equals the newest version's answers `AlreadyDone` with that version, so a
double click, an import run twice or two users at once never make a duplicate version. Paths
typed by a dashboard user are confined to the workspace (an export to its exports/ folder); the
shell (actor None) is trusted with its own paths, as with any command line tool, except that no
export lands on the workspace, the studio's own files, or a folder it did not export.
An upload is copied to disk a chunk at a time and refused once it passes the size cap.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from backend import action
from backend.action import ActionError, AlreadyDone, Ctx, need_store, typed_path
from backend.auth import require
from backend.examples import example_id, message_problem
from backend.integrations.pool import Endpoint
from backend.security import MAX_UPLOAD_BYTES, UploadError, sniff
from backend.settings import endpoints
from backend.store import Store
from backend.store import datasets as dstore
from backend.store.dataset_diff import iter_version_examples
from backend.store.dataset_stage import bulk_writes, drop_stage, order_staged, stage_import
from backend.synth import demo, versions
from backend.synth.exporters import ExportError, target_problem, write_examples
from backend.synth.generate import GenerateSpec
from backend.synth.importers import (
    HUB_PREFIX,
    ImportFileError,
    Scan,
    iter_examples,
    parse_mapping,
    preview,
    read_examples,
)
from backend.synth.recipe import Recipe

T = TypeVar("T")
Version = str | int | None  # a version id, number ("3", "v3") or None for the newest
UPLOAD_KINDS = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}
UPLOAD_CHUNK = 1 << 20
SKIPPED_KEPT = 1000  # skipped rows kept beside a version (all are counted)


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


def _import(
    ctx: Ctx,
    dataset: str,
    source: str | Path,
    *,
    create: bool,
    note: str,
    label: str | None,
    skip_invalid: bool = False,
    mapping: dict | str | None = None,
    split: str | None = None,
    config: str | None = None,
):
    """Read `source` a chunk at a time into a new version: each chunk's examples are one
    bulk insert, committed as it is read (invisible until a version holds them), then the
    version and its audit row are written in one transaction; a failure removes what the
    import stored. A file is never held whole in memory."""
    mapping = parse_mapping(mapping)
    src = label or (str(source) if str(source).startswith(HUB_PREFIX) else Path(source).name)
    origin = {"source": "import", "file": src}
    store = need_store(ctx)
    scans: list[Scan] = []

    def chunks():
        scans.append(Scan(label=src))
        return iter_examples(
            source,
            scans[-1],
            mapping=mapping,
            skip_invalid=skip_invalid,
            origin=origin,
            split=split,
            config=config,
            prepared=True,
        )

    def skipped() -> dict | None:
        return scans[-1].skipped(SKIPPED_KEPT)

    def default_note() -> str:
        scan = scans[-1]
        text = note or f"imported {src}"
        if scan.invalid and not note:
            text += f", skipped {scan.invalid} invalid {scan.unit}s"
        return text

    with bulk_writes(store):
        try:  # the examples, a chunk per transaction: memory stays flat however big the file
            staged = stage_import(store, chunks(), prepared=True)
        except dstore.InvalidExamples as exc:  # the reader checks the same rules: a guard
            raise ImportFileError(f"{src}: {exc}") from None
        staged = order_staged(store, staged)  # the version's rows too, under a reserved id

    def fn(cur) -> dict:
        if dstore.find_dataset(store, dataset) is None:
            if not create:
                raise dstore.DatasetNotFound(f"no dataset named {dataset!r}")
            dstore.create_dataset(store, dataset)
        try:
            return dstore.add_version_stream(
                store,
                dataset,
                (),
                note=default_note,
                skipped=skipped,
                refuse_same=True,
                staged=staged,
            )
        except dstore.SameAsLatest as exc:
            raise _already(exc.latest) from None

    def detail(v: dict) -> dict:
        scan = scans[-1]
        out = {"file": src, "version": v["number"], "examples": scan.valid}
        out |= {"shapes": dict(scan.shapes)} if scan.shapes else {}
        out |= {"mapping": mapping} if mapping else {}
        return out | ({"skipped": scan.invalid} if scan.invalid else {})

    try:
        return _change(ctx, "import_export", "dataset.import", dataset, fn, detail=detail)
    finally:
        drop_stage(store, staged)


def import_file(
    ctx: Ctx,
    dataset: str,
    path: str | Path,
    *,
    create: bool = True,
    note: str = "",
    label: str | None = None,
    skip_invalid: bool = False,
    mapping: dict | str | None = None,
    split: str | None = None,
    config: str | None = None,
) -> dict:
    """Import a file (JSONL, JSON array, CSV, Parquet, HF folder) or a hub dataset
    (`hf:owner/name`, with `config` and `split`) as a new version of `dataset`, created when
    missing; `mapping` names the columns holding the studio's fields. All or nothing, unless
    `skip_invalid`: then the valid rows are stored and the skipped rows' lines and reasons are
    kept beside the version (its "skipped"). A dashboard user's path is confined to the
    workspace."""
    require(ctx.actor, "import_export")
    if not str(path).startswith(HUB_PREFIX):
        path = typed_path(ctx, path)
    return _import(
        ctx,
        dataset,
        path,
        create=create,
        note=note,
        label=label,
        skip_invalid=skip_invalid,
        mapping=mapping,
        split=split,
        config=config,
    )


def _limit(name: str, max_bytes: int) -> UploadError:
    size = f"{max_bytes / 2**20:g} MiB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
    return UploadError(
        f"{name}: larger than the {size} upload limit; nothing was imported. Import a bigger "
        "file with `ftstudio dataset import DATASET FILE`"
    )


def _spool_upload(name: str, data, dest: Path, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """Copy an upload (bytes or a binary file object) to `dest` a chunk at a time, never
    reading past `max_bytes` + 1; return its kind, judged by its first bytes (not its name).
    Raises UploadError naming the file and the limit, or what the content is."""
    size = len(data) if isinstance(data, bytes | bytearray) else getattr(data, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise _limit(name, max_bytes)
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    if getattr(stream, "seekable", lambda: False)():
        stream.seek(0)  # a Streamlit upload read before
    total, head = 0, b""
    with open(dest, "wb") as fh:
        while chunk := stream.read(min(UPLOAD_CHUNK, max_bytes + 1 - total)):
            total += len(chunk)
            if total > max_bytes:
                raise _limit(name, max_bytes)
            if len(head) < 65536:
                head += chunk[: 65536 - len(head)]
            fh.write(chunk)
    if total == len(head) and not head.strip():
        raise UploadError(f"{name}: the file is empty")
    kind = sniff(head)
    if kind not in UPLOAD_KINDS:
        raise UploadError(
            f"{name}: its content looks like {kind}, expected one of {', '.join(UPLOAD_KINDS)}"
        )
    return kind


def import_upload(
    ctx: Ctx,
    dataset: str,
    name: str,
    data,
    *,
    skip_invalid: bool = False,
    max_bytes: int = MAX_UPLOAD_BYTES,
    mapping: dict | str | None = None,
) -> dict:
    """Import an upload (bytes or a binary file object, copied to disk a chunk at a time up to
    `max_bytes`), judged by its bytes (not its name), as a new version."""
    require(ctx.actor, "import_export")
    with tempfile.TemporaryDirectory(prefix="ftstudio-upload-") as tmp:
        raw = Path(tmp) / "upload.bin"
        kind = _spool_upload(name, data, raw, max_bytes=max_bytes)
        path = raw.rename(Path(tmp) / f"upload{UPLOAD_KINDS[kind]}")
        try:
            return _import(
                ctx,
                dataset,
                path,
                create=True,
                note="",
                label=name,
                skip_invalid=skip_invalid,
                mapping=mapping,
            )
        except ImportFileError as exc:
            raise ImportFileError(str(exc).replace(path.name, name)) from None


def preview_upload(
    ctx: Ctx, name: str, data, *, mapping: dict | str | None = None, rows: int = 5
) -> dict:
    """What an upload holds, before anything is stored: the shape its first row has, its
    columns, and the first `rows` rows with the example each makes or why it cannot
    (`importers.preview`). Reads only; raises ImportFileError, UploadError or ValueError."""
    require(ctx.actor, "import_export")
    with tempfile.TemporaryDirectory(prefix="ftstudio-preview-") as tmp:
        raw = Path(tmp) / "upload.bin"
        kind = _spool_upload(name, data, raw)
        path = raw.rename(Path(tmp) / f"upload{UPLOAD_KINDS[kind]}")
        try:
            return preview(path, mapping=mapping, rows=rows) | {"label": name}
        except ImportFileError as exc:
            raise ImportFileError(str(exc).replace(path.name, name)) from None


def _export_target(ctx: Ctx, out: str | Path) -> Path:
    target = typed_path(ctx, out)
    problem = target_problem(target, ctx.ws.root)
    if problem:
        raise ExportError(f"cannot export to {out}: {problem}. Nothing was written")
    return target


def export_version(
    ctx: Ctx,
    dataset: str,
    fmt: str,
    out: str | Path,
    *,
    version: Version = None,
    overwrite: bool = False,
) -> dict:
    """Write a version (latest by default) for training; returns {path, format, dataset,
    version, version_id, examples, hash}. A dashboard user's path is confined to the
    workspace's exports/ folder; nobody's export lands on the workspace or the studio's own
    files, and an overwrite replaces a folder only when an earlier export made it. The file is
    written inside the audited transaction: no audit, no file."""
    require(ctx.actor, "import_export")
    target = _export_target(ctx, out)
    store = need_store(ctx)
    written: dict[str, Path] = {}

    def fn(cur) -> dict:
        v = dstore.resolve_version(store, dataset, version)
        examples = iter_version_examples(store, v["id"])  # streamed, a batch at a time
        about = {"dataset": v["dataset"], "version": v["number"], "hash": v["hash"]}
        if "path" not in written:  # a transaction run again does not write twice
            written["path"] = write_examples(
                examples, fmt, target, overwrite=overwrite, about=about
            )
        return {
            "path": str(written["path"]),
            "format": fmt,
            "dataset": v["dataset"],
            "version": v["number"],
            "version_id": v["id"],
            "examples": v["n_examples"],
            "hash": v["hash"],
        }

    def detail(r: dict) -> dict:
        return {k: r[k] for k in ("version", "format", "path", "examples")}

    return _change(ctx, "import_export", "dataset.export", dataset, fn, detail=detail)


def download_version(ctx: Ctx, dataset: str, fmt: str, *, version: Version = None) -> bytes:
    """A version as the bytes of one export file (JSONL or Parquet) for the browser to save;
    audited like an export."""
    require(ctx.actor, "import_export")
    if fmt == "hf":
        raise ExportError("a Hugging Face folder cannot be downloaded as one file: export it")
    store = need_store(ctx)

    def fn(cur) -> tuple[dict, bytes]:
        v = dstore.resolve_version(store, dataset, version)
        examples = iter_version_examples(store, v["id"])
        with tempfile.TemporaryDirectory(prefix="ftstudio-download-") as tmp:
            path = write_examples(examples, fmt, Path(tmp) / "export")
            return v, path.read_bytes()

    def detail(r: tuple[dict, bytes]) -> dict:
        return {"version": r[0]["number"], "format": fmt, "bytes": len(r[1])}

    return _change(ctx, "import_export", "dataset.download", dataset, fn, detail=detail)[1]


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
