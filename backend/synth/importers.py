"""Import the user's own data: JSONL, a JSON array, CSV, Parquet, a HF `save_to_disk` folder,
or a Hugging Face hub dataset (`hf:owner/name`), in any shape backend/synth/shapes.py knows
(messages with tools, ShareGPT, prompt/completion, Alpaca) or through a column mapping.

Streaming: `iter_examples` reads a chunk of rows at a time (backend/synth/readers.py) and
yields chunks of checked examples, counting what it leaves out in a `Scan`; the store writes
each chunk as one bulk insert, so a file is never held whole in memory. An import is all or
nothing by default: once the whole file is read, any invalid row raises ImportFileError naming
the first bad rows (file line or row number) and why, and the caller's transaction rolls back.
With `skip_invalid` the valid rows are kept and the skipped rows' numbers and reasons come
back in the Scan, for the caller to keep beside the version (`ftstudio dataset import
--skip-invalid`, the import form's checkbox). A file that cannot be read at all (empty,
binary, unknown type) is refused either way. `preview` reads only the first rows: the shape
they have and the examples they make, for the import form to show before anything is stored.
Pure reading: backend/synth/import_actions.py `import_file` checks the role and stores the
version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from backend.examples import stored_form
from backend.synth.readers import (  # noqa: F401  (kept importable from here)
    CHUNK_ROWS,
    HUB_PREFIX,
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    SUFFIXES,
    ImportFileError,
    ReadProblem,
    open_rows,
)
from backend.synth.shapes import (  # noqa: F401
    apply_mapping,
    parse_mapping,
    row_to_example,
    shape_of,
)

KEPT_PROBLEMS = 1000  # problems kept for the message and the version (all are counted)


@dataclass
class Scan:
    """What reading a source found: counts, the first problems, the shapes seen."""

    label: str = ""
    unit: str = "line"
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)

    def skipped(self, kept: int = KEPT_PROBLEMS) -> dict | None:
        """The skipped rows as a version keeps them, or None when nothing was skipped."""
        if not self.invalid:
            return None
        rows = [{"line": n, "reason": why[:300]} for n, why in self.problems[:kept]]
        return {"file": self.label, "unit": self.unit, "invalid": self.invalid, "rows": rows}


def _problems_error(label: str, scan: Scan) -> str:
    shown = "; ".join(f"{scan.unit} {n}: {why}" for n, why in scan.problems[:5])
    more = f" (and {scan.invalid - 5} more)" if scan.invalid > 5 else ""
    total = scan.valid + scan.invalid
    return (
        f"{label}: {scan.invalid} of {total} rows are invalid, nothing was imported: {shown}{more}"
    )


def iter_examples(
    source: str | Path,
    scan: Scan,
    *,
    mapping: dict[str, str] | str | None = None,
    skip_invalid: bool = False,
    origin: dict | None = None,
    split: str | None = None,
    config: str | None = None,
    chunk: int | None = None,
    prepared: bool = False,
) -> Iterator[list[dict]]:
    """Chunks of checked examples ({messages, topic, tools, origin}) from `source`, counting
    into `scan`; with `prepared`, as the store keeps them (`backend.examples.stored_form`).
    Raises ImportFileError at the end when any row was invalid (unless `skip_invalid`), when
    no row was found, or when none was valid."""
    mapping = parse_mapping(mapping)
    rows, scan.unit, label = open_rows(source, split=split, config=config, chunk=chunk)
    scan.label = scan.label or label
    for numbered in rows:
        out = []
        for n, row in numbered:
            scan.rows += 1
            if isinstance(row, ReadProblem):
                ex, why = None, row.why
            else:
                ex, why = row_to_example(row, mapping)
            if ex is not None and origin is not None:
                ex["origin"] = origin
            if ex is not None and prepared:
                ex, why = stored_form(ex, checked=True)
            if why:
                scan.invalid += 1
                if len(scan.problems) < KEPT_PROBLEMS:
                    scan.problems.append((n, why))
                continue
            scan.valid += 1
            scan.shapes[_shape(row, mapping)] += 1
            out.append(ex)
        if out and (skip_invalid or not scan.invalid):  # all or nothing: stop storing
            yield out
    if not scan.rows:
        raise ImportFileError(f"{scan.label}: no rows found")
    if scan.invalid and not skip_invalid:
        raise ImportFileError(_problems_error(scan.label, scan))
    if not scan.valid:
        shown = "; ".join(f"{scan.unit} {n}: {why}" for n, why in scan.problems[:5])
        raise ImportFileError(
            f"{scan.label}: none of its {scan.rows} rows is valid, nothing was imported: {shown}"
        )


def _shape(row: Any, mapping: dict[str, str]) -> str | None:
    try:
        return shape_of(apply_mapping(row, mapping) if mapping else row)
    except KeyError:
        return None


class Checked(NamedTuple):
    """What a file holds: its valid examples, and the flawed rows left out of them."""

    examples: list[dict]
    skipped: list[tuple[int, str]]  # (line or row number, reason), in file order
    unit: str  # "line" (JSONL, JSON array, CSV) or "row" (Parquet, HF folder or hub)


def read_checked(
    path: str | Path, *, skip_invalid: bool = False, mapping: dict | str | None = None
) -> Checked:
    """Every valid example of a (small) file as a list: `iter_examples` collected."""
    scan = Scan()
    examples = [
        ex
        for chunk in iter_examples(path, scan, skip_invalid=skip_invalid, mapping=mapping)
        for ex in chunk
    ]
    return Checked(examples, scan.problems, scan.unit)


def read_examples(path: str | Path) -> list[dict]:
    """Read and check every row; raise ImportFileError naming the bad rows."""
    return read_checked(path).examples


def preview(
    source: str | Path,
    *,
    mapping: dict | str | None = None,
    rows: int = 5,
    split: str | None = None,
    config: str | None = None,
) -> dict:
    """The first `rows` rows of a source, nothing stored: {label, unit, columns, shape (the
    first row's), rows: [{line, row, example, problem}]}. Raises ImportFileError for a source
    that cannot be read at all, or ValueError for a bad mapping."""
    fields = parse_mapping(mapping)
    chunks, unit, label = open_rows(source, split=split, config=config, chunk=rows)
    try:
        first = next(iter(chunks), [])
    finally:
        chunks.close()
    out: list[dict[str, Any]] = []
    columns: list[str] = []
    for n, row in islice(first, rows):
        if isinstance(row, ReadProblem):
            out.append({"line": n, "row": None, "example": None, "problem": row.why})
            continue
        if isinstance(row, dict):
            columns += [str(c) for c in row if str(c) not in columns]
        ex, why = row_to_example(row, fields)
        out.append({"line": n, "row": row, "example": ex, "problem": why})
    shown = next((r["row"] for r in out if isinstance(r["row"], dict)), None)
    shape = _shape(shown, fields) if shown is not None else None
    return {"label": label, "unit": unit, "columns": columns, "shape": shape, "rows": out}
