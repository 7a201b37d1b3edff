"""Import the user's own data: JSONL, CSV, Parquet, or a HF `save_to_disk` folder.

Accepted rows: `{"messages": [{role, content}, ...]}` (a JSON string in CSV/Parquet works too),
or `prompt` + `completion` (text, or lists of chat turns), with optional `system` and `topic`.
An import is all or nothing by default: every row is read and checked first, and the error names
the first bad rows (file line or row number) and why. Nothing is stored unless every row passes.
`read_checked` is the way through for a file with a few flawed rows: it returns the valid
examples and every skipped row's line (or row) number and reason, for the caller to keep beside
the version (`ftstudio dataset import --skip-invalid`, the import form's checkbox). A file that
cannot be read at all (empty, binary, unknown type) is refused either way.
Pure reading: backend/synth/actions.py `import_file` checks the role and stores the version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from backend.examples import message_problem

MAX_LINE_BYTES = 1_000_000
MAX_FILE_BYTES = 2_000_000_000
SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class ImportFileError(ValueError):
    """The file cannot be imported; the message names the file, the rows and the reason."""


def _problems_error(path: Path, problems: list[tuple[int, str]], total: int, where: str) -> str:
    shown = "; ".join(f"{where} {n}: {why}" for n, why in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return (
        f"{path.name}: {len(problems)} of {total} rows are invalid, nothing was imported: "
        f"{shown}{more}"
    )


def _turns(value: Any, role: str) -> list[dict] | None:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return [dict(m) if isinstance(m, dict) else m for m in value]
    return None


def row_to_example(row: dict) -> tuple[dict | None, str | None]:
    """One input row to {"messages", "topic"}, or the reason it cannot be one."""
    if not isinstance(row, dict):
        return None, "not an object"
    topic = row.get("topic")
    topic = None if topic is None or (isinstance(topic, float) and topic != topic) else str(topic)
    if "messages" in row and row["messages"] is not None:
        messages = row["messages"]
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except ValueError:
                return None, "messages is not valid JSON"
        if hasattr(messages, "tolist"):
            messages = messages.tolist()
        if isinstance(messages, list):
            messages = [dict(m) if isinstance(m, dict) else m for m in messages]
    elif "prompt" in row and "completion" in row:
        prompt, completion = _turns(row["prompt"], "user"), _turns(row["completion"], "assistant")
        if prompt is None or completion is None:
            return None, "prompt and completion must be text or lists of chat turns"
        system = row.get("system")
        head = [{"role": "system", "content": system}] if isinstance(system, str) and system else []
        messages = head + prompt + completion
    else:
        cols = ", ".join(sorted(map(str, row))) or "none"
        return None, f"needs a 'messages' column or 'prompt' and 'completion' (found: {cols})"
    problem = message_problem(messages)
    if problem:
        return None, problem
    return {
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "topic": topic,
    }, None


def _read_jsonl(path: Path, problems: list[tuple[int, str]]) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if len(raw) > MAX_LINE_BYTES:
                problems.append((n, f"line is longer than {MAX_LINE_BYTES // 1_000_000} MB"))
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append((n, f"not UTF-8 text (byte {exc.start})"))
                continue
            if not text.strip():
                continue
            try:
                rows.append((n, json.loads(text)))
            except ValueError as exc:
                problems.append((n, f"invalid JSON ({exc.msg} at column {exc.colno})"))
    return rows


def _read_table(path: Path, kind: str) -> list[tuple[int, Any]]:
    import pandas as pd

    try:
        if kind == "csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            df = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    except (ValueError, OSError) as exc:
        raise ImportFileError(f"{path.name}: cannot be read as {kind}: {exc}") from None
    offset = 2 if kind == "csv" else 1  # CSV row numbers count the header line
    return [(i + offset, r) for i, r in enumerate(df.to_dict(orient="records"))]


def _read_hf(path: Path) -> list[tuple[int, Any]]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ImportFileError(f"{path.name}: not a HF save_to_disk folder: {exc}") from None
    if isinstance(data, DatasetDict):
        if "train" not in data:
            raise ImportFileError(
                f"{path.name}: a DatasetDict without a 'train' split (splits: {', '.join(data)})"
            )
        data = data["train"]
    return [(i + 1, r) for i, r in enumerate(data)]


class Checked(NamedTuple):
    """What a file holds: its valid examples, and the flawed rows left out of them."""

    examples: list[dict]
    skipped: list[tuple[int, str]]  # (line or row number, reason), in file order
    unit: str  # "line" (JSONL, CSV) or "row" (Parquet, HF folder)


def _rows(path: Path, problems: list[tuple[int, str]]) -> tuple[list[tuple[int, Any]], str]:
    if not path.exists():
        raise ImportFileError(f"{path} does not exist")
    if path.is_dir():
        return _read_hf(path), "row"
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImportFileError(
            f"{path.name}: unknown file type {path.suffix!r}; use .jsonl, "
            ".csv, .parquet or a HF save_to_disk folder"
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
    rows = _read_jsonl(path, problems) if kind == "jsonl" else _read_table(path, kind)
    return rows, "line" if kind in ("jsonl", "csv") else "row"


def read_checked(path: str | Path, *, skip_invalid: bool = False) -> Checked:
    """Read and check every row of a file or HF folder. A flawed row raises ImportFileError
    naming the bad rows, unless `skip_invalid`: then the valid rows come back with the skipped
    ones (only a file with no valid row at all is refused). A file that cannot be read at all
    is refused either way."""
    path = Path(path)
    problems: list[tuple[int, str]] = []
    rows, unit = _rows(path, problems)
    if not rows and not problems:
        raise ImportFileError(f"{path.name}: no rows found")
    examples = []
    for n, row in rows:
        ex, why = row_to_example(row)
        if why:
            problems.append((n, why))
        else:
            examples.append(ex)
    problems.sort()
    total = len(examples) + len(problems)
    if problems and not skip_invalid:
        raise ImportFileError(_problems_error(path, problems, total, unit))
    if not examples:
        shown = "; ".join(f"{unit} {n}: {why}" for n, why in problems[:5])
        raise ImportFileError(
            f"{path.name}: none of its {total} rows is valid, nothing was imported: {shown}"
        )
    return Checked(examples, problems, unit)


def read_examples(path: str | Path) -> list[dict]:
    """Read and check every row; raise ImportFileError naming the bad rows."""
    return read_checked(path).examples
