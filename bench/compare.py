"""Compare-page bench: 1000 runs x 5000 steps x 3 metrics (15M metric rows, generated inside
DuckDB with range()). Measured side by side in one run:

1. curves of 20 runs: the store's query (downsampled in DuckDB to <= 1000 points per run,
   min/max band) + the plotly figure + its JSON (what st.plotly_chart sends the browser),
   against loading those runs' raw rows with pandas and plotting every point of the metric,
   two ways:
   a. "JSONL": pandas reads each run's metrics.jsonl from its job folder (the files the jobs
      write and the store ingests; written here for the 20 runs exactly as a job writes them);
   b. "table": the runs' raw rows from the DuckDB metrics table into a pandas DataFrame.
   Both draw one go.Scatter per run with every raw point, in the studio template with a
   title and axis titles;
2. the leaderboard: `run_summary` query against a pandas groupby over all metric rows.

    python bench/compare.py [--runs 1000] [--steps 5000] [--repeat 3]

Prints the curves ratio against the JSONL baseline LAST (the one the issue describes: pandas
loading the runs' raw rows); the table baseline's ratio is printed just above it. Goal: >= 20x.
Memory stays within a few GB (DuckDB is capped).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/compare.py` from a plain checkout
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402

from backend.store import Store, compare  # noqa: E402
from backend.workspace import Workspace  # noqa: E402
from studio.components.compare_charts import curves_figure  # noqa: E402
from tests.support.seed_runs import seed_bulk  # noqa: E402

METRIC = "loss"


def interleaved(fns: list[Callable[[], object]], repeat: int) -> list[tuple[float, object]]:
    """Median wall time of `repeat` calls of each fn and its last result, calls taken in
    rounds (each fn once a round) so every side sees the same share of others' load."""
    times: list[list[float]] = [[] for _ in fns]
    results: list[object] = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def to_browser(fig: go.Figure) -> str:
    """What st.plotly_chart does with a figure: to_dict, then JSON without validation."""
    return pio.to_json(fig.to_dict(), validate=False)


def studio_curves(store: Store, ids: list[str], parts: dict | None = None) -> str:
    """The Compare page: DuckDB buckets (<= 1000 points, min/max band) -> EMA -> figure."""
    t0 = time.perf_counter()
    curves = compare.curves(store, ids, METRIC, x="step")
    t1 = time.perf_counter()
    assert len(curves) == len(ids)
    assert all(len(c.x) <= compare.MAX_POINTS for c in curves.values())
    fig = curves_figure(curves, METRIC, "step", smoothing=0.6)
    t2 = time.perf_counter()
    payload = to_browser(fig)
    if parts is not None:
        parts.update(query=t1 - t0, figure=t2 - t1, json=time.perf_counter() - t2)
    return payload


def raw_rows(store: Store, ids: list[str]) -> pd.DataFrame:
    marks = ", ".join("?" * len(ids))
    return store.df(f"SELECT * FROM metrics WHERE job_id IN ({marks})", ids)


def _raw_figure(frames: dict[str, pd.DataFrame]) -> str:
    """Every raw point of METRIC of each run (a frame of step, value), one trace a run."""
    fig = go.Figure()
    fig.update_layout(
        template="studio", title=f"{METRIC} by step", xaxis_title="step", yaxis_title=METRIC
    )
    for run_id, d in frames.items():
        fig.add_trace(go.Scatter(x=d["step"], y=d["value"], mode="lines", name=run_id))
    return to_browser(fig)


def pandas_curves(store: Store, ids: list[str]) -> str:
    """The naive page: the runs' raw rows from the metrics table into pandas, every point
    plotted (one trace a run)."""
    df = raw_rows(store, ids)
    return _raw_figure(
        {r: df[(df["job_id"] == r) & (df["name"] == METRIC)].sort_values("step") for r in ids}
    )


def jsonl_curves(ws: Workspace, ids: list[str]) -> str:
    """The naive page without a store: pandas reads each run's metrics.jsonl (the job's own
    output, all its metrics), every point of METRIC plotted (one trace a run)."""
    frames = {}
    for run_id in ids:
        df = pd.read_json(ws.job_dir(run_id) / "metrics.jsonl", lines=True)
        frames[run_id] = df[df["name"] == METRIC].sort_values("step")
    return _raw_figure(frames)


def _arrays(payload: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) of each trace of a figure's JSON, typed arrays decoded."""

    def dec(v):
        if isinstance(v, dict):
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return np.asarray(v, dtype=float)

    return [(dec(t["x"]), dec(t["y"])) for t in json.loads(payload)["data"]]


def same_points(a: str, b: str) -> None:
    """Both baselines draw the same points (pandas' default JSON float parser may differ from
    the stored double in the last bit, so values are compared to 1e-12)."""
    ta, tb = _arrays(a), _arrays(b)
    assert len(ta) == len(tb), "the baselines drew a different number of runs"
    for (xa, ya), (xb, yb) in zip(ta, tb, strict=True):
        assert np.array_equal(xa, xb) and np.allclose(ya, yb, rtol=1e-12, atol=0), (
            "the baselines drew different points"
        )


