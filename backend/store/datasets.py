"""Datasets, immutable versions and immutable examples.

An example's id is the sha256 of its canonical messages JSON (backend/examples.py), so the
same conversation is stored once; an edit makes a new example that names its parent. A version is
an ordered list of example ids with a content hash over them; it never changes once written.
`add_version` validates every example first and writes everything in one transaction: all or
nothing. A new version takes over the human-QC sample of the version it follows (the parent,
else the dataset's newest): kept examples stay in the sample, an edited one passes its place to
its edit, removed ones leave it. SQL and row mapping only: roles, audit rows and "already done"
checks live in backend/synth/actions.py, import_actions.py and version_actions.py, which call
these functions inside their transactions.

Jobs never open DuckDB: a submitter calls `write_version_jsonl` to hand a version to a job.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from backend.examples import (  # noqa: F401  (kept importable from here)
    MAX_CONTENT_CHARS,
    ROLES,
    canonical_json,
    example_id,
    message_problem,
    version_hash,
)
from backend.store.dataset_write import (  # noqa: F401  (kept importable from here)
    DatasetNotFound,
    InvalidExamples,
    SameAsLatest,
    Staged,
    count_matching,
    derive_version,
    missing_ids,
    write_version,
)
from backend.store.dataset_write import version_dict as _version_dict
from backend.store.db import Store

FORMATS = ("messages", "prompt-completion")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class DatasetExists(ValueError):
    """A dataset of that name already exists."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _dataset_row(cur: duckdb.DuckDBPyConnection, dataset: str) -> dict:
    result = cur.execute(
        "SELECT id, name, format, recipe, created FROM datasets WHERE name = ? OR id = ?",
        [dataset, dataset],
    )
    row = result.fetchone()
    if row is None:
        raise DatasetNotFound(f"no dataset named {dataset!r}")
    return {
        "id": row[0],
        "name": row[1],
        "format": row[2],
        "recipe": json.loads(row[3]) if row[3] else None,
        "created": _iso(row[4]),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def create_dataset(
    store: Store, name: str, *, format: str = "messages", recipe: dict | None = None
) -> dict:
    """Create an empty dataset; raises DatasetExists or ValueError for a bad name/format."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"dataset name {name!r} is not allowed: use 1-80 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if format not in FORMATS:
        raise ValueError(f"dataset format {format!r} is unknown; use one of {', '.join(FORMATS)}")
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM datasets WHERE name = ?", [name]).fetchone():
            raise DatasetExists(f"a dataset named {name!r} already exists")
        ds_id = f"ds-{uuid.uuid4().hex[:10]}"
        cur.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?)",
            [ds_id, name, format, json.dumps(recipe) if recipe is not None else None, now()],
        )
        return _dataset_row(cur, ds_id)


def get_dataset(store: Store, dataset: str) -> dict:
    """One dataset by name or id: id, name, format, recipe, created."""
    cur = store.cursor()
    try:
        return _dataset_row(cur, dataset)
    finally:
        cur.close()


def find_dataset(store: Store, dataset: str) -> dict | None:
    """One dataset by name or id, or None when there is none."""
    try:
        return get_dataset(store, dataset)
    except DatasetNotFound:
        return None


def set_recipe(store: Store, dataset: str, recipe: dict) -> dict:
    """Store the dataset's recipe (a plain dict; never holds secrets)."""
    with store.transaction() as cur:
        row = _dataset_row(cur, dataset)
        cur.execute("UPDATE datasets SET recipe = ? WHERE id = ?", [json.dumps(recipe), row["id"]])
        return _dataset_row(cur, row["id"])


def list_datasets(store: Store) -> list[dict]:
    """Every dataset with its latest version: id, name, format, created, versions, examples."""
    rows = store.rows(
        "SELECT d.id, d.name, d.format, d.created,"
        " (SELECT count(*) FROM dataset_versions v WHERE v.dataset_id = d.id) AS versions,"
        " (SELECT v.n_examples FROM dataset_versions v WHERE v.dataset_id = d.id"
        "  ORDER BY v.number DESC LIMIT 1) AS examples,"
        " (SELECT v.id FROM dataset_versions v WHERE v.dataset_id = d.id"
        "  ORDER BY v.number DESC LIMIT 1) AS latest_version_id"
        " FROM datasets d ORDER BY d.created, d.name"
    )
    for r in rows:
        r["created"] = _iso(r["created"])
        r["examples"] = r["examples"] or 0
    return rows


def add_version_cur(
    cur: duckdb.DuckDBPyConnection,
    dataset: str,
    examples: list[dict],
    *,
    parent_version_id: str | None = None,
    note: str = "",
    skipped: dict | None = None,
) -> dict:
    """`add_version` inside a caller's transaction (ingest handlers use this). `skipped` is
    what an import left out ({"file", "unit", "invalid", "rows": [{"line", "reason"}]})."""
    return write_version(
        cur, dataset, [examples], parent_version_id=parent_version_id, note=note, skipped=skipped
    )


def add_version(
    store: Store,
    dataset: str,
    examples: list[dict],
    *,
    parent_version_id: str | None = None,
    note: str = "",
    skipped: dict | None = None,
    refuse_same: bool = False,
) -> dict:
    """Validate and store a new immutable version, all or nothing, in one transaction.

    Raises InvalidExamples naming the first bad rows, or DatasetNotFound; with `refuse_same`,
    SameAsLatest when the newest version holds these very examples.
    """
    return add_version_stream(
        store,
        dataset,
        [examples],
        parent_version_id=parent_version_id,
        note=note,
        skipped=skipped,
        refuse_same=refuse_same,
    )


def add_version_stream(
    store: Store,
    dataset: str,
    chunks: Iterable[list[dict]],
    *,
    parent_version_id: str | None = None,
    note: str | Callable[[], str] = "",
    skipped: dict | None | Callable[[], dict | None] = None,
    refuse_same: bool = False,
    prepared: bool = False,
    staged: Staged | None = None,
) -> dict:
    """`add_version` for examples that arrive in chunks: each chunk is one bulk insert, all
    in one transaction (backend/store/dataset_write.py). `prepared`: the chunks hold
    `backend.examples.stored_form` records. `staged`: an import's examples, stored ahead a
    chunk per transaction (backend/store/dataset_stage.py); `chunks` is then empty."""
    with store.transaction() as cur:
        return write_version(
            cur,
            dataset,
            chunks,
            parent_version_id=parent_version_id,
            note=note,
            skipped=skipped,
            refuse_same=refuse_same,
            prepared=prepared,
            staged=staged,
        )


def list_versions(store: Store, dataset: str) -> list[dict]:
    """A dataset's versions, oldest first."""
    ds = get_dataset(store, dataset)
    rows = store.rows(
        "SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY number", [ds["id"]]
    )
    return [_version_dict(r, ds["name"]) for r in rows]


def latest_version(store: Store, dataset: str) -> dict | None:
    """The newest version of a dataset, or None when it has none yet."""
    ds = get_dataset(store, dataset)
    rows = store.rows(
        "SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY number DESC LIMIT 1",
        [ds["id"]],
    )
    return _version_dict(rows[0], ds["name"]) if rows else None


def resolve_version(store: Store, dataset: str, version: str | int | None = None) -> dict:
    """A version by id, number (3, "3" or "v3"), or the latest when None."""
    if version is None:
        latest = latest_version(store, dataset)
        if latest is None:
            name = get_dataset(store, dataset)["name"]
            raise DatasetNotFound(f"dataset {name!r} has no versions yet")
        return latest
    ds = get_dataset(store, dataset)
    text = str(version)
    number = text[1:] if text[:1] in "vV" and text[1:].isdigit() else text
    if isinstance(version, int) or number.isdigit():
        rows = store.rows(
            "SELECT * FROM dataset_versions WHERE dataset_id = ? AND number = ?",
            [ds["id"], int(number)],
        )
    else:
        rows = store.rows(
            "SELECT * FROM dataset_versions WHERE dataset_id = ? AND id = ?", [ds["id"], text]
        )
    if not rows:
        raise DatasetNotFound(f"dataset {ds['name']!r} has no version {version!r}")
    return _version_dict(rows[0], ds["name"])


def _example_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "messages": json.loads(row["messages"]),
        "topic": row["topic"],
        "parent_id": row["parent_id"],
        "origin": json.loads(row["origin"]) if row["origin"] else None,
        "tools": json.loads(row["tools"]) if row.get("tools") else None,
    }


