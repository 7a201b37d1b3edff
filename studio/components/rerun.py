"""The Training page's Re-run panel: train a finished run again from its record alone, and,
for a re-run, how its per-step loss compares with the original's (largest difference, package
versions that differed, both curves)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.store import Store
from backend.store.lineage import loss_curve, reruns_of
from backend.train import actions
from backend.train.reruns import rerun_report
from studio import auth


def rerun_panel(store: Store, run: dict) -> None:
    """A Re-run button for a finished run; the comparison when `run` is itself a re-run."""
    run_id = run["id"]
    st.subheader("Reproducibility")
    report = rerun_report(store, run_id)
    if report is not None:
        worst = report["max_loss_diff"]
        c = st.columns(3)
        c[0].metric("Re-run of", report["rerun_of"])
        c[1].metric("Largest per-step loss difference", "–" if worst is None else f"{worst:.2g}")
        c[2].metric("Steps compared", report["steps_compared"])
        if report["within_tolerance"] is False:
            st.warning(f"The curves differ by more than {report['tolerance']:g} per step.")
        for w in report["warnings"]:
            st.warning(f"Package versions differed at submission: {w}")
        both = pd.DataFrame(
            {
                "original": pd.Series(loss_curve(store, report["rerun_of"])),
                "re-run": pd.Series(loss_curve(store, run_id)),
            }
        )
        if not both.empty:
            st.line_chart(both, x_label="step", y_label="training loss")
    earlier = reruns_of(store, run_id)
    if earlier:
        st.caption("Re-runs of this run: " + ", ".join(earlier))
    if st.button(
        "Re-run",
        key="training_rerun",
        disabled=run["state"] != "succeeded",
        help="Train again from this run's record: same config and seed, the same dataset "
        "version and base model (both checked by content hash); package versions that "
        "differ are named.",
    ):
        try:
            new_id, warnings = actions.rerun_run(auth.ctx(), run_id)
        except AlreadyDone as exc:
            st.info(str(exc))
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.success(f"Re-run {new_id} queued; pick it in the Run list to compare.")
            for w in warnings:
                st.warning(f"Package versions differ: {w}")
