"""Label Studio annotations of comparison sets read back into verdicts (no server), and a pull
whose rows fail validation stores none of them."""

from __future__ import annotations

import pytest

from backend.auth import Actor, PermissionDenied
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


def test_bad_row_stores_nothing(store):
    cs = S.create_comparison_set(
        store,
        "c",
        build_items({"r1": {"q": "a"}, "r2": {"q": "b"}}),
        mode="pairwise",
        analysts=["ann"],
    )
    item = S.set_items(store, cs["id"])[0]["id"]
    good = {
        "id": "ls:1:1",
        "item_id": item,
        "annotator": "a@x",
        "verdict": "A",
        "ranking": None,
        "detail": {"updated": "2026-01-02T03:04:05Z"},
    }
    bad = {**good, "id": "ls:1:2", "verdict": "ranking", "ranking": [0]}
    with pytest.raises(ValueError, match="annotation ls:1:2"):
        L.upsert_ls_judgements(store, cs["id"], [good, bad])
    assert store.scalar("SELECT count(*) FROM comparisons") == 0
    with pytest.raises(PermissionDenied, match="may not rank"):
        L.upsert_ls_judgements(store, cs["id"], [good], actor=Actor("rev", "reviewer"))
    assert L.upsert_ls_judgements(store, cs["id"], [good])["new"] == 1
    assert L.upsert_ls_judgements(store, cs["id"], [good]) == {
        "new": 0,
        "updated": 0,
        "unchanged": 1,
    }
