"""Comparison sets, judgements and versioned preference sets in DuckDB.

A comparison set holds blind items (a prompt and two or N responses in display order) and who
is asked to judge each. Every judgement is a row with its annotator, source (human | judge) and
time; a later judgement by the same annotator on the same item supersedes the earlier one in
`judgements` (both stay stored). Preference sets are versioned like datasets: immutable pairs
keyed by content hash, immutable versions with a hash over their pair ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from backend.auth import Actor, require
from backend.prefs import pairs as P
from backend.store.db import Store
from backend.store.jobs import parse_lines
from backend.store.users import audit, audited

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class PrefsNotFound(ValueError):
    """A comparison set, item, preference set or version that does not exist."""


class InvalidPairs(ValueError):
    """Preference pairs that failed validation; the message names the first bad rows."""

    def __init__(self, problems: list[tuple[int, str]], total: int, where: str = "row"):
        self.problems = problems
        shown = "; ".join(f"{where} {i}: {why}" for i, why in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} of {total} rows are invalid, nothing was stored: {shown}{more}"
        )


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{what} name {name!r} is not allowed: use 1-80 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


# --- comparison sets ------------------------------------------------------------------------


@audited("edit_data", "prefs.create_set", "name")
def create_comparison_set(
    store: Store,
    name: str,
    items: list[dict],
    *,
    mode: str,
    analysts: list[str],
    overlap: float = 0.2,
    raters: int = 2,
    seed: int = 0,
) -> dict:
    """Store a comparison set (items from `pairs.build_items`) and its assignments."""
    _check_name(name, "comparison set")
    if not items:
        raise ValueError(
            "no items: the sources share no prompt (each prompt needs answers "
            "from at least two sources)"
        )
    plan = P.assign(len(items), analysts, overlap=overlap, raters=raters, seed=seed)
    sources = sorted({r["source"] for it in items for r in it["responses"]})
    set_id = f"cs-{uuid.uuid4().hex[:10]}"
    item_ids = [f"{set_id}-{i:05d}" for i in range(len(items))]
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM comparison_sets WHERE name = ?", [name]).fetchone():
            raise ValueError(f"a comparison set named {name!r} already exists")
        cur.execute(
            "INSERT INTO comparison_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                set_id,
                name,
                mode,
                json.dumps(sources),
                overlap,
                json.dumps([a.strip() for a in analysts if a.strip()]),
                seed,
                now(),
            ],
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
            [[item_ids[i], who, set_id] for i, who in plan],
        )
    return get_comparison_set(store, set_id)


def _set_dict(r: dict) -> dict:
    return {
        **r,
        "sources": json.loads(r["sources"]),
        "analysts": json.loads(r["analysts"]),
        "created": _iso(r["created"]),
    }


def get_comparison_set(store: Store, name_or_id: str) -> dict:
    rows = store.rows(
        "SELECT *, (SELECT count(*) FROM comparison_items i WHERE i.set_id = s.id)"
        " AS n_items FROM comparison_sets s WHERE name = ? OR id = ?",
        [name_or_id, name_or_id],
    )
    if not rows:
        raise PrefsNotFound(f"no comparison set {name_or_id!r}")
    return _set_dict(rows[0])


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


def skip_item(store: Store, item_id: str, annotator: str) -> None:
    """Move the item to the end of the analyst's queue."""
    cur = store.cursor()
    try:
        cur.execute(
            "UPDATE comparison_assignments SET skipped = ? WHERE item_id = ? AND annotator = ?",
            [now(), item_id, annotator],
        )
    finally:
        cur.close()


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


