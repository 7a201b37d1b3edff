"""Label Studio annotations of comparison sets read back into verdicts (no server), and a pull
whose rows fail validation stores none of them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.action import Ctx
from backend.auth import Actor, PermissionDenied
from backend.config import Settings
from backend.prefs import actions
from backend.prefs import labelstudio as pls
from backend.prefs.pairs import build_items
from backend.store import prefs as S
from backend.store import prefs_ls as L


def _pick(side):
    return {"from_name": "pick", "to_name": "pick", "type": "pairwise", "value": {"selected": side}}


def _other(choice):
    return {
        "from_name": "other",
        "to_name": "prompt",
        "type": "choices",
        "value": {"choices": [choice]},
    }


def _rank(order, key="rank"):
    return {
        "from_name": "rank",
        "to_name": "answers",
        "type": "ranker",
        "value": {"ranker": {key: order}},
    }


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        ([_pick("left")], "A"),
        ([_pick("right")], "B"),
        ([_other("Tie")], "tie"),
        ([_pick("left"), _other("Both bad")], "both_bad"),  # the explicit choice wins
    ],
)
def test_pairwise_results(result, verdict):
    assert pls.parse_annotation({"result": result}, "pairwise", 2) == (verdict, None)


@pytest.mark.parametrize(
    ("ann", "why"),
    [
        ({"result": [_pick("none")]}, "no side picked"),
        ({"result": []}, "no side picked"),
        ({"result": [_pick("left")], "was_cancelled": True}, "skipped"),
    ],
)
def test_unusable_pairwise(ann, why):
    with pytest.raises(ValueError, match=why):
        pls.parse_annotation(ann, "pairwise", 2)


def test_ranker_results():
    ann = {"result": [_rank(["answer-2", "answer-3", "answer-1"])]}
    assert pls.parse_annotation(ann, "ranking", 3) == ("ranking", [1, 2, 0])
    with pytest.raises(ValueError, match="each answer once"):
        pls.parse_annotation({"result": [_rank(["answer-2", "answer-2"])]}, "ranking", 3)
    with pytest.raises(ValueError, match="no ranking"):
        pls.parse_annotation({"result": []}, "ranking", 3)


def test_configs_name_the_fields_the_parser_reads():
    pair = pls.label_config("pairwise")
    assert '<Pairwise name="pick" toName="a,b"/>' in pair and 'name="other"' in pair
    assert '<Ranker name="rank" toName="answers"/>' in pls.label_config("ranking", 3)
    with pytest.raises(ValueError, match="mode 'nope'"):
        pls.label_config("nope")


def test_task_payload_is_blind():
    item = {
        "id": "cs-1-00000",
        "set_id": "cs-1",
        "prompt": [{"role": "user", "content": "q"}],
        "responses": [{"source": "run-secret", "text": "x"}, {"source": "run-other", "text": "y"}],
    }
    assert "run-" not in str(pls.task_payload(item, "pairwise"))
    assert "run-" not in str(pls.task_payload(item, "ranking"))


def _pushed(store, ws, monkeypatch, rows):
    """A set linked to project 9 as if pushed, and a Label Studio whose export gives `rows`."""
    ctx = Ctx(
        store=store,
        ws=ws,
        settings=Settings(label_studio_url="http://127.0.0.1:9", label_studio_token="t"),
        actor=None,
    )
    cs = actions.create_comparison_set(
        ctx, "c", items=build_items({"r1": {"q": "a"}, "r2": {"q": "b"}}), analysts=["ann"]
    )
    item = S.set_items(store, cs["id"])[0]["id"]
    assert L.claim_push(store, cs["id"], "http://127.0.0.1:9") is None
    L.finish_push(store, cs["id"], 9, {item: 1})

    def fetch(url, token, project_id, mode, sizes, on_stage=None):
        assert (project_id, mode, sizes) == (9, "pairwise", {item: 2})
        return {"rows": [dict(r, item_id=item) for r in rows], "skipped": [], "tasks": 1}

    monkeypatch.setattr(pls, "fetch_annotations", fetch)
    return ctx, cs


GOOD = {
    "id": "ls:9:1",
    "annotator": "a@x",
    "verdict": "A",
    "ranking": None,
    "detail": {"updated": "2026-01-02T03:04:05Z"},
}


def test_bad_row_stores_nothing(store, ws, monkeypatch):
    bad = {**GOOD, "id": "ls:9:2", "verdict": "ranking", "ranking": [0]}
    ctx, cs = _pushed(store, ws, monkeypatch, [GOOD, bad])
    with pytest.raises(ValueError, match="annotation ls:9:2"):
        actions.pull_from_labelstudio(ctx, "c")
    assert store.scalar("SELECT count(*) FROM comparisons") == 0
    with pytest.raises(PermissionDenied, match="may not rank"):
        actions.pull_from_labelstudio(replace(ctx, actor=Actor("rev", "reviewer")), "c")


def test_pull_twice_adds_nothing_and_audits_changes_only(store, ws, monkeypatch):
    ctx, cs = _pushed(store, ws, monkeypatch, [GOOD])
    assert actions.pull_from_labelstudio(ctx, "c")["new"] == 1
    again = actions.pull_from_labelstudio(ctx, "c")
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'prefs.ls_pull'") == 1
    item = S.set_items(store, cs["id"])[0]["id"]
    assert L.upsert_ls_judgements(store, cs["id"], [{**GOOD, "item_id": item}]) == {
        "new": 0,
        "updated": 0,
        "unchanged": 1,
    }
