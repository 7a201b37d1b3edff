"""Writing a dataset version in bulk: examples arrive in chunks, each chunk becomes one Arrow
table and one `INSERT ... SELECT` (never a statement per row), and the version's order, content
hash, duplicate removal and QC carry-over are worked out in SQL over a staging table of
(position, id, parent id). Memory stays flat as a file grows: only one chunk is ever held as
Python objects, the ids are hashed from a streamed cursor.

All or nothing: everything runs in the caller's transaction, so an invalid example (which
raises `InvalidExamples` after every chunk has been checked) or the reader's own error rolls
the whole version back. `backend/store/datasets.py` re-exports `add_version_cur`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import orjson
import pyarrow as pa

from backend.examples import stored_form

HASH_BATCH = 100_000


class InvalidExamples(ValueError):
    """Examples that failed validation; `problems` lists (row index, reason), first ones first."""

    def __init__(self, problems: list[tuple[int, str]], total: int, where: str = "row"):
        self.problems = problems
        shown = "; ".join(f"{where} {i + 1}: {why}" for i, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} examples are invalid, nothing was stored: {shown}{more}"
        )


class DatasetNotFound(ValueError):
    """A dataset or version that does not exist; the message names what was missing."""


@dataclass(frozen=True)
class Staged:
    """Examples an import stored ahead of its version: their (position, id, parent) rows in
    `import_stage` under `id`, written at `created`; `valid` of them (duplicates counted)."""

    id: str
    created: datetime
    valid: int
    version_id: str | None = None  # set once the version's rows are written ahead
    hash: str | None = None
    n: int = 0


class SameAsLatest(ValueError):
    """The version would hold exactly the examples of the dataset's newest version."""

    def __init__(self, latest: dict):
        self.latest = latest
        super().__init__(f"the newest version already holds these {latest['n_examples']} examples")


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def version_dict(row: dict, dataset_name: str) -> dict:
    """A `dataset_versions` row as the studio passes versions around."""
    created = row["created"]
    return {
        "id": row["id"],
        "dataset": dataset_name,
        "dataset_id": row["dataset_id"],
        "number": row["number"],
        "created": created.isoformat() if isinstance(created, datetime) else created,
        "hash": row["hash"],
        "n_examples": row["n_examples"],
        "parent_version_id": row["parent_version_id"],
        "note": row["note"],
        "skipped": json.loads(row["skipped"]) if row.get("skipped") else None,
    }


def _chunk_table(rows: list[dict], start: int) -> pa.Table:
    dumped: dict[int, bytes] = {}  # an import gives every row the same origin: dump it once

    def origin(o: dict | None) -> bytes | None:
        if o is None:
            return None
        if id(o) not in dumped:
            dumped[id(o)] = orjson.dumps(o)
        return dumped[id(o)]

    return pa.table(
        {
            "pos": pa.array(range(start, start + len(rows)), pa.int64()),
            "id": [r["id"] for r in rows],
            "messages": pa.array([r["messages"] for r in rows], pa.string()),
            "topic": pa.array([r["topic"] for r in rows], pa.string()),
            "parent_id": pa.array([r["parent_id"] for r in rows], pa.string()),
            "origin": pa.array([origin(r["origin"]) for r in rows], pa.string()),
            "tools": pa.array([r["tools"] for r in rows], pa.string()),
        }
    )


def _dataset(cur: duckdb.DuckDBPyConnection, dataset: str) -> tuple[str, str]:
    row = cur.execute(
        "SELECT id, name FROM datasets WHERE name = ? OR id = ?", [dataset, dataset]
    ).fetchone()
    if row is None:
        raise DatasetNotFound(f"no dataset named {dataset!r}")
    return row[0], row[1]


def insert_chunk(
    cur, rows: list[dict], start: int, created: datetime, stage_sql: str, params: list
) -> None:
    """One chunk of stored-form rows: their (position, id, parent) into a stage by
    `stage_sql` (an INSERT ... that selects pos, id, parent_id from `chunk`), and each new
    example into `examples`, both as bulk inserts from one Arrow table."""
    name = f"chunk_{uuid.uuid4().hex[:8]}"
    seen: set[str] = set()
    cur.register(name, _chunk_table(rows, start))
    try:
        cur.execute(stage_sql.replace("{chunk}", name), params)
        fresh = [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]
        if len(fresh) != len(rows):
            cur.unregister(name)
            cur.register(name, _chunk_table(fresh, 0))
        cur.execute(
            "INSERT INTO examples (id, messages, topic, parent_id, origin, created, tools)"
            f" SELECT id, messages, topic, parent_id, origin, ?, tools FROM {name}"
            " ON CONFLICT (id) DO NOTHING",
            [created],
        )
    finally:
        try:
            cur.unregister(name)
        except duckdb.Error:  # an aborted transaction: keep the error that aborted it
            pass


