"""A re-run beside the run it repeats: the read side of backend.train.actions.rerun_run,
for `ftstudio runs rerun` and the Training page.

    report = rerun_report(store, new_run_id)  # {"rerun_of", "max_loss_diff", ...} or None
"""

from __future__ import annotations

from typing import Any

from backend.store import Store
from backend.store.lineage import loss_curve, rerun_of
from backend.train.lineage import RERUN_TOLERANCE, curve_diff


def rerun_report(store: Store, run_id: str) -> dict[str, Any] | None:
    """How a re-run's per-step training loss compares with its original's; None when
    `run_id` is not a re-run. `within_tolerance` is None until both curves have points."""
    row = rerun_of(store, run_id)
    if row is None:
        return None
    diff = curve_diff(loss_curve(store, row["original_id"]), loss_curve(store, run_id))
    worst = diff["max_loss_diff"]
    return {
        "run_id": run_id,
        "rerun_of": row["original_id"],
        "warnings": row["warnings"],
        **diff,
        "tolerance": RERUN_TOLERANCE,
        "within_tolerance": None if worst is None else worst <= RERUN_TOLERANCE,
    }
