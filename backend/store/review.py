"""Review tables: uncertainty scores, review batches and their items, verdicts, applying them.

Verdicts from Label Studio are keyed `ls:<annotation id>` and upserted, so pulling twice adds
nothing; applying a batch writes the next dataset version in the same transaction that records it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from backend.auth import Actor, require
from backend.review.flagging import FlagPolicy, cut_value, flag, qc_extra, share_at_or_above
from backend.review.verdicts import Verdict, apply_decisions, resolve
from backend.store.datasets import add_version_cur, resolve_version, version_examples
from backend.store.db import Store
from backend.store.jobs import parse_lines
from backend.store.users import audit, audited, studio_names


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


@audited("edit_data", "review.create_batch", "dataset")
def create_batch(
    store: Store, *, dataset: str, score_job_id: str, policy: FlagPolicy, method: str = "nll"
) -> dict:
    """Flag the scored examples of one scoring run and record them (plus the QC sample) as a
    review batch. Returns the batch row with counts."""
    info = store.rows(
        "SELECT any_value(version_id) AS v, any_value(model) AS m FROM scores WHERE job_id = ?",
        [score_job_id],
    )
    scores = scores_of(store, score_job_id, method)
    if not scores:
        raise ValueError(f"scoring run {score_job_id} has no {method!r} scores")
    version_id, model = info[0]["v"], info[0]["m"]
    flagged = flag(scores, policy)
    flagged_ids = {i for i, _ in flagged}
    batch_id = f"rb-{uuid.uuid4().hex[:10]}"
    pending = (
        [
            r["example_id"]
            for r in store.rows(
                "SELECT example_id FROM qc_samples WHERE version_id = ? AND status = 'pending'"
                " ORDER BY example_id",
                [version_id],
            )
        ]
        if version_id
        else []
    )
    qc = [i for i in pending if i not in flagged_ids] or qc_extra(
        sorted(scores), flagged_ids, policy.qc_share, seed=batch_id
    )
    items = [(i, s, "flagged") for i, s in flagged] + [(i, scores.get(i), "qc") for i in qc]
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
                policy.model_dump_json(),
                rnd,
                len(scores),
                cut_value(scores, policy),
                datetime.now(),
            ],
        )
        if items:
            cur.executemany(
                "INSERT INTO review_items VALUES (?,?,?,?,?,NULL)",
                [[batch_id, i, pos, s, why] for pos, (i, s, why) in enumerate(items)],
            )
    return {**get_batch(store, batch_id), "n_flagged": len(flagged), "n_qc": len(qc)}


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
    with store.transaction() as cur:
        cur.execute(
            "UPDATE review_batches SET ls_url = ?, ls_project_id = ? WHERE id = ?",
            [url, project_id, batch_id],
        )
        cur.executemany(
            "UPDATE review_items SET ls_task_id = ? WHERE batch_id = ? AND example_id = ?",
            [[t, batch_id, e] for e, t in task_ids.items()],
        )


def upsert_reviews(store: Store, batch_id: str, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert or update verdicts by id in one transaction; returns counts new/updated/same.

    Reviewers are recorded under their studio username when a user has that Label Studio
    e-mail (`studio_names`); a stored row whose reviewer differs is updated even at the same
    `updated` time, so setting an e-mail and pulling again re-attributes without duplicating."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    with store.transaction() as cur:
        names = studio_names(cur, [r.get("reviewer") for r in rows])
        for r in rows:
            v = Verdict.model_validate(
                {
                    k: r.get(k)
                    for k in (
                        "example_id",
                        "reviewer",
                        "verdict",
                        "categories",
                        "corrected",
                        "note",
                    )
                }
                | {"reviewer": names.get(r.get("reviewer"))}
            )
            old = cur.execute(
                "SELECT updated, reviewer FROM reviews WHERE id = ?", [r["id"]]
            ).fetchone()
            values = [
                batch_id,
                v.example_id,
                v.reviewer,
                v.verdict,
                json.dumps(v.categories),
                v.corrected,
                v.note,
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
            elif str(old[0]) != str(_ts(r.get("updated"))) or old[1] != v.reviewer:
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
    store: Store, ids: list[str], *, batch_id: str | None = None
) -> dict[str, int]:
    """Drop Label Studio verdicts (`ls:<annotation id>`) whose annotation was deleted there.
    Verdicts of a batch already applied stay: the version made from them never changes.
    Returns {"removed", "kept"} (kept: those of applied batches)."""
    if not ids:
        return {"removed": 0, "kept": 0}
    marks = ", ".join("?" * len(ids))
    scope = " AND r.batch_id = ?" if batch_id else ""
    with store.transaction() as cur:
        found = cur.execute(
            f"SELECT r.id, b.applied_version_id FROM reviews r"
            f" JOIN review_batches b ON b.id = r.batch_id"
            f" WHERE r.source = 'label-studio' AND r.id IN ({marks}){scope}",
            [*ids, *([batch_id] if batch_id else [])],
        ).fetchall()
        drop = [rid for rid, applied in found if applied is None]
        if drop:
            cur.execute(f"DELETE FROM reviews WHERE id IN ({', '.join('?' * len(drop))})", drop)
    return {"removed": len(drop), "kept": len(found) - len(drop)}


def _ts(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return value


def add_in_app_review(
    store: Store, batch_id: str, verdict: Verdict, *, actor: Actor | None = None
) -> str:
    """Store a reviewer's verdict from the in-app queue. One verdict per (batch, example,
    reviewer): submitting again (a second tab, a double click) replaces it, never duplicates;
    two reviewers on the same item at once each keep their own."""
    require(actor, "review")
    key = f"{batch_id}|{verdict.example_id}|{verdict.reviewer}"
    rid = f"app:{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    now = datetime.now()
    row = {**verdict.model_dump(), "id": rid, "source": "in-app", "created": now, "updated": now}
    for attempt in range(3):
        try:
            upsert_reviews(store, batch_id, [row])
            break
        except (duckdb.TransactionException, duckdb.ConstraintException):
            if attempt == 2:  # the same verdict raced twice; the other write stands
                raise
    audit(
        store,
        actor,
        "review.verdict",
        verdict.example_id,
        {"batch": batch_id, "verdict": verdict.verdict, "reviewer": verdict.reviewer},
    )
    return rid


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


@audited("edit_data", "review.apply", "batch_id")
def apply_batch(store: Store, batch_id: str) -> dict:
    """Write the next dataset version from the batch's verdicts (one transaction)."""
    batch = get_batch(store, batch_id)
    if batch["applied_version_id"]:
        raise ValueError(
            f"batch {batch_id} was already applied as version {batch['applied_version_id']}"
        )
    by_example: dict[str, list[dict]] = {}
    for r in reviews(store, batch_id):
        by_example.setdefault(r["example_id"], []).append(r)
    if not by_example:
        raise ValueError(f"batch {batch_id} has no verdicts yet: review or pull first")
    decisions = {e: resolve(v) for e, v in by_example.items()}
    base = resolve_version(store, batch["dataset"])
    examples = version_examples(store, batch["version_id"])
    new, counts = apply_decisions(examples, decisions, batch_id=batch_id)
    note = f"review {batch_id} (round {batch['round']}): " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())
    )
    with store.transaction() as cur:
        version = add_version_cur(
            cur, batch["dataset"], new, parent_version_id=base["id"], note=note
        )
        cur.execute(
            "UPDATE review_batches SET applied_version_id = ? WHERE id = ?",
            [version["id"], batch_id],
        )
    return {"version": version, "counts": counts}


