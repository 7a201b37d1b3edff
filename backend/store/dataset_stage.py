"""An import's examples stored ahead of its version, a chunk per transaction, so memory stays
flat however large the file: DuckDB keeps a transaction's appended rows in memory until it
commits (about 1 KB per example here), so one transaction over a million rows would not.

    staged = stage_import(store, chunks)      # examples committed chunk by chunk
    staged = order_staged(store, staged)      # the version's rows, in batches, id reserved
    try:
        ...write_version(cur, ..., staged=staged) inside the action's transaction...
    finally:
        drop_stage(store, staged)             # the stage rows go; so do examples nothing holds

Examples are content-addressed and immutable, and every read reaches them through a version,
so an example stored before its version exists is invisible; so are `version_examples` rows
under a version id that no `dataset_versions` row has yet; an import that fails (a flawed
row, the same content as the newest version, an error) removes the examples it added that no
version holds. All or nothing holds for what anyone can see.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa

from backend.store.dataset_write import (
    InvalidExamples,
    Staged,
    checked_rows,
    insert_chunk,
    now,
)
from backend.store.db import Store

ORDER_BATCH = 100_000
BULK_WAL = "256MB"  # checkpoint threshold while an import writes (DuckDB's default: 16 MB)


_bulk = {"active": 0, "before": None}
_bulk_lock = threading.Lock()


@contextmanager
def bulk_writes(store: Store) -> Iterator[None]:
    """Let the write-ahead log grow to 256 MB while an import writes its chunks, instead of
    a checkpoint every 16 MB: each one rewrites the examples' growing key index (a 1M-row
    import took 97 s that way, 53 s so; 1 GB saved little more and doubled the peak memory
    of its one big checkpoint). The first import in sets it, the last one out restores it."""
    with _bulk_lock:
        if _bulk["active"] == 0:
            cur = store.cursor()
            try:
                sql = "SELECT current_setting('checkpoint_threshold')"
                _bulk["before"] = cur.execute(sql).fetchone()[0]
                cur.execute(f"SET checkpoint_threshold = '{BULK_WAL}'")
            finally:
                cur.close()
        _bulk["active"] += 1
    try:
        yield
    finally:
        with _bulk_lock:
            _bulk["active"] -= 1
            if _bulk["active"] == 0:
                cur = store.cursor()
                try:
                    cur.execute("SET checkpoint_threshold = ?", [str(_bulk["before"])])
                finally:
                    cur.close()


def stage_import(store: Store, chunks: Iterable[list[dict]], *, prepared: bool = False) -> Staged:
    """Check and store every chunk's examples, committing each chunk; raise InvalidExamples
    (after removing what was stored) when any is invalid, or the reader's own error."""
    staged = Staged(id=f"stg-{uuid.uuid4().hex[:12]}", created=now(), valid=0)
    problems: list[tuple[int, str]] = []
    index = valid = 0
    sql = f"INSERT INTO import_stage SELECT '{staged.id}', pos, id, parent_id FROM {{chunk}}"
    try:
        for chunk in chunks:
            rows = checked_rows(chunk, prepared, problems, index)
            index += len(chunk)
            if rows and not problems:  # a race with another import is run again
                start = valid
                store.write(
                    lambda cur, rows=rows, start=start: insert_chunk(
                        cur, rows, start, staged.created, sql, []
                    )
                )
                valid += len(rows)
        if problems:
            raise InvalidExamples(problems, index)
    except BaseException:
        drop_stage(store, staged)
        raise
    return Staged(staged.id, staged.created, valid)


def drop_stage(store: Store, staged: Staged) -> None:
    """Remove an import's stage rows, the rows it wrote ahead for a version that was never
    made, and the examples it stored that no version holds and no other import in progress
    has staged (it may have found them here and not stored its own copy)."""
    with store.transaction() as cur:
        if staged.version_id:
            cur.execute(
                "DELETE FROM version_examples WHERE version_id = ?"
                " AND version_id NOT IN (SELECT id FROM dataset_versions)",
                [staged.version_id],
            )
        cur.execute(
            "DELETE FROM examples WHERE created = ? AND id IN"
            " (SELECT example_id FROM import_stage WHERE stage_id = ?)"
            " AND id NOT IN (SELECT example_id FROM version_examples)"
            " AND id NOT IN (SELECT example_id FROM import_stage WHERE stage_id <> ?)",
            [staged.created, staged.id, staged.id],
        )
        cur.execute("DELETE FROM import_stage WHERE stage_id = ?", [staged.id])


def order_staged(store: Store, staged: Staged, batch: int = ORDER_BATCH) -> Staged:
    """Write the version's rows ahead under a reserved version id: each example once, at its
    first place, `batch` rows per transaction, hashing the ordered ids as they stream by
    (`backend.examples.version_hash`). Nobody sees them until the version row is written."""
    version_id = f"dsv-{uuid.uuid4().hex[:12]}"
    digest, n = hashlib.sha256(), 0
    reader_cur = store.cursor()
    try:
        reader = reader_cur.sql(
            "SELECT example_id, min(pos) AS first FROM import_stage"
            f" WHERE stage_id = '{staged.id}' GROUP BY example_id ORDER BY first"
        ).to_arrow_reader(batch)
        for rb in reader:
            ids = rb.column(0).to_pylist()
            for eid in ids:
                digest.update((eid if n == 0 else "\n" + eid).encode())
                n += 1
            table = pa.table(
                {
                    "version_id": pa.array([version_id] * len(ids), pa.string()),
                    "example_id": pa.array(ids, pa.string()),
                    "position": pa.array(range(n - len(ids), n), pa.int32()),
                }
            )
            store.write(lambda cur, table=table: _append_rows(cur, table))
    except BaseException:
        drop_stage(store, replace(staged, version_id=version_id))
        raise
    finally:
        reader_cur.close()
    return replace(staged, version_id=version_id, hash=digest.hexdigest(), n=n)


def _append_rows(cur, table: pa.Table) -> None:
    name = f"rows_{uuid.uuid4().hex[:8]}"
    cur.register(name, table)
    try:
        cur.execute(f"INSERT INTO version_examples SELECT * FROM {name}")
    finally:
        cur.unregister(name)
