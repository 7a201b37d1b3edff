"""Ingest Label Studio webhook deliveries from the receiver's inbox into the reviews table.

The inbox (backend/integrations/labelstudio/webhook.py writes it; that process never opens
the database) is tailed by byte offset like a job's JSONL, its offset kept in
`ingest_offsets` under the key `@review-webhooks` (no job has that id). Only complete lines
are read, so a torn last line waits. Each annotation goes through the same `parse_annotation`
and `upsert_reviews` as a pull (id `ls:<annotation id>`), so a delivery, a pull and a repeated
delivery store it once; an older delivery never overwrites a newer verdict.
ANNOTATIONS_DELETED drops those verdicts unless their batch was applied, and only verdicts of
a batch pushed to the project the deletion came from (an id of another project, or a deletion
that names none, is reported and skipped). A bad line is reported and skipped; the offset moves
only after the verdicts are stored, so a failure retries the same lines.

A pass reads at least `webhook.MAX_LINE` bytes, the longest line the receiver writes, so every
line it wrote fits in one pass; a longer line (written by something else) is reported and
stepped over rather than waited on for ever.

Once everything in it is stored and it has grown past `ROTATE_BYTES`, the inbox is copied to
`inbox.jsonl.1` and emptied in place under the receivers' file lock (same file, so a delivery
waiting on the lock lands in the emptied inbox, never in the copy). An inbox shorter than the
stored offset (emptied, or replaced by hand) is read again from its start: verdicts are
stored by annotation id, so reading a line twice changes nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from backend.integrations.labelstudio import webhook
from backend.integrations.labelstudio.client import reviewer_name
from backend.jsonl import read_new_lines
from backend.review import labelstudio as lsync
from backend.review.verdicts import Verdict
from backend.store import jobs as jobrows
from backend.store import review as rstore
from backend.store.db import Store

log = logging.getLogger(__name__)

KEY, FILE = "@review-webhooks", "inbox.jsonl"
ROTATE_BYTES = 8 << 20
PASS_BYTES = 1 << 26  # what one pass reads at most (never less than the longest line)


@dataclass
class InboxReport:
    lines: int = 0
    stored: dict[str, int] = field(default_factory=lambda: {"new": 0, "updated": 0, "unchanged": 0})
    skipped: int = 0  # skipped/empty annotations and deliveries older than the stored verdict
    removed: int = 0  # verdicts whose annotation was deleted in Label Studio
    kept: int = 0  # deleted there, but their batch was applied already: they stay
    errors: list[str] = field(default_factory=list)


def _newer_or_equal(stored, incoming) -> bool:
    if stored is None or incoming is None:
        return True
    return rstore._ts(incoming) >= stored


def _line_end(path: Path, offset: int, step: int = 1 << 20) -> int | None:
    """The byte just past the first newline at or after `offset`; None when there is none yet."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        at = offset
        while block := fh.read(step):
            found = block.find(b"\n")
            if found >= 0:
                return at + found + 1
            at += len(block)
    return None


