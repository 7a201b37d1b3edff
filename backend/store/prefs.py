"""Comparison sets, judgements and versioned preference sets in DuckDB: SQL and row mapping.

A comparison set holds blind items (a prompt and two or N responses in display order) and who
is asked to judge each. Every judgement is a row with its annotator, source (human | judge) and
time; a later judgement by the same annotator on the same item supersedes the earlier one in
`judgements` (both stay stored). Preference sets are versioned like datasets: immutable pairs
keyed by content hash, immutable versions with a hash over their pair ids.

What goes in is checked and computed by the actions (backend/prefs/actions.py) and the pure
modules of backend/prefs; this module only reads and writes rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines

# The values of `comparisons.verdict`: an analyst's A / B / tie / both_bad, a judge's
# inconsistent (it flipped when the positions were swapped), or a ranking of N responses.
STORED_VERDICTS = ("A", "B", "tie", "both_bad", "inconsistent", "ranking")


class PrefsNotFound(ValueError):
    """A comparison set, item, preference set or version that does not exist."""


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


# --- comparison sets ------------------------------------------------------------------------


def create_comparison_set(
    store: Store,
    name: str,
    items: list[dict],
    assignments: list[tuple[int, str]],
    *,
    mode: str,
    analysts: list[str],
    overlap: float,
    seed: int,
) -> dict:
    """Store a comparison set, its items (from `pairs.build_items`) and who judges which
    (`assignments`: (item index, analyst) from `pairs.assign`), in one transaction."""
    sources = sorted({r["source"] for it in items for r in it["responses"]})
    set_id = f"cs-{uuid.uuid4().hex[:10]}"
    item_ids = [f"{set_id}-{i:05d}" for i in range(len(items))]
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO comparison_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [set_id, name, mode, json.dumps(sources), overlap, json.dumps(analysts), seed, now()],
        )
        cur.executemany(
            "INSERT INTO comparison_items VALUES (?, ?, ?, ?, ?)",
            [
                [
                    item_ids[i],
                    set_id,
                    i,
                    json.dumps(it["prompt"], ensure_ascii=False),
                    json.dumps(it["responses"], ensure_ascii=False),
                ]
                for i, it in enumerate(items)
            ],
        )
        cur.executemany(
            "INSERT INTO comparison_assignments VALUES (?, ?, ?, NULL)",
            [[item_ids[i], who, set_id] for i, who in assignments],
        )
    return get_comparison_set(store, set_id)


def _set_dict(r: dict) -> dict:
    return {
        **r,
        "sources": json.loads(r["sources"]),
        "analysts": json.loads(r["analysts"]),
        "created": _iso(r["created"]),
    }


def find_comparison_set(store: Store, name_or_id: str) -> dict | None:
    rows = store.rows(
        "SELECT *, (SELECT count(*) FROM comparison_items i WHERE i.set_id = s.id)"
        " AS n_items FROM comparison_sets s WHERE name = ? OR id = ?",
        [name_or_id, name_or_id],
    )
    return _set_dict(rows[0]) if rows else None


def get_comparison_set(store: Store, name_or_id: str) -> dict:
    found = find_comparison_set(store, name_or_id)
    if found is None:
        raise PrefsNotFound(f"no comparison set {name_or_id!r}")
    return found


def list_comparison_sets(store: Store) -> list[dict]:
    rows = store.rows(
        "SELECT s.*, (SELECT count(*) FROM comparison_items i WHERE i.set_id = s.id) AS n_items,"
        " (SELECT count(DISTINCT c.item_id) FROM comparisons c WHERE c.set_id = s.id)"
        " AS n_judged FROM comparison_sets s ORDER BY s.created"
    )
    return [_set_dict(r) for r in rows]


def _item_dict(r: dict) -> dict:
    return {
        "id": r["id"],
        "set_id": r["set_id"],
        "position": r["position"],
        "prompt": json.loads(r["prompt"]),
        "responses": json.loads(r["responses"]),
    }


def get_item(store: Store, item_id: str) -> dict:
    rows = store.rows("SELECT * FROM comparison_items WHERE id = ?", [item_id])
    if not rows:
        raise PrefsNotFound(f"no comparison item {item_id!r}")
    return _item_dict(rows[0])


def set_items(store: Store, set_id: str) -> list[dict]:
    return [
        _item_dict(r)
        for r in store.rows(
            "SELECT * FROM comparison_items WHERE set_id = ? ORDER BY position", [set_id]
        )
    ]


def next_item(store: Store, set_id: str, annotator: str) -> dict | None:
    """The analyst's next assigned item not yet judged by them; skipped items come last."""
    rows = store.rows(
        "SELECT i.* FROM comparison_assignments a JOIN comparison_items i ON i.id = a.item_id"
        " WHERE a.set_id = ? AND a.annotator = ? AND NOT EXISTS (SELECT 1 FROM comparisons c"
        "  WHERE c.item_id = a.item_id AND c.annotator = a.annotator)"
        " ORDER BY a.skipped NULLS FIRST, i.position LIMIT 1",
        [set_id, annotator],
    )
    return _item_dict(rows[0]) if rows else None


