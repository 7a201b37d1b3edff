"""Seed a workspace for a team of three: accounts, a scored review batch (whose least certain
example is an HTML/script probe), a comparison set assigned to the analyst, two finished runs
for Compare, and the tiny model in models/tiny-llama so no demo job is queued.

    seed_team(Workspace(path).ensure())  # before the dashboard starts: it then holds the DB
"""

from __future__ import annotations

import json

from backend.action import Ctx
from backend.config import Settings
from backend.prefs import actions as prefs_actions
from backend.prefs.pairs import build_items
from backend.review import actions as review_actions
from backend.review.flagging import FlagPolicy
from backend.store import Store
from backend.store import datasets as ds
from backend.store import review as rstore
from backend.store.users import add_user
from backend.workspace import Workspace, atomic_write_text
from tests.support.seed_runs import seed_runs

PASSWORD = "correct horse battery"  # test accounts only
TEAM = {"rita": "reviewer", "ann": "analyst", "lee": "lead"}
PROBE = "<script>window.__probe=1</script><b>bold</b>"
DATASET = "support"
COMPARISON_SET = "cmp"


def _review_batch(store: Store) -> str:
    """A version of six examples scored by a pretend score job; the probe scores highest, so
    it is the first item a reviewer sees."""
    ds.create_dataset(store, DATASET)
    examples = [
        {
            "messages": [
                {"role": "user", "content": PROBE},
                {"role": "assistant", "content": "That is markup, shown as text."},
            ]
        }
    ]
    examples += [
        {
            "messages": [
                {"role": "user", "content": f"How do I archive project {i}?"},
                {"role": "assistant", "content": "Open it, then Archive."},
            ]
        }
        for i in range(5)
    ]
    version = ds.add_version(store, DATASET, examples)
    rows = []
    for e in ds.version_examples(store, version["id"]):
        probe = e["messages"][0]["content"] == PROBE
        rows.append(
            {
                "example_id": e["id"],
                "method": "nll",
                "model": "tiny",
                "score": 9.0 if probe else float(len(rows)),
                "version_id": version["id"],
                "dataset": DATASET,
            }
        )
    with store.transaction() as cur:
        rstore.insert_scores(
            cur, "job-score-seed", "".join(json.dumps(r) + "\n" for r in rows).encode()
        )
    batch = review_actions.create_batch(
        Ctx(store=store, ws=Workspace(store.path.parent), settings=Settings(), actor=None),
        DATASET,
        "job-score-seed",
        FlagPolicy(kind="top_k", value=2, qc_share=0),
    )
    return batch["id"]


def _comparison_set(store: Store, ws: Workspace, analyst: str) -> None:
    outputs = {
        "run-a": {f"How do I share board {i}?": f"Open Share on board {i}." for i in range(3)},
        "run-b": {
            f"How do I share board {i}?": f"Boards cannot be shared ({i})." for i in range(3)
        },
    }
    prefs_actions.create_comparison_set(
        Ctx(store=store, ws=ws, settings=Settings(), actor=None),
        COMPARISON_SET,
        items=build_items(outputs, seed=0),
        analysts=[analyst],
        overlap=0.0,
    )


def seed_team(ws: Workspace) -> dict:
    """Everything the per-role browser test needs; returns names to look for."""
    from backend.train.demo_model import build_tiny_model

    ws.ensure()
    build_tiny_model(ws.models / "tiny-llama")
    atomic_write_text(ws.root / "demo.json", json.dumps({"train_job": "skipped: seeded"}))
    seed_runs(ws, 2, steps=20)
    store = Store.open(ws.db_path)
    try:
        for name, role in TEAM.items():
            add_user(store, name, PASSWORD, role)
        batch_id = _review_batch(store)
        _comparison_set(store, ws, next(n for n, r in TEAM.items() if r == "analyst"))
    finally:
        store.close()
    return {"batch_id": batch_id, "users": dict(TEAM), "password": PASSWORD}
