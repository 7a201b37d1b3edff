"""`run_summary`: one row per training run, kept current at ingest, so the Compare page's runs
table and leaderboard never scan raw metrics.

Two hooks in `backend.store.jobs` keep it current, inside the ingest transaction:
- `sync_job(cur, job_id)` after a job row is upserted: id, title, state, sweep group,
  dataset and hyperparameters (from the job's spec) of a `train` job;
- `merge_metrics(cur, job_id, relation)` after a metrics chunk is inserted: folds the chunk's
  aggregates (best and final eval loss with their steps, final train loss, time span, tokens,
  tokens/s, metric names) into the row. Only the chunk is read, never the run's earlier rows.

"Final" means the latest value by (t, step), so a resumed run's rewritten steps win.
`rebuild` recomputes rows from the whole metrics table (bulk loads, repairs); migration
0006 backfills with the same SQL.
"""

from __future__ import annotations

import duckdb

# Hyperparameter columns copied from the train spec: name -> DuckDB type.
HPARAMS: dict[str, str] = {
    "learning_rate": "DOUBLE",
    "lora_r": "INTEGER",
    "lora_alpha": "INTEGER",
    "lora_dropout": "DOUBLE",
    "batch_size": "INTEGER",
    "grad_accum": "INTEGER",
    "epochs": "DOUBLE",
    "max_steps": "INTEGER",
    "warmup_ratio": "DOUBLE",
    "max_length": "INTEGER",
    "seed": "INTEGER",
    "quant": "VARCHAR",
}
TEXT_FIELDS = ("method", "base_model", "dataset", "dataset_version_id")
RUN_KIND = "train"

_BASE_COLS = [
    "run_id",
    "title",
    "group_id",
    "state",
    "created",
    *TEXT_FIELDS,
    *HPARAMS,
    "config",
    "updated",
]
_BASE_SELECT = ", ".join(
    ["j.id", "j.title", "j.group_id", "j.state", "j.created"]
    + [f"json_extract_string(j.spec, '$.{f}')" for f in TEXT_FIELDS]
    + [f"TRY_CAST(json_extract_string(j.spec, '$.{h}') AS {t})" for h, t in HPARAMS.items()]
    + ["j.spec", "now()"]
)
_BASE_UPSERT = (
    f"INSERT INTO run_summary ({', '.join(_BASE_COLS)}) SELECT {_BASE_SELECT} FROM jobs j"
    f" WHERE j.kind = '{RUN_KIND}' __WHERE__ ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _BASE_COLS[1:])
)

# Aggregates of a metrics relation with columns (job_id, step, name, value, t).
_KEY = "{'t': coalesce(t, -1.0)::DOUBLE, 's': step}"


def _latest(name: str, alias: str) -> str:
    cond = f"FILTER (WHERE name = '{name}' AND isfinite(value))"
    return f"arg_max(value, {_KEY}) {cond} AS {alias}, max({_KEY}) {cond} AS {alias}_key"


_AGG = f"""
SELECT job_id, min(t) AS first_t, max(t) AS last_t, max(step) AS last_step,
       count(*) AS n_points,
       min(value) FILTER (WHERE name = 'eval_loss' AND isfinite(value)) AS best_eval,
       arg_min(step, {{'v': value, 's': step}})
           FILTER (WHERE name = 'eval_loss' AND isfinite(value)) AS best_eval_step,
       {_latest("eval_loss", "final_eval")},
       {_latest("loss", "final_train")},
       {_latest("tokens_seen", "tokens")},
       sum(value) FILTER (WHERE name = 'tokens_per_s' AND isfinite(value)) AS tps_sum,
       count(*) FILTER (WHERE name = 'tokens_per_s' AND isfinite(value)) AS tps_n,
       list(DISTINCT name) AS names
FROM (__SOURCE__) GROUP BY job_id
"""


def _newer(key: str) -> str:
    return f"(a.{key} >= s.{key} OR s.{key} IS NULL)"


