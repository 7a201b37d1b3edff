"""The Preferences page: empty state, ranking a pair blind through the buttons (stored with
who and when), skip, a ranking of three, agreement and leaderboard drawn, a preference set built
and offered for download, and model text shown as text."""

from __future__ import annotations

import json
import re
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


LEE = ("lee", "lead")
EXPORT = "Export and DPO"


def lead_page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["actor"] = LEE
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _import(at: AppTest, data: bytes, *, skip: bool, name: str = "hh") -> AppTest:
    at.file_uploader(key="prefs_import_file").set_value(("hh.jsonl", data, "application/json"))
    at.selectbox(key="prefs_import_format").set_value("hh-rlhf")
    at.text_input(key="prefs_import_name").set_value(name)
    at.checkbox(key="prefs_import_skip").set_value(skip)
    at.run()
    at.button(key=[b.key for b in at.button if b.label == "Import"][0]).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_tab_and_sets_come_from_the_url_and_a_build_keeps_the_tab(ws):
    _seed(ws)
    store = Store.open(ws.db_path)
    try:
        ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
        items = build_items({"x": {"q": "a"}, "y": {"q": "b"}}, mode="pairwise", seed=0)
        actions.create_comparison_set(ctx, "cmp2", items=items, analysts=["ann"], overlap=0.0)
        cs = S.get_comparison_set(store, "cmp")
        for it in S.set_items(store, cs["id"]):
            S.record_judgement(store, it["id"], "ann", "A")
    finally:
        store.close()
    at = lead_page(prefs_tab="Judge", prefs_cset="cmp2")
    assert at.session_state["prefs_tab"] == "Judge"
    assert at.selectbox(key="prefs_cset").value == "cmp2"
    judge_set = [s for s in at.selectbox if s.label == "Comparison set" and s.key != "prefs_cset"]
    assert judge_set[0].value == "cmp2"  # the judge form starts on the set being ranked

    at = lead_page(prefs_tab=EXPORT)
    [m for m in at.multiselect if m.label == "From comparison sets"][0].select("cmp")
    at.button(key="FormSubmitter:build-Build new version").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["prefs_tab"] == EXPORT
    assert at.selectbox(key="prefs_pset").value == "prefs"
    assert any("prefs v1: 3 pairs" in s.value for s in at.success)


def test_the_import_form_skips_invalid_rows_only_when_asked(ws, tmp_path):
    from tests.unit.test_prefs_import import real_shaped

    data = real_shaped(tmp_path / "hh.jsonl").read_bytes()
    at = _import(lead_page(prefs_tab=EXPORT), data, skip=False)
    (error,) = [e.value for e in at.error]
    assert "4 of 8 rows are invalid, nothing was stored" in error and "line 5" in error
    assert at.metric[3].value == "0"

    at = _import(at, data, skip=True)
    assert at.session_state["prefs_tab"] == EXPORT
    assert any(
        "hh v1: 3 pairs" in s.value and "skipped 4 invalid rows" in s.value for s in at.success
    ), [s.value for s in at.success]
    skipped = next(d.value for d in at.dataframe if "skipped as" in d.value.columns)
    assert list(skipped["line"]) == [2, 4, 5, 6, 9]
    assert list(skipped["skipped as"]) == ["invalid", "dropped", "invalid", "invalid", "invalid"]


def test_the_dpo_form_shows_every_field_its_errors_name(ws, tmp_path, monkeypatch):
    from backend.jobs import queue, worker
    from tests.unit.test_monitoring import fake_model_at

    monkeypatch.setattr(worker, "ensure_worker", lambda *a, **k: False)
    fake_model_at(ws)
    one = b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", '
    one += b'"rejected": "\\n\\nHuman: hi\\n\\nAssistant: go away"}\n'
    at = _import(lead_page(prefs_tab=EXPORT), one, skip=False, name="tiny")
    labels = {w.label for kind in ("text_input", "number_input") for w in getattr(at, kind)}
    assert "Preference strength (beta)" in labels
    (held,) = [n for n in at.number_input if n.label == "Held out for evaluation (eval_split)"]
    assert held.value == 0.0  # one pair: nothing held out by default

    held.set_value(0.1)
    at.button(key="FormSubmitter:dpo-Start DPO run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (error,) = [e.value for e in at.error]
    plain = error.replace("\\", "")
    assert "Held out for evaluation (eval_split): dataset 'tiny' has 1 example" in plain
    named = {m.rstrip(":") for m in re.findall(r"\(([a-z_]+)\):", plain)}
    shown = {re.search(r"\(([a-z_]+)\)$", label).group(1) for label in labels if "(" in label}
    assert named and named <= shown  # the error asks only for fields the form shows
    assert queue.job_ids(ws) == []

    at.number_input(key=held.key).set_value(0.0)
    at.button(key="FormSubmitter:dpo-Start DPO run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("DPO run" in s.value and "queued" in s.value for s in at.success)
    (job_id,) = queue.job_ids(ws)
    _, spec = queue.read_spec(ws.job_dir(job_id))
    assert (spec["method"], spec["eval_split"], spec["dataset"]) == ("dpo", 0.0, "tiny")
    assert at.session_state["prefs_tab"] == EXPORT


def test_names_are_drawn_as_text(ws):
    _seed(ws)
    evil = "[x](http://evil.example)"
    at = _run(evil)
    bodies = [e.value for kind in ("warning", "caption", "markdown") for e in getattr(at, kind)]
    assert not [b for b in bodies if "](http" in b], bodies
    assert any("\\[x\\]" in w.value for w in at.warning)


def test_judge_verdicts_and_the_leaderboard_follow_a_judge_job_live(ws):
    """The page follows `prefs` and `jobs`: a judge job's verdicts stored by the ingestion
    pass move the counters the page drew from (so its watcher reruns it, no reload), and the
    redraw shows the verdicts and the leaderboard."""
    from backend.changes import CHANGES
    from backend.ingest.jobs import ingest_all
    from backend.jobs.status import JobState, read_status, write_status
    from backend.prefs.launch import launch_judge

    _seed(ws)
    at = lead_page(prefs_tab="Leaderboard")
    assert {m.label: m.value for m in at.metric}["Judge verdicts"] == "0"
    assert any("No decided comparisons yet" in i.value for i in at.info)
    drawn = at.session_state["live:prefs,jobs"]
    store = Store.open(ws.db_path)
    try:
        ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
        job_id = launch_judge(ctx, "cmp", model="judge-m", start_worker=False)
        items = S.set_items(store, S.get_comparison_set(store, "cmp")["id"])
        folder = ws.job_dir(job_id)
        with open(folder / "judgements.jsonl", "w") as fh:
            for it in items:  # the judge prefers run-a wherever it stands
                verdict = "A" if it["responses"][0]["source"] == "run-a" else "B"
                row = {"item_id": it["id"], "verdict": verdict, "model": "judge-m", "t": 1.0}
                fh.write(json.dumps({**row, "rationale": "clearer"}) + "\n")
        status = read_status(folder)
        status.state, status.finished = JobState.succeeded, status.created + 1
        write_status(folder, status)
        ingest_all(store, ws)  # what the dashboard's ingestion thread does
        assert CHANGES.snapshot(("prefs", "jobs")) != drawn  # the watcher reruns the page
    finally:
        store.close()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["Judge verdicts"] == "3"
    board = next(d.value for d in at.dataframe if "rating" in d.value.columns)
    assert list(board["source"])[0] == "run-a"
    assert at.session_state["prefs_tab"] == "Leaderboard"
