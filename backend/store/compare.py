"""Queries behind the Compare page: the runs table and leaderboard (from `run_summary`, never
raw metrics), curves downsampled inside DuckDB, sweep groups, config diffs and side-by-side
generations.

Kinds: a run's figures are ranked only against runs of its KIND, one method on one dataset (or
preference set) version ("SFT on support v3"): an SFT eval loss is not a DPO one, and a loss
on one version's held-out rows is not a loss on another's. The leaderboard ranks within each
kind, the table keeps kinds apart when it sorts by a figure, and `best_at` says in words what
"best" means ("lowest SFT eval loss on support v3").

Curves: each selected run's x span is cut into at most `max_points` equal-width buckets inside
DuckDB; a bucket gives its mean x, mean value and min/max band. By step, long runs read buckets
pre-aggregated at ingest (`metric_buckets`) instead of raw rows. The page gets numpy arrays,
never a DataFrame of raw rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backend.store import metric_buckets
from backend.store.db import Store
from backend.store.run_summary import HPARAMS, SELECT_COLUMNS

MAX_POINTS = 1000

# x axis choice -> axis title (with unit).
X_AXES: dict[str, str] = {
    "step": "optimiser step (steps)",
    "tokens": "tokens seen (tokens)",
    "wall": "wall time since the run's first metric (s)",
}
# metric -> unit shown on axes; unknown metrics show their name alone.
METRIC_UNITS: dict[str, str] = {
    "loss": "nats/token",
    "eval_loss": "nats/token",
    "learning_rate": "lr",
    "grad_norm": "L2 norm",
    "epoch": "epochs",
    "tokens_seen": "tokens",
    "tokens_per_s": "tokens/s",
    "mean_token_accuracy": "fraction",
    "peak_gpu_mem_mb": "MiB",
    "best_eval_loss": "nats/token",
    "final_eval_loss": "nats/token",
    "final_train_loss": "nats/token",
    "duration_s": "s",
    "perplexity": "ppl",
    "mfu": "fraction of peak",
    "est_mem_mib": "MiB",
    "peak_mem_mib": "MiB",
}
# Summary figures a sweep can be judged on (lower is better for the losses).
SUMMARY_METRICS = (
    "best_eval_loss",
    "final_eval_loss",
    "final_train_loss",
    "tokens_per_s",
    "duration_s",
)
LOWER_IS_BETTER = {
    "best_eval_loss",
    "final_eval_loss",
    "final_train_loss",
    "duration_s",
    "perplexity",
}

# A run's KIND: its method, dataset and dataset (or preference set) version. Figures are only
# ranked within a kind. The label ("SFT on support v3") is the kind's key.
_KIND_SQL = (
    "upper(coalesce(s.method, 'sft')) || ' on ' || coalesce(s.dataset, '(no dataset)')"
    " || coalesce(' v' || coalesce(dv.number, pv.number)::VARCHAR, '')"
)
_VERSION_JOINS = """
LEFT JOIN dataset_versions dv ON dv.id = s.dataset_version_id
LEFT JOIN preference_set_versions pv ON pv.id = s.dataset_version_id
"""
_TABLE_SQL = f"""
SELECT * FROM (
SELECT {SELECT_COLUMNS}, coalesce(dv.number, pv.number) AS dataset_version, e.perplexity,
       {_KIND_SQL} AS kind, rr.estimate_bytes / 2^20 AS est_mem_mib,
       rr.peak_bytes / 2^20 AS peak_mem_mib, rr.mfu
FROM run_summary s {_VERSION_JOINS}
LEFT JOIN run_eval e ON e.run_id = s.run_id
LEFT JOIN run_resources rr ON rr.run_id = s.run_id
) s
"""
# What "best" means for each summary figure, in words: (adjective, figure).
BEST_WORDS: dict[str, tuple[str, str]] = {
    "best_eval_loss": ("lowest", "eval loss"),
    "final_eval_loss": ("lowest", "final eval loss"),
    "final_train_loss": ("lowest", "final train loss"),
    "tokens_per_s": ("highest", "throughput (tokens/s)"),
    "duration_s": ("shortest", "duration"),
    "perplexity": ("lowest", "perplexity"),
}
SORTABLE = (
    "best_eval_loss",
    "final_eval_loss",
    "final_train_loss",
    "duration_s",
    "tokens_per_s",
    "created",
    "learning_rate",
    "lora_r",
    "batch_size",
    "run_id",
    "group_id",
    "state",
    "last_step",
)


class CompareError(ValueError):
    """A compare request that cannot be answered (unknown metric, axis or sort column)."""


def label(unit_key: str) -> str:
    """'loss' -> 'loss (nats/token)': a metric name with its unit, for axis titles."""
    unit = METRIC_UNITS.get(unit_key)
    return f"{unit_key} ({unit})" if unit else unit_key


def runs_table(
    store: Store,
    *,
    kind: str | None = None,
    group: str | None = None,
    states: list[str] | None = None,
    search: str | None = None,
    sort: str = "best_eval_loss",
    descending: bool = False,
    by_group: bool = False,
) -> pd.DataFrame:
    """One row per run from `run_summary`: its kind, hyperparameters, dataset version,
    best/final losses, duration, tokens/s, state and sweep group. Filters are optional;
    `by_group` orders by sweep group first so each sweep's runs sit together. Without a `kind`
    filter, a sort by a figure keeps each kind's runs together (figures of different kinds are
    never ranked against each other)."""
    if sort not in SORTABLE:
        raise CompareError(f"sort: {sort!r} is not a column; use one of {', '.join(SORTABLE)}")
    where, params = [], []
    if kind:
        where.append("s.kind = ?")
        params.append(kind)
    if group:
        where.append("s.group_id = ?")
        params.append(group)
    if states:
        where.append(f"s.state IN ({', '.join('?' * len(states))})")
        params.extend(states)
    if search:
        where.append("(s.run_id ILIKE ? OR s.title ILIKE ? OR s.dataset ILIKE ?)")
        params.extend([f"%{search}%"] * 3)
    order = f"{sort} {'DESC' if descending else 'ASC'} NULLS LAST, s.run_id"
    if by_group:
        order = "s.group_id NULLS LAST, " + order
    if not kind and sort in BEST_WORDS:
        order = "s.kind, " + order
    sql = _TABLE_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY " + order
    return store.df(sql, params)


def kinds(store: Store) -> list[dict[str, Any]]:
    """Each kind of run (method on a dataset version), the newest first: its label `kind`,
    `method`, `dataset`, `dataset_version` (number or None), `runs` and `latest` (created)."""
    return store.rows(
        f"SELECT {_KIND_SQL} AS kind, upper(coalesce(s.method, 'sft')) AS method,"
        f" s.dataset, coalesce(dv.number, pv.number) AS dataset_version, count(*) AS runs,"
        f" max(s.created) AS latest FROM run_summary s {_VERSION_JOINS}"
        f" GROUP BY ALL ORDER BY latest DESC NULLS LAST, kind"
    )


def best_at(kind: str, metric: str = "best_eval_loss", *, capital: bool = False) -> str:
    """What "best" means, in words: 'lowest SFT eval loss on support v3' (a capital L with
    `capital`, for a label)."""
    if metric not in BEST_WORDS:
        raise CompareError(f"metric: {metric!r}; rank by one of {', '.join(BEST_WORDS)}")
    adjective, figure = BEST_WORDS[metric]
    method, _, target = kind.partition(" on ")
    text = f"{adjective} {method} {figure} on {target}" if target else f"{adjective} {figure}"
    return text[:1].upper() + text[1:] if capital else text


def sweep_groups(store: Store, kind: str | None = None) -> pd.DataFrame:
    """Each sweep group (a sweep is one kind: one method on one dataset version): its kind,
    how many runs, how many finished, its best eval loss and best run, the newest sweep
    first."""
    where, params = ("AND s.kind = ?", [kind]) if kind else ("", [])
    return store.df(
        f"SELECT group_id, any_value(kind) AS kind, count(*) AS runs,"
        f" count(*) FILTER (WHERE state = 'succeeded') AS finished,"
        f" min(best_eval_loss) AS best_eval_loss, arg_min(run_id, best_eval_loss) AS best_run,"
        f" max(created) AS latest"
        f" FROM ({_TABLE_SQL}) s WHERE group_id IS NOT NULL {where}"
        f" GROUP BY group_id ORDER BY latest DESC, group_id",
        params,
    )


def leaderboard(
    store: Store,
    *,
    metric: str = "best_eval_loss",
    kind: str | None = None,
    group: str | None = None,
    limit: int = 10,
) -> pd.DataFrame:
    """The best runs by a summary metric (ascending for losses), ranked 1..limit WITHIN each
    kind (method on a dataset version): rows come kind by kind, each with its `kind` and
    `rank`. `kind` or `group` keep one kind or one sweep."""
    if metric not in SUMMARY_METRICS:
        raise CompareError(f"metric: {metric!r}; rank by one of {', '.join(SUMMARY_METRICS)}")
    direction = "ASC" if metric in LOWER_IS_BETTER else "DESC"
    where, params = [f"s.{metric} IS NOT NULL"], []
    if kind:
        where.append("s.kind = ?")
        params.append(kind)
    if group:
        where.append("s.group_id = ?")
        params.append(group)
    return store.df(
        f"SELECT * FROM (SELECT row_number() OVER (PARTITION BY s.kind"
        f" ORDER BY s.{metric} {direction}, s.run_id) AS rank, s.*"
        f" FROM ({_TABLE_SQL}) s WHERE {' AND '.join(where)})"
        f" WHERE rank <= ? ORDER BY kind, rank",
        [*params, int(limit)],
    )


def metric_names(store: Store, run_ids: list[str]) -> list[str]:
    """Metric names any of the runs reported (from the summary, not the raw rows)."""
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    rows = store.rows(
        f"SELECT DISTINCT unnest(metric_names) AS name FROM run_summary"
        f" WHERE run_id IN ({marks}) ORDER BY name",
        run_ids,
    )
    return [r["name"] for r in rows]


@dataclass
class Curve:
    """One run's downsampled series: bucket mean x and value, min/max band, points per bucket."""

    x: np.ndarray
    y: np.ndarray
    y_min: np.ndarray
    y_max: np.ndarray
    n: np.ndarray


