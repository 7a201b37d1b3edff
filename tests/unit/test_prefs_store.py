"""Comparison sets, judgements (who and when, concurrent writers), preference set versions,
and imports / exports of preference data. (Roles, audit rows and double submissions of the
actions: test_prefs_actions.py.)"""

from __future__ import annotations

import json
import threading

import pytest

from backend.action import AlreadyDone, Ctx
from backend.config import Settings
from backend.prefs import actions
from backend.prefs.export import (
    InvalidPairs,
    import_rows,
    pairs_from_judgements,
    version_rows,
    write_dpo_jsonl,
)
from backend.prefs.pairs import build_items
from backend.store import prefs as S


def _ctx(store) -> Ctx:
    return Ctx(store=store, ws=None, settings=Settings(), actor=None)


def _set(store, n=6, analysts=("ann", "bob"), overlap=1.0, name="cmp"):
    outputs = {
        "run-a": {f"q{i}": f"good answer {i}" for i in range(n)},
        "run-b": {f"q{i}": f"bad answer {i}" for i in range(n)},
    }
    outputs["run-b"]["q0"] = outputs["run-a"]["q0"]  # an identical pair
    items = build_items(outputs, mode="pairwise", seed=0)
    return actions.create_comparison_set(
        _ctx(store), name, items=items, analysts=list(analysts), overlap=overlap, seed=0
    )


def _good(item) -> str:
    return "A" if item["responses"][0]["source"] == "run-a" else "B"


def test_rank_flow_records_who_and_when_and_skips(store):
    cs = _set(store)
    assert cs["n_items"] == 6
    first = S.next_item(store, cs["id"], "ann")
    S.skip_item(store, first["id"], "ann")
    second = S.next_item(store, cs["id"], "ann")
    assert second["id"] != first["id"]  # the skipped item went to the back
    actions.judge_item(_ctx(store), second["id"], "ann", _good(second))
    rows = S.judgements(store, set_id=cs["id"])
    assert rows[0]["annotator"] == "ann" and rows[0]["source"] == "human"
    assert rows[0]["created"] and rows[0]["winner"] == "run-a"
    prog = {p["annotator"]: p for p in S.progress(store, cs["id"])}
    assert prog["ann"]["judged"] == 1 and prog["ann"]["skipped"] == 1
    assert prog["bob"]["judged"] == 0 and prog["bob"]["assigned"] == 6
    with pytest.raises(ValueError, match="verdict 'C' is unknown"):
        actions.judge_item(_ctx(store), second["id"], "ann", "C")
    with pytest.raises(ValueError, match="analyst's name"):
        actions.judge_item(_ctx(store), second["id"], " ", "A")
    with pytest.raises(ValueError, match="inconsistent"):
        actions.judge_item(_ctx(store), second["id"], "ann", "inconsistent")  # judges only
    with pytest.raises(ValueError, match="ranking must order each of the 2"):
        actions.judge_item(_ctx(store), second["id"], "ann", "ranking", ranking=[0, 0])
    assert len(S.judgements(store, set_id=cs["id"], latest=False)) == 1


def test_eight_threads_of_100_judgements_lose_none(store):
    cs = _set(store, n=100, analysts=[f"a{i}" for i in range(8)], overlap=1.0, name="busy")
    items = S.set_items(store, cs["id"])
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            for it in items:
                S.record_judgement(store, it["id"], who, "A")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.scalar("SELECT count(*) FROM comparisons") == 800
    assert store.scalar("SELECT count(DISTINCT annotator) FROM comparisons") == 8


def test_export_drops_ties_inconsistent_identical_and_disagreement(store):
    cs = _set(store, n=6)
    items = S.set_items(store, cs["id"])
    by_prompt = {it["prompt"][0]["content"]: it for it in items}
    # q0 identical texts; q1 both say good; q2 tie; q3 analysts disagree; q4 both_bad;
    # q5 one analyst decides
    S.record_judgement(store, by_prompt["q0"]["id"], "ann", "A")
    for who in ("ann", "bob"):
        S.record_judgement(store, by_prompt["q1"]["id"], who, _good(by_prompt["q1"]))
        S.record_judgement(store, by_prompt["q2"]["id"], who, "tie")
        S.record_judgement(store, by_prompt["q4"]["id"], who, "both_bad")
    S.record_judgement(store, by_prompt["q3"]["id"], "ann", "A")
    S.record_judgement(store, by_prompt["q3"]["id"], "bob", "B")
    bad = "B" if _good(by_prompt["q5"]) == "A" else "A"
    S.record_judgement(store, by_prompt["q5"]["id"], "ann", bad)
    S.record_judgement(store, by_prompt["q5"]["id"], "ann", _good(by_prompt["q5"]))  # re-judged
    pairs, dropped = pairs_from_judgements(S.judgements(store, set_id=cs["id"]))
    assert dropped == {"identical": 1, "tie": 1, "disagreement": 1, "both_bad": 1}
    assert sorted(p["prompt"][0]["content"] for p in pairs) == ["q1", "q5"]
    assert all(p["chosen"][0]["content"].startswith("good") for p in pairs)
    v = actions.build_preference_set(_ctx(store), "prefs", ["cmp"])
    assert v["number"] == 1 and v["n_pairs"] == 2 and v["note"] == "from cmp"
    assert v["dropped"] == dropped
    unique, digest, duplicates = version_rows(pairs + pairs)
    assert (len(unique), digest, duplicates) == (2, v["hash"], 2)
    with pytest.raises(AlreadyDone, match="prefs v1 already holds these 2 pairs"):
        actions.build_preference_set(_ctx(store), "prefs", ["cmp"])
    assert S.latest_version(store, "prefs")["number"] == 1
    assert S.resolve_preference_version(store, "prefs", 1)["id"] == v["id"]
    with pytest.raises(S.PrefsNotFound, match="no version 9"):
        S.resolve_preference_version(store, "prefs", 9)


