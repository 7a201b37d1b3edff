"""Comparison sets through a REAL Label Studio (the session's shared server, see conftest.py):
push a pairwise set (Pairwise + tie / both bad) and a ranking set (List + Ranker), annotate
through the REST API as an analyst would, pull twice with no duplicates, an edited annotation
updates its judgement, and the CLI does the same with --json.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from backend.action import AlreadyDone, Ctx
from backend.config import Settings
from backend.prefs import actions
from backend.prefs.pairs import build_items
from backend.store import Store
from backend.store import prefs as S
from backend.store import prefs_ls as L
from backend.workspace import Workspace

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

ADMIN = "studio-admin@localhost"


def _outputs(sources: list[str], n: int) -> dict[str, dict[str, str]]:
    return {s: {f"question {i}": f"{s} says answer {i}" for i in range(n)} for s in sources}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("prefs-ls") / "studio.duckdb")
    yield store
    store.close()


def _ctx(db, url: str, token: str, ws: Workspace | None = None) -> Ctx:
    """The shell acting on `db` with the session's Label Studio in its settings."""
    ws = ws or Workspace(db.path.parent / "workspace").ensure()
    settings = Settings(label_studio_url=url, label_studio_token=token)
    return Ctx(store=db, ws=ws, settings=settings, actor=None)


