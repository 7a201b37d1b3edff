"""The Datasets page's import form: upload a file, name the columns when they are not a shape
the studio knows, see the detected shape and the first rows as examples, then import."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.security import MAX_UPLOAD_BYTES
from backend.synth import import_actions
from studio import auth
from studio.components.safe_text import md_escape

UPLOAD_KEY = "datasets_upload"
SKIP_KEY = "datasets_skip_invalid"
MAP_KEY = "datasets_import_map"
SHAPE_WORDS = {
    "messages": "chat messages (OpenAI/TRL `messages`, tools kept)",
    "sharegpt": "ShareGPT (`conversations` of from/value)",
    "prompt": "prompt and completion",
    "alpaca": "Alpaca (instruction, input, output)",
}
MAP_HELP = (
    "Only when your columns have other names: FIELD=COLUMN pairs, comma-separated, e.g. "
    "`prompt=question, completion=answer, topic=category`. Fields: messages, conversations, "
    "prompt, completion, instruction, input, output, system, history, topic, tools."
)


def _first_turns(example: dict | None) -> str:
    if not example:
        return ""
    return "\n".join(f"{m['role']}: {m['content']}"[:200] for m in example["messages"])


def _preview(upload, mapping: str) -> None:
    try:
        seen = import_actions.preview_upload(auth.ctx(), upload.name, upload, mapping=mapping)
    except ValueError as exc:
        st.error(md_escape(exc))
        return
    shape = seen["shape"]
    st.text(
        f"Detected shape: {SHAPE_WORDS.get(shape, 'none the studio knows: map the columns')}"
        f"  ·  columns: {', '.join(seen['columns']) or 'none'}"
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    seen["unit"]: r["line"],
                    "becomes": _first_turns(r["example"]),
                    "problem": r["problem"] or "",
                }
                for r in seen["rows"]
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def import_form(dataset: str, done: Callable[[str], None]) -> None:
    """Upload, map, preview and import a file as a new version of `dataset`."""
    st.subheader("Import a file as a new version")
    upload = st.file_uploader(
        "A file of examples: JSONL, a JSON array, CSV or Parquet, with chat messages, ShareGPT "
        "conversations, prompt and completion, or Alpaca instruction/input/output",
        type=["jsonl", "json", "csv", "parquet"],
        max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        key=UPLOAD_KEY,
        help=f"At most {MAX_UPLOAD_BYTES // 2**20} MiB; import bigger files (or a Hugging Face "
        "dataset by name) with `ftstudio dataset import`.",
    )
    mapping = st.text_input("Column mapping (optional)", key=MAP_KEY, help=MAP_HELP)
    skip = st.checkbox(
        "Keep the valid rows and skip the flawed ones",
        key=SKIP_KEY,
        help="Off: one flawed row stops the whole import, and nothing is stored. On: the valid "
        "rows become the new version, and each skipped row's line and reason is kept beside "
        "it (shown on this tab).",
    )
    if upload is None:
        return
    _preview(upload, mapping)
    if not st.button("Import", type="primary"):
        return
    try:
        v = import_actions.import_upload(
            auth.ctx(), dataset, upload.name, upload, skip_invalid=skip, mapping=mapping
        )
    except AlreadyDone as exc:
        st.info(md_escape(exc))
        return
    except ValueError as exc:
        st.error(md_escape(exc))
        return
    message = f"Imported {v['n_examples']} examples into {dataset} v{v['number']}."
    if v.get("skipped"):
        s = v["skipped"]
        message += f" Skipped {s['invalid']} flawed {s['unit']}s: see them below."
    done(message)
