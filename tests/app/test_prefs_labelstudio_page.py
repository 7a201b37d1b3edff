"""The Label Studio section of the Preferences page's Rank tab without a server: it says how to
configure one, and a push to a Label Studio that does not answer is a clear error that stores
nothing. (Push and pull against a real server: tests/integration/test_prefs_labelstudio.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.prefs import actions
from backend.prefs.pairs import build_items
from backend.store import Store

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "preferences.py")


def _seed(ws) -> None:
    store = Store.open(ws.db_path)
    items = build_items({"run-a": {"q0": "a0", "q1": "a1"}, "run-b": {"q0": "b0", "q1": "b1"}})
    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    actions.create_comparison_set(ctx, "cmp", items=items, analysts=["ann"])
    store.close()


def _run() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_not_configured_says_what_to_do(ws):
    _seed(ws)
    at = _run()
    assert any("ftstudio labelstudio up" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "prefs_ls_push"]


def test_push_to_a_silent_server_is_a_clear_error(ws, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-real-token")
    _seed(ws)
    at = _run()
    pull = next(b for b in at.button if b.key == "prefs_ls_pull")
    assert pull.disabled  # nothing pushed yet
    next(b for b in at.button if b.key == "prefs_ls_push").click().run()
    assert not at.exception
    assert any("did not answer" in e.value and "Nothing was changed" in e.value for e in at.error)
    store = Store.open(ws.db_path)
    try:
        assert store.scalar("SELECT count(*) FROM comparison_set_ls") == 0
    finally:
        store.close()
