"""Eval suites and their results in DuckDB: suite versions and rows, the `eval` job's answers
and scores (ingested from eval_results.jsonl), the suite leaderboard with 95% intervals, the
per-prompt view of two targets, and the promotion gate's decisions.

A target's figures on a suite are those of the latest eval job that ran it on that version.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import duckdb

from backend.store.db import Store
from backend.store.jobs import parse_lines


class SuiteNotFound(ValueError):
    """No suite (or no such version) by that name."""


def insert_suite(
    cur: duckdb.DuckDBPyConnection,
    name: str,
    rows: list[dict[str, Any]],
    *,
    source: str,
    content_hash: str,
    actor: str,
) -> tuple[dict[str, Any], bool]:
    """A new version of suite `name` holding `rows`; (suite, False) when the latest version
    already holds the same rows (nothing is written)."""
    latest = cur.execute(
        "SELECT id, version, hash FROM eval_suites WHERE name = ? ORDER BY version DESC LIMIT 1",
        [name],
    ).fetchone()
    if latest and latest[2] == content_hash:
        return _suite(cur, latest[0]), False
    version = (latest[1] if latest else 0) + 1
    suite_id = f"{name}-v{version}"
    cur.execute(
        "INSERT INTO eval_suites (id, name, version, source, hash, n_prompts, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [suite_id, name, version, source, content_hash, len(rows), actor],
    )
    cur.executemany(
        "INSERT INTO eval_prompts VALUES (?, ?, ?, ?, ?)",
        [
            [suite_id, i, r["prompt"], r.get("reference"), json.dumps(r.get("criteria") or {})]
            for i, r in enumerate(rows)
        ],
    )
    return _suite(cur, suite_id), True


def _suite(cur: duckdb.DuckDBPyConnection, suite_id: str) -> dict[str, Any]:
    cur.execute(
        "SELECT id, name, version, source, hash, n_prompts, created_by, created"
        " FROM eval_suites WHERE id = ?",
        [suite_id],
    )
    cols = [d[0] for d in cur.description]
    row = dict(zip(cols, cur.fetchone(), strict=True))
    row["created"] = str(row["created"])
    return row


def list_suites(store: Store) -> list[dict[str, Any]]:
    """The latest version of every suite, by name."""
    rows = store.rows(
        "SELECT id, name, version, source, hash, n_prompts, created_by, created FROM eval_suites"
        " QUALIFY row_number() OVER (PARTITION BY name ORDER BY version DESC) = 1 ORDER BY name"
    )
    return [{**r, "created": str(r["created"])} for r in rows]


def get_suite(store: Store, name: str, version: int | None = None) -> dict[str, Any]:
    """A suite version by name (the latest when `version` is None), or SuiteNotFound."""
    rows = store.rows(
        "SELECT id FROM eval_suites WHERE name = ? AND (? IS NULL OR version = ?)"
        " ORDER BY version DESC LIMIT 1",
        [name, version, version],
    )
    if not rows:
        known = ", ".join(s["name"] for s in list_suites(store)) or "none yet"
        what = f"suite {name!r}" + (f" version {version}" if version else "")
        raise SuiteNotFound(f"no {what}; suites: {known}")
    with store.transaction() as cur:
        return _suite(cur, rows[0]["id"])


def suite_rows(store: Store, suite_id: str) -> list[dict[str, Any]]:
    rows = store.rows(
        "SELECT idx, prompt, reference, criteria FROM eval_prompts WHERE suite_id = ? ORDER BY idx",
        [suite_id],
    )
    return [
        {"prompt": r["prompt"], "reference": r["reference"], "criteria": json.loads(r["criteria"])}
        for r in rows
    ]


def ingest_results(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """eval_results.jsonl: one answer with its scores per line; a line read twice replaces."""
    rows = parse_lines(chunk)
    for r in rows:
        key = [job_id, r["suite_id"], r["target"], int(r["idx"])]
        cur.execute(
            "INSERT OR REPLACE INTO eval_outputs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                *key,
                r.get("output"),
                r.get("latency_s"),
                r.get("prompt_tokens"),
                r.get("completion_tokens"),
                r.get("error"),
            ],
        )
        notes = r.get("notes") or {}
        for scorer, value in (r.get("scores") or {}).items():
            cur.execute(
                "INSERT OR REPLACE INTO eval_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                [*key, scorer, value, notes.get(scorer)],
            )
    return len(rows)


# the latest eval job of each (suite version, target)
_LATEST = """
latest AS (
    SELECT o.suite_id, o.target, arg_max(o.job_id, j.created) AS job_id
    FROM eval_outputs o JOIN jobs j ON j.id = o.job_id
    WHERE o.suite_id = ? GROUP BY o.suite_id, o.target
)
"""


def leaderboard(store: Store, suite_id: str) -> list[dict[str, Any]]:
    """Per target and scorer: n scored, mean and a 95% normal interval of the mean, from
    the latest eval job of each target on this suite version; best mean first per scorer."""
    return store.rows(
        f"WITH {_LATEST}"
        " SELECT s.target, s.scorer, count(s.score) AS n, avg(s.score) AS mean,"
        "  avg(s.score) - 1.96 * coalesce(stddev_samp(s.score), 0) / sqrt(count(s.score))"
        "   AS ci_low,"
        "  avg(s.score) + 1.96 * coalesce(stddev_samp(s.score), 0) / sqrt(count(s.score))"
        "   AS ci_high,"
        "  any_value(s.job_id) AS job_id"
        " FROM eval_scores s JOIN latest l"
        "  ON l.suite_id = s.suite_id AND l.target = s.target AND l.job_id = s.job_id"
        " WHERE s.score IS NOT NULL GROUP BY s.target, s.scorer"
        " ORDER BY s.scorer, mean DESC, s.target",
        [suite_id],
    )


def prompt_diff(store: Store, suite_id: str, a: str, b: str, scorer: str) -> list[dict[str, Any]]:
    """Each prompt with both targets' answers and `scorer` scores, the largest difference
    first (prompts a scorer could not score last)."""
    return store.rows(
        f"WITH {_LATEST}, one AS ("
        "  SELECT o.target, o.idx, o.output, s.score FROM eval_outputs o JOIN latest l"
        "   ON l.suite_id = o.suite_id AND l.target = o.target AND l.job_id = o.job_id"
        "  LEFT JOIN eval_scores s ON s.job_id = o.job_id AND s.target = o.target"
        "   AND s.idx = o.idx AND s.scorer = ?"
        "  WHERE o.target IN (?, ?))"
        " SELECT p.idx, p.prompt, p.reference, x.output AS output_a, x.score AS score_a,"
        "  y.output AS output_b, y.score AS score_b, y.score - x.score AS diff"
        " FROM eval_prompts p LEFT JOIN one x ON x.idx = p.idx AND x.target = ?"
        " LEFT JOIN one y ON y.idx = p.idx AND y.target = ?"
        " WHERE p.suite_id = ? ORDER BY abs(diff) DESC NULLS LAST, p.idx",
        [suite_id, scorer, a, b, a, b, suite_id],
    )


def target_results(store: Store, suite_id: str, target: str) -> list[dict[str, Any]]:
    """Every answer of `target` on the suite (its latest eval job) with its scores."""
    rows = store.rows(
        f"WITH {_LATEST}"
        " SELECT o.idx, p.prompt, o.output, o.latency_s, o.prompt_tokens, o.completion_tokens,"
        "  o.error, o.job_id,"
        "  (SELECT map(list(s.scorer), list(s.score)) FROM eval_scores s"
        "   WHERE s.job_id = o.job_id AND s.target = o.target AND s.idx = o.idx) AS scores"
        " FROM eval_outputs o JOIN latest l"
        "  ON l.suite_id = o.suite_id AND l.target = o.target AND l.job_id = o.job_id"
        " JOIN eval_prompts p ON p.suite_id = o.suite_id AND p.idx = o.idx"
        " WHERE o.target = ? ORDER BY o.idx",
        [suite_id, target],
    )
    return [{**r, "scores": dict(r["scores"] or {})} for r in rows]


def targets_of(store: Store, suite_id: str) -> list[str]:
    rows = store.rows(
        "SELECT DISTINCT target FROM eval_outputs WHERE suite_id = ? ORDER BY target", [suite_id]
    )
    return [r["target"] for r in rows]


# --- promotion gate ---------------------------------------------------------------------------


def record_promotion(
    cur: duckdb.DuckDBPyConnection,
    *,
    project: str,
    run_id: str,
    status: str,
    against: str | None,
    gate: dict[str, Any],
    actor: str,
) -> str:
    pid = uuid.uuid4().hex[:12]
    cur.execute(
        "INSERT INTO promotions (id, project, run_id, status, against, gate, decided_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [pid, project, run_id, status, against, json.dumps(gate, default=str), actor],
    )
    return pid


def promoted(store: Store) -> list[dict[str, Any]]:
    """The promoted run of each project (the latest promotion), for the Overview."""
    return store.rows(
        "SELECT project, run_id, against, decided_by, created FROM promotions"
        " WHERE status = 'promoted'"
        " QUALIFY row_number() OVER (PARTITION BY project ORDER BY created DESC) = 1"
        " ORDER BY project"
    )


def promoted_run(cur: duckdb.DuckDBPyConnection, project: str) -> str | None:
    """The promoted run of `project`, or None."""
    rows = cur.execute(
        "SELECT run_id FROM promotions WHERE project = ? AND status = 'promoted'"
        " ORDER BY created DESC LIMIT 1",
        [project],
    ).fetchall()
    return rows[0][0] if rows else None


def promotions_of(store: Store, run_id: str) -> list[dict[str, Any]]:
    rows = store.rows(
        "SELECT id, project, status, against, gate, decided_by, created FROM promotions"
        " WHERE run_id = ? ORDER BY created",
        [run_id],
    )
    return [{**r, "gate": json.loads(r["gate"]), "created": str(r["created"])} for r in rows]


# --- people's ratings and the judge's scores --------------------------------------------------


def record_rating(
    cur: duckdb.DuckDBPyConnection,
    suite_id: str,
    target: str,
    idx: int,
    rater: str,
    score: float,
    source: str,
) -> None:
    """One person's rating of one answer; rating it again replaces it."""
    cur.execute(
        "INSERT OR REPLACE INTO eval_ratings (suite_id, target, idx, rater, score, source)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [suite_id, target, idx, rater, score, source],
    )


