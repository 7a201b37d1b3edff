"""Label Studio links of comparison sets and the judgements pulled back from it: SQL and row
mapping.

A pushed set remembers its project (one per set) and the task of each item. A push is claimed
first (a link row with project 0, in its own transaction) so two pushes of one set create one
project; the push then fills in the project, or releases the claim when it fails. A pulled
annotation is stored in `comparisons` under the id `ls:<project>:<annotation>` with the Label
Studio ids in `detail`, so pulling again updates a changed annotation in place and adds nothing
otherwise.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from backend.store.db import Store
from backend.store.prefs import get_item, now, winner_of
from backend.store.users import studio_names

PENDING = 0  # project id of a claimed push whose project is being created
STALE_CLAIM = timedelta(minutes=30)  # a claim this old was left by a push that died


def claim_push(store: Store, set_id: str, url: str) -> dict | None:
    """Claim the push of a set: None when claimed now, else the link row that stands in the
    way ({project_id, pushed, url}: a finished push, or one under way). A claim older than
    STALE_CLAIM (its process died) is taken over."""
    with store.transaction() as cur:
        row = cur.execute(
            "SELECT project_id, pushed, url FROM comparison_set_ls WHERE set_id = ?", [set_id]
        ).fetchone()
        if row is not None:
            if row[0] != PENDING or now() - row[1] < STALE_CLAIM:
                return {"project_id": row[0], "pushed": row[1].isoformat(), "url": row[2]}
            cur.execute(
                "UPDATE comparison_set_ls SET pushed = ?, url = ? WHERE set_id = ?",
                [now(), url, set_id],
            )
            return None
        cur.execute(
            "INSERT INTO comparison_set_ls VALUES (?, ?, ?, ?)", [set_id, url, PENDING, now()]
        )
    return None


def release_push(store: Store, set_id: str) -> None:
    """Drop an unfinished claim (the push failed): the set can be pushed again."""
    with store.transaction() as cur:
        cur.execute(
            "DELETE FROM comparison_set_ls WHERE set_id = ? AND project_id = ?", [set_id, PENDING]
        )


def finish_push(store: Store, set_id: str, project_id: int, task_ids: dict[str, int]) -> None:
    """Fill in a claimed push: the project and each item's task, in one transaction."""
    with store.transaction() as cur:
        cur.execute(
            "UPDATE comparison_set_ls SET project_id = ?, pushed = ? WHERE set_id = ?",
            [project_id, now(), set_id],
        )
        cur.executemany(
            "INSERT INTO comparison_item_ls VALUES (?, ?, ?)",
            [[item, set_id, task] for item, task in task_ids.items()],
        )


def get_project(store: Store, set_id: str) -> dict | None:
    """{url, project_id, pushed, tasks} of a pushed set, or None (also while a push of it is
    still under way)."""
    rows = store.rows(
        "SELECT * FROM comparison_set_ls WHERE set_id = ? AND project_id <> ?", [set_id, PENDING]
    )
    if not rows:
        return None
    tasks = store.rows("SELECT item_id, task_id FROM comparison_item_ls WHERE set_id = ?", [set_id])
    return {
        "url": rows[0]["url"],
        "project_id": rows[0]["project_id"],
        "pushed": rows[0]["pushed"].isoformat(),
        "tasks": {t["item_id"]: t["task_id"] for t in tasks},
    }


def project_link(store: Store, set_id: str) -> str | None:
    """The project's data manager URL of a pushed set, or None."""
    p = get_project(store, set_id)
    return f"{p['url']}/projects/{p['project_id']}/data" if p else None


def _ts(value: Any) -> datetime:
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return now()


def upsert_ls_judgements(store: Store, set_id: str, rows: list[dict]) -> dict[str, int]:
    """Insert or update pulled judgements (checked by the caller) by id, in one transaction.

    Each row: id, item_id, annotator, verdict, ranking (or None), detail (with `updated`).
    An annotator whose e-mail a studio user holds is stored as that username (`studio_names`),
    and a stored row under another name is updated, so setting an e-mail re-attributes.
    Returns counts new / updated / unchanged."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    with store.transaction() as cur:
        responses = {r["item_id"]: get_item(store, r["item_id"])["responses"] for r in rows}
        names = studio_names(cur, [r["annotator"] for r in rows])
        for r in rows:
            r = {**r, "annotator": names[r["annotator"]]}  # the studio username when mapped
            win = winner_of(responses[r["item_id"]], r["verdict"])
            ranking = json.dumps(r["ranking"]) if r.get("ranking") is not None else None
            detail = json.dumps(r["detail"])
            when = _ts(r["detail"].get("updated") or r["detail"].get("created"))
            old = cur.execute(
                "SELECT verdict, ranking, annotator, detail FROM comparisons WHERE id = ?",
                [r["id"]],
            ).fetchone()
            if old is None:
                cur.execute(
                    "INSERT INTO comparisons VALUES (?, ?, ?, ?, 'human', ?, ?, ?, NULL,"
                    " ?, NULL, ?)",
                    [
                        r["id"],
                        set_id,
                        r["item_id"],
                        r["annotator"],
                        r["verdict"],
                        ranking,
                        win,
                        detail,
                        when,
                    ],
                )
                counts["new"] += 1
            elif (old[0], json.loads(old[1] or "null"), old[2], json.loads(old[3] or "null")) != (
                r["verdict"],
                r.get("ranking"),
                r["annotator"],
                r["detail"],
            ):
                cur.execute(
                    "UPDATE comparisons SET annotator = ?, verdict = ?, ranking = ?,"
                    " winner = ?, detail = ?, created = ? WHERE id = ?",
                    [r["annotator"], r["verdict"], ranking, win, detail, when, r["id"]],
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
    return counts