def skip_item(store: Store, item_id: str, annotator: str) -> int:
    """Move the item to the end of the analyst's queue; returns the rows changed (0 when the
    item is not assigned to them)."""
    with store.transaction() as cur:
        row = cur.execute(
            "UPDATE comparison_assignments SET skipped = ? WHERE item_id = ? AND annotator = ?",
            [now(), item_id, annotator],
        ).fetchone()
    return row[0] if row else 0


def progress(store: Store, set_id: str) -> list[dict]:
    """Per analyst: items assigned, judged, skipped (and still open)."""
    return store.rows(
        "SELECT a.annotator, count(*) AS assigned,"
        " count(*) FILTER (WHERE EXISTS (SELECT 1 FROM comparisons c WHERE c.item_id = a.item_id"
        "   AND c.annotator = a.annotator)) AS judged,"
        " count(a.skipped) AS skipped FROM comparison_assignments a WHERE a.set_id = ?"
        " GROUP BY a.annotator ORDER BY a.annotator",
        [set_id],
    )


# --- judgements -----------------------------------------------------------------------------


def winner_of(responses: list[dict], verdict: str) -> str | None:
    """The winning source of a pairwise verdict (A is position 0), else None."""
    index = {"A": 0, "B": 1}.get(verdict)
    return responses[index]["source"] if index is not None else None


def _fit_problem(verdict: Any, n_responses: int, ranking: Any) -> str | None:
    """Why a stored verdict does not fit an item of `n_responses`, or None."""
    if verdict == "ranking":
        if not isinstance(ranking, list) or sorted(ranking) != list(range(n_responses)):
            return (
                f"a ranking must order each of the {n_responses} responses once "
                f"(indices 0..{n_responses - 1}); got {ranking}"
            )
        return None
    if verdict not in STORED_VERDICTS:
        return f"verdict {verdict!r} is unknown; use one of {', '.join(STORED_VERDICTS)}"
    if n_responses != 2:
        return f"verdict {verdict!r} is for pairs; this item has {n_responses} responses"
    return None


def annotator_judgements(store: Store, item_id: str, annotator: str) -> list[dict]:
    """One annotator's judgements of one item, newest first."""
    rows = store.rows(
        "SELECT id, verdict, ranking, created FROM comparisons WHERE item_id = ? AND"
        " annotator = ? ORDER BY created DESC, id DESC",
        [item_id, annotator],
    )
    for r in rows:
        r["ranking"] = json.loads(r["ranking"]) if r["ranking"] else None
    return rows


def record_judgement(
    store: Store,
    item_id: str,
    annotator: str,
    verdict: str,
    *,
    ranking: list[int] | None = None,
    rationale: str | None = None,
    source: str = "human",
) -> str:
    """Store one judgement (checked by the caller) with who and when; returns its id.

    The id follows from (item, annotator, how many judgements they made of it before), so two
    submissions of the same judgement at once collide on the key and one of them is refused
    at COMMIT (`Store.write` then runs the loser again) instead of both being stored."""
    item = get_item(store, item_id)
    with store.transaction() as cur:
        before = cur.execute(
            "SELECT count(*) FROM comparisons WHERE item_id = ? AND annotator = ?",
            [item_id, annotator],
        ).fetchone()[0]
        key = f"{item_id}\0{annotator}\0{before}".encode()
        cid = f"cmp-{hashlib.sha256(key).hexdigest()[:32]}"
        cur.execute(
            "INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
            [
                cid,
                item["set_id"],
                item_id,
                annotator,
                source,
                verdict,
                json.dumps(ranking) if ranking is not None else None,
                winner_of(item["responses"], verdict),
                rationale,
                now(),
            ],
        )
    return cid