def test_inconsistent_judge_rows_are_not_wins(store):
    cs = _set(store, n=3)
    items = S.set_items(store, cs["id"])
    chunk = "".join(
        json.dumps({"item_id": it["id"], "verdict": v, "model": "m", "t": 1.0}) + "\n"
        for it, v in zip(items, ["inconsistent", "A", "tie"], strict=True)
    )
    with store.transaction() as cur:
        assert S.ingest_judgements(cur, "judge-1", chunk.encode()) == 3
    with store.transaction() as cur:  # a second pass adds nothing
        S.ingest_judgements(cur, "judge-1", chunk.encode())
    rows = S.judgements(store, source="judge")
    assert len(rows) == 3
    assert [r["winner"] for r in rows if r["verdict"] == "inconsistent"] == [None]
    bad = b'{"item_id": "nope", "verdict": "A"}\n'
    with (
        pytest.raises(ValueError, match="row 1: no comparison item 'nope'"),
        store.transaction() as cur,
    ):
        S.ingest_judgements(cur, "judge-2", bad)
    pair = items[0]["id"]  # a judge's ranking must fit its item; a bad one stores nothing
    for row, why in (
        ({"verdict": "ranking", "ranking": [1, 1]}, "row 1: a ranking must order each of the 2"),
        ({"verdict": "ranking"}, "row 1: a ranking must order each"),
    ):
        line = json.dumps({"item_id": pair, "model": "m2", "t": 2.0, **row}).encode() + b"\n"
        with pytest.raises(ValueError, match=why), store.transaction() as cur:
            S.ingest_judgements(cur, "judge-3", line)
    assert len(S.judgements(store, source="judge")) == 3


HH = [
    {
        "chosen": "\n\nHuman: How do I reset my password?\n\nAssistant: Open Settings, then "
        "Security, and choose Reset password.",
        "rejected": "\n\nHuman: How do I reset my password?\n\nAssistant: I don't know.",
    },
    {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Export my board"
        "\n\nAssistant: Use Board menu > Export > CSV.",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Export my "
        "board\n\nAssistant: Boards cannot be exported.",
    },
]


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_import_hh_rlhf_sample(tmp_path, store):
    pairs, dropped = import_rows(_write(tmp_path / "hh.jsonl", HH), "hh-rlhf")
    assert dropped == {}
    assert pairs[0]["prompt"] == [{"role": "user", "content": "How do I reset my password?"}]
    assert pairs[0]["rejected"] == [{"role": "assistant", "content": "I don't know."}]
    assert [m["role"] for m in pairs[1]["prompt"]] == ["user", "assistant", "user"]
    assert pairs[1]["chosen"][0]["content"] == "Use Board menu > Export > CSV."
    v = S.add_preference_version(store, "hh", *version_rows(pairs)[:2])
    rows = [json.loads(line) for line in open(_export(store, v, tmp_path))]
    assert rows[1]["prompt"][2]["content"] == "Export my board"


def _export(store, v, tmp_path):
    path = tmp_path / "out.jsonl"
    assert write_dpo_jsonl(S.version_pairs(store, v["id"]), path) == v["n_pairs"]
    return path


def test_import_errors_name_the_bad_lines(tmp_path):
    bad = [
        HH[0],
        {
            "chosen": "\n\nHuman: a\n\nAssistant: b",
            "rejected": "\n\nHuman: different\n\nAssistant: c",
        },
        "{not json",
        {"chosen": "no markers", "rejected": "x"},
    ]
    with pytest.raises(InvalidPairs, match=r"hh.jsonl line 3: not JSON"):
        import_rows(_write(tmp_path / "hh.jsonl", bad), "hh-rlhf")
    with pytest.raises(InvalidPairs) as err:
        import_rows(_write(tmp_path / "hh.jsonl", [bad[0], bad[1], bad[3]]), "hh-rlhf")
    assert "line 2: chosen and rejected do not share" in str(err.value)
    assert "line 3: transcript does not start" in str(err.value)
    with pytest.raises(InvalidPairs, match="line 1: missing 'rejected'"):
        import_rows(_write(tmp_path / "d.jsonl", [{"prompt": "p", "chosen": "c"}]), "dpo-jsonl")


def test_import_ratings_and_dpo_jsonl(tmp_path):
    ratings = [
        {
            "prompt": "q1",
            "responses": [
                {"text": "ok", "rating": 3},
                {"text": "great", "rating": 5},
                {"text": "bad", "rating": 1},
            ],
        },
        {"prompt": "q2", "responses": [{"text": "x", "rating": 2}, {"text": "y", "rating": 2}]},
    ]
    pairs, dropped = import_rows(_write(tmp_path / "r.jsonl", ratings), "ratings")
    assert dropped == {"tie": 1}
    assert pairs[0]["chosen"][0]["content"] == "great"
    assert pairs[0]["rejected"][0]["content"] == "bad"
    with pytest.raises(InvalidPairs, match="line 1: response 2 needs 'text'"):
        import_rows(
            _write(
                tmp_path / "r.jsonl",
                [
                    {
                        "prompt": "q",
                        "responses": [{"text": "a", "rating": 1}, {"text": "b", "rating": "high"}],
                    }
                ],
            ),
            "ratings",
        )
    dpo = [
        {
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        },
        {"prompt": "q2", "chosen": "same", "rejected": "same"},
    ]
    pairs, dropped = import_rows(_write(tmp_path / "d.jsonl", dpo), "dpo-jsonl")
    assert len(pairs) == 1 and dropped == {"identical": 1}
