"""Dataset import and export actions: a file, hub dataset or upload imported as a new version,
an upload previewed before anything is stored, and a version exported to a file or downloaded.

Each one checks the role and writes the change together with one audit row (backend/action.py),
like every dataset action (backend/synth/actions.py). An import whose content equals the newest
version's answers `AlreadyDone` with that version. Paths typed by a dashboard user are confined
to the workspace (an export to its exports/ folder); the shell (actor None) is trusted with its
own paths, as with any command line tool, except that no export lands on the workspace, the
studio's own files, or a folder it did not export.
An upload is copied to disk a chunk at a time and refused once it passes the size cap.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from backend.action import Ctx, need_store, typed_path
from backend.auth import require
from backend.security import MAX_UPLOAD_BYTES, UploadError, sniff
from backend.store import datasets as dstore
from backend.store.dataset_diff import iter_version_examples
from backend.store.dataset_stage import bulk_writes, drop_stage, order_staged, stage_import
from backend.synth.actions import Version, _already, _change
from backend.synth.exporters import ExportError, target_problem, write_examples
from backend.synth.importers import (
    HUB_PREFIX,
    ImportFileError,
    Scan,
    iter_examples,
    parse_mapping,
    preview,
)

UPLOAD_KINDS = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}
UPLOAD_CHUNK = 1 << 20
SKIPPED_KEPT = 1000  # skipped rows kept beside a version (all are counted)


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
