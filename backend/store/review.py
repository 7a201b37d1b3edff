"""Review tables: uncertainty scores, review batches and their items, verdicts, applying them.

SQL and row mapping only: which examples a batch holds, how verdicts resolve and what the next
version contains are decided by the review actions (backend/review/actions.py) and passed in.
Verdicts from Label Studio are keyed `ls:<annotation id>` and upserted, so pulling twice adds
nothing; applying a batch writes the next dataset version in the same transaction that records it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from backend.store.datasets import add_version_cur
from backend.store.db import Store
from backend.store.jobs import parse_lines
from backend.store.users import studio_names


def insert_scores(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    rows = parse_lines(chunk)
    cur.executemany(
        "INSERT OR REPLACE INTO scores (job_id, example_id, method, model, score, n_tokens,"
        " version_id, dataset, round, note) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            [
                job_id,
                r["example_id"],
                r["method"],
                r["model"],
                float(r["score"]),
                r.get("n_tokens"),
                r.get("version_id"),
                r.get("dataset"),
                r.get("round", 1),
                r.get("rationale"),
            ]
            for r in rows
        ],
    )
    return len(rows)


def score_jobs(store: Store, dataset: str | None = None) -> list[dict]:
    """Scoring runs with their model, version and count, newest first."""
    where, params = ("WHERE s.dataset = ?", [dataset]) if dataset else ("", [])
    return store.rows(
        "SELECT s.job_id, any_value(s.model) AS model, any_value(s.version_id) AS version_id,"
        " any_value(s.dataset) AS dataset, any_value(s.round) AS round,"
        " count(DISTINCT s.example_id) AS n, any_value(j.created) AS created"
        f" FROM scores s LEFT JOIN jobs j ON j.id = s.job_id {where}"
        " GROUP BY s.job_id ORDER BY created DESC NULLS LAST, s.job_id DESC",
        params,
    )


def latest_score_job(store: Store, dataset: str, method: str | None = None) -> str:
    """The newest scoring (or judging) run of a dataset, the newest with `method` if given."""
    jobs = score_jobs(store, dataset)
    if method:
        having = set(score_job_methods(store, [j["job_id"] for j in jobs]))
        jobs = [j for j in jobs if (j["job_id"], method) in having]
    if not jobs:
        how = (
            f"`ftstudio review judge --dataset {dataset} --judge-model NAME`"
            if method == "judge_flaw"
            else f"`ftstudio review score --dataset {dataset} --model PATH`"
        )
        what = f"{method!r} scores" if method else "scores"
        raise ValueError(f"dataset {dataset!r} has no {what} yet: run {how} first")
    return jobs[0]["job_id"]


def score_job_methods(store: Store, job_ids: list[str]) -> list[tuple[str, str]]:
    """(job_id, method) pairs present in `scores` for these runs."""
    if not job_ids:
        return []
    marks = ", ".join("?" * len(job_ids))
    rows = store.rows(
        f"SELECT DISTINCT job_id, method FROM scores WHERE job_id IN ({marks})"
        " ORDER BY job_id, method",
        job_ids,
    )
    return [(r["job_id"], r["method"]) for r in rows]


def scores_of(store: Store, job_id: str, method: str = "nll") -> dict[str, float]:
    rows = store.rows(
        "SELECT example_id, score FROM scores WHERE job_id = ? AND method = ?", [job_id, method]
    )
    return {r["example_id"]: r["score"] for r in rows}


def score_source(store: Store, score_job_id: str) -> dict:
    """The dataset, version and model a scoring run scored: {dataset, version_id, model}."""
    row = store.rows(
        "SELECT any_value(dataset) AS dataset, any_value(version_id) AS version_id,"
        " any_value(model) AS model FROM scores WHERE job_id = ?",
        [score_job_id],
    )
    return row[0]


def pending_qc(store: Store, version_id: str | None) -> list[str]:
    """Examples of a version whose QC sample is still waiting for a reviewer."""
    if not version_id:
        return []
    rows = store.rows(
        "SELECT example_id FROM qc_samples WHERE version_id = ? AND status = 'pending'"
        " ORDER BY example_id",
        [version_id],
    )
    return [r["example_id"] for r in rows]


def insert_batch(
    store: Store,
    *,
    batch_id: str,
    dataset: str,
    version_id: str | None,
    score_job_id: str,
    method: str,
    model: str | None,
    policy: str,
    n_scored: int,
    cut: float | None,
    items: list[tuple[str, float | None, str]],
) -> dict:
    """Record a review batch (the next round of its dataset) and its items, each
    (example_id, score, reason 'flagged' | 'qc') in review order. Returns the batch row."""
    with store.transaction() as cur:
        rnd = (
            cur.execute(
                "SELECT count(*) FROM review_batches WHERE dataset = ?", [dataset]
            ).fetchone()[0]
            + 1
        )
        cur.execute(
            "INSERT INTO review_batches (id, dataset, version_id, score_job_id, method, model,"
            " policy, round, n_scored, cut, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                batch_id,
                dataset,
                version_id,
                score_job_id,
                method,
                model,
                policy,
                rnd,
                n_scored,
                cut,
                datetime.now(),
            ],
        )
        if items:
            cur.executemany(
                "INSERT INTO review_items (batch_id, example_id, position, score, reason)"
                " VALUES (?,?,?,?,?)",
                [[batch_id, i, pos, sc, why] for pos, (i, sc, why) in enumerate(items)],
            )
    return get_batch(store, batch_id)


def get_batch(store: Store, batch_id: str) -> dict:
    rows = store.rows("SELECT * FROM review_batches WHERE id = ?", [batch_id])
    if not rows:
        raise ValueError(f"no review batch {batch_id!r}")
    return rows[0]


def latest_batch(store: Store, dataset: str) -> dict:
    rows = store.rows(
        "SELECT * FROM review_batches WHERE dataset = ? ORDER BY created DESC LIMIT 1", [dataset]
    )
    if not rows:
        raise ValueError(f"dataset {dataset!r} has no review batch yet: flag some examples first")
    return rows[0]


def batches(store: Store, dataset: str | None = None) -> list[dict]:
    where, params = ("WHERE dataset = ?", [dataset]) if dataset else ("", [])
    return store.rows(
        "SELECT b.*, (SELECT count(*) FROM review_items i WHERE i.batch_id = b.id) AS n_items,"
        " (SELECT count(DISTINCT example_id) FROM reviews r WHERE r.batch_id = b.id)"
        f" AS n_reviewed FROM review_batches b {where} ORDER BY created",
        params,
    )


def batch_items(store: Store, batch_id: str) -> list[dict]:
    """The batch's items with their example's messages, in batch order; `note` is the
    score's note (an LLM judge's rationale) when the batch was flagged on one."""
    rows = store.rows(
        "SELECT i.*, e.messages, s.note FROM review_items i"
        " JOIN examples e ON e.id = i.example_id"
        " JOIN review_batches b ON b.id = i.batch_id"
        " LEFT JOIN scores s ON s.job_id = b.score_job_id AND s.example_id = i.example_id"
        " AND s.method = b.method"
        " WHERE i.batch_id = ? ORDER BY i.position",
        [batch_id],
    )
    for r in rows:
        r["messages"] = json.loads(r["messages"])
    return rows


def set_project(
    store: Store, batch_id: str, url: str, project_id: int, task_ids: dict[str, int]
) -> None:
    """Record the batch's Label Studio project and each item's task."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE review_batches SET ls_url = ?, ls_project_id = ?,"
            " ls_claimed = coalesce(ls_claimed, ?) WHERE id = ?",
            [url, project_id, datetime.now(), batch_id],
        )
        cur.executemany(
            "UPDATE review_items SET ls_task_id = ? WHERE batch_id = ? AND example_id = ?",
            [[t, batch_id, e] for e, t in task_ids.items()],
        )


