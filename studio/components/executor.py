"""Where a run trains, on the run form: the executor (local, accelerate, ray), the number of
processes, FSDP, and whether this machine can start it.

The widgets use the form's own keys (`training_<prefix>_<field>`), so the page reads their
values with the other run fields. The Ray cluster's address comes from the settings
(FTSTUDIO_RAY_ADDRESS), never from a form; the training action refuses an executor whose
package is missing or a ray run without an address, so the notes here are a courtesy.

    executor.fields("new")  # inside the run form, where the Compute group goes
"""

from __future__ import annotations

import streamlit as st

from backend.train.config import help_text, label, missing_executor_package
from studio import resources

CHOICES = ["local", "accelerate", "ray"]


def fields(prefix: str) -> None:
    """The Compute group of a run form."""

    def key(name: str) -> str:
        return f"training_{prefix}_{name}"

    st.subheader("Compute")
    st.selectbox(label("executor"), CHOICES, key=key("executor"), help=help_text("executor"))
    st.number_input(
        label("processes"),
        min_value=1,
        max_value=64,
        value=1,
        step=1,
        key=key("processes"),
        help=help_text("processes") + " accelerate only; 1 for local and ray.",
    )
    st.checkbox(label("fsdp"), False, key=key("fsdp"), help=help_text("fsdp"))
    notes = []
    for name in CHOICES[1:]:
        problem = missing_executor_package(name)
        if problem:
            notes.append(problem)
    address = resources.settings().ray_address
    notes.append(
        f"ray runs go to the cluster at {address}."
        if address
        else "ray needs a cluster address: an admin sets FTSTUDIO_RAY_ADDRESS."
    )
    st.caption(" ".join(notes))