def _api(url: str, token: str, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(
        method, f"{url}{path}", headers={"Authorization": f"Token {token}"}, timeout=30, **kw
    )


def _annotate(url: str, token: str, task_id: int, result: list[dict]) -> int:
    r = _api(url, token, "POST", f"/api/tasks/{task_id}/annotations/", json={"result": result})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _side(side: str) -> list[dict]:
    return [
        {"from_name": "pick", "to_name": "pick", "type": "pairwise", "value": {"selected": side}}
    ]


def _other(choice: str) -> list[dict]:
    return [
        {
            "from_name": "other",
            "to_name": "prompt",
            "type": "choices",
            "value": {"choices": [choice]},
        }
    ]


def test_pairwise_push_annotate_pull_twice(live_server, db):
    info, token = live_server
    ctx = _ctx(db, info.url, token)
    items = build_items(_outputs(["run-a", "run-b"], 5), mode="pairwise", seed=3)
    cs = actions.create_comparison_set(ctx, "ls-pairs", items=items, analysts=["ann"], overlap=0.4)
    pushed = actions.push_to_labelstudio(ctx, "ls-pairs")
    assert pushed["tasks"] == 5 and pushed["url"].endswith(f"/projects/{pushed['project_id']}/data")
    with pytest.raises(AlreadyDone, match="already in Label Studio"):
        actions.push_to_labelstudio(ctx, "ls-pairs")
    project = _api(info.url, token, "GET", f"/api/projects/{pushed['project_id']}").json()
    assert "<Pairwise" in project["label_config"] and project["maximum_annotations"] == 2
    assert project["overlap_cohort_percentage"] == 40

    stored = S.set_items(db, cs["id"])
    tasks = L.get_project(db, cs["id"])["tasks"]
    task = _api(info.url, token, "GET", f"/api/tasks/{tasks[stored[0]['id']]}").json()
    assert task["data"]["a"] == stored[0]["responses"][0]["text"]
    assert "run-a" not in json.dumps(
        {k: v for k, v in task["data"].items() if k not in ("a", "b")}
    )  # blind: no source names

    ann_ids = [
        _annotate(info.url, token, tasks[stored[0]["id"]], _side("left")),
        _annotate(info.url, token, tasks[stored[1]["id"]], _side("right")),
        _annotate(info.url, token, tasks[stored[2]["id"]], _side("left") + _other("Tie")),
        _annotate(info.url, token, tasks[stored[3]["id"]], _other("Both bad")),
    ]
    first = actions.pull_from_labelstudio(ctx, "ls-pairs")
    assert (first["new"], first["annotations"], first["skipped"]) == (4, 4, [])
    second = actions.pull_from_labelstudio(ctx, "ls-pairs")
    assert (second["new"], second["updated"], second["unchanged"]) == (0, 0, 4)
    rows = S.judgements(db, set_id=cs["id"])
    assert db.scalar("SELECT count(*) FROM comparisons WHERE set_id = ?", [cs["id"]]) == 4
    got = {r["item_id"]: r for r in rows}
    assert {r["annotator"] for r in rows} == {ADMIN} and {r["source"] for r in rows} == {"human"}
    assert [got[i["id"]]["verdict"] for i in stored[:4]] == ["A", "B", "tie", "both_bad"]
    assert got[stored[0]["id"]]["winner"] == stored[0]["responses"][0]["source"]
    assert got[stored[1]["id"]]["winner"] == stored[1]["responses"][1]["source"]
    assert got[stored[0]["id"]]["detail"]["annotation_id"] == ann_ids[0]
    assert S.progress(db, cs["id"]) == [
        {"annotator": "ann", "assigned": 5, "judged": 0, "skipped": 0}
    ]  # LS annotators are not the page's

    # the analyst changes their mind in Label Studio: the same row is updated, none added
    r = _api(
        info.url, token, "PATCH", f"/api/annotations/{ann_ids[0]}/", json={"result": _side("right")}
    )
    assert r.status_code == 200, r.text
    third = actions.pull_from_labelstudio(ctx, "ls-pairs")
    assert (third["new"], third["updated"], third["unchanged"]) == (0, 1, 3)
    assert db.scalar("SELECT count(*) FROM comparisons WHERE set_id = ?", [cs["id"]]) == 4
    assert (
        db.scalar(
            "SELECT verdict FROM comparisons WHERE id = ?",
            [f"ls:{pushed['project_id']}:{ann_ids[0]}"],
        )
        == "B"
    )
    assert db.scalar("SELECT count(*) FROM audit_log WHERE action = 'prefs.ls_pull'") == 2


def test_ranking_push_annotate_pull_twice(live_server, db):
    info, token = live_server
    ctx = _ctx(db, info.url, token)
    items = build_items(_outputs(["run-a", "run-b", "run-c"], 3), mode="ranking", seed=1)
    cs = actions.create_comparison_set(
        ctx, "ls-rank", items=items, mode="ranking", analysts=["ann"], overlap=0.0
    )
    pushed = actions.push_to_labelstudio(ctx, "ls-rank")
    project = _api(info.url, token, "GET", f"/api/projects/{pushed['project_id']}").json()
    assert "<Ranker" in project["label_config"] and project["maximum_annotations"] == 1
    stored = S.set_items(db, cs["id"])
    tasks = L.get_project(db, cs["id"])["tasks"]
    task = _api(info.url, token, "GET", f"/api/tasks/{tasks[stored[0]['id']]}").json()
    assert [a["body"] for a in task["data"]["answers"]] == [
        r["text"] for r in stored[0]["responses"]
    ]

    def ranked(order: list[str]) -> list[dict]:
        return [
            {
                "from_name": "rank",
                "to_name": "answers",
                "type": "ranker",
                "value": {"ranker": {"rank": order}},
            }
        ]

    _annotate(info.url, token, tasks[stored[0]["id"]], ranked(["answer-3", "answer-1", "answer-2"]))
    _annotate(info.url, token, tasks[stored[1]["id"]], ranked(["answer-1", "answer-1"]))
    first = actions.pull_from_labelstudio(ctx, "ls-rank")
    assert (first["new"], first["annotations"]) == (1, 1)
    assert len(first["skipped"]) == 1 and "each answer once" in first["skipped"][0]["why"]
    second = actions.pull_from_labelstudio(ctx, "ls-rank")
    assert (second["new"], second["unchanged"]) == (0, 1)
    [row] = S.judgements(db, set_id=cs["id"])
    assert (row["verdict"], row["ranking"], row["annotator"]) == ("ranking", [2, 0, 1], ADMIN)


def test_cli_push_and_pull_json(live_server, ws, monkeypatch):
    from backend.cli import app

    info, token = live_server
    monkeypatch.setenv("LABEL_STUDIO_URL", info.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    store = Store.open(ws.db_path)
    actions.create_comparison_set(
        _ctx(store, info.url, token, ws),
        "cli-pairs",
        items=build_items(_outputs(["x", "y"], 2)),
        analysts=["ann"],
        overlap=0.0,
    )
    store.close()
    runner = CliRunner()
    pushed = runner.invoke(app, ["prefs", "push", "cli-pairs", "--json"])
    assert pushed.exit_code == 0, pushed.output
    res = json.loads(pushed.stdout)
    assert res["tasks"] == 2
    tasks = _api(info.url, token, "GET", f"/api/tasks?project={res['project_id']}").json()
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    _annotate(info.url, token, tasks[0]["id"], _side("right"))
    for expected_new in (1, 0):
        pulled = runner.invoke(app, ["prefs", "pull", "cli-pairs", "--json"])
        assert pulled.exit_code == 0, pulled.output
        assert json.loads(pulled.stdout)["new"] == expected_new
    missing = runner.invoke(app, ["prefs", "pull", "no-such-set"])
    assert missing.exit_code == 2 and "no comparison set 'no-such-set'" in missing.output


def test_page_pushes_and_pulls(live_server, ws, monkeypatch):
    """From the Rank tab: push, an analyst annotates in Label Studio, pull; the flash says so."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    info, token = live_server
    monkeypatch.setenv("LABEL_STUDIO_URL", info.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    store = Store.open(ws.db_path)
    actions.create_comparison_set(
        _ctx(store, info.url, token, ws),
        "page-pairs",
        items=build_items(_outputs(["x", "y"], 2)),
        analysts=["ann"],
        overlap=0.0,
    )
    store.close()
    st.cache_resource.clear()
    page = Path(__file__).resolve().parents[2] / "pages" / "preferences.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.run()
    next(b for b in at.button if b.key == "prefs_ls_push").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Pushed 2 tasks" in s.value for s in at.success)
    from studio import resources

    db = resources.store()
    cs = S.get_comparison_set(db, "page-pairs")
    task_id = next(iter(L.get_project(db, cs["id"])["tasks"].values()))
    _annotate(info.url, token, task_id, _side("left"))
    next(b for b in at.button if b.key == "prefs_ls_pull").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("1 new" in s.value for s in at.success)
    assert [r["annotator"] for r in S.judgements(db, set_id=cs["id"])] == [ADMIN]
    st.cache_resource.clear()
