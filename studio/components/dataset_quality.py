"""The Datasets page's Quality tab: the last generation's quality report, examples per topic,
what the filters removed and why, and the human QC sample waiting for review."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.store import Store
from backend.store import datasets as ds
from backend.store import synth as sstore


def quality_tab(
    store: Store, info: dict, latest: dict | None, rejects: list[dict], qc_pending: list[dict]
) -> None:
    """The Quality tab of dataset `info` (its newest version `latest`)."""
    runs = sstore.runs(store, info["id"])
    if runs:
        rep = runs[0]["report"]
        q = st.columns(5)
        q[0].metric("Kept", rep.get("kept", 0))
        q[1].metric("Filtered", rep.get("removed", 0))
        q[2].metric(
            "Distinct words", rep.get("distinct_1"), help="Distinct-1: unique words / words."
        )
        q[3].metric(
            "Distinct word pairs",
            rep.get("distinct_2"),
            help="Distinct-2: unique bigrams / bigrams.",
        )
        q[4].metric(
            "Spread of meanings",
            rep.get("embedding_spread"),
            help="Embedding spread: mean distance between the examples' sentence embeddings.",
        )
        st.text(
            f"Last generation {runs[0]['job_id']}: near duplicates by "
            f"{rep.get('near_dup_method')} at similarity ≥ "
            f"{rep.get('near_dup_threshold')}; removed by reason "
            f"{rep.get('removed_by_reason') or '{}'}."
        )
    else:
        st.caption(
            "Quality figures appear after a generation; topic counts below cover the "
            "current version."
        )
    if latest:
        items = ds.version_examples(store, latest["id"])
        counts = pd.Series([e["topic"] or "(none)" for e in items]).value_counts()
        st.subheader("Examples per topic (newest version)")
        st.bar_chart(counts.rename("examples"), x_label="topic", y_label="examples")
    removed = [r for r in rejects if r["stage"] == "quality"]
    st.subheader("Removed by filters")
    if removed:
        st.dataframe(
            pd.DataFrame(removed)[["reason", "topic", "item", "raw"]],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("Nothing removed yet.")
    st.subheader("Human QC sample")
    if qc_pending:
        st.caption(
            f"{len(qc_pending)} examples of the newest version await review on the Review page."
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "topic": r["topic"],
                        "example": r["example_id"][:12],
                        "question": r["messages"][-2]["content"][:120],
                    }
                    for r in qc_pending
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No examples waiting for QC: each generation marks a 5-10% sample.")
