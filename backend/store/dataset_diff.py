"""Reading versions at scale: what changed between two versions, worked out in SQL over
`version_examples` (a join on example ids, never the examples as Python lists), and a
version's examples streamed a batch at a time (exports, near-duplicate search).

Diff kinds:

added    examples of the newer version that the older one lacks, and that edit nothing in it
removed  examples of the older version that the newer one lacks, and that no example edits
edited   pairs (an example of the older version, its edit in the newer): the newer example
         names the older one as its parent and the older one is gone
unchanged examples in both
"""

from __future__ import annotations

import json

from backend.store.db import Store

_CTE = (
    "WITH a AS (SELECT example_id AS id, position FROM version_examples WHERE version_id = ?),"
    " b AS (SELECT ve.example_id AS id, ve.position, e.parent_id FROM version_examples ve"
    "   JOIN examples e ON e.id = ve.example_id WHERE ve.version_id = ?),"
    " gone AS (SELECT id, position FROM a WHERE id NOT IN (SELECT id FROM b)),"
    " edits AS (SELECT b.parent_id AS old_id, arg_min(b.id, b.position) AS new_id,"
    "   min(b.position) AS position FROM b JOIN gone ON gone.id = b.parent_id"
    "   WHERE b.id NOT IN (SELECT id FROM a) GROUP BY b.parent_id),"
    " added AS (SELECT id, position FROM b WHERE id NOT IN (SELECT id FROM a)"
    "   AND id NOT IN (SELECT new_id FROM edits)),"
    " removed AS (SELECT id, position FROM gone WHERE id NOT IN (SELECT old_id FROM edits))"
)


def _messages(store: Store, ids: list[str]) -> dict[str, list]:
    if not ids:
        return {}
    rows = store.rows("SELECT id, messages FROM examples WHERE list_contains(?, id)", [ids])
    return {r["id"]: json.loads(r["messages"]) for r in rows}


def diff_versions(store: Store, old: dict, new: dict, *, sample: int = 5) -> dict:
    """Counts of added, removed, edited and unchanged examples from version `old` to `new`
    (version dicts), with the first `sample` of each (in their version's order)."""
    params = [old["id"], new["id"]]
    counts = store.rows(
        _CTE + " SELECT (SELECT count(*) FROM added) AS added,"
        " (SELECT count(*) FROM removed) AS removed, (SELECT count(*) FROM edits) AS edited,"
        " (SELECT count(*) FROM a WHERE id IN (SELECT id FROM b)) AS unchanged",
        params,
    )[0]
    n = int(sample)
    added = store.rows(_CTE + " SELECT id FROM added ORDER BY position LIMIT ?", [*params, n])
    removed = store.rows(_CTE + " SELECT id FROM removed ORDER BY position LIMIT ?", [*params, n])
    edited = store.rows(
        _CTE + " SELECT old_id, new_id FROM edits ORDER BY position LIMIT ?", [*params, n]
    )
    ids = [r["id"] for r in added + removed]
    ids += [r[k] for r in edited for k in ("old_id", "new_id")]
    msgs = _messages(store, ids)
    return {
        "dataset": new["dataset"],
        "from": {"id": old["id"], "number": old["number"], "examples": old["n_examples"]},
        "to": {"id": new["id"], "number": new["number"], "examples": new["n_examples"]},
        "counts": {k: int(v) for k, v in counts.items()},
        "added": [{"id": r["id"], "messages": msgs.get(r["id"])} for r in added],
        "removed": [{"id": r["id"], "messages": msgs.get(r["id"])} for r in removed],
        "edited": [
            {
                "old_id": r["old_id"],
                "new_id": r["new_id"],
                "old": msgs.get(r["old_id"]),
                "new": msgs.get(r["new_id"]),
            }
            for r in edited
        ],
    }


def iter_version_messages(store: Store, version_id: str, batch: int = 10_000):
    """A version's examples in position order as lists of (id, messages), `batch` at a time
    from a streamed cursor (a million examples never sit in memory as Python objects)."""
    cur = store.cursor()
    try:
        reader = _batches(
            store,
            cur,
            "SELECT e.id, CAST(e.messages AS VARCHAR) AS messages FROM version_examples ve"
            " JOIN examples e ON e.id = ve.example_id"
            f" WHERE ve.version_id = '{_quote(version_id)}' ORDER BY ve.position",
            batch,
        )
        for rb in reader:
            ids, texts = rb.column(0).to_pylist(), rb.column(1).to_pylist()
            yield [(i, json.loads(t)) for i, t in zip(ids, texts, strict=True)]
    finally:
        cur.close()


def iter_version_examples(store: Store, version_id: str, batch: int = 5_000):
    """A version's examples in position order, as lists of at most `batch` example dicts
    (id, messages, topic, parent_id, origin, tools), from a streamed cursor."""
    cur = store.cursor()
    try:
        reader = _batches(
            store,
            cur,
            "SELECT e.id, CAST(e.messages AS VARCHAR) AS messages, e.topic, e.parent_id,"
            " CAST(e.origin AS VARCHAR) AS origin, CAST(e.tools AS VARCHAR) AS tools"
            " FROM version_examples ve JOIN examples e ON e.id = ve.example_id"
            f" WHERE ve.version_id = '{_quote(version_id)}' ORDER BY ve.position",
            batch,
        )
        for rb in reader:
            yield [
                {
                    "id": r["id"],
                    "messages": json.loads(r["messages"]),
                    "topic": r["topic"],
                    "parent_id": r["parent_id"],
                    "origin": json.loads(r["origin"]) if r["origin"] else None,
                    "tools": json.loads(r["tools"]) if r["tools"] else None,
                }
                for r in rb.to_pylist()
            ]
    finally:
        cur.close()


def _batches(store: Store, cur, sql: str, batch: int):
    """Record batches of `sql`: streamed from a cursor of its own; inside a transaction (whose
    one connection must not be left with an unfinished result before its next statement)
    read whole first, then cut into batches."""
    if store.in_transaction():
        return cur.sql(sql).to_arrow_table().to_batches(batch)
    return cur.sql(sql).to_arrow_reader(batch)


def _quote(text: str) -> str:
    if not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError(f"not a version id: {text!r}")
    return text
