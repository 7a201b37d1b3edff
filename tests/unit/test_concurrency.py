"""Two people acting on the same item at once: nothing lost, nothing duplicated, each verdict
attributed; a role without the permission is refused by the backend itself."""

from __future__ import annotations

import threading

import pytest

from backend.auth import Actor, PermissionDenied
from backend.review import actions
from backend.review.verdicts import Verdict
from backend.store import review as rstore
from backend.store import users
from tests.support.seed_review import flagged_batch, scored_dataset


def _batch(store) -> tuple[str, str]:
    scored_dataset(store, n=6, job_id="job-score-1", score=float)
    batch = flagged_batch(store, "support", "job-score-1", 2)
    return batch["id"], rstore.batch_items(store, batch["id"])[0]["example_id"]


def _race(fn, n: int = 8) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_same_reviewer_submitting_twice_at_once_keeps_one_verdict(store, act):
    batch_id, example = _batch(store)
    rita = Actor("rita", "reviewer")
    errors = _race(
        lambda i: actions.record_verdict(
            act(rita),
            batch_id,
            Verdict(example_id=example, reviewer="rita", verdict="accept" if i % 2 else "reject"),
        )
    )
    assert len(errors) <= 7 and all("onflict" in str(e) for e in errors)
    rows = rstore.reviews(store, batch_id)
    assert len(rows) == 1 and rows[0]["reviewer"] == "rita"


def test_two_reviewers_on_one_item_each_keep_their_verdict(store, act):
    batch_id, example = _batch(store)
    names = ["rita", "raj"]
    errors = _race(
        lambda i: actions.record_verdict(
            act(Actor(names[i], "reviewer")),
            batch_id,
            Verdict(example_id=example, reviewer=names[i], verdict="accept"),
        ),
        n=2,
    )
    assert errors == []
    assert sorted(r["reviewer"] for r in rstore.reviews(store, batch_id)) == ["raj", "rita"]
    log = users.audit_rows(store, action="review.verdict")
    assert sorted(log["actor"]) == ["raj", "rita"]


def test_backend_refuses_roles_without_permission(store, act):
    batch_id, example = _batch(store)
    with pytest.raises(PermissionDenied, match="may not review"):
        actions.record_verdict(
            act(Actor("ana", "analyst")),
            batch_id,
            Verdict(example_id=example, reviewer="ana", verdict="accept"),
        )
    assert rstore.reviews(store, batch_id) == []
