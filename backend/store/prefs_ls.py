"""Label Studio links of comparison sets and the judgements pulled back from it.

A pushed set remembers its project (one per set) and the task of each item. A pulled annotation
is stored in `comparisons` under the id `ls:<project>:<annotation>` with the Label Studio ids in
`detail`, so pulling again updates a changed annotation in place and adds nothing otherwise.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from backend.auth import Actor, require
from backend.prefs import pairs as P
from backend.store.db import Store
from backend.store.prefs import get_item, now
from backend.store.users import audit, studio_names


def set_project(
    store: Store, set_id: str, url: str, project_id: int, task_ids: dict[str, int]
) -> None:
    """Record the project a set was pushed to and each item's task, in one transaction."""
    with store.transaction() as cur:
        if cur.execute("SELECT 1 FROM comparison_set_ls WHERE set_id = ?", [set_id]).fetchone():
            raise ValueError(f"comparison set {set_id} is already linked to a Label Studio project")
        cur.execute(
            "INSERT INTO comparison_set_ls VALUES (?, ?, ?, ?)", [set_id, url, project_id, now()]
        )
        cur.executemany(
            "INSERT INTO comparison_item_ls VALUES (?, ?, ?)",
            [[item, set_id, task] for item, task in task_ids.items()],
        )


def get_project(store: Store, set_id: str) -> dict | None:
    """{url, project_id, pushed, tasks} of a pushed set, or None."""
    rows = store.rows("SELECT * FROM comparison_set_ls WHERE set_id = ?", [set_id])
    if not rows:
        return None
    tasks = store.rows("SELECT item_id, task_id FROM comparison_item_ls WHERE set_id = ?", [set_id])
    return {
        "url": rows[0]["url"],
        "project_id": rows[0]["project_id"],
        "pushed": rows[0]["pushed"].isoformat(),
        "tasks": {t["item_id"]: t["task_id"] for t in tasks},
    }


def _ts(value: Any) -> datetime:
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    return now()


def upsert_ls_judgements(
    store: Store, set_id: str, rows: list[dict], *, actor: Actor | None = None
) -> dict[str, int]:
    """Insert or update pulled judgements by id, all in one transaction.

    Each row: id, item_id, annotator, verdict, ranking (or None), detail (with `updated`).
    Every row is checked against its item first; a bad one raises ValueError and stores none.
    An annotator whose e-mail a studio user holds is stored as that username (`studio_names`),
    and a stored row under another name is updated, so setting an e-mail re-attributes.
    Returns counts new / updated / unchanged. Pulling needs the rank permission."""
    require(actor, "rank")
    checked = []
    for r in rows:
        item = get_item(store, r["item_id"])
        if item["set_id"] != set_id:
            raise ValueError(f"annotation {r['id']}: item {r['item_id']} is not in set {set_id}")
        try:
            P.check_verdict(r["verdict"], len(item["responses"]), r.get("ranking"))
        except ValueError as exc:
            raise ValueError(f"annotation {r['id']} on item {r['item_id']}: {exc}") from exc
        checked.append((r, P.winner(item["responses"], r["verdict"])))
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    with store.transaction() as cur:
        names = studio_names(cur, [r["annotator"] for r, _ in checked])
        for r, win in checked:
            r = {**r, "annotator": names[r["annotator"]]}  # the studio username when mapped
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
    if counts["new"] or counts["updated"]:
        audit(store, actor, "prefs.ls_pull", set_id, counts)
    return counts
