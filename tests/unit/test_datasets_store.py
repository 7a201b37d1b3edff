"""The dataset store: immutable versions with content hashes, all-or-nothing validation."""

from __future__ import annotations

import json

import pytest

from backend.store import datasets as ds


def chat(q: str, a: str, system: str | None = None) -> dict:
    msgs = [{"role": "system", "content": system}] if system else []
    return {
        "messages": msgs + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    }


def test_create_add_resolve_and_list(store):
    made = ds.create_dataset(store, "support", recipe={"task": "answer"})
    assert made["name"] == "support" and made["recipe"] == {"task": "answer"}
    with pytest.raises(ds.DatasetExists):
        ds.create_dataset(store, "support")
    v1 = ds.add_version(
        store, "support", [chat("a?", "A."), {**chat("b?", "B."), "topic": "t"}], note="first"
    )
    assert v1["number"] == 1 and v1["n_examples"] == 2 and len(v1["hash"]) == 64
    v2 = ds.add_version(
        store, "support", [chat("b?", "B."), chat("c?", "C.")], parent_version_id=v1["id"]
    )
    assert ds.resolve_version(store, "support")["id"] == v2["id"]
    assert ds.resolve_version(store, "support", 1)["id"] == v1["id"]
    assert ds.resolve_version(store, "support", "v1")["id"] == v1["id"]
    assert ds.resolve_version(store, "support", v2["id"])["number"] == 2
    assert v1["hash"] != v2["hash"]
    items = ds.version_examples(store, v1["id"])
    assert [e["messages"][0]["content"] for e in items] == ["a?", "b?"]
    assert items[1]["topic"] == "t"
    # the example shared by both versions is stored once
    assert store.scalar("SELECT count(*) FROM examples") == 3
    listed = ds.list_datasets(store)
    assert listed[0]["name"] == "support" and listed[0]["versions"] == 2
    assert listed[0]["examples"] == 2
    assert [v["number"] for v in ds.list_versions(store, "support")] == [1, 2]


def test_same_content_same_hash_and_ids(store):
    ds.create_dataset(store, "a")
    ds.create_dataset(store, "b")
    va = ds.add_version(store, "a", [chat("x", "y"), chat("x", "y")])
    vb = ds.add_version(store, "b", [chat("x", "y")])
    assert va["hash"] == vb["hash"] and va["n_examples"] == 1
    assert va["duplicates_dropped"] == 1


def test_invalid_examples_store_nothing_and_name_rows(store):
    ds.create_dataset(store, "d")
    bad = [
        chat("ok", "fine"),
        {"messages": [{"role": "user", "content": "no answer"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "x"}]},
        {"messages": "text"},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
    ]
    with pytest.raises(ds.InvalidExamples) as err:
        ds.add_version(store, "d", bad)
    text = str(err.value)
    assert "row 2: no assistant turn" in text and "row 3" in text and "row 5" in text
    assert "row 1:" not in text
    assert store.scalar("SELECT count(*) FROM examples") == 0
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0


def test_latest_and_find(store):
    assert ds.find_dataset(store, "x") is None
    made = ds.create_dataset(store, "x")
    assert ds.find_dataset(store, "x")["id"] == made["id"]
    assert ds.latest_version(store, "x") is None
    v = ds.add_version(store, "x", [chat("q", "a")])
    assert ds.latest_version(store, made["id"])["id"] == v["id"]


def test_missing_things_are_named(store):
    with pytest.raises(ds.DatasetNotFound, match="nope"):
        ds.resolve_version(store, "nope")
    ds.create_dataset(store, "empty")
    with pytest.raises(ds.DatasetNotFound, match="no versions"):
        ds.resolve_version(store, "empty")
    ds.add_version(store, "empty", [chat("q", "a")])
    with pytest.raises(ds.DatasetNotFound, match="7"):
        ds.resolve_version(store, "empty", 7)
    with pytest.raises(ValueError, match="not allowed"):
        ds.create_dataset(store, "bad name!")


def test_write_version_jsonl(store, tmp_path):
    ds.create_dataset(store, "w")
    v = ds.add_version(store, "w", [chat("q1", "a1"), chat("q2", "a2")])
    out = tmp_path / "job" / "data.jsonl"
    assert ds.write_version_jsonl(store, v["id"], out) == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(lines[0]) == {"id", "messages"} and lines[1]["messages"][0]["content"] == "q2"
    with pytest.raises(ds.DatasetNotFound):
        ds.write_version_jsonl(store, "dsv-missing", out)


def test_search_examples(store):
    ds.create_dataset(store, "s")
    v = ds.add_version(
        store,
        "s",
        [
            {**chat("Gantt chart?", "Use the timeline."), "topic": "gantt"},
            {**chat("Invoice?", "Billing page."), "topic": "billing"},
        ],
    )
    assert len(ds.search_examples(store, v["id"], text="gantt")) == 1
    assert len(ds.search_examples(store, v["id"], topic="billing")) == 1
    assert len(ds.search_examples(store, v["id"])) == 2
