"""The "Export and DPO" tab's forms on the Preferences page: importing a preference file
(streamed up to the import limit; invalid rows skipped only when asked, and listed beside the
version), the rows an import did not store, and the DPO run form, whose fields carry the
user's words with the library's term beside them, and whose errors name only fields it shows.
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone, Ctx
from backend.prefs import actions, launch
from backend.prefs.export import FORMATS
from backend.security import allowed_roots, relative_to_roots
from backend.train.config import help_text
from studio import resources, state
from studio.components.safe_text import md_escape

# the DPO form's fields: the user's words, the library's term beside it (help from the config)
DPO_LABELS = {
    "base_model": "Base model folder (base_model)",
    "max_steps": "Training steps (max_steps)",
    "learning_rate": "Learning rate (learning_rate)",
    "beta": "Preference strength (beta)",
    "eval_split": "Held out for evaluation (eval_split)",
}


def in_form_words(message: str, labels: dict[str, str]) -> str:
    """An action's error with each field it names given the label the form shows, so a form
    never asks for a field by a name the user cannot find on it."""
    for field, label in labels.items():
        message = re.sub(rf"(?:\b[a-z]+\.)?\b{field}\b(?=:)", label, message)
    return message


def import_form(ctx: Ctx, *, select: str) -> None:
    """Import a preference file into a set; on success the set is selected (`select`, the
    session key of the set selector drawn below it) and the page reruns on its tab."""
    with st.expander("Import preference data"):
        up = st.file_uploader("JSONL file", type=["jsonl"], key="prefs_import_file")
        fmt = st.selectbox("Format", FORMATS, key="prefs_import_format")
        iname = st.text_input("Into preference set", "imported", key="prefs_import_name")
        skip = st.checkbox(
            "Skip invalid rows",
            key="prefs_import_skip",
            help="Store the valid rows and list each invalid one (its line and why) beside "
            "the new version. Off: one invalid row stores nothing.",
        )
        if up is not None and st.button("Import"):
            try:  # streamed in chunks up to the import size limit, checked by its content
                v = actions.import_preferences(
                    ctx, iname, up, fmt, label=up.name, skip_invalid=skip
                )
                st.session_state[select] = v["name"]  # drawn below: show what was imported
                n_skipped = (v.get("skipped") or {}).get("invalid", 0)
                state.flash(
                    f"{md_escape(iname)} v{v['number']}: {v['n_pairs']} pairs; dropped "
                    f"{md_escape(v['dropped'] or 'none')}"
                    + (
                        f"; skipped {n_skipped} invalid rows (listed below with their lines)"
                        if n_skipped
                        else ""
                    )
                )
                st.rerun()
            except AlreadyDone as exc:
                st.info(md_escape(str(exc)))
            except ValueError as exc:
                st.error(md_escape(str(exc)))


def skipped_rows(picked: dict) -> None:
    """The rows an import of this version did not store, each with its line and reason."""
    report = picked.get("skipped") or {}
    if report.get("rows"):
        with st.expander(
            f"Rows the import of v{picked['number']} did not store: "
            f"{report['invalid']} invalid, {report['dropped']} dropped",
            expanded=bool(report["invalid"]),
        ):
            st.dataframe(  # the reasons quote the file: drawn as text
                pd.DataFrame(
                    [
                        {
                            "line": r["line"],
                            "skipped as": "invalid" if r.get("invalid") else "dropped",
                            "reason": r["reason"],
                        }
                        for r in report["rows"]
                    ]
                ),
                hide_index=True,
            )
            if report.get("more"):
                st.caption(f"... and {report['more']} more rows, not kept.")


def dpo_form(ctx: Ctx, pick: str, picked: dict) -> None:
    """Start a DPO run on preference set `pick` (its version `picked`)."""
    cfg, ws = resources.settings(), resources.workspace()
    with st.form("dpo"):
        model_roots = allowed_roots(cfg, ws, models=True)
        base = st.text_input(
            DPO_LABELS["base_model"],
            relative_to_roots(cfg.local_model_dir or ws.models / "tiny-llama", model_roots),
            key="prefs_dpo_base",
            help=help_text("base_model")
            + " Relative to the workspace or to the configured local model's folder.",
        )
        steps = st.number_input(
            DPO_LABELS["max_steps"],
            1,
            100000,
            20,
            key="prefs_dpo_steps",
            help=help_text("max_steps"),
        )
        lr = st.number_input(
            DPO_LABELS["learning_rate"],
            1e-7,
            1.0,
            5e-5,
            format="%.1e",
            key="prefs_dpo_lr",
            help=help_text("learning_rate"),
        )
        beta = st.number_input(
            DPO_LABELS["beta"], 0.01, 10.0, 0.1, key="prefs_dpo_beta", help=help_text("beta")
        )
        eval_split = st.number_input(  # a small set holds nothing out by default
            DPO_LABELS["eval_split"],
            0.0,
            0.89,
            0.1 if picked["n_pairs"] >= 10 else 0.0,
            0.05,
            key=f"prefs_dpo_eval_split_{picked['id']}",  # follows the version's size
            help=help_text("eval_split")
            + f" This version has {picked['n_pairs']} pairs; holding out needs 2 or more.",
        )
        if st.form_submit_button("Start DPO run", type="primary"):
            try:
                job_id = launch.launch_dpo(
                    ctx,
                    pick,
                    base_model=base,
                    max_steps=int(steps),
                    learning_rate=lr,
                    beta=beta,
                    eval_split=eval_split,
                )
                resources.ingestor()
                state.flash(
                    f"DPO run {job_id} queued; its rewards/margins and "
                    "rewards/accuracies show on Compare"
                )
                st.rerun()
            except ValueError as exc:
                st.error(md_escape(in_form_words(str(exc), DPO_LABELS)))