def answer_exists(cur: duckdb.DuckDBPyConnection, suite_id: str, target: str, idx: int) -> bool:
    return bool(
        cur.execute(
            "SELECT 1 FROM eval_outputs WHERE suite_id = ? AND target = ? AND idx = ? LIMIT 1",
            [suite_id, target, idx],
        ).fetchone()
    )


def ratings(store: Store, suite_id: str) -> list[dict[str, Any]]:
    return store.rows(
        "SELECT target, idx, rater, score, source FROM eval_ratings WHERE suite_id = ?"
        " ORDER BY target, idx, rater",
        [suite_id],
    )


def judge_scores(store: Store, suite_id: str, default_rubric: str) -> list[dict[str, Any]]:
    """The pointwise judge's score of each answer (latest eval job per target), with the
    rubric it judged by: the prompt's criteria.rubric, else `default_rubric`."""
    return store.rows(
        f"WITH {_LATEST}"
        " SELECT s.target, s.idx, s.score,"
        "  coalesce(json_extract_string(p.criteria, '$.rubric'), ?) AS rubric"
        " FROM eval_scores s JOIN latest l"
        "  ON l.suite_id = s.suite_id AND l.target = s.target AND l.job_id = s.job_id"
        " JOIN eval_prompts p ON p.suite_id = s.suite_id AND p.idx = s.idx"
        " WHERE s.scorer = 'judge' AND s.score IS NOT NULL ORDER BY s.target, s.idx",
        [suite_id, default_rubric],
    )