def record_judgement(
    store: Store,
    item_id: str,
    annotator: str,
    verdict: str,
    *,
    ranking: list[int] | None = None,
    rationale: str | None = None,
    source: str = "human",
    actor: Actor | None = None,
) -> str:
    """Store one judgement with who and when; ValueError names a bad verdict or annotator.
    A human judgement needs the rank permission (None is the trusted shell or a judge job)."""
    if source == "human":
        require(actor, "rank")
    annotator = (annotator or "").strip()
    if not annotator:
        raise ValueError("a judgement needs the analyst's name")
    if source not in ("human", "judge"):
        raise ValueError(f"source {source!r} is unknown; use human or judge")
    item = get_item(store, item_id)
    P.check_verdict(verdict, len(item["responses"]), ranking, judge=source == "judge")
    cid = f"cmp-{uuid.uuid4().hex}"
    cur = store.cursor()
    try:
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
                P.winner(item["responses"], verdict),
                rationale,
                now(),
            ],
        )
    finally:
        cur.close()
    if source == "human":
        audit(
            store, actor, "prefs.judgement", item_id, {"verdict": verdict, "annotator": annotator}
        )
    return cid


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
    pass adds nothing). Rows are checked first; one bad row stores none of the chunk."""
    rows = parse_lines(chunk)
    values = []
    for n, r in enumerate(rows, 1):
        if r.get("verdict") not in (*P.JUDGE_VERDICTS, "ranking") or not r.get("item_id"):
            raise ValueError(
                f"judgements.jsonl row {n}: needs item_id and a verdict in "
                f"{', '.join(P.JUDGE_VERDICTS)} or ranking"
            )
        item = cur.execute(
            "SELECT set_id, responses FROM comparison_items WHERE id = ?", [r["item_id"]]
        ).fetchone()
        if item is None:
            raise ValueError(f"judgements.jsonl row {n}: no comparison item {r['item_id']!r}")
        try:
            P.check_verdict(r["verdict"], len(json.loads(item[1])), r.get("ranking"), judge=True)
        except ValueError as exc:
            raise ValueError(f"judgements.jsonl row {n}: {exc}") from None
        values.append(
            [
                f"{job_id}:{r['item_id']}",
                item[0],
                r["item_id"],
                f"judge:{r.get('model', '?')}",
                "judge",
                r["verdict"],
                json.dumps(r["ranking"]) if r.get("ranking") is not None else None,
                P.winner(json.loads(item[1]), r["verdict"]),
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


def _turns(value: Any, what: str, role: str | None = None) -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{what} is empty")
        return [{"role": role or "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{what} must be text or a non-empty list of {{role, content}} turns")
    turns = []
    for i, m in enumerate(value, 1):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("content"), str)
            or m.get("role") not in ("system", "user", "assistant")
        ):
            raise ValueError(f"{what} turn {i} needs a role (system/user/assistant) and text")
        turns.append({"role": m["role"], "content": m["content"]})
    return turns


def normalise_pair(row: Any) -> dict:
    """A {prompt, chosen, rejected} row in conversational form; ValueError says what is wrong.
    Identical chosen and rejected is an error: such a pair teaches nothing."""
    if not isinstance(row, dict):
        raise ValueError("not an object with prompt, chosen and rejected")
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ValueError(f"missing {key!r}")
    prompt = _turns(row["prompt"], "prompt")
    chosen = _turns(row["chosen"], "chosen", "assistant")
    rejected = _turns(row["rejected"], "rejected", "assistant")
    if chosen == rejected:
        raise ValueError("chosen and rejected are identical")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "origin": row.get("origin")}


def pair_id(pair: dict) -> str:
    body = json.dumps(
        [pair["prompt"], pair["chosen"], pair["rejected"]],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def add_preference_version(
    store: Store,
    name: str,
    rows: list[dict],
    *,
    note: str = "",
    parent_version_id: str | None = None,
) -> dict:
    """Validate every row, then store a new immutable version (creating the set on first use),
    all in one transaction. Raises InvalidPairs naming the bad rows (1-based)."""
    _check_name(name, "preference set")
    clean, problems = [], []
    for n, row in enumerate(rows, 1):
        try:
            clean.append(normalise_pair(row))
        except ValueError as exc:
            problems.append((n, str(exc)))
    if problems:
        raise InvalidPairs(problems, len(rows))
    ids: list[str] = []
    seen: set[str] = set()
    unique = []
    for p in clean:
        pid = pair_id(p)
        if pid not in seen:
            seen.add(pid)
            ids.append(pid)
            unique.append(p)
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
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        if unique:
            cur.executemany(
                "INSERT INTO preference_pairs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    [
                        pid,
                        json.dumps(p["prompt"], ensure_ascii=False),
                        json.dumps(p["chosen"], ensure_ascii=False),
                        json.dumps(p["rejected"], ensure_ascii=False),
                        json.dumps(p["origin"]) if p["origin"] is not None else None,
                        created,
                    ]
                    for pid, p in zip(ids, unique, strict=True)
                ],
            )
        cur.execute(
            "INSERT INTO preference_set_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [vid, set_id, number, parent_version_id, created, digest, len(ids), note],
        )
        if ids:
            cur.executemany(
                "INSERT INTO preference_version_pairs VALUES (?, ?, ?)",
                [[vid, pid, pos] for pos, pid in enumerate(ids)],
            )
    return {
        "id": vid,
        "name": name,
        "number": number,
        "hash": digest,
        "n_pairs": len(ids),
        "duplicates_dropped": len(clean) - len(unique),
        "created": created.isoformat(),
        "note": note,
    }


def list_preference_sets(store: Store) -> list[dict]:
    rows = store.rows(
        "SELECT s.name, s.id, s.created, v.id AS version_id, v.number, v.n_pairs, v.hash,"
        " v.note FROM preference_sets s JOIN preference_set_versions v ON v.pref_set_id = s.id"
        " QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY v.number DESC) = 1"
        " ORDER BY s.created"
    )
    return [{k: _iso(v) for k, v in r.items()} for r in rows]


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
    return {k: _iso(v) for k, v in rows[0].items()}


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


def write_preference_jsonl(
    store: Store, version_id: str, path: Path, *, conversational: bool = True
) -> int:
    """Write TRL DPO rows (prompt / chosen / rejected) to `path` atomically; return the count."""
    from backend.prefs.export import dpo_row

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    items = version_pairs(store, version_id)
    with open(tmp, "w", encoding="utf-8") as fh:
        for p in items:
            fh.write(json.dumps(dpo_row(p, conversational), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(items)
