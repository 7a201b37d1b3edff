"""Production data in, drift checks out: read JSONL/CSV batches (by file, upload or watched
folder) into a monitor, and submit a `drift` job comparing the new batches with the reference.

The submitter writes the job's inputs (reference and window texts) under
workspace/monitoring/<check_id>/ and names them in the spec: the job never opens DuckDB.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from backend.auth import Actor, require
from backend.drift import judge, quality
from backend.jobs import queue
from backend.jsonl import write_jsonl
from backend.store import monitoring as mon
from backend.store.datasets import version_examples
from backend.store.db import Store
from backend.workspace import Workspace

PROMPT_KEYS = ("prompt", "text", "input", "question", "query")
RESPONSE_KEYS = ("response", "completion", "output", "answer")
TIME_KEYS = ("timestamp", "time", "t", "created", "created_at")
SUFFIXES = (".jsonl", ".json", ".csv")


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


def ingest_bytes(
    store: Store, monitor: str | None, data: bytes, name: str, source: str = "upload"
) -> dict:
    """Parse and store one batch for a monitor (the only one when `monitor` is None)."""
    m = mon.the_monitor(store, monitor)
    records = parse_production(data, name)
    return mon.add_batch(
        store,
        m["id"],
        records,
        source=source,
        name=name,
        content_hash=hashlib.sha256(data).hexdigest(),
    )


def ingest_file(store: Store, monitor: str | None, path: Path, source: str = "cli") -> dict:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return ingest_bytes(store, monitor, data, path.name, source=source)


def scan_folder(
    store: Store, monitor: str, folder: Path, seen: dict | None = None
) -> tuple[list[dict], list[str]]:
    """Ingest every JSONL/CSV file in `folder` not seen before (by content); returns the new
    batches and one message per file that failed. With `seen` (kept by the caller between
    scans), a file whose size and modification time are unchanged is not read again."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], [f"watched folder {folder} does not exist"]
    new, errors = [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES or path.name[0] == ".":
            continue
        try:
            st = path.stat()
        except OSError:
            continue  # gone between the listing and now
        key, stamp = (monitor, str(path)), (st.st_size, st.st_mtime_ns)
        if seen is not None and seen.get(key) == stamp:
            continue
        try:
            new.append(ingest_file(store, monitor, path, source="folder"))
        except mon.BatchExists:
            pass
        except ValueError as exc:
            errors.append(str(exc))
        if seen is not None:
            seen[key] = stamp  # a bad file is reported once, then again when it changes
    return new, errors


def scan_watched(store: Store, seen: dict | None = None) -> tuple[list[dict], list[str]]:
    """`scan_folder` over every monitor that watches a folder."""
    new, errors = [], []
    for m in mon.list_monitors(store):
        if m["watch_dir"]:
            b, e = scan_folder(store, m["id"], Path(m["watch_dir"]), seen)
            new += b
            errors += e
    return new, errors


def prompt_text(messages: list[dict]) -> str:
    """The prompt of a chat example: its user turns before the last assistant turn."""
    last = max(
        (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages)
    )
    return "\n".join(m["content"] for m in messages[:last] if m.get("role") == "user")


def submit_check(
    store: Store, ws: Workspace, monitor: str, *, force: bool = False, actor: Actor | None = None
) -> dict:
    """Queue a drift job over the monitor's unchecked batches. Returns {"check_id", "job_id"}
    or {"skipped": reason} when the window is smaller than the monitor's `min_window`."""
    require(actor, "launch_job")
    m = mon.get_monitor(store, monitor)
    cfg = m["config"]
    pending = mon.unchecked_batches(store, m["id"])
    records = mon.batch_records(store, [b["id"] for b in pending])
    if not records or (len(records) < cfg.min_window and not force):
        return {
            "monitor": m["name"],
            "skipped": f"{len(records)} new prompts; a check waits "
            f"for {cfg.min_window} (the monitor's min_window)",
        }
    examples = version_examples(store, m["reference_version_id"])
    reference = [{"text": prompt_text(e["messages"]), "topic": e.get("topic")} for e in examples]
    reference = [r for r in reference if r["text"].strip()]
    if len(reference) < 2:
        return {"monitor": m["name"], "skipped": "the reference version has fewer than 2 prompts"}
    check_id = f"chk-{os.urandom(5).hex()}"
    folder = ws.root / "monitoring" / check_id
    write_jsonl(folder / "reference.jsonl", reference)
    write_jsonl(folder / "window.jsonl", [{"text": r["prompt"]} for r in records])
    job_id = queue.new_job_id("drift")
    mon.record_check(
        store,
        check_id=check_id,
        monitor_id=m["id"],
        job_id=job_id,
        reference_version_id=m["reference_version_id"],
        batch_ids=[b["id"] for b in pending],
        window_start=min(b["window_start"] for b in pending),
        window_end=max(b["window_end"] for b in pending),
        n_reference=len(reference),
        n_window=len(records),
    )
    spec = {
        "monitor_id": m["id"],
        "monitor_name": m["name"],
        "check_id": check_id,
        "reference_version_id": m["reference_version_id"],
        "reference_path": str(folder / "reference.jsonl"),
        "window_path": str(folder / "window.jsonl"),
        "config": cfg.model_dump(mode="json"),
    }
    try:
        queue.submit(ws, "drift", spec, job_id=job_id, actor=actor)
    except Exception:
        mon.drop_check(store, check_id)  # its batches go back into the next window
        raise
    out = {
        "monitor": m["name"],
        "check_id": check_id,
        "job_id": job_id,
        "n_window": len(records),
        "n_reference": len(reference),
    }
    out |= quality.submit(store, ws, m, check_id, records, cfg.quality, seed=cfg.seed, actor=actor)
    return out | judge.submit(
        store, ws, m, check_id, records, cfg.quality, seed=cfg.seed, actor=actor
    )


def submit_all(store: Store, ws: Workspace, *, actor: Actor | None = None) -> list[dict]:
    """One check per monitor (those with too little new data say why they were skipped)."""
    return [submit_check(store, ws, m["id"], actor=actor) for m in mon.list_monitors(store)]
