"""The run form's memory estimate: what the run will need against the device's memory, by part,
and (when it will not fit) the settings that would. From backend/train/estimate.py; a run that
does not fit is refused by the training action anyway, with the same words.

    estimate.panel(form_values("new", names))   # inside the run form
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.security import allowed_roots, confine_any
from backend.train.estimate import human
from backend.train.fit import advice, for_run
from studio import auth

ESTIMATE_BUTTON = "training_estimate_memory"


def panel(fields: dict[str, Any]) -> None:
    """An "Estimate memory" button in the form and the estimate of the fields it holds."""
    st.form_submit_button("Estimate memory", key=ESTIMATE_BUTTON)
    if not fields.get("base_model"):
        return
    ctx = auth.ctx()
    try:  # the folder the action will train on (a typed name is confined the same way)
        roots = allowed_roots(ctx.settings, ctx.ws, models=True)
        model = confine_any(str(fields["base_model"]), roots)
        found = for_run({**fields, "base_model": str(model)})
    except (ValueError, OSError) as exc:
        st.caption(f"No memory estimate: {exc}")
        return
    if found is None:
        st.caption("No memory estimate: the base model is not a local folder with a config.json.")
        return
    est, shape, plan = found
    parts = ", ".join(f"{k} {human(v)}" for k, v in est.parts.items() if v)
    ckpt = (
        f"activations {human(est.activations_without_checkpointing)} without gradient "
        f"checkpointing, {human(est.activations_with_checkpointing)} with"
    )
    line = (
        f"Memory estimate on {est.device.upper()}: about {human(est.needed)} of "
        f"{human(est.capacity or 0)} ({parts}; {ckpt})."
    )
    if est.fits:
        st.caption(line)
    else:
        st.warning(f"This run will not fit: {advice(est, shape, plan)}", icon=":material/memory:")