def ingest_inbox(store: Store, path: Path, max_bytes: int | None = None) -> InboxReport:
    """Store the verdicts of the inbox lines appended since the last pass."""
    report = InboxReport()
    max_bytes = max(max_bytes or PASS_BYTES, webhook.MAX_LINE + 1)
    offset = _stored_offset(store)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return report
    if size < offset:  # emptied or replaced since: read it from its start
        offset = 0
    chunk = read_new_lines(path, offset, max_bytes)
    if not chunk and size - offset >= max_bytes:  # one line longer than a pass reads
        end = _line_end(path, offset)
        if end is None:
            return report  # still being written: it waits like any torn line
        report.lines = 1
        report.errors.append(
            f"{path} at byte {offset}: a line of {end - offset} bytes, over the "
            f"{max_bytes - 1} a pass reads; skipped"
        )
        log.error("review webhook inbox: %s", report.errors[-1])
        with store.transaction() as cur:
            jobrows.advance_offset(cur, KEY, FILE, end, 1)
        return report
    if not chunk:
        return report
    records, report.errors = webhook.read_records(chunk, f"{path} after byte {offset}")
    report.lines = len(records) + len(report.errors)
    batches: dict[str, dict | None] = {}
    by_batch: dict[str, list[dict]] = {}
    deleted: dict[int, list[str]] = {}  # project -> verdict ids deleted there
    for rec in records:
        if rec.get("action") == "ANNOTATIONS_DELETED":
            project = rec.get("project_id")
            if not isinstance(project, int) or isinstance(project, bool):
                report.errors.append(
                    f"{path}: deletion of annotation {rec.get('annotation_id')} names no "
                    "project; skipped"
                )
            else:
                deleted.setdefault(project, []).append(f"ls:{rec.get('annotation_id')}")
            continue
        where = f"{path}: annotation {rec.get('annotation_id')}"
        batch_id = rec.get("batch_id")
        if batch_id not in batches:
            batches[batch_id] = rstore.find_batch(store, batch_id)
        batch = batches[batch_id]
        if batch is None:
            report.errors.append(f"{where}: batch {batch_id!r} is not in this store; skipped")
            continue
        if rec.get("project_id") and rec["project_id"] != batch["ls_project_id"]:
            report.errors.append(
                f"{where}: came from project {rec['project_id']} but batch {batch_id} is "
                f"project {batch['ls_project_id']}; skipped"
            )
            continue
        ann = rec["annotation"]
        reviewer = rec.get("reviewer") or reviewer_name(ann.get("completed_by"), {})
        try:
            row = lsync.parse_annotation(ann, rec["example_id"], reviewer)
            if row is not None:
                Verdict.model_validate({k: row.get(k) for k in Verdict.model_fields})
        except (KeyError, TypeError, ValidationError) as exc:
            report.errors.append(f"{where}: not a verdict ({type(exc).__name__}: {exc}); skipped")
            continue
        if row is None:
            report.skipped += 1
            continue
        by_batch.setdefault(batch_id, []).append(row)
    for batch_id, rows in by_batch.items():
        latest: dict[str, dict] = {}
        for row in rows:  # the newest state of each annotation in this pass
            if row["id"] not in latest or _newer_or_equal(
                rstore._ts(latest[row["id"]]["updated"]), row["updated"]
            ):
                latest[row["id"]] = row
        stored = rstore.review_updated_times(store, list(latest))
        fresh = [r for r in latest.values() if _newer_or_equal(stored.get(r["id"]), r["updated"])]
        report.skipped += len(rows) - len(fresh)
        for k, v in rstore.upsert_reviews(store, batch_id, fresh).items():
            report.stored[k] += v
    for project, ids in deleted.items():  # after the upserts: a pass's order
        gone = rstore.remove_ls_reviews(store, ids, project_id=project)
        report.removed += gone["removed"]
        report.kept += gone["kept"]
        if gone["elsewhere"]:
            report.errors.append(
                f"{path}: project {project} deleted {len(gone['elsewhere'])} annotation(s) "
                f"whose verdicts belong to another project's batch "
                f"({', '.join(gone['elsewhere'][:5])}); kept"
            )
    with store.transaction() as cur:
        jobrows.advance_offset(cur, KEY, FILE, offset + len(chunk), report.lines)
    for err in report.errors:
        log.error("review webhook inbox: %s", err)
    return report


def _stored_offset(store: Store) -> int:
    return jobrows.stored_offset(store, KEY, FILE)


def rotate(store: Store, path: Path, min_bytes: int | None = None) -> bool:
    """Copy the inbox to `<name>.1` and empty it, when all of it is stored and it holds at
    least `min_bytes` (default ROTATE_BYTES). Returns whether it did."""
    min_bytes = ROTATE_BYTES if min_bytes is None else min_bytes
    try:
        fh = open(path, "r+b")
    except FileNotFoundError:
        return False
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # receivers append under the same lock
        try:
            size = os.fstat(fh.fileno()).st_size
            if size < min_bytes or size != _stored_offset(store):
                return False
            keep = path.with_name(path.name + ".1")
            with open(keep.with_name(keep.name + ".tmp"), "wb") as out:
                shutil.copyfileobj(fh, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(keep.with_name(keep.name + ".tmp"), keep)
            fh.truncate(0)
            os.fsync(fh.fileno())
            jobrows.reset_offset(store, KEY, FILE)
            return True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ingest_workspace_inbox(store: Store, ws) -> InboxReport:
    """Drain the workspace's inbox (every complete line there now), then rotate it when it
    has grown past ROTATE_BYTES."""
    total = InboxReport()
    while True:
        part = ingest_inbox(store, webhook.inbox_path(ws))
        if part.lines == 0:
            rotate(store, webhook.inbox_path(ws))
            return total
        total.lines += part.lines
        total.skipped += part.skipped
        total.removed += part.removed
        total.kept += part.kept
        total.errors += part.errors
        for k, v in part.stored.items():
            total.stored[k] += v


def ingest_review_webhooks(store: Store, ws, report) -> None:
    """Label Studio annotations the webhook receiver put in its inbox (review/webhooks/)."""
    if not webhook.inbox_path(ws).exists():
        return
    try:
        inbox = ingest_workspace_inbox(store, ws)
    except Exception as exc:  # retried next pass: the offset moves only after storing
        report.errors.append(
            f"{webhook.inbox_path(ws)}: cannot ingest ({type(exc).__name__}: {exc})"
        )
        return
    if inbox.lines:
        report.rows["review/webhooks/inbox.jsonl"] = inbox.lines
    report.errors += inbox.errors
