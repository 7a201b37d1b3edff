"""The Datasets page's version diff: what changed from an earlier version to the chosen one
(added, removed, edited, with counts and a sample), worked out by the store in SQL."""

from __future__ import annotations

import streamlit as st

from backend.store.dataset_diff import diff_versions
from studio import resources

DIFF_KEY = "datasets_diff_from"
SAMPLE = 5


def _first(messages: list[dict] | None) -> str:
    if not messages:
        return ""
    return "\n".join(f"{m['role']}: {m['content']}"[:300] for m in messages)


def diff_section(versions: list[dict], version: dict) -> None:
    """Compare `version` with another version of its dataset the user picks."""
    others = [v for v in versions if v["id"] != version["id"]]
    if not others:
        return
    st.subheader(f"What changed in v{version['number']}")
    numbers = [v["number"] for v in reversed(others)]
    default = version["number"] - 1 if version["number"] - 1 in numbers else numbers[0]
    picked = st.selectbox(
        "Compared with",
        numbers,
        index=numbers.index(default),
        format_func=lambda n: f"v{n}",
        key=DIFF_KEY,
        help="Added, removed and edited examples from that version to this one.",
    )
    old = next(v for v in others if v["number"] == picked)
    d = diff_versions(resources.store(), old, version, sample=SAMPLE)
    cols = st.columns(4)
    for col, kind in zip(cols, ("added", "removed", "edited", "unchanged"), strict=True):
        col.metric(kind.capitalize(), d["counts"][kind])
    for kind in ("added", "removed"):
        if d[kind]:
            with st.expander(f"{kind.capitalize()} (first {len(d[kind])})"):
                for row in d[kind]:
                    st.text(_first(row["messages"]))
    if d["edited"]:
        with st.expander(f"Edited (first {len(d['edited'])})"):
            for row in d["edited"]:
                st.text("before:\n" + _first(row["old"]))
                st.text("after:\n" + _first(row["new"]))
