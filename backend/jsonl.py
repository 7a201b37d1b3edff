"""Reading the JSONL files that jobs take as input, with errors that name the file and line,
and writing them whole (a reader never sees half a file)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def read_jsonl(
    path: Path, row: Callable[[dict[str, Any]], Any], error: type[Exception] = ValueError
) -> Iterator[Any]:
    """Yield `row(obj)` for each non-blank line of `path`. A line that is not a JSON object,
    or that `row` rejects (KeyError, TypeError, ValueError), raises `error` naming
    `path line N` and why.

    >>> import tempfile, os
    >>> p = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_text('{"a": 1}\\n\\n{"b": 2}\\n')
    >>> list(read_jsonl(p, lambda o: o["a"]))
    Traceback (most recent call last):
    ...
    ValueError: ... line 3: KeyError 'a'
    """
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise error(f"{path} line {n}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise error(f"{path} line {n}: not a JSON object")
            try:
                yield row(obj)
            except (KeyError, TypeError, ValueError) as exc:
                raise error(f"{path} line {n}: {type(exc).__name__} {exc}") from None


def done_keys(path: Path, key: str) -> set[str]:
    """The `key` values of the complete lines a job already wrote to `path`, so a resumed job
    skips them. A torn last line (the job died mid-write) is cut off first, so it is redone
    rather than read half."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        path.write_bytes(complete)
    return {json.loads(line)[key] for line in complete.splitlines() if line.strip()}


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write `rows` as JSON lines, creating the folder; atomically (temp file, fsync, rename)."""
    from backend.workspace import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_new_lines(path, offset: int, max_bytes: int = 1 << 28) -> bytes:
    """The complete lines appended to `path` after byte `offset` (b"" when none yet)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return b""
    if size <= offset:
        return b""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(min(size - offset, max_bytes))
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""  # a torn last line waits