def rounds(store: Store, dataset: str) -> list[dict]:
    """Per round: flagged share under its own cut and under the first round's cut line (a fixed
    line, so the share moves as the data gets cleaner and the model surer). A re-scoring done
    after the last batch (the next round, not flagged yet) is the last row, with no batch."""
    out, first_cut, method = [], None, "nll"
    done = batches(store, dataset)
    for b in done:
        method = b["method"] or "nll"
        scores = list(scores_of(store, b["score_job_id"], method).values())
        n_flagged = store.scalar(
            "SELECT count(*) FROM review_items WHERE batch_id = ? AND reason = 'flagged'", [b["id"]]
        )
        first_cut = b["cut"] if first_cut is None else first_cut
        out.append(
            {
                "round": b["round"],
                "batch": b["id"],
                "model": b["model"],
                "n_scored": b["n_scored"],
                "n_flagged": n_flagged,
                "flagged_share": n_flagged / b["n_scored"] if b["n_scored"] else 0.0,
                "share_above_first_cut": share_at_or_above(scores, first_cut),
                "mean_score": sum(scores) / len(scores) if scores else None,
            }
        )
    if done:
        used = {b["score_job_id"] for b in done}
        later = [
            j
            for j in score_jobs(store, dataset)
            if j["job_id"] not in used and (j["round"] or 1) > done[-1]["round"]
        ]
        if later:  # newest first: the latest re-scoring of the next round
            j = later[0]
            scores = list(scores_of(store, j["job_id"], method).values())
            out.append(
                {
                    "round": j["round"],
                    "batch": None,
                    "model": j["model"],
                    "n_scored": len(scores),
                    "n_flagged": None,
                    "flagged_share": None,
                    "share_above_first_cut": share_at_or_above(scores, first_cut),
                    "mean_score": sum(scores) / len(scores) if scores else None,
                }
            )
    return out


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