def checked_rows(chunk: list[dict], prepared: bool, problems: list, index: int) -> list[dict]:
    """The stored forms of a chunk's examples; each invalid one is added to `problems` as
    (index, why), counting from `index`. Once any is bad, nothing more comes back."""
    rows = []
    for offset, ex in enumerate(chunk):
        norm, why = (ex, None) if prepared else stored_form(ex)
        if why:
            problems.append((index + offset, why))
        elif not problems:  # once one is bad nothing is stored: only keep checking
            rows.append(norm)
    return rows


def _stage(cur, stage: str, chunks: Iterable[list[dict]], created: datetime, prepared: bool) -> int:
    """Check and insert every chunk into the temporary stage; return the valid examples."""
    problems: list[tuple[int, str]] = []
    index = valid = 0
    for chunk in chunks:
        rows = checked_rows(chunk, prepared, problems, index)
        index += len(chunk)
        if rows and not problems:
            sql = f"INSERT INTO {stage} SELECT pos, id, parent_id FROM {{chunk}}"
            insert_chunk(cur, rows, valid, created, sql, [])
            valid += len(rows)
    if problems:
        raise InvalidExamples(problems, index)
    return valid


def _ordered_hash(cur, order: str) -> tuple[str, int]:
    """sha256 over the ordered ids joined by newlines (`backend.examples.version_hash`),
    streamed from the database a batch at a time."""
    digest, n = hashlib.sha256(), 0
    reader = cur.sql(f"SELECT id FROM {order} ORDER BY first").to_arrow_reader(HASH_BATCH)
    for batch in reader:
        for eid in batch.column(0).to_pylist():
            digest.update((eid if n == 0 else "\n" + eid).encode())
            n += 1
    return digest.hexdigest(), n


def _carry_qc(cur, stage: str, source: str, version_id: str, dataset_id: str, created) -> int:
    """Give the new version the QC sample of the version it follows: an example still there
    keeps its place, an edited one passes it to its edit (the first example naming it as
    parent), a removed one leaves the sample. Each row keeps its job, share and status."""
    cur.execute(
        "INSERT INTO qc_samples (version_id, example_id, dataset_id, job_id, share, status,"
        " created) SELECT ?, coalesce(k.id, e.id), ?, q.job_id, q.share, q.status, ?"
        " FROM qc_samples q"
        f" LEFT JOIN (SELECT DISTINCT id FROM {stage}) k ON k.id = q.example_id"
        f" LEFT JOIN (SELECT parent_id, arg_min(id, pos) AS id FROM {stage}"
        f"   WHERE parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM {stage})"
        "   GROUP BY parent_id) e ON e.parent_id = q.example_id"
        " WHERE q.version_id = ? AND coalesce(k.id, e.id) IS NOT NULL ON CONFLICT DO NOTHING",
        [version_id, dataset_id, created, source],
    )
    return cur.execute(
        "SELECT count(*) FROM qc_samples WHERE version_id = ?", [version_id]
    ).fetchone()[0]


