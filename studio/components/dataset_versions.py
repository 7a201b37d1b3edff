"""The Datasets page's Versions tab: every version, the rows an import skipped, export to the
workspace's exports/ folder or download, and import a file as a new version.

`done(message)` is the page's way to show an action's result where the user is: it flashes
the message, selects the newest version and reruns (the tab is bound to the URL).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from backend.security import relative_to_roots
from backend.synth import import_actions
from backend.synth.exporters import FORMATS, SUFFIX
from studio import auth, resources, state
from studio.components.dataset_diff import diff_section
from studio.components.dataset_import import import_form
from studio.components.safe_text import md_escape

# the user's words for each export format; the library's term is in the help
FORMAT_LABELS = {
    "messages-jsonl": "Chat conversations, one per line",
    "prompt-completion-jsonl": "Prompt and answer pairs, one per line",
    "parquet": "A table file",
    "hf": "A Hugging Face dataset folder",
}
FORMAT_HELP = (
    "Chat conversations: JSONL of `messages` (TRL's conversational format). Prompt and answer "
    "pairs: JSONL of `prompt`/`completion` (loss on the answer only). A table file: Parquet "
    "with id, topic, messages. A Hugging Face dataset folder: `datasets` save_to_disk."
)
FORMAT_KEY = "datasets_export_format"


def _table(versions: list[dict]) -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "version": v["number"],
                    "created": v["created"][:19],
                    "examples": v["n_examples"],
                    "skipped rows": (v["skipped"] or {}).get("invalid", 0),
                    "hash": v["hash"][:16],
                    "note": v["note"],
                }
                for v in reversed(versions)
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _skipped(version: dict) -> None:
    skipped = version.get("skipped")
    if not skipped:
        return
    st.subheader(f"Rows left out of v{version['number']}")
    unit = skipped["unit"]
    st.text(
        f"{skipped['invalid']} {unit}s of {skipped['file']} were flawed and skipped when it "
        "was imported; the other rows are this version."
    )
    rows = pd.DataFrame(skipped["rows"]).rename(columns={"line": unit})
    st.dataframe(rows, hide_index=True, width="stretch")
    if skipped["invalid"] > len(skipped["rows"]):
        st.caption(f"The first {len(skipped['rows'])} are listed.")


def _export(dataset: str, version: dict) -> None:
    n = version["number"]
    st.subheader(f"Export or download v{n}")
    fmt = st.selectbox(
        "File type", FORMATS, format_func=FORMAT_LABELS.get, key=FORMAT_KEY, help=FORMAT_HELP
    )
    name = f"{dataset}-v{n}-{fmt}{SUFFIX.get(fmt, '')}"
    if fmt in SUFFIX:
        ctx = auth.ctx()
        st.download_button(
            "Download",
            data=lambda: import_actions.download_version(ctx, dataset, fmt, version=n),
            file_name=name,
            on_click="ignore",
            icon=":material/download:",
            key=f"datasets_download_{dataset}_{n}_{fmt}",
            help="Save this version to your computer in the chosen file type.",
        )
    else:
        st.caption("A dataset folder cannot be downloaded as one file: export it below.")
    with st.form("export"):
        out = st.text_input(
            "Write to (a file or folder under exports/ in the workspace)",
            f"exports/{name}",
            key=f"datasets_export_path_{dataset}_{n}_{fmt}",
            help="A path relative to the workspace, inside its exports/ folder.",
        )
        overwrite = st.checkbox(
            "Replace an earlier export at that path",
            help="Only a file, or a folder that an earlier export made, is replaced.",
        )
        if st.form_submit_button("Export"):
            try:
                res = import_actions.export_version(
                    auth.ctx(), dataset, fmt, out, version=n, overwrite=overwrite
                )
            except (ValueError, OSError) as exc:
                st.error(md_escape(exc))
            else:
                where = relative_to_roots(res["path"], [resources.workspace().root])
                state.flash(f"Wrote {res['examples']} examples of v{n} to {md_escape(where)}")
                st.rerun()


def versions_tab(
    dataset: str, versions: list[dict], version: dict | None, done: Callable[[str], None]
) -> None:
    """The Versions tab for `dataset`; `version` is the one chosen at the top of the page."""
    if versions and version is not None:
        _table(versions)
        diff_section(versions, version)
        _skipped(version)
        _export(dataset, version)
    else:
        st.caption("No versions yet: import a file below, or generate on the Generate tab.")
    import_form(dataset, done)
