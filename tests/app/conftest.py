"""AppTest fixtures: every page test starts with empty caches, so a store cached for one
test's workspace never leaks into the next (releasing the cache closes the store and stops the
ingestion thread)."""

from __future__ import annotations

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _fresh_streamlit(ws):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()
