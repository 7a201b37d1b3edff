"""Compare queries: DuckDB downsampling (raw rows, and the buckets kept at ingest) against numpy
on known data; run_summary and metric_buckets kept current across ingests (and equal to a full
rebuild and to the migration's backfill); leaderboard, table filters, config diff, side-by-side
generations and EMA."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from backend.ingest.jobs import ingest_all
from backend.jobs.status import JobState, read_status, write_status
from backend.store import compare, metric_buckets, run_summary
from backend.store.migrations import HERE as MIGRATIONS
from tests.support.seed_runs import run_id_for, seed_runs, train_spec, write_run


def _metric_rows(ws, run_id, name):
    rows = [json.loads(line) for line in (ws.job_dir(run_id) / "metrics.jsonl").open()]
    return [r for r in rows if r["name"] == name], rows


def _expected(x, v, lo, hi, k):
    """Equal-width buckets as numpy computes them: mean x, mean, min, max, count."""
    b = np.minimum(k - 1, np.floor((x - lo) * k / (hi - lo))).astype(int)
    keep = np.unique(b)
    n = np.bincount(b)[keep]
    mean_x = np.bincount(b, weights=x)[keep] / n
    mean_v = np.bincount(b, weights=v)[keep] / n
    mins = np.array([v[b == i].min() for i in keep])
    maxs = np.array([v[b == i].max() for i in keep])
    return mean_x, mean_v, mins, maxs, n


def _expected_fixed(x, v, width):
    """Buckets [i * width, (i + 1) * width) of steps, as numpy computes them."""
    b = (x // width).astype(int)
    keep = np.unique(b)
    n = np.bincount(b)[keep]
    return (
        np.bincount(b, weights=x)[keep] / n,
        np.bincount(b, weights=v)[keep] / n,
        np.array([v[b == i].min() for i in keep]),
        np.array([v[b == i].max() for i in keep]),
        n,
    )


# (5000, 1000) and (103, 7) read stored buckets (widths 8 and 64); (40, 1000) the raw rows.
@pytest.mark.parametrize(("steps", "k", "width"), [(5000, 1000, 8), (103, 7, 64), (40, 1000, None)])
def test_buckets_match_numpy(ws, store, steps, k, width):
    run_id = run_id_for(0)
    write_run(ws, run_id, train_spec(0), steps=steps, noise_seed=3)
    ingest_all(store, ws)
    loss, rows = _metric_rows(ws, run_id, "loss")
    x = np.array([r["step"] for r in loss], dtype=float)
    v = np.array([r["value"] for r in loss])
    hi = max(r["step"] for r in rows) + 1.0
    assert metric_buckets.width_for(hi, k) == width

    curve = compare.curves(store, [run_id], "loss", max_points=k)[run_id]

    assert len(curve.x) <= k
    assert curve.n.sum() == steps
    if width:
        ex, ev, emin, emax, en = _expected_fixed(x, v, width)
        assert len(curve.x) == math.ceil(hi / width) > k / 8
    else:
        ex, ev, emin, emax, en = _expected(x, v, 0.0, hi, k)
    np.testing.assert_array_equal(curve.n, en)
    np.testing.assert_allclose(curve.x, ex, rtol=1e-12)
    np.testing.assert_allclose(curve.y, ev, rtol=1e-12)
    np.testing.assert_array_equal(curve.y_min, emin)
    np.testing.assert_array_equal(curve.y_max, emax)
    assert isinstance(curve.y, np.ndarray) and curve.y.dtype == np.float64
    assert bool(np.all(curve.y_min <= curve.y)) and bool(np.all(curve.y <= curve.y_max))
    assert (curve.y_max > curve.y_min).any() == (width is not None)


def _buckets(store):
    """Every stored bucket under its run, metric and width (series ids are not compared:
    a rebuild renumbers them)."""
    return store.df(
        "SELECT s.job_id, s.name, s.width, b.bucket, b.n, b.sum_x, b.sum_y, b.min_y, b.max_y"
        " FROM metric_buckets b JOIN metric_series s USING (series)"
        " ORDER BY job_id, name, width, bucket"
    )


def test_stored_buckets_at_every_width_match_numpy_and_a_rebuild(ws, store):
    """Ingested in five chunks (one torn line), the buckets equal numpy over all the rows
    at every width, a rebuild from the metrics table, and the migration's backfill."""
    run_id = run_id_for(0)
    write_run(ws, run_id, train_spec(0), steps=700, noise_seed=5)
    path = ws.job_dir(run_id) / "metrics.jsonl"
    data = path.read_bytes()
    for cut in (len(data) // 5, len(data) // 3 + 11, len(data) // 2, 4 * len(data) // 5):
        path.write_bytes(data[:cut])
        ingest_all(store, ws)
    path.write_bytes(data)
    ingest_all(store, ws)
    assert (
        store.scalar(
            "SELECT count(*) FROM ingest_offsets WHERE file = 'metrics.jsonl' AND lines = ?",
            [data.count(b"\n")],
        )
        == 1
    )
    incremental = _buckets(store)
    _, rows = _metric_rows(ws, run_id, "loss")
    for name in ("loss", "eval_loss", "tokens_seen"):
        pts = [r for r in rows if r["name"] == name]
        x = np.array([r["step"] for r in pts], dtype=float)
        v = np.array([r["value"] for r in pts])
        for width in metric_buckets.WIDTHS:
            got = incremental[(incremental["name"] == name) & (incremental["width"] == width)]
            ex, ev, emin, emax, en = _expected_fixed(x, v, width)
            np.testing.assert_array_equal(got["bucket"], np.unique(x // width))
            np.testing.assert_array_equal(got["n"], en)
            np.testing.assert_allclose(got["sum_x"] / got["n"], ex, rtol=1e-12)
            np.testing.assert_allclose(got["sum_y"] / got["n"], ev, rtol=1e-12)
            np.testing.assert_array_equal(got["min_y"], emin)
            np.testing.assert_array_equal(got["max_y"], emax)

    def same(other):
        assert len(other) == len(incremental)
        exact = ["job_id", "name", "width", "bucket", "n", "min_y", "max_y"]
        assert other[exact].equals(incremental[exact])
        for col in ("sum_x", "sum_y"):  # summed in another order: equal to rounding
            np.testing.assert_allclose(other[col], incremental[col], rtol=1e-12)

    with store.transaction() as cur:
        metric_buckets.rebuild(cur)
    same(_buckets(store))
    series = incremental[["name", "width"]].drop_duplicates()
    assert store.scalar("SELECT count(*) FROM metric_series") == len(series)
    # a database from before series ids: 0011's backfill of the old layout, then 0013
    with store.transaction() as cur:
        cur.execute("DROP TABLE metric_buckets")
        cur.execute("DROP TABLE metric_series")
        cur.execute((MIGRATIONS / "0011_metric_buckets.sql").read_text())
        cur.execute((MIGRATIONS / "0013_metric_series.sql").read_text())
    same(_buckets(store))
    assert compare.curves(store, [run_id], "loss", max_points=100)[run_id].n.sum() == 700


def test_resumed_long_run_stays_on_raw_rows(ws, store):
    """Steps 11..20 reported again by attempt 2: the buckets count both values, so by step
    the run is bucketed from its raw rows, latest value of each step."""
    run_id = run_id_for(0)
    write_run(ws, run_id, train_spec(0), steps=20)
    status = read_status(ws.job_dir(run_id))
    status.attempt = 2
    write_status(ws.job_dir(run_id), status)
    with open(ws.job_dir(run_id) / "metrics.jsonl", "a") as fh:
        for step in range(11, 21):
            fh.write(
                json.dumps({"step": step, "name": "loss", "value": 100.0 + step, "t": 2e9 + step})
                + "\n"
            )
    ingest_all(store, ws)
    assert metric_buckets.width_for(21.0, 5) == 8  # a fresh run this long would use them
    assert (
        store.scalar(
            "SELECT sum(n) FROM metric_buckets JOIN metric_series USING (series)"
            " WHERE job_id = ? AND name = 'loss' AND width = 8",
            [run_id],
        )
        == 30
    )
    loss, _ = _metric_rows(ws, run_id, "loss")
    latest = {r["step"]: r["value"] for r in loss}  # later lines win
    x = np.array(sorted(latest), dtype=float)
    v = np.array([latest[s] for s in sorted(latest)])

    curve = compare.curves(store, [run_id], "loss", max_points=5)[run_id]

    ex, ev, emin, emax, en = _expected(x, v, 0.0, 21.0, 5)
    np.testing.assert_array_equal(curve.n, en)
    np.testing.assert_allclose(curve.y, ev, rtol=1e-12)
    np.testing.assert_array_equal(curve.y_max, emax)
    assert curve.y_max[-1] == 120.0


def test_wall_and_token_axes_follow_the_runs_clock_and_tokens(ws, store):
    ids = seed_runs(ws, 2, steps=300, store=store)
    wall = compare.curves(store, ids, "eval_loss", x="wall", max_points=10)
    tokens = compare.curves(store, ids, "loss", x="tokens", max_points=1000)
    for run_id in ids:
        loss, rows = _metric_rows(ws, run_id, "loss")
        first_t = min(r["t"] for r in rows)
        evals, _ = _metric_rows(ws, run_id, "eval_loss")
        assert len(wall[run_id].x) <= 10 and wall[run_id].n.sum() == len(evals)
        assert wall[run_id].x[0] == pytest.approx(
            np.mean([r["t"] - first_t for r in evals[: wall[run_id].n[0]]])
        )
        seen = [r["value"] for r in rows if r["name"] == "tokens_seen"]
        np.testing.assert_allclose(tokens[run_id].x, seen)  # one point per bucket here
        assert np.all(np.diff(tokens[run_id].x) > 0)


def test_resumed_run_counts_each_step_once_with_its_latest_value(ws, store):
    run_id = run_id_for(0)
    write_run(ws, run_id, train_spec(0), steps=20)
    status = read_status(ws.job_dir(run_id))
    status.attempt = 2
    write_status(ws.job_dir(run_id), status)
    with open(ws.job_dir(run_id) / "metrics.jsonl", "a") as fh:  # steps 11..20 again, later
        for step in range(11, 21):
            fh.write(
                json.dumps({"step": step, "name": "loss", "value": 100.0 + step, "t": 2e9 + step})
                + "\n"
            )
    ingest_all(store, ws)
    curve = compare.curves(store, [run_id], "loss")[run_id]
    assert curve.n.sum() == 20
    assert curve.y[-1] == 120.0
    row = store.rows("SELECT final_train_loss FROM run_summary WHERE run_id = ?", [run_id])
    assert row[0]["final_train_loss"] == 120.0


def _summary(store):
    return store.df("SELECT * EXCLUDE (updated) FROM run_summary ORDER BY run_id")


def test_summary_kept_current_across_two_ingests(ws, store):
    run_id = run_id_for(0)
    write_run(ws, run_id, train_spec(0), steps=200, noise_seed=1)
    path = ws.job_dir(run_id) / "metrics.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    path.write_bytes(b"".join(lines[:half]) + lines[half][:7])  # and a torn line
    status = read_status(ws.job_dir(run_id))
    status.state, status.finished = JobState.running, None
    write_status(ws.job_dir(run_id), status)
    ingest_all(store, ws)
    first = store.rows("SELECT * FROM run_summary WHERE run_id = ?", [run_id])[0]
    assert first["state"] == "running" and first["group_id"] is None
    assert first["learning_rate"] == 1e-5 and first["lora_r"] == 4
    assert first["last_step"] < 200

    path.write_bytes(b"".join(lines))
    status.state = JobState.succeeded
    write_status(ws.job_dir(run_id), status)
    ingest_all(store, ws)
    row = store.rows(
        f"SELECT {run_summary.SELECT_COLUMNS} FROM run_summary s WHERE run_id = ?", [run_id]
    )[0]

    rows = [json.loads(line) for line in lines]
    evals = [r for r in rows if r["name"] == "eval_loss"]
    best = min(evals, key=lambda r: r["value"])
    losses = [r for r in rows if r["name"] == "loss"]
    tps = [r["value"] for r in rows if r["name"] == "tokens_per_s"]
    assert row["state"] == "succeeded"
    assert row["best_eval_loss"] == best["value"] and row["best_eval_step"] == best["step"]
    assert row["final_eval_loss"] == evals[-1]["value"] and row["final_eval_step"] == 200
    assert row["final_train_loss"] == losses[-1]["value"]
    assert row["duration_s"] == pytest.approx(rows[-1]["t"] - rows[0]["t"])
    assert row["tokens_per_s"] == pytest.approx(np.mean(tps))
    assert row["tokens_seen"] == 200 * 4 * 200
    assert best["step"] < 200, "the seeded eval curve turns up: best is not final"

    incremental = _summary(store)
    with store.transaction() as cur:
        run_summary.rebuild(cur)
    assert incremental.equals(_summary(store))


def test_migration_backfill_matches_incremental(ws, store):
    seed_runs(ws, 3, steps=50, store=store)
    before = _summary(store)
    sql = (MIGRATIONS / "0006_run_summary.sql").read_text()
    backfill = sql[sql.index(");", sql.index("CREATE TABLE run_summary")) + 2 :]
    with store.transaction() as cur:
        cur.execute("DELETE FROM run_summary")
        cur.execute(backfill)
    assert len(before) == 3 and before.equals(_summary(store))


def test_other_job_kinds_get_no_summary(ws, store):
    from backend.jobs import queue

    job_id = queue.submit(ws, "sleep", {"steps": 1})
    (ws.job_dir(job_id) / "metrics.jsonl").write_text(
        json.dumps({"step": 1, "name": "loss", "value": 1.0, "t": 1.0}) + "\n"
    )
    ingest_all(store, ws)
    assert store.scalar("SELECT count(*) FROM metrics") == 1
    assert store.scalar("SELECT count(*) FROM run_summary") == 0


def test_table_leaderboard_and_groups(ws, store):
    ids = seed_runs(ws, 6, steps=60, store=store)
    seed_runs(ws, 2, steps=60, store=store, group_id="sweep-b", prefix="b")
    table = compare.runs_table(store)
    assert len(table) == 8
    losses = table["best_eval_loss"].tolist()
    assert losses == sorted(losses)
    assert {
        "learning_rate",
        "lora_r",
        "dataset_version",
        "duration_s",
        "tokens_per_s",
        "state",
        "group_id",
        "best_eval_step",
        "final_train_loss",
    } <= set(table.columns)
    assert len(compare.runs_table(store, group="sweep-b")) == 2
    assert compare.runs_table(store, search=ids[3][-7:])["run_id"].tolist() == [ids[3]]
    grouped = compare.runs_table(store, by_group=True)
    assert grouped["group_id"].tolist() == sorted(grouped["group_id"].tolist())
    with pytest.raises(compare.CompareError, match="sort"):
        compare.runs_table(store, sort="value; DROP TABLE metrics")

    board = compare.leaderboard(store, limit=3)
    assert board["rank"].tolist() == [1, 2, 3]
    assert board["run_id"].tolist() == table["run_id"].tolist()[:3]
    groups = compare.sweep_groups(store)
    assert set(groups["group_id"]) == {"sweep-demo", "sweep-b"}
    assert set(compare.varying_hparams(table)) >= {"learning_rate", "seed"}


def test_config_diff_and_side_by_side(ws, store):
    ids = seed_runs(ws, 2, steps=20, store=store)
    diff = compare.config_diff(store, ids[0], ids[1])
    assert set(diff["field"]) == {"learning_rate", "seed"}
    assert diff.set_index("field").loc["learning_rate", ids[0]] == "1e-05"
    full = compare.config_diff(store, ids[0], ids[1], all_fields=True)
    assert len(full) > len(diff) and (~full["differs"]).any()
    with pytest.raises(compare.CompareError):
        compare.config_diff(store, ids[0], "nope")

    side = compare.side_by_side(store, ids)
    assert len(side) == 3
    assert all(set(p["outputs"]) == set(ids) for p in side)
    assert all(o.startswith(f"[{r[-7:]}]") for p in side for r, o in p["outputs"].items())


def test_ema_matches_a_plain_loop():
    y = np.random.default_rng(0).normal(size=2500).cumsum()
    for w in (0.0, 0.01, 0.5, 0.9, 0.99):
        out, last = [], 0.0
        for i, v in enumerate(y, 1):
            last = last * w + (1 - w) * v
            out.append(last / (1 - w**i) if w else v)
        np.testing.assert_allclose(compare.ema(y, w), out, rtol=1e-9, atol=1e-9)
    with pytest.raises(compare.CompareError):
        compare.ema(y, 1.0)
    assert math.isclose(compare.ema(np.array([3.0]), 0.9)[0], 3.0)


def test_ema_smooths_each_row_of_a_matrix_as_its_own_series():
    y = np.random.default_rng(1).normal(size=(4, 300)).cumsum(axis=1)
    y[2, 200:] = 0.0  # a shorter series padded at its end
    for w in (0.3, 0.9, 0.995):
        rows = compare.ema(y, w)
        for i in range(4):
            np.testing.assert_allclose(rows[i], compare.ema(y[i], w), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rows[2, :200], compare.ema(y[2, :200], w), rtol=1e-12)


def test_curves_figure_is_what_validation_would_build(ws, store):
    """The figure skips plotly's per-property validation for speed: validating its dict
    must change nothing, and each run gets its band polygon and its smoothed line."""
    import plotly.graph_objects as go

    from studio.components.compare_charts import curves_figure

    ids = seed_runs(ws, 3, steps=300, store=store)
    curves = compare.curves(store, ids, "loss", max_points=40)
    fig = curves_figure(curves, "loss", "step", smoothing=0.6, names={ids[0]: "first"})
    d = fig.to_dict()
    assert go.Figure(d).to_dict() == d
    assert d["layout"]["title"]["text"] == "loss by step (EMA 0.60)"
    assert d["layout"]["yaxis"]["title"]["text"] == "loss (nats/token)"
    assert d["layout"]["template"]["layout"]["font"]["family"].startswith("Inter")
    assert len(fig.data) == 2 * len(ids)
    for (run_id, c), band, line in zip(curves.items(), fig.data[::2], fig.data[1::2], strict=True):
        assert band.fill == "toself" and band.showlegend is False
        np.testing.assert_allclose(band.x, np.r_[c.x, c.x[::-1]], rtol=1e-6)
        np.testing.assert_allclose(band.y, np.r_[c.y_max, c.y_min[::-1]], rtol=1e-6)
        assert line.mode == "lines" and line.legendgroup == run_id
        np.testing.assert_allclose(line.y, compare.ema(c.y, 0.6), rtol=1e-6)
    assert fig.data[1].name == "first"
    raw = curves_figure(curves, "loss", band=False)
    assert len(raw.data) == len(ids) and raw.layout.title.text == "loss by step"
    np.testing.assert_allclose(raw.data[0].y, curves[ids[0]].y, rtol=1e-6)


def _kind_runs(ws, store):
    """Runs of three kinds: SFT on support v1 and v2 (two versions of one dataset; v2 as a
    sweep) and DPO on a preference set version, whose losses are the lowest of all.
    Returns the ids by kind."""
    import time

    from backend.store.datasets import add_version, create_dataset
    from backend.store.prefs import add_preference_version

    create_dataset(store, "support")
    ex = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    v1 = add_version(store, "support", ex)
    v2 = add_version(store, "support", ex * 2)
    pv = add_preference_version(store, "prefs-a", [], "0" * 64)
    now = time.time()
    plan = [  # (kind, spec overrides, learning-rate index: 2 is the best, group)
        ("SFT on support v1", {"dataset_version_id": v1["id"]}, [2, 3], None),
        ("SFT on support v2", {"dataset_version_id": v2["id"]}, [0, 4, 1], "sweep-v2"),
        (
            "DPO on prefs-a v1",
            {"method": "dpo", "dataset": "prefs-a", "dataset_version_id": pv["id"], "lora_r": 2},
            [2, 2],
            None,
        ),
    ]
    ids: dict[str, list[str]] = {}
    n = 0
    for kind, overrides, lrs, group in plan:
        for lr in lrs:
            spec = train_spec(lr, max_steps=30, **{"dataset": "support", **overrides})
            spec["seed"] = n
            run_id = run_id_for(n, prefix="kind")
            write_run(ws, run_id, spec, steps=30, group_id=group, start=now - 3600 + n * 60)
            ids.setdefault(kind, []).append(run_id)
            n += 1
    assert not ingest_all(store, ws).errors
    return ids


def test_kinds_keep_methods_and_versions_apart(ws, store):
    ids = _kind_runs(ws, store)
    kinds = compare.kinds(store)
    # the newest kind first, each with its method, dataset, version number and run count
    assert [(k["kind"], k["method"], k["dataset_version"], k["runs"]) for k in kinds] == [
        ("DPO on prefs-a v1", "DPO", 1, 2),
        ("SFT on support v2", "SFT", 2, 3),
        ("SFT on support v1", "SFT", 1, 2),
    ]
    table = compare.runs_table(store)
    assert set(table["kind"]) == set(ids)
    # sorted by a figure without a kind: each kind's runs stay together, sorted within it
    runs_of = [k for k, _ in itertools.groupby(table["kind"])]
    assert sorted(runs_of) == runs_of and len(runs_of) == 3
    for _, part in table.groupby("kind"):
        assert part["best_eval_loss"].is_monotonic_increasing
    only = compare.runs_table(store, kind="SFT on support v2")
    assert set(only["run_id"]) == set(ids["SFT on support v2"])

    # the leaderboard ranks within a kind: a rank 1 per kind, never one shared ranking
    board = compare.leaderboard(store, limit=2)
    assert board.groupby("kind")["rank"].apply(list).to_dict() == {
        "DPO on prefs-a v1": [1, 2],
        "SFT on support v1": [1, 2],
        "SFT on support v2": [1, 2],
    }
    lowest = table.loc[table["best_eval_loss"].idxmin(), "kind"]
    assert lowest == "DPO on prefs-a v1"  # which a shared ranking would have put above all
    for kind, part in board.groupby("kind"):
        expected = table[table["kind"] == kind].nsmallest(2, "best_eval_loss")["run_id"]
        assert part["run_id"].tolist() == expected.tolist()
    one = compare.leaderboard(store, kind="SFT on support v2", limit=10)
    assert one["rank"].tolist() == [1, 2, 3] and set(one["kind"]) == {"SFT on support v2"}
    assert compare.leaderboard(store, group="sweep-v2", limit=10)["run_id"].tolist() == (
        one["run_id"].tolist()
    )

    # "best" says best at what
    assert compare.best_at("SFT on support v2") == "lowest SFT eval loss on support v2"
    assert compare.best_at("DPO on prefs-a v1", "final_train_loss", capital=True) == (
        "Lowest DPO final train loss on prefs-a v1"
    )
    assert compare.best_at("SFT on support v1", "tokens_per_s").startswith("highest SFT")
    with pytest.raises(compare.CompareError, match="metric"):
        compare.best_at("SFT on support v1", "value; DROP TABLE runs")

    # sweeps are one kind each
    sweeps = compare.sweep_groups(store)
    assert sweeps[["group_id", "kind", "runs"]].values.tolist() == [
        ["sweep-v2", "SFT on support v2", 3]
    ]
    assert compare.sweep_groups(store, kind="SFT on support v1").empty
