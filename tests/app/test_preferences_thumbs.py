"""Thumbs on the Preferences page's Rank tab: a thumbs up or down under a response is stored as
KTO feedback (set `ratings`) under the analyst's name, and a KTO run can be prepared from it."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.prefs.kto_actions import kto_fields
from backend.store import Store
from backend.store.feedback import feedback_rows
from tests.app.test_preferences_page import _seed

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "preferences.py")


def test_thumbs_become_kto_feedback(ws):
    _seed(ws)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["prefs_analyst"] = "ann"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    thumbs = sorted(b.key for b in at.button if (b.key or "").startswith("thumb_"))
    assert len(thumbs) == 4  # up and down under each of the two answers
    shown = [t.value for t in at.text if t.value.startswith(("<b>good", "bad"))]
    up_first = next(k for k in thumbs if k.endswith("_0_1"))
    down_second = next(k for k in thumbs if k.endswith("_1_0"))
    at.button(key=up_first).click().run()
    at.button(key=down_second).click().run()
    assert not at.exception, [e.value for e in at.exception]

    store = Store.open(ws.db_path)
    try:
        rows = feedback_rows(store, "ratings")
        assert [(r["completion"], r["label"], r["who"]) for r in rows] == [
            (shown[0], True, "ann"),
            (shown[1], False, "ann"),
        ]
        fields = kto_fields(Ctx(store=store, ws=ws, settings=Settings()), feedback="ratings")
        assert fields["sources"]["feedback"]["ratings"] == 2
    finally:
        store.close()
