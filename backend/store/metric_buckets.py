"""`metric_buckets`: each training run's metrics pre-aggregated into fixed step buckets, kept
current at ingest, so the Compare page's curves read a few hundred rows per run instead of
scanning the raw metrics table (which is not clustered by run: finding one run's points means
reading whole 122,880-row blocks).

For every width in `WIDTHS` a bucket holds the steps [bucket * width, (bucket + 1) * width) of
one metric: count, sum of steps, sum, min and max of the finite values. Each (run, metric,
width) is a series with an integer id in `metric_series`; buckets are keyed by (series,
bucket), so a selection's buckets come from one integer semi-join (migration 0013). Counts,
sums, mins and maxes merge by adding / least / greatest, so `merge_metrics` folds each
ingested chunk in with one upsert inside the ingest transaction, reading only the chunk.
Wider buckets are rolled up from the narrowest, since every width is a multiple of it.

A resumed run (attempt > 1) reports some steps twice; its buckets then count both values, so
`backend.store.compare.curves` keeps such runs on the raw path, which keeps the latest value.
`rebuild` recomputes from the whole metrics table (bulk loads, repairs); migration 0011
backfilled with the same aggregation, and 0013 moved its rows under series ids.
"""

from __future__ import annotations

import duckdb

# Step widths, each 8x the last: at most 1/7 as many rows as the raw metrics, and any run up
# to 32.8M steps fits in <= 1000 buckets at one of them (at least 125 once it needs one).
WIDTHS: tuple[int, ...] = (8, 64, 512, 4096, 32768)

# Each (run, metric, width) is a series with an integer id (`metric_series`), and buckets are
# keyed by (series, bucket): the Compare page finds 20 runs' buckets with one integer semi-join.
_FILTER = (
    "FROM (__SOURCE__) m SEMI JOIN run_summary s ON s.run_id = m.job_id"
    " WHERE m.step >= 0 AND m.name IS NOT NULL AND isfinite(m.value)"
)
_WIDTHS_SQL = f"(SELECT unnest({list(WIDTHS)}) AS width) w"

# New series of a metrics relation, numbered after the highest id in (run, metric, width)
# order. Only runs with a run_summary row (train jobs) get series.
_NEW_SERIES = f"""
INSERT INTO metric_series (series, job_id, name, width)
SELECT (SELECT coalesce(max(series), 0) FROM metric_series)
       + row_number() OVER (ORDER BY k.job_id, k.name, w.width), k.job_id, k.name, w.width
FROM (SELECT DISTINCT m.job_id, m.name {_FILTER}) k, {_WIDTHS_SQL}
WHERE NOT EXISTS (SELECT 1 FROM metric_series x
                  WHERE x.job_id = k.job_id AND x.name = k.name AND x.width = w.width)
"""

# Buckets of a metrics relation (job_id, step, name, value): the narrowest width first, the
# others rolled up from it, each under its series id. Sorted, so a rebuild stores each series'
# buckets together and a curve query skips the other row groups by their min/max.
_AGG = f"""
WITH fine AS (
    SELECT m.job_id, m.name, m.step // {WIDTHS[0]} AS bucket, count(*) AS n,
           sum(m.step::DOUBLE) AS sum_x, sum(m.value) AS sum_y, min(m.value) AS min_y,
           max(m.value) AS max_y
    {_FILTER}
    GROUP BY m.job_id, m.name, m.step // {WIDTHS[0]}
),
agg AS (
    SELECT f.job_id, f.name, w.width, f.bucket // (w.width // {WIDTHS[0]}) AS bucket,
           sum(f.n) AS n, sum(f.sum_x) AS sum_x, sum(f.sum_y) AS sum_y, min(f.min_y) AS min_y,
           max(f.max_y) AS max_y
    FROM fine f, {_WIDTHS_SQL}
    GROUP BY f.job_id, f.name, w.width, f.bucket // (w.width // {WIDTHS[0]})
)
SELECT s.series, a.bucket, a.n, a.sum_x, a.sum_y, a.min_y, a.max_y
FROM agg a JOIN metric_series s ON s.job_id = a.job_id AND s.name = a.name AND s.width = a.width
ORDER BY s.series, a.bucket
"""

_COLUMNS = "series, bucket, n, sum_x, sum_y, min_y, max_y"
_INSERT = f"INSERT INTO metric_buckets ({_COLUMNS})\n{_AGG.strip()}"
# An upsert's rows come out in no set order, so only `rebuild` (a plain insert) stays sorted.
_UPSERT = f"""
{_INSERT}
ON CONFLICT (series, bucket) DO UPDATE SET
    n = metric_buckets.n + excluded.n,
    sum_x = metric_buckets.sum_x + excluded.sum_x,
    sum_y = metric_buckets.sum_y + excluded.sum_y,
    min_y = least(metric_buckets.min_y, excluded.min_y),
    max_y = greatest(metric_buckets.max_y, excluded.max_y)
"""


def width_for(span: float, max_points: int) -> int | None:
    """The narrowest stored width that cuts steps [0, span) into at most `max_points`
    buckets, or None when the span fits without bucketing (span <= max_points: the raw path
    gives one point per step) or needs a wider bucket than any stored."""
    if span <= max_points:
        return None
    for width in WIDTHS:
        if -(-span // width) <= max_points:
            return width
    return None


def merge_metrics(cur: duckdb.DuckDBPyConnection, job_id: str, relation: str) -> None:
    """Fold a chunk of metrics (a registered relation with step, name, value) into the run's
    buckets; jobs without a run_summary row (other kinds) are left alone."""
    source = f"SELECT ?::VARCHAR AS job_id, step, name, value FROM {relation}"
    cur.execute(_NEW_SERIES.replace("__SOURCE__", source), [job_id])
    cur.execute(_UPSERT.replace("__SOURCE__", source), [job_id])


def rebuild(cur: duckdb.DuckDBPyConnection, run_ids: list[str] | None = None) -> None:
    """Recompute buckets from the whole metrics table (all runs, or `run_ids`). For bulk
    loads that bypass ingestion, and for repairs. Needs run_summary rows to exist. A full
    rebuild renumbers the series in (run, metric, width) order."""
    marks = ", ".join("?" * len(run_ids)) if run_ids else ""
    params = list(run_ids or [])
    where = f" WHERE job_id IN ({marks})" if run_ids else ""
    cur.execute(
        f"DELETE FROM metric_buckets WHERE series IN (SELECT series FROM metric_series{where})",
        params,
    )
    cur.execute("DELETE FROM metric_series" + where, params)
    source = "SELECT job_id, step, name, value FROM metrics" + where
    cur.execute(_NEW_SERIES.replace("__SOURCE__", source), params)
    cur.execute(_INSERT.replace("__SOURCE__", source), params)