# x of a point, and the run's x span [lo, hi) that is cut into equal-width buckets. Spans come
# from run_summary, so every metric of a run shares its bucket edges and no pass over the
# points is needed to find them.
_X_SQL = {
    "step": ("r.step::DOUBLE", "0.0", "s.last_step + 1.0"),
    "wall": ("r.t - s.first_t", "0.0", "s.last_t - s.first_t"),
    "tokens": ("k.value", "0.0", "s.tokens_seen"),
}
_TOKENS_JOIN = " ASOF JOIN tok k ON k.job_id = r.job_id AND r.step >= k.step"


def _points_sql(resumed: bool) -> str:
    """One run's points of one metric. A job id equality lets DuckDB skip row groups by their
    min/max (an IN list scans the table). A resumed run reported some steps twice: keep the
    latest value of each step."""
    if resumed:
        return (
            "SELECT job_id, step, arg_max(value, t) AS value, max(t) AS t FROM metrics"
            " WHERE job_id = ? AND name = ? AND isfinite(value) GROUP BY job_id, step"
        )
    return (
        "SELECT job_id, step, value, t FROM metrics WHERE job_id = ? AND name = ? AND"
        " isfinite(value)"
    )


def curves(
    store: Store, run_ids: list[str], metric: str, *, x: str = "step", max_points: int = MAX_POINTS
) -> dict[str, Curve]:
    """`metric` of each run, at most `max_points` points per run, bucketed in DuckDB.

    The run's x span (steps, wall seconds since its first metric, or tokens seen) is cut
    into `max_points` equal-width buckets; each non-empty bucket gives its mean x, mean value
    and min/max. Non-finite values are skipped. x = tokens takes the latest tokens_seen at or
    before the step. Runs without a summary row or without the metric are absent.

    x = step for a run longer than `max_points` steps that was never resumed reads its
    buckets from `metric_buckets` instead (kept at ingest): the narrowest stored width giving
    at most `max_points` buckets, aligned at multiples of the width (so between max_points/8
    and max_points points). Resumed runs stay on the raw rows, which keep each step's latest
    value.
    """
    if x not in _X_SQL:
        raise CompareError(f"x: {x!r}; use one of {', '.join(_X_SQL)}")
    if max_points < 1:
        raise CompareError("max_points must be at least 1")
    run_ids = list(dict.fromkeys(run_ids))
    if not run_ids:
        return {}
    marks = ", ".join("?" * len(run_ids))
    runs = {
        r["run_id"]: r
        for r in store.rows(
            f"SELECT s.run_id, s.last_step, j.attempt FROM run_summary s LEFT JOIN jobs j"
            f" ON j.id = s.run_id WHERE s.run_id IN ({marks})",
            run_ids,
        )
    }
    run_ids = [r for r in run_ids if r in runs]
    widths: dict[str, int] = {}
    if x == "step":  # stored buckets serve runs that never rewrote a step
        for r in run_ids:
            width = metric_buckets.width_for((runs[r]["last_step"] or 0) + 1.0, max_points)
            if width and (runs[r]["attempt"] or 1) <= 1:
                widths[r] = width
    out = _stored_curves(store, widths, metric) if widths else {}
    raw = [r for r in run_ids if r not in widths]
    if raw:
        out.update(
            _raw_curves(
                store, raw, {r: runs[r]["attempt"] or 1 for r in raw}, metric, x, int(max_points)
            )
        )
    return {r: out[r] for r in run_ids if r in out}


