"""Versions at scale: the diff between two versions (added, removed, edited, with counts and a
sample) in SQL, and near-duplicate groups by MinHash + LSH (candidates, never all pairs)."""

from __future__ import annotations

import json
import random

from typer.testing import CliRunner

from backend.store import datasets as dstore
from backend.synth import minhash

WORDS = (
    "project task board sprint due date assignee label comment export invoice billing "
    "workspace member role permission archive filter view calendar timeline gantt"
).split()


def chat(q: str, a: str = "Open the menu and pick it.", **extra) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} | (
        extra
    )


def cli(*args: str):
    from backend.cli import app

    return CliRunner().invoke(app, list(args))


def test_diff_counts_added_removed_edited_with_samples(ws, store):
    dstore.create_dataset(store, "d")
    a, b, c = chat("Keep me?"), chat("Edit me?"), chat("Remove me?")
    v1 = dstore.add_version(store, "d", [a, b, c])
    ids = [e["id"] for e in dstore.version_examples(store, v1["id"])]
    edited = chat("Edit me?", "Edited answer.", parent_id=ids[1])
    v2 = dstore.add_version(store, "d", [a, edited, chat("New one?")], parent_version_id=v1["id"])
    from backend.store.dataset_diff import diff_versions

    d = diff_versions(store, v1, v2)
    assert d["counts"] == {"added": 1, "removed": 1, "edited": 1, "unchanged": 1}
    assert d["added"][0]["messages"][0]["content"] == "New one?"
    assert d["removed"][0]["id"] == ids[2]
    assert d["edited"][0]["old_id"] == ids[1]
    assert d["edited"][0]["new"][1]["content"] == "Edited answer."
    back = diff_versions(store, v2, v1)  # backwards nothing names a parent: no edits
    assert back["counts"] == {"added": 2, "removed": 2, "edited": 0, "unchanged": 1}
    store.close()
    r = cli("dataset", "diff", "d", "1", "v2")
    assert r.exit_code == 0, r.output
    assert "d v1 -> v2: 1 added, 1 removed, 1 edited, 1 unchanged" in r.output
    assert "+ " in r.output and "New one?" in r.output and "~ " in r.output
    r = cli("dataset", "diff", "d", "1", "--json")
    assert json.loads(r.output)["to"]["number"] == 2
    r = cli("dataset", "diff", "d", "7")
    assert r.exit_code == 1 and "no version '7'" in r.output


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(30)) + f" ticket {i}" for i in range(n)]


def test_minhash_finds_planted_near_duplicates_without_comparing_all_pairs():
    texts = _texts(3000)
    planted = []
    for k in range(0, 3000, 150):  # 20 near copies: one word changed
        words = texts[k].split()
        words[10] = "changed"
        planted.append((k, len(texts)))
        texts.append(" ".join(words))
    sigs = minhash.signatures(texts)
    candidates = minhash.candidate_pairs(sigs)
    assert len(candidates) < 2 * len(texts)  # all pairs would be 4.6 million
    found = {(i, j) for i, j, _ in minhash.near_duplicate_pairs(sigs, 0.6)}
    assert found == set(planted)


def test_dups_command_groups_a_versions_near_duplicates(ws, store):
    texts = _texts(200, seed=1)
    rows = [chat(t) for t in texts]
    twin = texts[7].split()
    twin[3] = "changed"
    rows += [chat(" ".join(twin)), chat(texts[7] + " please")]  # a group of three
    dstore.create_dataset(store, "dd")
    dstore.add_version(store, "dd", rows)
    store.close()
    r = cli("dataset", "dups", "dd", "--threshold", "0.7", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["examples"] == 202 and len(out["groups"]) == 1
    assert len(out["groups"][0]["ids"]) == 3 and out["groups"][0]["similarity"] >= 0.7
    r = cli("dataset", "dups", "dd", "--threshold", "0.7")
    assert "1 near-duplicate groups (3 of 202 examples)" in r.output
