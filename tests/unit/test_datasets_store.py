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


def _generated(store, job_id: str, dataset: str, examples: list[dict], qc: list[str]) -> dict:
    """A generate job's result line, ingested as the dashboard does: a new version and its
    QC sample."""
    from backend.store import synth as sstore

    line = {"dataset": dataset, "examples": examples, "qc": qc, "qc_share": 0.07, "report": {}}
    with store.transaction() as cur:
        sstore.ingest_result(cur, job_id, (json.dumps(line) + "\n").encode())
    return ds.resolve_version(store, dataset)


def _sample(store, version_id: str, status: str | None = "pending") -> list[str]:
    from backend.store import synth as sstore

    return [r["example_id"] for r in sstore.qc_samples(store, version_id=version_id, status=status)]


def test_the_qc_sample_of_a_generation_follows_the_dataset_to_newer_versions(store):
    from backend.store import synth as sstore
    from backend.store.review import pending_qc

    ds.create_dataset(store, "gen")
    made = [{**chat(f"Question {i}?", f"Answer {i}."), "topic": "billing"} for i in range(6)]
    ids = [ds.example_id(e["messages"]) for e in made]
    v1 = _generated(store, "job-1", "gen", made, qc=[ids[0], ids[1], ids[2]])
    assert sorted(_sample(store, v1["id"], status=None)) == sorted(ids[:3])

    # an edit of a sampled example: its edit takes its place in the newer version's sample
    items = ds.version_examples(store, v1["id"])
    edited = {
        "messages": items[0]["messages"][:-1] + [{"role": "assistant", "content": "Better."}],
        "topic": "billing",
        "parent_id": ids[0],
    }
    v2 = ds.add_version(store, "gen", [edited, *items[1:]], parent_version_id=v1["id"])
    edit_id = ds.example_id(edited["messages"])
    assert v2["qc_carried"] == 3
    assert sorted(_sample(store, v2["id"])) == sorted([edit_id, ids[1], ids[2]])
    # what the Review page flags on the newest version still holds the generation's sample
    assert sorted(pending_qc(store, v2["id"])) == sorted([edit_id, ids[1], ids[2]])
    rows = {r["example_id"]: r for r in sstore.qc_samples(store, version_id=v2["id"])}
    assert rows[edit_id]["job_id"] == "job-1" and rows[edit_id]["share"] == 0.07

    # a removed example leaves the sample; a reviewed one stays reviewed
    cur = store.cursor()
    cur.execute("UPDATE qc_samples SET status = 'reviewed' WHERE example_id = ?", [ids[2]])
    cur.close()
    v2_items = ds.version_examples(store, v2["id"])
    kept = [e for e in v2_items if e["id"] != ids[1]]
    v3 = ds.add_version(store, "gen", kept, parent_version_id=v2["id"], note="drop one")
    assert _sample(store, v3["id"]) == [edit_id]
    assert _sample(store, v3["id"], status="reviewed") == [ids[2]]

    # a version made without naming a parent (an import) follows the newest one
    v4 = ds.add_version(store, "gen", [*kept, chat("New?", "New.")])
    assert _sample(store, v4["id"]) == [edit_id]
    # a later generation keeps the earlier sample and adds its own
    more = [{**chat("Fresh?", "Fresh answer."), "topic": "exports"}]
    fresh = ds.example_id(more[0]["messages"])
    v5 = _generated(store, "job-2", "gen", more, qc=[fresh])
    assert sorted(_sample(store, v5["id"])) == sorted([edit_id, fresh])
    # the old versions' samples are as they were
    assert sorted(_sample(store, v1["id"], status=None)) == sorted(ids[:3])
