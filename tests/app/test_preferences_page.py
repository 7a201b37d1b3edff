"""The Preferences page: empty state, ranking a pair blind through the buttons (stored with
who and when), skip, a ranking of three, agreement and leaderboard drawn, a preference set built
and offered for download, and model text shown as text."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from backend.action import Ctx
from backend.config import Settings
from backend.prefs import actions
from backend.prefs.pairs import build_items
from backend.store import Store
from backend.store import prefs as S

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "preferences.py")


def _seed(ws, mode="pairwise", n=3) -> None:
    store = Store.open(ws.db_path)
    outputs = {
        "run-a": {f"q{i}": f"<b>good {i}</b>" for i in range(n)},
        "run-b": {f"q{i}": f"bad {i}" for i in range(n)},
    }
    if mode == "ranking":
        outputs["run-c"] = {f"q{i}": f"meh {i}" for i in range(n)}
    items = build_items(outputs, mode=mode, seed=0)
    ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
    actions.create_comparison_set(
        ctx, "cmp", items=items, mode=mode, analysts=["ann", "bob"], overlap=1.0
    )
    store.close()


def _run(analyst: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if analyst:
        at.session_state["prefs_analyst"] = analyst
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_state(ws):
    at = _run()
    assert any("two or more sources" in i.value for i in at.info)
    assert at.metric[0].value == "0"


def test_rank_a_pair_through_the_buttons(ws):
    _seed(ws)
    at = _run("ann")
    texts = [t.value for t in at.text]
    assert "q0" in texts  # the prompt, as text
    assert any(v.startswith("<b>good") for v in texts)  # model text as text, not HTML
    first = [t.value for t in at.text if t.value.startswith(("<b>good", "bad"))]
    at.button(key="v_A").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="v_skip").click().run()
    at.button(key="v_tie").click().run()
    assert not at.exception

    store = Store.open(ws.db_path)
    try:
        rows = S.judgements(store)
        prog = {p["annotator"]: p for p in S.progress(store, rows[0]["set_id"])}
    finally:
        store.close()
    assert [(r["annotator"], r["source"]) for r in rows] == [("ann", "human")] * 2
    assert sorted(r["verdict"] for r in rows) == ["A", "tie"]
    a_row = next(r for r in rows if r["verdict"] == "A")
    assert a_row["created"] is not None
    assert a_row["responses"][0]["text"] == first[0]  # A is what was shown on the left
    assert prog["ann"]["judged"] == 2 and prog["ann"]["skipped"] == 1
    assert prog["bob"]["judged"] == 0
    assert any("2/3 judged by ann" in p.proto.text for p in at.get("progress"))


def test_ranking_mode_and_results_tabs(ws):
    _seed(ws, mode="ranking", n=2)
    at = _run("bob")
    at.multiselect[0].select("Answer 2").select("Answer 1").select("Answer 3")
    at.button[0].click()  # the form's submit is the first button in the Rank tab
    at = at.run()
    assert not at.exception, [e.value for e in at.exception]
    store = Store.open(ws.db_path)
    try:
        rows = S.judgements(store)
    finally:
        store.close()
    assert [(r["verdict"], r["ranking"]) for r in rows] == [("ranking", [1, 0, 2])]
    # the leaderboard and agreement tabs draw from the stored ranking
    assert any(df.value.shape[0] == 3 for df in at.dataframe)


def test_build_preference_set_and_download(ws):
    _seed(ws)
    store = Store.open(ws.db_path)
    try:
        cs = S.get_comparison_set(store, "cmp")
        for it in S.set_items(store, cs["id"]):
            good = "A" if it["responses"][0]["source"] == "run-a" else "B"
            S.record_judgement(store, it["id"], "ann", good)
            S.record_judgement(store, it["id"], "bob", good)
    finally:
        store.close()
    at = _run("ann")
    assert any("All your items are ranked" in s.value for s in at.success)
    form_select = [m for m in at.multiselect if m.label == "From comparison sets"][0]
    form_select.select("cmp")
    at.button(key="FormSubmitter:build-Build new version").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("prefs v1: 3 pairs" in s.value for s in at.success)
    assert at.metric[3].value == "3"