def version_examples(store: Store, version_id: str) -> list[dict]:
    """The examples of a version in position order: id, messages, topic, parent_id, origin."""
    rows = store.rows(
        "SELECT e.id, e.messages, e.topic, e.parent_id, e.origin, e.tools FROM version_examples ve"
        " JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ? ORDER BY ve.position",
        [version_id],
    )
    return [_example_dict(r) for r in rows]


def search_examples(
    store: Store, version_id: str, *, text: str = "", topic: str | None = None, limit: int = 200
) -> list[dict]:
    """Examples of a version whose messages contain `text` (case-insensitive), by topic."""
    sql = (
        "SELECT e.id, e.messages, e.topic, e.parent_id, e.origin, e.tools FROM version_examples ve"
        " JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ?"
    )
    params: list[Any] = [version_id]
    if text:
        sql += " AND contains(lower(CAST(e.messages AS VARCHAR)), lower(?))"
        params.append(text)
    if topic:
        sql += " AND e.topic = ?"
        params.append(topic)
    sql += " ORDER BY ve.position LIMIT ?"
    params.append(int(limit))
    return [_example_dict(r) for r in store.rows(sql, params)]


def get_example(store: Store, example_id_: str) -> dict:
    rows = store.rows(
        "SELECT id, messages, topic, parent_id, origin, tools FROM examples WHERE id = ?",
        [example_id_],
    )
    if not rows:
        raise DatasetNotFound(f"no example {example_id_!r}")
    return _example_dict(rows[0])


def write_version_jsonl(store: Store, version_id: str, path: Path) -> int:
    """Write `{"id", "messages"}` lines (and "tools" when the example has them) for a version
    to `path` atomically, streamed a batch at a time; return the count."""
    from backend.store.dataset_diff import iter_version_examples

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not store.scalar("SELECT 1 FROM dataset_versions WHERE id = ?", [version_id]):
        raise DatasetNotFound(f"no version {version_id!r}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for batch in iter_version_examples(store, version_id):
            for e in batch:
                row = {"id": e["id"], "messages": e["messages"]}
                row |= {"tools": e["tools"]} if e["tools"] else {}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += len(batch)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return n
