"""Reading the files an import takes, a chunk of rows at a time: JSONL, a JSON array (streamed
element by element, each named by the line it starts on), CSV, Parquet, a HF `save_to_disk`
folder, or a Hugging Face hub dataset by name (`hf:owner/name`, with a config and a split;
it needs the network, and says so when there is none).

Each reader yields lists of (line or row number, row); a row that cannot be read at all (not
UTF-8, not JSON, too long) comes back as (number, ReadProblem) so the caller counts it where
it stands. A file that cannot be read at all raises `ImportFileError`. Pure reading: shapes
are backend/synth/shapes.py's, storing is backend/synth/import_actions.py's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

MAX_LINE_BYTES = 1_000_000
MAX_FILE_BYTES = 2_000_000_000
BLOCK = 1 << 22
CHUNK_ROWS = 5_000
HUB_PREFIX = "hf:"
SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "json",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

Rows = Iterator[list[tuple[int, Any]]]


class ImportFileError(ValueError):
    """The file cannot be imported; the message names the file, the rows and the reason."""


class ReadProblem(NamedTuple):
    """A row that could not be read (the reason); it is counted, not stored."""

    why: str


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # the standard library says what is wrong in words a user can act on
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ReadProblem(f"not UTF-8 text (byte {exc.start})")
    try:
        return json.loads(text)
    except ValueError as exc:
        return ReadProblem(f"invalid JSON ({exc.msg} at column {exc.colno})")


def read_jsonl(path: Path, chunk: int = CHUNK_ROWS) -> Rows:
    """One JSON value per line; blank lines are skipped."""
    rows: list[tuple[int, Any]] = []
    with open(path, "rb", buffering=BLOCK) as fh:
        for n, raw in enumerate(fh, 1):
            if len(raw) > MAX_LINE_BYTES:
                rows.append((n, ReadProblem(f"line is longer than {MAX_LINE_BYTES // 10**6} MB")))
            elif raw.strip():
                rows.append((n, _loads(raw)))
            if len(rows) >= chunk:
                yield rows
                rows = []
    if rows:
        yield rows


class _Text:
    """A text file read in blocks, with a cursor and the line number at the cursor."""

    def __init__(self, fh):
        self.fh, self.buf, self.i, self.line, self.eof = fh, "", 0, 1, False

    def more(self) -> bool:
        if self.eof:
            return False
        block = self.fh.read(BLOCK)
        self.eof = not block
        self.buf, self.i = self.buf[self.i :] + block, 0
        return bool(block)

    def skip_space(self) -> str:
        """Skip whitespace; the next character, or "" at the end."""
        while True:
            while self.i < len(self.buf) and self.buf[self.i] in " \t\r\n":
                self.line += self.buf[self.i] == "\n"
                self.i += 1
            if self.i < len(self.buf) or not self.more():
                return self.buf[self.i : self.i + 1]


def read_json_array(path: Path, chunk: int = CHUNK_ROWS) -> Rows:
    """The elements of one top-level JSON array, streamed, each with the line it starts on."""
    decoder = json.JSONDecoder()
    rows: list[tuple[int, Any]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            t = _Text(fh)
            if t.skip_space() != "[":
                raise ImportFileError(f"{path.name}: line {t.line}: expected a JSON array")
            t.i += 1
            while True:
                ch = t.skip_space()
                if ch == "]":
                    break
                if ch == "":
                    raise ImportFileError(f"{path.name}: the JSON array is not closed with ']'")
                obj, end = _element(decoder, t, path)
                rows.append((t.line, obj))
                t.line += t.buf.count("\n", t.i, end)
                t.i = end
                sep = t.skip_space()
                if sep == ",":
                    t.i += 1
                elif sep != "]":
                    raise ImportFileError(
                        f"{path.name}: line {t.line}: expected ',' or ']' after an element"
                    )
                if len(rows) >= chunk:
                    yield rows
                    rows = []
            t.i += 1
            if t.skip_space():
                raise ImportFileError(f"{path.name}: line {t.line}: text after the JSON array")
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    if rows:
        yield rows


def _element(decoder: json.JSONDecoder, t: _Text, path: Path) -> tuple[Any, int]:
    """Decode the element at the cursor, reading more of the file while it runs past the
    buffer (a value cut at the buffer's end is never taken as whole)."""
    while True:
        try:
            obj, end = decoder.raw_decode(t.buf, t.i)
            if end < len(t.buf) or t.eof:
                return obj, end
        except ValueError as exc:
            if t.eof or len(t.buf) - t.i > 64 * MAX_LINE_BYTES:
                line = t.line + t.buf.count("\n", t.i, getattr(exc, "pos", t.i))
                raise ImportFileError(
                    f"{path.name}: line {line}: invalid JSON ({getattr(exc, 'msg', exc)}); "
                    "a JSON array cannot be read past it"
                ) from None
        t.more()


def arrow_rows(batch) -> list[dict]:
    """An Arrow batch's rows, with JSON-typed columns (Arrow's json type, `datasets`' Json
    feature: how the studio exports tool-calling turns) decoded into their values."""
    import pyarrow as pa

    rows = batch.to_pylist()
    for field in batch.schema:
        t = field.type
        if isinstance(t, pa.JsonType):
            for r in rows:
                value = r[field.name]
                r[field.name] = orjson.loads(value) if value is not None else None
        elif pa.types.is_list(t) and isinstance(t.value_type, pa.JsonType):
            for r in rows:
                items = r[field.name]
                r[field.name] = None if items is None else [orjson.loads(x) for x in items]
    return rows


def read_table(path: Path, kind: str, chunk: int = CHUNK_ROWS) -> Rows:
    """CSV (every cell text, row numbers counting the header line) or Parquet, in chunks."""
    try:
        if kind == "csv":
            import pandas as pd

            reader = pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="utf-8", chunksize=chunk
            )
            start = 2
            for df in reader:
                yield [(start + i, r) for i, r in enumerate(df.to_dict(orient="records"))]
                start += len(df)
            return
        import pyarrow.parquet as pq

        start = 1
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk):
            yield [(start + i, r) for i, r in enumerate(arrow_rows(batch))]
            start += batch.num_rows
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    except (ValueError, OSError) as exc:
        raise ImportFileError(f"{path.name}: cannot be read as {kind}: {exc}") from None