def _split(cols: dict[str, np.ndarray]) -> dict[str, Curve]:
    """Rows ordered by job_id, bucket -> one Curve per job."""
    ids = np.asarray(cols["job_id"], dtype=object)
    if not len(ids):
        return {}
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    out = {}
    for a, b in zip(starts, ends, strict=True):
        out[str(ids[a])] = Curve(
            *(np.asarray(cols[c][a:b], dtype=float) for c in ("x", "y", "y_min", "y_max")),
            n=np.asarray(cols["n"][a:b], dtype=np.int64),
        )
    return out


def _fetch(store: Store, sql: str, params: list[Any]) -> dict[str, Curve]:
    cur = store.cursor()
    try:
        return _split(cur.execute(sql, params).fetchnumpy())
    finally:
        cur.close()


def _stored_curves(store: Store, widths: dict[str, int], metric: str) -> dict[str, Curve]:
    """Curves from `metric_buckets`: each run at its own stored width, buckets aligned at
    multiples of it. The selection's series ids are joined to the buckets in one statement,
    an integer join that lets DuckDB skip blocks by their min/max."""
    values = ", ".join("(?, ?)" for _ in widths)
    sql = f"""
    WITH sel AS (SELECT s.series, s.job_id FROM metric_series s
                 JOIN (VALUES {values}) v(job_id, width)
                 ON s.job_id = v.job_id AND s.width = v.width WHERE s.name = ?)
    SELECT sel.job_id, b.sum_x / b.n AS x, b.sum_y / b.n AS y, b.min_y AS y_min,
           b.max_y AS y_max, b.n
    FROM metric_buckets b JOIN sel ON b.series = sel.series ORDER BY sel.job_id, b.bucket
    """
    return _fetch(store, sql, [v for r, w in widths.items() for v in (r, w)] + [metric])