def write_version(
    cur: duckdb.DuckDBPyConnection,
    dataset: str,
    chunks: Iterable[list[dict]],
    *,
    parent_version_id: str | None = None,
    note: str | Callable[[], str] = "",
    skipped: dict | None | Callable[[], dict | None] = None,
    refuse_same: bool = False,
    prepared: bool = False,
    stage_sql: tuple[str, list] | None = None,
    staged: Staged | None = None,
) -> dict:
    """Store the examples of `chunks` (each a list of {messages, topic, parent_id, origin,
    tools}) as the dataset's next version, inside the caller's transaction. The same
    conversation twice is kept once, at its first place. `note` and `skipped` may be functions,
    asked once every chunk is read (an import knows what it skipped only then). With
    `refuse_same`, content equal to the newest version's raises `SameAsLatest`. `prepared`:
    the chunks hold `backend.examples.stored_form` records already (the importer's).
    `stage_sql` (a SELECT of position, example id, parent id, and its parameters) picks
    stored examples instead: a version derived from another never leaves the database.
    `staged`: the examples an import already stored a chunk at a time (`stage_import`), and
    the version's ordered rows too once `order_staged` wrote them under a reserved id."""
    ds_id, ds_name = _dataset(cur, dataset)
    if (
        parent_version_id is not None
        and not cur.execute(
            "SELECT 1 FROM dataset_versions WHERE id = ?", [parent_version_id]
        ).fetchone()
    ):
        raise DatasetNotFound(f"no version {parent_version_id!r} to use as parent")
    tag = uuid.uuid4().hex[:10]
    stage, order = f"stage_{tag}", f"order_{tag}"
    created = now()
    if staged is not None:
        cur.execute(
            f"CREATE TEMP VIEW {stage} AS SELECT pos, example_id AS id, parent_id"
            f" FROM import_stage WHERE stage_id = '{staged.id}'"
        )
        created = staged.created
    else:
        cur.execute(f"CREATE TEMP TABLE {stage} (pos BIGINT, id VARCHAR, parent_id VARCHAR)")
    try:
        if staged is not None:
            valid = staged.valid
        else:
            valid = _stage(cur, stage, chunks, created, prepared)
        if stage_sql is not None:
            cur.execute(f"INSERT INTO {stage} {stage_sql[0]}", stage_sql[1])
            valid += cur.execute(f"SELECT count(*) FROM {stage}").fetchone()[0]
        ahead = staged is not None and staged.version_id is not None
        if ahead:  # the rows are in version_examples already, under the reserved id
            digest, n = staged.hash, staged.n
        else:
            cur.execute(
                f"CREATE TEMP TABLE {order} AS SELECT id, min(pos) AS first FROM {stage}"
                " GROUP BY id"
            )
            digest, n = _ordered_hash(cur, order)
        latest = cur.execute(
            "SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY number DESC LIMIT 1",
            [ds_id],
        )
        cols = [d[0] for d in latest.description]
        prev = latest.fetchone()
        previous = dict(zip(cols, prev, strict=True)) if prev else None
        if refuse_same and previous and previous["hash"] == digest:
            raise SameAsLatest(version_dict(previous, ds_name))
        note_text = note() if callable(note) else note
        skipped_value = skipped() if callable(skipped) else skipped
        number = (previous["number"] if previous else 0) + 1
        version_id = staged.version_id if ahead else f"dsv-{uuid.uuid4().hex[:12]}"
        cur.execute(
            "INSERT INTO dataset_versions (id, dataset_id, number, parent_version_id, created,"
            " hash, n_examples, note, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version_id,
                ds_id,
                number,
                parent_version_id,
                created,
                digest,
                n,
                note_text,
                json.dumps(skipped_value, ensure_ascii=False) if skipped_value else None,
            ],
        )
        if not ahead:
            cur.execute(
                "INSERT INTO version_examples SELECT ?, id,"
                f" row_number() OVER (ORDER BY first) - 1 FROM {order}",
                [version_id],
            )
        source = parent_version_id or (previous["id"] if previous else None)
        carried = _carry_qc(cur, stage, source, version_id, ds_id, created) if source else 0
    finally:
        for temp in (stage, order):
            try:
                kind = "VIEW" if staged is not None and temp == stage else "TABLE"
                cur.execute(f"DROP {kind} IF EXISTS {temp}")
            except duckdb.Error:  # an aborted transaction: its rollback drops them
                pass
    return {
        "id": version_id,
        "dataset": ds_name,
        "dataset_id": ds_id,
        "number": number,
        "created": created.isoformat(),
        "hash": digest,
        "n_examples": n,
        "parent_version_id": parent_version_id,
        "note": note_text,
        "skipped": skipped_value,
        "duplicates_dropped": valid - n,
        "qc_carried": carried,
    }


def _matching(version_id: str, text: str, topic: str | None, ids: list[str] | None):
    sql = "FROM version_examples ve JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ?"
    params: list = [version_id]
    if text:
        sql += " AND contains(lower(CAST(e.messages AS VARCHAR)), lower(?))"
        params.append(text)
    if topic:
        sql += " AND e.topic = ?"
        params.append(topic)
    if ids is not None:
        sql += " AND list_contains(?, ve.example_id)"
        params.append(list(ids))
    return sql, params


def count_matching(
    cur, version_id: str, *, text: str = "", topic: str | None = None, ids: list | None = None
) -> int:
    """How many examples of a version match a search (text in the messages, any case, and/or
    a topic) and/or are among `ids`."""
    sql, params = _matching(version_id, text, topic, ids)
    return cur.execute(f"SELECT count(*) {sql}", params).fetchone()[0]


def missing_ids(cur, version_id: str, ids: list[str]) -> list[str]:
    """The ids (in the order given) that are not in the version."""
    present = {
        r[0]
        for r in cur.execute(
            "SELECT example_id FROM version_examples WHERE version_id = ?"
            " AND list_contains(?, example_id)",
            [version_id, list(ids)],
        ).fetchall()
    }
    return [i for i in dict.fromkeys(ids) if i not in present]


def derive_version(
    cur,
    dataset: str,
    source_version_id: str,
    *,
    text: str = "",
    topic: str | None = None,
    ids: list[str] | None = None,
    note: str = "",
    refuse_same: bool = False,
) -> dict:
    """A new version of the examples of `source_version_id` that match (see
    `count_matching`), in their order there, written by SQL alone."""
    sql, params = _matching(source_version_id, text, topic, ids)
    return write_version(
        cur,
        dataset,
        (),
        parent_version_id=source_version_id,
        note=note,
        refuse_same=refuse_same,
        stage_sql=(f"SELECT ve.position, ve.example_id, NULL {sql}", params),
    )
