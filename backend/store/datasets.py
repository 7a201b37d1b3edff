"""Datasets, immutable versions and immutable examples.

An example's id is the sha256 of its canonical messages JSON (backend/examples.py), so the
same conversation is stored once; an edit makes a new example that names its parent. A version is
an ordered list of example ids with a content hash over them; it never changes once written.
`add_version` validates every example first and writes everything in one transaction: all or
nothing. A new version takes over the human-QC sample of the version it follows (the parent,
else the dataset's newest): kept examples stay in the sample, an edited one passes its place to
its edit, removed ones leave it. SQL and row mapping only: roles, audit rows and "already done"
checks live in backend/synth/actions.py, which calls these functions inside its transaction.

Jobs never open DuckDB: a submitter calls `write_version_jsonl` to hand a version to a job.
"""

from __future__ import annotations

import json
import os
import re
import uuid
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
from backend.store.db import Store

FORMATS = ("messages", "prompt-completion")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class DatasetNotFound(ValueError):
    """A dataset or version that does not exist; the message names what was missing."""


class DatasetExists(ValueError):
    """A dataset of that name already exists."""


class InvalidExamples(ValueError):
    """Examples that failed validation; `problems` lists (row index, reason), first ones first."""

    def __init__(self, problems: list[tuple[int, str]], total: int, where: str = "row"):
        self.problems = problems
        shown = "; ".join(f"{where} {i + 1}: {why}" for i, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} examples are invalid, nothing was stored: {shown}{more}"
        )


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


def _normalise(ex: Any) -> tuple[dict | None, str | None]:
    if not isinstance(ex, dict):
        return None, "not an object"
    problem = message_problem(ex.get("messages"))
    if problem:
        return None, problem
    topic = ex.get("topic")
    if topic is not None and not isinstance(topic, str):
        return None, "topic is not text"
    origin = ex.get("origin")
    if origin is not None and not isinstance(origin, dict):
        return None, "origin is not an object"
    messages = [{"role": m["role"], "content": m["content"]} for m in ex["messages"]]
    return {
        "id": example_id(messages),
        "messages": messages,
        "topic": topic,
        "parent_id": ex.get("parent_id"),
        "origin": origin,
    }, None


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
    ds = _dataset_row(cur, dataset)
    clean, problems = [], []
    for i, ex in enumerate(examples):
        norm, why = _normalise(ex)
        if why:
            problems.append((i, why))
        else:
            clean.append(norm)
    if problems:
        raise InvalidExamples(problems, len(examples))
    seen: set[str] = set()
    ordered = []
    for ex in clean:  # the same conversation twice in one version is kept once
        if ex["id"] not in seen:
            seen.add(ex["id"])
            ordered.append(ex)
    if parent_version_id is not None:
        parent = cur.execute(
            "SELECT dataset_id FROM dataset_versions WHERE id = ?", [parent_version_id]
        ).fetchone()
        if parent is None:
            raise DatasetNotFound(f"no version {parent_version_id!r} to use as parent")
    ids = [ex["id"] for ex in ordered]
    previous = cur.execute(
        "SELECT id, number FROM dataset_versions WHERE dataset_id = ? ORDER BY number DESC LIMIT 1",
        [ds["id"]],
    ).fetchone()
    number = (previous[1] if previous else 0) + 1
    created = now()
    version_id = f"dsv-{uuid.uuid4().hex[:12]}"
    if ordered:
        cur.executemany(
            "INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            [
                [
                    ex["id"],
                    json.dumps(ex["messages"], ensure_ascii=False),
                    ex["topic"],
                    ex["parent_id"],
                    json.dumps(ex["origin"]) if ex["origin"] is not None else None,
                    created,
                ]
                for ex in ordered
            ],
        )
    cur.execute(
        "INSERT INTO dataset_versions (id, dataset_id, number, parent_version_id, created, hash,"
        " n_examples, note, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            version_id,
            ds["id"],
            number,
            parent_version_id,
            created,
            version_hash(ids),
            len(ids),
            note,
            json.dumps(skipped, ensure_ascii=False) if skipped else None,
        ],
    )
    if ids:
        cur.executemany(
            "INSERT INTO version_examples VALUES (?, ?, ?)",
            [[version_id, eid, pos] for pos, eid in enumerate(ids)],
        )
    source = parent_version_id or (previous[0] if previous else None)
    carried = _carry_qc(cur, source, version_id, ds["id"], ordered, created) if source else 0
    return {
        "id": version_id,
        "dataset": ds["name"],
        "dataset_id": ds["id"],
        "number": number,
        "created": created.isoformat(),
        "hash": version_hash(ids),
        "n_examples": len(ids),
        "parent_version_id": parent_version_id,
        "note": note,
        "skipped": skipped,
        "duplicates_dropped": len(clean) - len(ordered),
        "qc_carried": carried,
    }


