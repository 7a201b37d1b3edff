"""One plotly look for every chart, and a colour per run that stays the same everywhere."""

from __future__ import annotations

import hashlib

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = [
    "#3b6fd8",
    "#e4572e",
    "#17a398",
    "#f3a712",
    "#8e44ad",
    "#29335c",
    "#a8c256",
    "#db2763",
    "#4cb5f5",
    "#6c5b7b",
    "#c06c84",
    "#355c7d",
]

TEMPLATE = go.layout.Template(
    layout=go.Layout(
        font={"family": "Inter, system-ui, sans-serif", "size": 13},
        colorway=PALETTE,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.2},
        plot_bgcolor="white",
        xaxis={"gridcolor": "#eee", "zeroline": False},
        yaxis={"gridcolor": "#eee", "zeroline": False},
    )
)
pio.templates["studio"] = TEMPLATE


def color_for(key: str) -> str:
    """A stable colour from an id, so a run keeps its colour on every chart.

    >>> color_for("run-1") == color_for("run-1")
    True
    """
    digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    return PALETTE[digest % len(PALETTE)]


def figure(title: str, x_title: str, y_title: str) -> go.Figure:
    """An empty figure in the studio template with a title and axis labels (with units)."""
    fig = go.Figure()
    fig.update_layout(template="studio", title=title, xaxis_title=x_title, yaxis_title=y_title)
    return fig