def claim_push(store: Store, batch_id: str, url: str, at: datetime) -> None:
    """Mark the batch as being pushed to `url` since `at` (the caller checked that it may)."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE review_batches SET ls_url = ?, ls_claimed = ? WHERE id = ?",
            [url, at, batch_id],
        )


def release_push(store: Store, batch_id: str) -> None:
    """Drop an unfinished push's claim (it failed): the batch can be pushed again."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE review_batches SET ls_url = NULL, ls_claimed = NULL"
            " WHERE id = ? AND ls_project_id IS NULL",
            [batch_id],
        )


def upsert_reviews(store: Store, batch_id: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert or update verdict rows (checked by the caller) by id in one transaction; returns
    counts new/updated/unchanged.

    Reviewers are recorded under their studio username when a user has that Label Studio
    e-mail (`studio_names`); a stored row whose reviewer differs is updated even at the same
    `updated` time, so setting an e-mail and pulling again re-attributes without duplicating."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    with store.transaction() as cur:
        names = studio_names(cur, [r.get("reviewer") for r in rows])
        for r in rows:
            reviewer = names.get(r.get("reviewer"))
            old = cur.execute(
                "SELECT updated, reviewer FROM reviews WHERE id = ?", [r["id"]]
            ).fetchone()
            values = [
                batch_id,
                r["example_id"],
                reviewer,
                r["verdict"],
                json.dumps(r.get("categories") or []),
                r.get("corrected"),
                r.get("note"),
                r["source"],
                r.get("external_id"),
                r.get("created"),
                r.get("updated"),
            ]
            if old is None:
                cur.execute(
                    "INSERT INTO reviews VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", [r["id"], *values]
                )
                counts["new"] += 1
            elif str(old[0]) != str(_ts(r.get("updated"))) or old[1] != reviewer:
                cur.execute(
                    "UPDATE reviews SET batch_id=?, example_id=?, reviewer=?, verdict=?,"
                    " categories=?, corrected=?, note=?, source=?, external_id=?,"
                    " created=?, updated=? WHERE id = ?",
                    [*values, r["id"]],
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        cur.execute(
            "UPDATE qc_samples SET status = 'reviewed' WHERE example_id IN"
            " (SELECT example_id FROM reviews WHERE batch_id = ?)",
            [batch_id],
        )
    return counts


def remove_ls_reviews(
    store: Store, ids: list[str], *, batch_id: str | None = None, project_id: int | None = None
) -> dict[str, Any]:
    """Drop Label Studio verdicts (`ls:<annotation id>`) whose annotation was deleted there.
    Verdicts of a batch already applied stay: the version made from them never changes.
    With `project_id`, only verdicts of batches pushed to that project go; the others are
    listed under "elsewhere". Returns {"removed", "kept", "elsewhere"} (kept: those of
    applied batches)."""
    if not ids:
        return {"removed": 0, "kept": 0, "elsewhere": []}
    marks = ", ".join("?" * len(ids))
    scope = " AND r.batch_id = ?" if batch_id else ""
    with store.transaction() as cur:
        found = cur.execute(
            f"SELECT r.id, b.applied_version_id, b.ls_project_id FROM reviews r"
            f" JOIN review_batches b ON b.id = r.batch_id"
            f" WHERE r.source = 'label-studio' AND r.id IN ({marks}){scope} ORDER BY r.id",
            [*ids, *([batch_id] if batch_id else [])],
        ).fetchall()
        elsewhere = [rid for rid, _, p in found if project_id is not None and p != project_id]
        found = [(rid, applied) for rid, applied, _ in found if rid not in elsewhere]
        drop = [rid for rid, applied in found if applied is None]
        if drop:
            cur.execute(f"DELETE FROM reviews WHERE id IN ({', '.join('?' * len(drop))})", drop)
    return {"removed": len(drop), "kept": len(found) - len(drop), "elsewhere": elsewhere}


def _ts(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return value


def reviews(store: Store, batch_id: str) -> list[dict]:
    rows = store.rows("SELECT * FROM reviews WHERE batch_id = ? ORDER BY created, id", [batch_id])
    for r in rows:
        r["categories"] = json.loads(r["categories"] or "[]")
    return rows


def next_unreviewed(store: Store, batch_id: str, reviewer: str) -> dict | None:
    """The next item of the batch this reviewer has not judged (least certain first)."""
    items = batch_items(store, batch_id)
    done = {r["example_id"] for r in reviews(store, batch_id) if r["reviewer"] == reviewer}
    return next((i for i in items if i["example_id"] not in done), None)


def record_applied(
    store: Store,
    batch_id: str,
    dataset: str,
    examples: list[dict],
    *,
    parent_version_id: str | None,
    note: str,
) -> dict:
    """Write the next version of `dataset` from a batch's verdicts and mark the batch applied,
    in one transaction. The batch row is claimed first, so of two applies at once the second
    conflicts there before it writes a version. Returns the version row."""
    with store.transaction() as cur:
        cur.execute(  # a real change (DuckDB skips a no-op update), so a second apply conflicts
            "UPDATE review_batches SET applied_version_id = '(applying)' WHERE id = ?",
            [batch_id],
        )
        version = add_version_cur(
            cur, dataset, examples, parent_version_id=parent_version_id, note=note
        )
        cur.execute(
            "UPDATE review_batches SET applied_version_id = ? WHERE id = ?",
            [version["id"], batch_id],
        )
    return version


def n_flagged(store: Store, batch_id: str) -> int:
    """How many items of a batch were flagged (the rest are the QC sample)."""
    return store.scalar(
        "SELECT count(*) FROM review_items WHERE batch_id = ? AND reason = 'flagged'", [batch_id]
    )


def reviewed_ids(store: Store, dataset: str) -> set[str]:
    """Examples that a reviewer already judged in any batch of this dataset."""
    rows = store.rows(
        "SELECT DISTINCT r.example_id FROM reviews r JOIN review_batches b"
        " ON b.id = r.batch_id WHERE b.dataset = ?",
        [dataset],
    )
    return {r["example_id"] for r in rows}


def _same_path(a: str, b: str, root: Path | None) -> bool:
    if a == b:
        return True

    def forms(p: str) -> set[Path]:
        path = Path(p).expanduser()
        out = {path.resolve()}
        if root is not None and not path.is_absolute():
            out.add((root / path).resolve())
        return out

    return bool(forms(a) & forms(b))


def newest_adapter(store: Store, base_model: str, *, root: Path | None = None) -> dict | None:
    """The newest succeeded training run on `base_model` whose LoRA adapter folder still exists:
    {run_id, adapter_path, dataset, finished}, or None. Relative model paths are also tried
    against `root` (the workspace), as the Training page may store them that way."""
    rows = store.rows(
        "SELECT r.id AS run_id, r.adapter_path, r.base_model, r.dataset, j.finished"
        " FROM runs r JOIN jobs j ON j.id = r.id"
        " WHERE j.state = 'succeeded' AND r.adapter_path IS NOT NULL"
        " ORDER BY j.finished DESC NULLS LAST, r.updated DESC NULLS LAST, r.id DESC"
    )
    for r in rows:
        if (
            r["base_model"]
            and _same_path(r["base_model"], base_model, root)
            and Path(r["adapter_path"]).is_dir()
        ):
            return {k: r[k] for k in ("run_id", "adapter_path", "dataset", "finished")}
    return None


def find_batch(store: Store, batch_id: str) -> dict | None:
    found = store.rows("SELECT * FROM review_batches WHERE id = ?", [batch_id])
    return found[0] if found else None


def review_updated_times(store: Store, review_ids: list[str]) -> dict[str, Any]:
    """review id -> its stored `updated` time, for the ids that are stored."""
    if not review_ids:
        return {}
    marks = ", ".join("?" * len(review_ids))
    rows = store.rows(f"SELECT id, updated FROM reviews WHERE id IN ({marks})", review_ids)
    return {r["id"]: r["updated"] for r in rows}