def _carry_qc(
    cur: duckdb.DuckDBPyConnection,
    source_version_id: str,
    version_id: str,
    dataset_id: str,
    examples: list[dict],
    created: datetime,
) -> int:
    """Give the new version the QC sample of the version it follows: an example still there
    keeps its place, an edited one passes it to its edit (the example naming it as parent),
    a removed one leaves the sample. Each row keeps its generation job, share and status."""
    rows = cur.execute(
        "SELECT example_id, job_id, share, status FROM qc_samples WHERE version_id = ?",
        [source_version_id],
    ).fetchall()
    if not rows:
        return 0
    present = {ex["id"] for ex in examples}
    edits: dict[str, str] = {}
    for ex in examples:
        if ex["parent_id"] and ex["parent_id"] not in present:
            edits.setdefault(ex["parent_id"], ex["id"])
    carried = []
    for example, job_id, share, status in rows:
        now_id = example if example in present else edits.get(example)
        if now_id is not None:
            carried.append([version_id, now_id, dataset_id, job_id, share, status, created])
    if carried:
        cur.executemany(
            "INSERT INTO qc_samples (version_id, example_id, dataset_id, job_id, share, status,"
            " created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            carried,
        )
    return len(carried)


def add_version(
    store: Store,
    dataset: str,
    examples: list[dict],
    *,
    parent_version_id: str | None = None,
    note: str = "",
    skipped: dict | None = None,
) -> dict:
    """Validate and store a new immutable version, all or nothing, in one transaction.

    Raises InvalidExamples naming the first bad rows, or DatasetNotFound.
    """
    with store.transaction() as cur:
        return add_version_cur(
            cur, dataset, examples, parent_version_id=parent_version_id, note=note, skipped=skipped
        )


def _version_dict(row: dict, dataset_name: str) -> dict:
    return {
        "id": row["id"],
        "dataset": dataset_name,
        "dataset_id": row["dataset_id"],
        "number": row["number"],
        "created": _iso(row["created"]),
        "hash": row["hash"],
        "n_examples": row["n_examples"],
        "parent_version_id": row["parent_version_id"],
        "note": row["note"],
        "skipped": json.loads(row["skipped"]) if row.get("skipped") else None,
    }


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
    }


def version_examples(store: Store, version_id: str) -> list[dict]:
    """The examples of a version in position order: id, messages, topic, parent_id, origin."""
    rows = store.rows(
        "SELECT e.id, e.messages, e.topic, e.parent_id, e.origin FROM version_examples ve"
        " JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ? ORDER BY ve.position",
        [version_id],
    )
    return [_example_dict(r) for r in rows]


def search_examples(
    store: Store, version_id: str, *, text: str = "", topic: str | None = None, limit: int = 200
) -> list[dict]:
    """Examples of a version whose messages contain `text` (case-insensitive), by topic."""
    sql = (
        "SELECT e.id, e.messages, e.topic, e.parent_id, e.origin FROM version_examples ve"
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
        "SELECT id, messages, topic, parent_id, origin FROM examples WHERE id = ?", [example_id_]
    )
    if not rows:
        raise DatasetNotFound(f"no example {example_id_!r}")
    return _example_dict(rows[0])


def write_version_jsonl(store: Store, version_id: str, path: Path) -> int:
    """Write `{"id", "messages"}` lines for a version to `path` atomically; return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = version_examples(store, version_id)
    if not items and not store.scalar("SELECT 1 FROM dataset_versions WHERE id = ?", [version_id]):
        raise DatasetNotFound(f"no version {version_id!r}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for e in items:
            fh.write(
                json.dumps({"id": e["id"], "messages": e["messages"]}, ensure_ascii=False) + "\n"
            )
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(items)