def _batches(data, chunk: int) -> Rows:
    start = 1
    for table in data.with_format("arrow").iter(batch_size=chunk):
        yield [(start + i, r) for i, r in enumerate(arrow_rows(table))]
        start += table.num_rows


def read_hf_folder(path: Path, split: str | None = None, chunk: int = CHUNK_ROWS) -> Rows:
    """A `datasets` save_to_disk folder (memory-mapped Arrow); a DatasetDict's `split`."""
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ImportFileError(f"{path.name}: not a HF save_to_disk folder: {exc}") from None
    if isinstance(data, DatasetDict):
        want = split or "train"
        if want not in data:
            raise ImportFileError(
                f"{path.name}: a DatasetDict without a {want!r} split (splits: {', '.join(data)})"
            )
        data = data[want]
    yield from _batches(data, chunk)


def hub_offline() -> bool:
    """Whether this process was told to stay off the network for the Hugging Face hub."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def read_hub(
    name: str, config: str | None = None, split: str | None = None, chunk: int = CHUNK_ROWS
) -> Rows:
    """A Hugging Face hub dataset by name, streamed (nothing is downloaded whole)."""
    where = f"Hugging Face dataset {name!r}" + (f" (config {config!r})" if config else "")
    if hub_offline():
        raise ImportFileError(
            f"{where}: importing from the hub needs the network, and this studio runs offline "
            "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set). Download it where there is a "
            "network (`datasets` save_to_disk, or Parquet/JSONL) and import that file"
        )
    from datasets import load_dataset

    try:
        data = load_dataset(name, config, split=split or "train", streaming=True)
        rows, n = [], 0
        for row in data:
            n += 1
            rows.append((n, row))
            if len(rows) >= chunk:
                yield rows
                rows = []
    except (ConnectionError, OSError) as exc:
        raise ImportFileError(
            f"{where}: the hub cannot be reached ({exc}); importing from the hub needs the "
            "network. Import a downloaded copy instead"
        ) from None
    except (ValueError, FileNotFoundError) as exc:
        raise ImportFileError(f"{where}: {exc}") from None
    if rows:
        yield rows


def open_rows(
    source: str | Path,
    *,
    split: str | None = None,
    config: str | None = None,
    chunk: int | None = None,
) -> tuple[Rows, str, str]:
    """(chunks of numbered rows, unit "line" or "row", a label) for a file, folder or
    `hf:owner/name`. Raises ImportFileError for what cannot be read at all."""
    chunk = chunk or CHUNK_ROWS
    text = str(source)
    if text.startswith(HUB_PREFIX):
        name = text[len(HUB_PREFIX) :].strip()
        if not name:
            raise ImportFileError("name a hub dataset after 'hf:', e.g. hf:tatsu-lab/alpaca")
        return read_hub(name, config, split, chunk), "row", text
    path = Path(source)
    if not path.exists():
        raise ImportFileError(f"{path} does not exist")
    if path.is_dir():
        return read_hf_folder(path, split, chunk), "row", path.name
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImportFileError(
            f"{path.name}: unknown file type {path.suffix!r}; use .jsonl, .json, .csv, "
            ".parquet, a HF save_to_disk folder or hf:NAME for a hub dataset"
        )
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError(f"{path.name}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise ImportFileError(f"{path.name}: larger than {MAX_FILE_BYTES // 10**9} GB")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if kind != "parquet" and b"\0" in head:
        raise ImportFileError(f"{path.name}: looks binary (NUL bytes), not {kind} text")
    if kind == "json":
        is_array = head.lstrip()[:1] == b"["
        rows = read_json_array(path, chunk) if is_array else read_jsonl(path, chunk)
        return rows, "line", path.name
    if kind == "jsonl":
        return read_jsonl(path, chunk), "line", path.name
    return read_table(path, kind, chunk), "line" if kind == "csv" else "row", path.name
