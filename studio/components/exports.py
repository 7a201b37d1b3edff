"""A run's exports on its page: the export form (merged, GGUF, Ollama), the exports made so
far with their checks and numbers (only verified ones are shown as shippable), and the
commands that serve the run (vLLM with the adapter, Ollama, llama.cpp).

    from studio.components.exports import run_exports
    run_exports(run_id)   # inside the run view of the Training page
"""

from __future__ import annotations

import streamlit as st

from backend.action import AlreadyDone
from backend.export import actions
from backend.export.job import FORMATS
from backend.export.ollama import served_name, vllm_command
from backend.jobs import read as jobs
from backend.jobs.status import JobState, JobStatusError
from backend.store.exports import list_exports
from backend.store.runs import RunNotFound, get_run
from studio import auth, resources
from studio.components.jobs import progress
from studio.components.safe_text import md_escape

FORMAT_HELP = (
    "merged: the adapter folded into the base, as safetensors with the tokenizer and chat "
    "template (transformers, vLLM, TGI). gguf: one file for llama.cpp (Llama-family models). "
    "ollama: the GGUF with a Modelfile and the `ollama create` command."
)
QUANT_HELP = "f16: half precision, near-exact. q8_0: 8-bit blocks, about half the size."


def _numbers(row: dict) -> str:
    """One line of a check's numbers: logit difference, tolerance, greedy agreement."""
    parts = []
    for name in ("merged", "gguf"):
        c = (row.get("checks") or {}).get(name)
        if c:
            parts.append(
                f"{name}: max logit diff {c['max_logit_diff']:.2g} "
                f"({c['relative_diff']:.2g} of scale, limit {c['tolerance']:g}), "
                f"greedy {c['greedy_equal_prefix']}/{c['greedy_tokens']}"
            )
    eos = (row.get("checks") or {}).get("tokens_to_eos")
    parts.append(f"tokens to EOS: {eos if eos is not None else 'none within budget'}")
    return "; ".join(parts)


def _form(run_id: str) -> None:
    with st.form(f"export_form_{run_id}"):
        fmt = st.radio("Format", FORMATS, horizontal=True, help=FORMAT_HELP)
        quant = st.radio("GGUF quantisation", ["q8_0", "f16"], horizontal=True, help=QUANT_HELP)
        out = st.text_input(
            "Folder (optional)",
            help="Inside the workspace; empty: runs/<run>/exports/<format>-<quant>.",
        )
        go = st.form_submit_button("Export", icon=":material/ios_share:")
    if not go:
        return
    try:
        job_id = actions.start_export(
            auth.ctx(),
            run_id,
            fmt,
            quant=None if fmt == "merged" else quant,
            out=out.strip() or None,
        )
    except AlreadyDone as exc:
        st.info(md_escape(str(exc)))
        return
    except ValueError as exc:  # ActionError, UnsafePathError, PermissionDenied
        st.error(md_escape(str(exc)))
        return
    st.success(f"Export queued as job {job_id}; it is checked before it is marked done.")


def _active(run_id: str) -> list:
    out = []
    for status in jobs.list_jobs(resources.workspace()):
        if isinstance(status, JobStatusError) or status.kind != "export":
            continue
        if status.state in (JobState.queued, JobState.running) and run_id in status.title:
            out.append(status)
    return out


def run_exports(run_id: str) -> None:
    """The Export section of one run: serve commands, the form, running and finished exports."""
    try:
        run = get_run(resources.store(), run_id)
    except RunNotFound as exc:
        st.error(md_escape(str(exc)))
        return
    st.subheader("Ship this run")
    if run.get("adapter_path") and run.get("base_model"):
        st.caption("Serve the adapter on its base with vLLM:")
        st.code(
            vllm_command(run["base_model"], served_name(run_id), run["adapter_path"]),
            language="bash",
        )
    if run.get("state") == JobState.succeeded and auth.actor().can("launch_job"):
        _form(run_id)
    for status in _active(run_id):
        progress(status)
    rows = list_exports(resources.store(), run_id)
    if not rows:
        st.caption("No exports yet.")
        return
    for row in rows:
        label = f"{row['format']}{' ' + row['quant'] if row['quant'] else ''}"
        size = f"{(row['size_bytes'] or 0) / 2**20:.1f} MiB"
        if row["verified"]:
            st.success(f"{label}: verified, {size}", icon=":material/verified:")
            st.code(row["path"], language=None)
            for name, command in (row.get("commands") or {}).items():
                if name != "vllm":
                    st.code(command, language="bash")
        else:
            st.error(f"{label}: failed its checks, not shippable", icon=":material/error:")
            st.text(row.get("error") or "")
        st.caption(md_escape(_numbers(row)) + f" · sha256 {row['sha256'][:16]}…")
