"""A dataset with scored examples and a flagged review batch, as the review tests seed them
(scores inserted through the ingest handler, as a score job's output would be)."""

from __future__ import annotations

import json
from collections.abc import Callable

from backend.action import Ctx
from backend.config import Settings
from backend.review import actions
from backend.review.flagging import FlagPolicy
from backend.store import datasets as ds
from backend.store import review as rstore
from backend.store.db import Store
from backend.workspace import Workspace


def scored_dataset(
    store: Store,
    dataset: str = "support",
    n: int = 12,
    *,
    job_id: str = "score-1",
    methods: tuple[str, ...] = ("nll",),
    score: Callable[[int], float] = lambda i: 1.0 + i,
    question: str = "q{i}",
    answer: str = "a{i}",
    note: str | None = None,
) -> tuple[dict, list[str]]:
    """`n` single-turn examples (texts from the templates, `{i}` their position) in a new
    dataset, each scored `score(i)` under every method by `job_id` (with `note`, formatted
    like the texts, as the judge's rationale). Returns (version, ids)."""
    ds.create_dataset(store, dataset)
    ver = ds.add_version(
        store,
        dataset,
        [
            {
                "messages": [
                    {"role": "user", "content": question.format(i=i)},
                    {"role": "assistant", "content": answer.format(i=i)},
                ]
            }
            for i in range(n)
        ],
    )
    ids = [e["id"] for e in ds.version_examples(store, ver["id"])]
    rows = "".join(
        json.dumps(
            {
                "example_id": e,
                "method": m,
                "model": "tiny",
                "score": score(i),
                "version_id": ver["id"],
                "dataset": dataset,
                **({"rationale": note.format(i=i)} if note else {}),
            }
        )
        + "\n"
        for i, e in enumerate(ids)
        for m in methods
    )
    with store.transaction() as cur:
        rstore.insert_scores(cur, job_id, rows.encode())
    return ver, ids


def flagged_batch(
    store: Store,
    dataset: str,
    job_id: str,
    top: int,
    qc_share: float = 0.0,
    method: str = "nll",
) -> dict:
    """A review batch of the `top` highest-scored examples (plus a QC share), flagged by the
    shell through the review action (the workspace is the store's folder)."""
    ctx = Ctx(store=store, ws=Workspace(store.path.parent), settings=Settings(), actor=None)
    policy = FlagPolicy(kind="top_k", value=top, qc_share=qc_share)
    return actions.create_batch(ctx, dataset, job_id, policy, method=method)