def _raw_curves(
    store: Store, run_ids: list[str], attempts: dict[str, int], metric: str, x: str, k: int
) -> dict[str, Curve]:
    """Curves bucketed from raw metric rows: `k` equal-width buckets over the run's x span."""
    union = " UNION ALL ".join(_points_sql(attempts[r] > 1) for r in run_ids)
    x_expr, lo, hi = _X_SQL[x]
    join = _TOKENS_JOIN if x == "tokens" else ""
    tok = f", tok AS ({union})" if x == "tokens" else ""
    sql = f"""
    WITH r AS ({union}){tok},
    p AS (SELECT r.job_id, {x_expr} AS x, r.value, {lo} AS lo, {hi} AS hi
          FROM r JOIN run_summary s ON s.run_id = r.job_id{join}),
    b AS (SELECT job_id, x, value,
                 CASE WHEN hi > lo THEN least({k - 1}, greatest(0, floor((x - lo) * {k}
                      / (hi - lo))))::BIGINT ELSE 0 END AS bucket
          FROM p WHERE x IS NOT NULL)
    SELECT job_id, avg(x) AS x, avg(value) AS y, min(value) AS y_min, max(value) AS y_max,
           count(*) AS n
    FROM b GROUP BY job_id, bucket ORDER BY job_id, bucket
    """
    params = [v for r in run_ids for v in (r, metric)]
    params += [v for r in run_ids for v in (r, "tokens_seen")] if x == "tokens" else []
    return _fetch(store, sql, params)


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard-style smoothing), weight in [0, 1),
    along the last axis: a 2-D array smooths one series per row in one pass (rows padded at
    their end stay exact, since the average only looks back).

    >>> ema(np.array([1.0, 1.0, 1.0]), 0.9).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    y = np.asarray(y, dtype=float)
    if not 0.0 <= weight < 1.0:
        raise CompareError(f"smoothing weight {weight} must be in [0, 1)")
    if weight == 0.0 or not y.shape[-1]:
        return y.copy()
    # Closed form per block: s_j = w^(j+1) s_-1 + (1-w) w^j cumsum(y_k w^-k); blocks keep w^-k
    # within 1e12 so float64 stays exact enough.
    block = max(1, int(12 / -np.log10(weight)))
    out = np.empty_like(y)
    last = np.zeros(y.shape[:-1] + (1,))
    for start in range(0, y.shape[-1], block):
        seg = y[..., start : start + block]
        k = np.arange(seg.shape[-1])
        s = weight ** (k + 1) * last + (1 - weight) * weight**k * np.cumsum(
            seg * weight**-k, axis=-1
        )
        out[..., start : start + len(k)] = s / (1 - weight ** (start + k + 1))
        last = s[..., -1:]
    return out


