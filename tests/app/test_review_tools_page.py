"""The Review page's in-app queue on tool-calling examples: the calls and the tools'
results are drawn as text lines, in order."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.store import Store
from tests.unit.test_review_tools import tool_batch

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "review.py")


def test_review_here_shows_tool_calls_and_results(ws):
    store = Store.open(ws.db_path)
    try:
        tool_batch(store)
    finally:
        store.close()
    st.cache_resource.clear()
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    at.text_input(key="reviewer").set_value("ana")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [t.value for t in at.text]
    assert "[tool get_weather]" in texts, texts
    assert "2 C" in texts  # the least certain first: Rome, whose reading is "2 C"
    assert '-> tool call get_weather({"city": "Rome"})' in texts
    assert "Rome: 2 C." in texts