def judged_items(store: Store, set_id: str, annotator: str) -> set[str]:
    """Ids of the items of a set that `annotator` (e.g. judge:<model>) has judged."""
    return {
        r["item_id"]
        for r in store.rows(
            "SELECT DISTINCT item_id FROM comparisons WHERE set_id = ? AND annotator = ?",
            [set_id, annotator],
        )
    }


def judgements(
    store: Store, *, set_id: str | None = None, source: str | None = None, latest: bool = True
) -> list[dict]:
    """Judgements joined with their items: one per (item, annotator) when `latest`."""
    where, params = [], []
    if set_id:
        where.append("c.set_id = ?")
        params.append(set_id)
    if source:
        where.append("c.source = ?")
        params.append(source)
    sql = (
        "SELECT c.*, i.prompt, i.responses FROM comparisons c"
        " JOIN comparison_items i ON i.id = c.item_id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    if latest:
        sql += (
            " QUALIFY row_number() OVER (PARTITION BY c.item_id, c.annotator"
            " ORDER BY c.created DESC, c.id DESC) = 1"
        )
    rows = store.rows(sql + " ORDER BY c.created, c.id", params)
    for r in rows:
        r["prompt"], r["responses"] = json.loads(r["prompt"]), json.loads(r["responses"])
        r["ranking"] = json.loads(r["ranking"]) if r["ranking"] else None
        r["detail"] = json.loads(r["detail"]) if r["detail"] else None
        r["created"] = _iso(r["created"])
    return rows


def ingest_judgements(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """judgements.jsonl of a judge job: one comparison per item (id = job + item, so a second
    pass adds nothing). Rows are checked against their items first; one bad row stores none
    of the chunk."""
    rows = parse_lines(chunk)
    values = []
    for n, r in enumerate(rows, 1):
        if r.get("verdict") not in STORED_VERDICTS or not r.get("item_id"):
            raise ValueError(
                f"judgements.jsonl row {n}: needs item_id and a verdict in "
                f"{', '.join(STORED_VERDICTS)}"
            )
        item = cur.execute(
            "SELECT set_id, responses FROM comparison_items WHERE id = ?", [r["item_id"]]
        ).fetchone()
        if item is None:
            raise ValueError(f"judgements.jsonl row {n}: no comparison item {r['item_id']!r}")
        responses = json.loads(item[1])
        problem = _fit_problem(r["verdict"], len(responses), r.get("ranking"))
        if problem:
            raise ValueError(f"judgements.jsonl row {n}: {problem}")
        values.append(
            [
                f"{job_id}:{r['item_id']}",
                item[0],
                r["item_id"],
                f"judge:{r.get('model', '?')}",
                "judge",
                r["verdict"],
                json.dumps(r["ranking"]) if r.get("ranking") is not None else None,
                winner_of(responses, r["verdict"]),
                r.get("rationale"),
                json.dumps(r.get("passes")),
                job_id,
                datetime.fromtimestamp(r.get("t") or 0, UTC).replace(tzinfo=None),
            ]
        )
    cur.executemany(
        "INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        values,
    )
    return len(rows)


def generation_outputs(store: Store, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """{source id: {prompt: output}} from the latest evaluation step of each run (or answer
    job: base:<model> and endpoint:<model> sources are stored the same way)."""
    out: dict[str, dict[str, str]] = {}
    for rid in run_ids:
        rows = store.rows(
            "SELECT prompt, output FROM generations WHERE run_id = ? AND step"
            " IS NOT DISTINCT FROM (SELECT max(step) FROM generations WHERE"
            " run_id = ?)",
            [rid, rid],
        )
        out[rid] = {r["prompt"]: r["output"] for r in rows}
    return out


def generation_sources(store: Store) -> list[dict]:
    """Every source with generations: id, prompts answered."""
    return store.rows(
        "SELECT run_id AS source, count(DISTINCT prompt) AS prompts"
        " FROM generations GROUP BY run_id ORDER BY run_id"
    )


# --- preference sets ------------------------------------------------------------------------


def add_preference_version(
    store: Store,
    name: str,
    pairs: list[dict],
    digest: str,
    *,
    note: str = "",
    parent_version_id: str | None = None,
    skipped: dict | None = None,
) -> dict:
    """Store a new immutable version of preference set `name` (creating the set on first
    use), all in one transaction. `pairs` and `digest` come from `export.version_rows`:
    unique pairs, each with its content-hash `id`, and the hash over those ids. `skipped`:
    the rows of an import that were not stored, each with its line and reason."""
    created = now()
    with store.transaction() as cur:
        found = cur.execute("SELECT id FROM preference_sets WHERE name = ?", [name]).fetchone()
        set_id = found[0] if found else f"ps-{uuid.uuid4().hex[:10]}"
        if not found:
            cur.execute("INSERT INTO preference_sets VALUES (?, ?, ?)", [set_id, name, created])
        number = (
            cur.execute(
                "SELECT max(number) FROM preference_set_versions WHERE pref_set_id = ?", [set_id]
            ).fetchone()[0]
            or 0
        ) + 1
        vid = f"psv-{uuid.uuid4().hex[:12]}"
        if pairs:
            cur.executemany(
                "INSERT INTO preference_pairs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    [
                        p["id"],
                        json.dumps(p["prompt"], ensure_ascii=False),
                        json.dumps(p["chosen"], ensure_ascii=False),
                        json.dumps(p["rejected"], ensure_ascii=False),
                        json.dumps(p["origin"]) if p.get("origin") is not None else None,
                        created,
                    ]
                    for p in pairs
                ],
            )
        cur.execute(
            "INSERT INTO preference_set_versions (id, pref_set_id, number, parent_version_id,"
            " created, hash, n_pairs, note, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [vid, set_id, number, parent_version_id, created, digest, len(pairs), note]
            + [json.dumps(skipped, ensure_ascii=False) if skipped is not None else None],
        )
        if pairs:
            cur.executemany(
                "INSERT INTO preference_version_pairs VALUES (?, ?, ?)",
                [[vid, p["id"], pos] for pos, p in enumerate(pairs)],
            )
    return {
        "id": vid,
        "name": name,
        "number": number,
        "hash": digest,
        "n_pairs": len(pairs),
        "created": created.isoformat(),
        "note": note,
        "skipped": skipped,
    }


def list_preference_sets(store: Store) -> list[dict]:
    rows = store.rows(
        "SELECT s.name, s.id, s.created, v.id AS version_id, v.number, v.n_pairs, v.hash,"
        " v.note, coalesce(CAST(json_extract(v.skipped, '$.invalid') AS INTEGER), 0)"
        " AS skipped_rows FROM preference_sets s"
        " JOIN preference_set_versions v ON v.pref_set_id = s.id"
        " QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY v.number DESC) = 1"
        " ORDER BY s.created"
    )
    return [{k: _iso(v) for k, v in r.items()} for r in rows]


def latest_version(store: Store, name: str) -> dict | None:
    """The newest version of preference set `name`, or None when it has none."""
    try:
        return resolve_preference_version(store, name)
    except PrefsNotFound:
        return None


def resolve_preference_version(store: Store, name: str, version: str | int | None = None) -> dict:
    """A preference set's version by number (3 / "v3") or id; the latest when None."""
    sql = (
        "SELECT v.*, s.name FROM preference_set_versions v JOIN preference_sets s"
        " ON s.id = v.pref_set_id WHERE (s.name = ? OR s.id = ?)"
    )
    params: list[Any] = [name, name]
    text = str(version) if version is not None else None
    if text is not None:
        num = text[1:] if text[:1] in "vV" else text
        if num.isdigit():
            sql += " AND v.number = ?"
            params.append(int(num))
        else:
            sql += " AND v.id = ?"
            params.append(text)
    rows = store.rows(sql + " ORDER BY v.number DESC LIMIT 1", params)
    if not rows:
        what = f"version {version!r} of " if version is not None else ""
        raise PrefsNotFound(
            f"no {what}preference set {name!r}; `ftstudio prefs import` or the Export tab makes one"
        )
    out = {k: _iso(v) for k, v in rows[0].items()}
    out["skipped"] = json.loads(out["skipped"]) if out.get("skipped") else None
    return out


def version_pairs(store: Store, version_id: str) -> list[dict]:
    rows = store.rows(
        "SELECT p.* FROM preference_version_pairs vp JOIN preference_pairs p"
        " ON p.id = vp.pair_id WHERE vp.version_id = ? ORDER BY vp.position",
        [version_id],
    )
    return [
        {
            "id": r["id"],
            "prompt": json.loads(r["prompt"]),
            "chosen": json.loads(r["chosen"]),
            "rejected": json.loads(r["rejected"]),
            "origin": json.loads(r["origin"]) if r["origin"] else None,
        }
        for r in rows
    ]