# --- configs and generations ------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def run_config(store: Store, run_id: str) -> dict[str, Any]:
    """The config a run trained with (runs.config, or the job's spec before it reported)."""
    row = store.rows(
        "SELECT coalesce(r.config, j.spec) AS config FROM jobs j"
        " LEFT JOIN runs r ON r.id = j.id WHERE j.id = ?",
        [run_id],
    )
    if not row or row[0]["config"] is None:
        raise CompareError(f"no run {run_id!r}")
    return json.loads(row[0]["config"])


def config_diff(store: Store, a: str, b: str, *, all_fields: bool = False) -> pd.DataFrame:
    """Fields of two runs' configs side by side (as JSON text); only differing ones unless
    `all_fields`. Nested fields are dotted (`runtime.dtype`)."""
    ca, cb = _flatten(run_config(store, a)), _flatten(run_config(store, b))
    rows = []
    for key in sorted(set(ca) | set(cb)):
        va, vb = ca.get(key), cb.get(key)
        if all_fields or va != vb:
            rows.append({"field": key, a: json.dumps(va), b: json.dumps(vb), "differs": va != vb})
    return pd.DataFrame(rows, columns=["field", a, b, "differs"])


def side_by_side(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Each eval prompt with every run's output from its latest evaluation (None where a run
    did not answer it). Prompts all runs answered come first."""
    if not run_ids:
        return []
    marks = ", ".join("?" * len(run_ids))
    rows = store.rows(
        f"WITH g AS (SELECT *, rowid AS rid FROM generations WHERE run_id IN ({marks})),"
        f" latest AS (SELECT run_id, max(step) AS step FROM g GROUP BY run_id)"
        f" SELECT g.run_id, g.prompt, g.output FROM g JOIN latest l ON l.run_id = g.run_id"
        f" AND g.step IS NOT DISTINCT FROM l.step ORDER BY g.rid",
        run_ids,
    )
    by_prompt: dict[str, dict[str, str]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], {})[r["run_id"]] = r["output"]
    order = sorted(by_prompt, key=lambda p: -len(by_prompt[p]))  # stable: first seen wins ties
    return [{"prompt": p, "outputs": {r: by_prompt[p].get(r) for r in run_ids}} for p in order]


def varying_hparams(table: pd.DataFrame) -> list[str]:
    """Hyperparameter columns that take more than one value in `table` (the sweep's axes)."""
    return [h for h in HPARAMS if h in table and table[h].nunique(dropna=True) > 1]