# --- lm-evaluation-harness results ------------------------------------------------------------


def ingest_harness_suites(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """harness_suites.jsonl: each line a whole suite ({suite, hash, source, rows}); the same
    prompts again reuse their version."""
    rows = parse_lines(chunk)
    for r in rows:
        found = cur.execute(
            "SELECT 1 FROM eval_suites WHERE name = ? AND hash = ?", [r["suite"], r["hash"]]
        ).fetchone()
        if not found:
            insert_suite(
                cur,
                r["suite"],
                r["rows"],
                source=r["source"],
                content_hash=r["hash"],
                actor="lm-eval",
            )
    return len(rows)


def ingest_harness_results(cur: duckdb.DuckDBPyConnection, job_id: str, chunk: bytes) -> int:
    """harness_results.jsonl: per-sample answers and metrics, under their suite's version."""
    rows = parse_lines(chunk)
    ids: dict[tuple[str, str], str] = {}
    lines = []
    for r in rows:
        key = (r["suite"], r["hash"])
        if key not in ids:
            found = cur.execute(
                "SELECT id FROM eval_suites WHERE name = ? AND hash = ? ORDER BY version DESC",
                list(key),
            ).fetchone()
            if not found:
                raise ValueError(f"suite {r['suite']} ({r['hash'][:12]}) is not stored yet")
            ids[key] = found[0]
        lines.append(json.dumps({**r, "suite_id": ids[key]}) + "\n")
    return ingest_results(cur, job_id, "".join(lines).encode()) if lines else 0
