"""The Datasets page's Examples tab: search and filter one version's examples, save the matches
as a new version, read one example with its origin, and edit it into a new version.

`done(message)` is the page's way to show an action's result where the user is: it flashes the
message, selects the newest version and reruns (the tab is bound to the URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
import streamlit as st

from backend.action import AlreadyDone
from backend.store import Store
from backend.store import datasets as ds
from backend.synth import version_actions
from studio import auth
from studio.components.safe_text import md_escape


def _call_text(call: dict) -> str:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return f"calls {fn.get('name')}({args})"


def show_example(e: dict) -> None:
    if e.get("tools"):
        names = [(t.get("function") or t).get("name", "?") for t in e["tools"]]
        st.text(f"tools it may call: {', '.join(map(str, names))}")
    for m in e["messages"]:
        with st.chat_message(m["role"]):
            if m["content"]:
                st.text(m["content"])
            for call in m.get("tool_calls") or []:
                st.text(_call_text(call))
    st.text(
        f"id {e['id'][:16]} · topic {e['topic'] or '-'}"
        + (f" · edited from {e['parent_id'][:12]}" if e["parent_id"] else "")
    )
    st.json(e["origin"] or {}, expanded=False)


def _act(call, success, done: Callable[[str], None]) -> None:
    """Run an action that makes a new version; show its refusal here, or its result (a text,
    or a function of the version) on the newest version after a rerun."""
    try:
        v = call()
    except AlreadyDone as exc:
        st.info(md_escape(exc))
    except ValueError as exc:
        st.error(md_escape(exc))
    else:
        done(success(v) if callable(success) else success)


def examples_tab(
    store: Store,
    dataset: str,
    version: dict | None,
    latest: dict | None,
    choice: object,
    done: Callable[[str], None],
) -> None:
    """The Examples tab of `version` (the one chosen at the top of the page, `choice` being
    that picker's value: "newest" or a number)."""
    if not version:
        st.info(
            "No examples yet: generate some on the Generate tab or import a file on the "
            "Versions tab."
        )
    else:
        c = st.columns([2, 2])
        text = c[0].text_input("Search text", key="datasets_search")
        all_items = ds.version_examples(store, version["id"])
        topics = sorted({e["topic"] for e in all_items if e["topic"]})
        topic = c[1].selectbox("Topic", ["(all)"] + topics, key="datasets_topic")
        topic = None if topic == "(all)" else topic
        items = ds.search_examples(store, version["id"], text=text, topic=topic)
        st.caption(f"{len(items)} of {version['n_examples']} examples in v{version['number']}")
        if (text or topic) and items and st.button("Save the matches as a new version"):
            _act(
                lambda: version_actions.save_filtered(
                    auth.ctx(), dataset, text=text, topic=topic, version=version["number"]
                ),
                lambda v: f"Saved v{v['number']} with {v['n_examples']} matching examples.",
                done,
            )
        table = pd.DataFrame(
            [
                {
                    "question": next(
                        (m["content"] for m in e["messages"] if m["role"] == "user"), ""
                    )[:120],
                    "topic": e["topic"],
                    "id": e["id"][:12],
                }
                for e in items
            ]
        )
        picked = st.dataframe(
            table,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            width="stretch",
            key=f"datasets_examples_{dataset}_{choice}",
        )
        rows = picked.selection.rows if picked else []
        if items:
            example = items[rows[0]] if rows and rows[0] < len(items) else items[0]
            show_example(example)
            if version["id"] != latest["id"]:
                st.caption("Edits start from the newest version: choose it above to edit.")
            else:
                with st.expander("Edit this example (makes a new version)"):
                    with st.form("edit_example"):
                        answer = st.text_area("The answer", example["messages"][-1]["content"])
                        if st.form_submit_button("Save as new version"):
                            msgs = example["messages"][:-1] + [
                                {"role": "assistant", "content": answer}
                            ]
                            _act(
                                lambda: version_actions.edit_example(
                                    auth.ctx(), dataset, example["id"], msgs
                                ),
                                lambda v: f"Saved v{v['number']} with the edited example.",
                                done,
                            )