def write_metrics_jsonl(store: Store, ws: Workspace, ids: list[str]) -> int:
    """Each run's metric rows as the job wrote them: job_dir/metrics.jsonl, one
    {"step", "name", "value", "t"} object a line, in step order. Returns bytes written."""
    total = 0
    for run_id in ids:
        path = ws.job_dir(run_id) / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        cur = store.cursor()
        try:
            cur.execute(
                f"COPY (SELECT step, name, value, t FROM metrics WHERE job_id = ?"
                f" ORDER BY step, name) TO '{path}' (FORMAT json)",
                [run_id],
            )
        finally:
            cur.close()
        total += path.stat().st_size
    return total


def pandas_px_curves(store: Store, ids: list[str]) -> str:
    """The one-liner most pages start with: raw rows, then plotly express."""
    df = raw_rows(store, ids)
    d = df[df["name"] == METRIC].sort_values(["job_id", "step"])
    return to_browser(px.line(d, x="step", y="value", color="job_id", title=f"{METRIC} by step"))


def studio_leaderboard(store: Store) -> pd.DataFrame:
    return compare.leaderboard(store, limit=20)


def pandas_leaderboard(store: Store) -> pd.DataFrame:
    """Every metric row into pandas, then best/final per run with groupby."""
    df = store.df("SELECT job_id, step, name, value, t FROM metrics")
    ev = df[df["name"] == "eval_loss"]
    best = ev.loc[ev.groupby("job_id")["value"].idxmin(), ["job_id", "value", "step"]]
    best.columns = ["run_id", "best_eval_loss", "best_eval_step"]
    tr = df[df["name"] == "loss"].sort_values(["job_id", "t", "step"])
    final = tr.groupby("job_id")["value"].last().rename("final_train_loss")
    out = best.merge(final, left_on="run_id", right_index=True)
    return out.sort_values(["best_eval_loss", "run_id"]).head(20).reset_index(drop=True)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--selected", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "studio.duckdb")
        store.cursor().execute("SET memory_limit = '2GB'")
        t0 = time.perf_counter()
        ids = seed_bulk(store, args.runs, args.steps)
        rows = store.scalar("SELECT count(*) FROM metrics")
        print(
            f"workspace: {args.runs} runs x {args.steps} steps x 3 metrics = {rows:,} rows, "
            f"generated in {time.perf_counter() - t0:.1f} s"
        )
        picked = ids[:: max(1, len(ids) // args.selected)][: args.selected]
        ws = Workspace(Path(tmp) / "workspace")
        jsonl_bytes = write_metrics_jsonl(store, ws, picked)

        fast_lb, lb = timed(lambda: studio_leaderboard(store), args.repeat)
        slow_lb, plb = timed(lambda: pandas_leaderboard(store), 1)
        assert list(lb["run_id"]) == list(plb["run_id"]), "leaderboards disagree"
        assert (lb["best_eval_loss"] - plb["best_eval_loss"]).abs().max() < 1e-12
        print(f"leaderboard, run_summary query:   {fast_lb * 1e3:8.1f} ms")
        print(
            f"leaderboard, pandas over all rows: {slow_lb * 1e3:8.1f} ms"
            f"  ({slow_lb / fast_lb:,.0f}x)"
        )

        parts: dict = {}
        studio_curves(store, picked)  # warm each path once (validators, caches, files)
        pandas_curves(store, picked)
        jsonl_curves(ws, picked)
        (fast, payload), (slow, raw_payload), (slow_jsonl, jsonl_payload) = interleaved(
            [
                lambda: studio_curves(store, picked, parts),
                lambda: pandas_curves(store, picked),
                lambda: jsonl_curves(ws, picked),
            ],
            args.repeat,
        )
        same_points(raw_payload, jsonl_payload)
        slow_px, _ = timed(lambda: pandas_px_curves(store, picked), args.repeat)
        print(
            f"curves of {len(picked)} runs, DuckDB buckets + figure: {fast * 1e3:8.1f} ms"
            f"  ({len(payload) / 2**10:,.0f} KiB to the browser; last call: query"
            f" {parts['query'] * 1e3:.0f} ms, figure {parts['figure'] * 1e3:.0f} ms,"
            f" JSON {parts['json'] * 1e3:.0f} ms)"
        )
        print(
            f"curves of {len(picked)} runs, baseline JSONL: pandas.read_json of the runs'"
            f" metrics.jsonl ({jsonl_bytes / 2**20:.0f} MiB) + go.Scatter of every point:"
            f" {slow_jsonl * 1e3:8.1f} ms  ({len(jsonl_payload) / 2**10:,.0f} KiB to the"
            f" browser)"
        )
        print(
            f"curves of {len(picked)} runs, baseline table: metrics table rows -> pandas"
            f" + go.Scatter of every point: {slow * 1e3:8.1f} ms"
            f"  ({len(raw_payload) / 2**10:,.0f} KiB to the browser)"
        )
        print(
            f"curves of {len(picked)} runs, metrics table rows -> pandas + px.line:"
            f" {slow_px * 1e3:8.1f} ms  ({slow_px / fast:.1f}x)"
        )
        print(
            f"peak memory: {rss_gib():.2f} GiB; machine: {os.cpu_count()} cores, load average"
            f" {os.getloadavg()[0]:.1f} (others' work slows both sides)"
        )
        store.close()
    print(
        f"ratio against baseline table (metrics table rows -> pandas + go.Scatter) / studio"
        f" curves: {slow / fast:.1f}x"
    )
    print(
        f"ratio against baseline JSONL (the issue's: pandas loads the runs' raw metrics.jsonl"
        f" + go.Scatter) / studio curves: {slow_jsonl / fast:.1f}x"
    )


if __name__ == "__main__":
    main()
