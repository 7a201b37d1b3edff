"""Charts of the Compare page: overlaid curves with min/max bands, parallel coordinates and a
hyperparameter-vs-metric scatter. Every figure uses the studio template, `color_for(run_id)`,
a title and axis titles with units. Inputs are numpy arrays and small summary frames."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.store.compare import LOWER_IS_BETTER, X_AXES, Curve, ema, label
from studio.components.charts import color_for, figure

LOG_SCALE = {"learning_rate"}


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _studio_template() -> dict:
    """The studio template as the plain dict a validated figure carries in its layout."""
    global _TEMPLATE_JSON
    if _TEMPLATE_JSON is None:
        _TEMPLATE_JSON = go.Figure(layout={"template": "studio"}).to_dict()["layout"]["template"]
    return copy.deepcopy(_TEMPLATE_JSON)


_TEMPLATE_JSON: dict | None = None


def curves_figure(
    curves: dict[str, Curve],
    metric: str,
    x: str = "step",
    *,
    smoothing: float = 0.0,
    band: bool = True,
    names: dict[str, str] | None = None,
) -> go.Figure:
    """Each run's curve (EMA-smoothed when `smoothing` > 0) over a min/max band of its
    buckets, in the run's own colour.

    Built for speed, since it runs on every rerun of the Compare page: traces are plain dicts
    of float32 numpy arrays (7 digits are plenty on a chart and halve what goes to the
    browser), the band is one closed polygon per run (upper edge, then the lower edge
    reversed), all runs are smoothed in one numpy pass, and the figure is created once
    without plotly's per-property validation (about 1 ms a trace). The same dicts pass
    validation unchanged (tests check), so nothing is lost but the time."""
    title = f"{metric} by {x}" + (f" (EMA {smoothing:.2f})" if smoothing else "")
    layout = {
        "template": _studio_template(),
        "title": {"text": title},
        "xaxis": {"title": {"text": X_AXES[x]}},
        "yaxis": {"title": {"text": label(metric)}},
    }
    items = list(curves.items())
    ys = [np.asarray(c.y, dtype=float) for _, c in items]
    if smoothing and items:
        width = max(len(y) for y in ys)
        stacked = np.zeros((len(ys), width))
        for i, y in enumerate(ys):
            stacked[i, : len(y)] = y
        smooth = ema(stacked, smoothing)  # padding sits after each row's end: no effect
        ys = [smooth[i, : len(y)] for i, y in enumerate(ys)]
    traces: list[dict] = []
    for (run_id, c), y in zip(items, ys, strict=True):
        xs = np.asarray(c.x, dtype=np.float32)
        color = color_for(run_id)
        name = (names or {}).get(run_id, run_id)
        if band and len(xs) > 1 and bool(np.any(c.y_max > c.y_min)):
            traces.append(
                {
                    "type": "scatter",
                    "x": np.concatenate([xs, xs[::-1]]),
                    "y": np.concatenate([c.y_max, c.y_min[::-1]]).astype(np.float32),
                    "fill": "toself",
                    "fillcolor": _rgba(color, 0.15),
                    "line": {"width": 0},
                    "hoverinfo": "skip",
                    "showlegend": False,
                    "legendgroup": run_id,
                    "name": f"{name} min/max",
                }
            )
        traces.append(
            {
                "type": "scatter",
                "x": xs,
                "y": y.astype(np.float32),
                "mode": "lines",
                "name": name,
                "legendgroup": run_id,
                "line": {"color": color, "width": 2},
            }
        )
    return go.Figure(data=traces, layout=layout, _validate=False)


def _best(df: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    ranked = df.dropna(subset=[metric])
    return ranked.nsmallest(k, metric) if metric in LOWER_IS_BETTER else ranked.nlargest(k, metric)


def parallel_figure(
    df: pd.DataFrame, hparams: list[str], metric: str, *, best_k: int = 3
) -> go.Figure:
    """One line per run across its hyperparameters and the metric; the metric axis is
    pre-filtered to the `best_k` runs, so they stay coloured and the rest fade."""
    df = df.dropna(subset=[metric])
    dims = []
    for h in hparams:
        values = df[h].astype(float)
        if h in LOG_SCALE:
            dims.append({"label": f"log10 {h}", "values": np.log10(values.to_numpy())})
        else:
            dims.append({"label": h, "values": values.to_numpy()})
    best = _best(df, metric, best_k)[metric]
    metric_dim = {"label": label(metric), "values": df[metric].to_numpy(dtype=float)}
    if len(best) and len(best) < len(df):
        metric_dim["constraintrange"] = [float(best.min()), float(best.max())]
    dims.append(metric_dim)
    fig = figure(
        f"Sweep: hyperparameters against {metric} (best {len(best)} highlighted)",
        "hyperparameter",
        label(metric),
    )
    scale = "Viridis_r" if metric in LOWER_IS_BETTER else "Viridis"
    fig.add_trace(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": df[metric].to_numpy(dtype=float),
                "colorscale": scale,
                "showscale": True,
                "colorbar": {"title": {"text": label(metric)}},
            },
        )
    )
    return fig


def scatter_figure(
    df: pd.DataFrame,
    hparam: str,
    metric: str,
    *,
    best_k: int = 3,
    names: dict[str, str] | None = None,
) -> go.Figure:
    """The metric of each run against one hyperparameter, runs in their colours, the best
    `best_k` as large outlined stars with their names."""
    df = df.dropna(subset=[metric, hparam])
    best = _best(df, metric, best_k)
    fig = figure(f"{metric} against {hparam}", label(hparam), label(metric))
    labels = [(names or {}).get(r, r) for r in df["run_id"]]
    fig.add_trace(
        go.Scatter(
            x=df[hparam].to_numpy(dtype=float),
            y=df[metric].to_numpy(dtype=float),
            mode="markers",
            name="runs",
            text=labels,
            hovertemplate="%{text}<br>%{x}<br>%{y:.4f}<extra></extra>",
            marker={"color": [color_for(r) for r in df["run_id"]], "size": 9, "opacity": 0.6},
        )
    )
    if len(best):
        fig.add_trace(
            go.Scatter(
                x=best[hparam].to_numpy(dtype=float),
                y=best[metric].to_numpy(dtype=float),
                mode="markers+text",
                name=f"best {len(best)}",
                text=[(names or {}).get(r, r) for r in best["run_id"]],
                textposition="top center",
                marker={
                    "color": [color_for(r) for r in best["run_id"]],
                    "size": 16,
                    "symbol": "star",
                    "line": {"color": "black", "width": 1.5},
                },
            )
        )
    if hparam in LOG_SCALE and (df[hparam] > 0).all():
        fig.update_xaxes(type="log")
    return fig


def short_name(run_id: str) -> str:
    """The distinctive tail of a job id (timestamp-kind-hash -> kind-hash) for legends."""
    parts = run_id.split("-")
    return "-".join(parts[-2:]) if len(parts) > 2 else run_id


def summary_units(value: float | None, digits: int = 4) -> str:
    """A figure for st.metric: '—' when missing."""
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}g}"
    )
