"""Production data in, drift checks out: parse JSONL/CSV batches (by file, upload or watched
folder; stored by `actions.ingest`), and prepare the `drift` job comparing the new batches with
the reference (queued by `actions.run_check`).

`prepare` writes the job's inputs (reference and window texts) under
workspace/monitoring/<check_id>/ and names them in the spec: the job never opens DuckDB.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from backend.drift.monitors import config_of
from backend.jsonl import write_jsonl
from backend.security import MAX_UPLOAD_BYTES
from backend.store import production
from backend.store.datasets import version_examples
from backend.store.db import Store
from backend.workspace import Workspace

PROMPT_KEYS = ("prompt", "text", "input", "question", "query")
RESPONSE_KEYS = ("response", "completion", "output", "answer")
TIME_KEYS = ("timestamp", "time", "t", "created", "created_at")
SUFFIXES = (".jsonl", ".json", ".csv")
MAX_BATCH_BYTES = MAX_UPLOAD_BYTES  # the largest production file read (the upload limit)
_CHUNK = 1 << 20


def size_text(n: int) -> str:
    """Bytes in words: 200 MiB, 1.5 KiB, 12 bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


class BatchTooLarge(ValueError):
    """A production file over the size limit; the message names the file and the limit."""

    def __init__(self, name: str, limit: int, size: int | None = None):
        what = f"is {size_text(size)}, over" if size is not None else "is over"
        super().__init__(
            f"{name} {what} the {size_text(limit)} limit for a production batch; "
            "split it into smaller files"
        )


def read_capped(stream: BinaryIO, name: str, limit: int | None = None) -> bytes:
    """The bytes of a production file or upload, read in chunks and refused with
    `BatchTooLarge` as soon as they pass `limit` (MAX_BATCH_BYTES): never more than the limit
    is held, however large the file is or grows while it is read."""
    limit = MAX_BATCH_BYTES if limit is None else limit
    parts, seen = [], 0
    while chunk := stream.read(min(_CHUNK, limit + 1 - seen) or 1):
        seen += len(chunk)
        if seen > limit:
            raise BatchTooLarge(name, limit)
        parts.append(chunk)
    return b"".join(parts)


def read_file(path: Path, limit: int | None = None) -> bytes:
    """`read_capped` over a file, refused by its size before a byte is read when it is
    already over the limit."""
    limit = MAX_BATCH_BYTES if limit is None else limit
    path = Path(path)
    size = path.stat().st_size
    if size > limit:
        raise BatchTooLarge(path.name, limit, size)
    with open(path, "rb") as fh:
        return read_capped(fh, path.name, limit)


def _time(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value))
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    except (ValueError, OSError, OverflowError):
        raise ValueError(
            f"{where}: timestamp {value!r} is neither ISO 8601 nor epoch seconds"
        ) from None


def _record(row: dict, where: str) -> dict[str, Any]:
    prompt = next((row[k] for k in PROMPT_KEYS if row.get(k)), None)
    response = next((row[k] for k in RESPONSE_KEYS if row.get(k)), None)
    msgs = row.get("messages")
    if prompt is None and isinstance(msgs, list):
        users = [
            m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user"
        ]
        answers = [
            m.get("content", "")
            for m in msgs
            if isinstance(m, dict) and m.get("role") == "assistant"
        ]
        prompt = "\n".join(users) or None
        response = response or (answers[-1] if answers else None)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(
            f"{where}: no prompt; give one of the fields "
            f"{', '.join(PROMPT_KEYS)} or a messages list with a user turn"
        )
    t = next((row[k] for k in TIME_KEYS if row.get(k) not in (None, "")), None)
    return {"prompt": prompt, "response": str(response) if response else None, "t": _time(t, where)}


def parse_production(data: bytes, name: str) -> list[dict[str, Any]]:
    """Records from JSONL (or a JSON list) or CSV bytes; any bad row fails the whole file with
    its line number, so a batch is stored whole or not at all."""
    text = data.decode("utf-8-sig")
    rows: list[tuple[str, Any]] = []
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        rows = [(f"{name}:{i + 2}", r) for i, r in enumerate(reader)]
    elif text.lstrip().startswith("["):
        rows = [(f"{name}[{i}]", r) for i, r in enumerate(json.loads(text))]
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{name}:{i}", json.loads(line)))
                except ValueError as exc:
                    raise ValueError(f"{name}:{i}: not valid JSON ({exc})") from None
    out = []
    for where, row in rows:
        if isinstance(row, str):
            row = {"prompt": row}
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object with a prompt")
        out.append(_record(row, where))
    if not out:
        raise ValueError(f"{name} holds no prompts")
    return out


def prompt_text(messages: list[dict]) -> str:
    """The prompt of a chat example: its user turns before the last assistant turn."""
    last = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages)
    )
    return "\n".join(m["content"] for m in messages[:last] if m.get("role") == "user")


@dataclass
class CheckInputs:
    """A drift check ready to queue: its id, the batches it consumes, the job's spec (its
    input files written under workspace/monitoring/<check_id>/) and the window's records."""

    check_id: str
    folder: Path
    batch_ids: list[str]
    records: list[dict]
    spec: dict[str, Any]
    window_start: Any
    window_end: Any
    n_reference: int

    def row(self, monitor: dict, job_id: str) -> dict[str, Any]:
        """The drift_checks row (`monitoring.record_check` keywords) once the job has an id."""
        return {
            "check_id": self.check_id,
            "monitor_id": monitor["id"],
            "job_id": job_id,
            "reference_version_id": monitor["reference_version_id"],
            "batch_ids": self.batch_ids,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "n_reference": self.n_reference,
            "n_window": len(self.records),
        }


def prepare(
    store: Store, ws: Workspace, monitor: dict, *, force: bool = False
) -> CheckInputs | str:
    """The inputs of a drift job over the monitor's unchecked batches, written to files, or
    why there is no check (a window smaller than the monitor's `min_window`, unless `force`;
    a reference with fewer than 2 prompts)."""
    cfg = config_of(monitor)
    pending = production.unchecked_batches(store, monitor["id"])
    records = production.batch_records(store, [b["id"] for b in pending])
    if not records or (len(records) < cfg.min_window and not force):
        return (
            f"{len(records)} new prompts; a check waits for {cfg.min_window} "
            "(the monitor's min_window)"
        )
    examples = version_examples(store, monitor["reference_version_id"])
    reference = [{"text": prompt_text(e["messages"]), "topic": e.get("topic")} for e in examples]
    reference = [r for r in reference if r["text"].strip()]
    if len(reference) < 2:
        return "the reference version has fewer than 2 prompts"
    check_id = f"chk-{os.urandom(5).hex()}"
    folder = ws.root / "monitoring" / check_id
    write_jsonl(folder / "reference.jsonl", reference)
    write_jsonl(folder / "window.jsonl", [{"text": r["prompt"]} for r in records])
    spec = {
        "monitor_id": monitor["id"],
        "monitor_name": monitor["name"],
        "check_id": check_id,
        "reference_version_id": monitor["reference_version_id"],
        "reference_path": str(folder / "reference.jsonl"),
        "window_path": str(folder / "window.jsonl"),
        "config": cfg.model_dump(mode="json"),
    }
    return CheckInputs(
        check_id=check_id,
        folder=folder,
        batch_ids=[b["id"] for b in pending],
        records=records,
        spec=spec,
        window_start=min(b["window_start"] for b in pending),
        window_end=max(b["window_end"] for b in pending),
        n_reference=len(reference),
    )