_MERGE = f"""
UPDATE run_summary AS s SET
    first_t = least(s.first_t, a.first_t),
    last_t = greatest(s.last_t, a.last_t),
    last_step = greatest(s.last_step, a.last_step),
    n_points = coalesce(s.n_points, 0) + a.n_points,
    best_eval_step = CASE WHEN a.best_eval < coalesce(s.best_eval_loss, 'inf'::DOUBLE)
                          THEN a.best_eval_step ELSE s.best_eval_step END,
    best_eval_loss = least(s.best_eval_loss, a.best_eval),
    final_eval_loss = CASE WHEN {_newer("final_eval_key")} THEN a.final_eval
                           ELSE s.final_eval_loss END,
    final_eval_key = CASE WHEN {_newer("final_eval_key")} THEN a.final_eval_key
                          ELSE s.final_eval_key END,
    final_train_loss = CASE WHEN {_newer("final_train_key")} THEN a.final_train
                            ELSE s.final_train_loss END,
    final_train_key = CASE WHEN {_newer("final_train_key")} THEN a.final_train_key
                           ELSE s.final_train_key END,
    tokens_seen = CASE WHEN {_newer("tokens_key")} THEN a.tokens ELSE s.tokens_seen END,
    tokens_key = CASE WHEN {_newer("tokens_key")} THEN a.tokens_key ELSE s.tokens_key END,
    tps_sum = coalesce(s.tps_sum, 0) + coalesce(a.tps_sum, 0),
    tps_n = coalesce(s.tps_n, 0) + a.tps_n,
    metric_names = list_sort(list_distinct(list_concat(coalesce(s.metric_names, []), a.names))),
    updated = now()
FROM ({_AGG}) AS a
WHERE s.run_id = a.job_id
"""

_AGG_COLUMNS = (
    "first_t",
    "last_t",
    "last_step",
    "n_points",
    "best_eval_loss",
    "best_eval_step",
    "final_eval_loss",
    "final_eval_key",
    "final_train_loss",
    "final_train_key",
    "tokens_seen",
    "tokens_key",
    "tps_sum",
    "tps_n",
    "metric_names",
)

# What the runs table shows; derived figures are computed from the row, not from metrics.
SELECT_COLUMNS = f"""
    s.run_id, s.title, s.group_id, s.state, s.created, {", ".join("s." + f for f in TEXT_FIELDS)},
    {", ".join("s." + h for h in HPARAMS)},
    s.best_eval_loss, s.best_eval_step, s.final_eval_loss, s.final_eval_key.s AS final_eval_step,
    s.final_train_loss, s.last_step, s.last_t - s.first_t AS duration_s, s.tokens_seen,
    coalesce(s.tps_sum / nullif(s.tps_n, 0),
             s.tokens_seen / nullif(s.last_t - s.first_t, 0)) AS tokens_per_s,
    s.metric_names
"""


def sync_job(cur: duckdb.DuckDBPyConnection, job_id: str) -> None:
    """Create or refresh the summary row of a train job from its `jobs` row (no-op for other
    kinds). Called by ingestion right after the job row is upserted."""
    cur.execute(_BASE_UPSERT.replace("__WHERE__", "AND j.id = ?"), [job_id])


def merge_metrics(cur: duckdb.DuckDBPyConnection, job_id: str, relation: str) -> None:
    """Fold a chunk of metrics (a registered relation with step, name, value, t) into the
    run's summary row; runs without a row (jobs of other kinds) are left alone."""
    source = f"SELECT ?::VARCHAR AS job_id, step, name, value, t FROM {relation}"
    cur.execute(_MERGE.replace("__SOURCE__", source), [job_id])


def rebuild(cur: duckdb.DuckDBPyConnection, run_ids: list[str] | None = None) -> None:
    """Recompute summary rows from jobs and the whole metrics table (all runs, or `run_ids`).
    For bulk loads that bypass ingestion, and for repairs."""
    marks = ", ".join("?" * len(run_ids)) if run_ids else ""
    params = list(run_ids or [])
    job_where = f"AND j.id IN ({marks})" if run_ids else ""
    cur.execute(_BASE_UPSERT.replace("__WHERE__", job_where), params)
    reset = ", ".join(f"{c} = NULL" for c in _AGG_COLUMNS)
    cur.execute(
        f"UPDATE run_summary SET {reset}" + (f" WHERE run_id IN ({marks})" if run_ids else ""),
        params,
    )
    source = "SELECT job_id, step, name, value, t FROM metrics" + (
        f" WHERE job_id IN ({marks})" if run_ids else ""
    )
    cur.execute(_MERGE.replace("__SOURCE__", source), params)
