"""Label Studio as a second channel for comparison sets: a set as a project, the analysts'
annotations back as judgements. Only the Label Studio side: the actions
(backend/prefs/actions.py) check roles, claim the push, and store what comes back.

Pairwise sets use the Pairwise tag (left = response A, right = response B, shown under blind
labels only) plus a Choices for "Tie" / "Both bad"; a Choices answer wins over a click on a side.
Ranking sets use a List of the N answers with a Ranker (drag into order, best first); the
Ranker's result lists item ids in the new order, and untouched lists are saved in display order.
Sources never leave the studio: a task carries the prompt, the texts and the item id.

A pull reads the full JSON export (annotation ids, authors and times) and turns every
annotation into a human judgement keyed `ls:<project>:<annotation>` with the annotator's email
(or username); the action writes them in one transaction only after all were parsed and
checked, so pulling twice adds nothing, an edited annotation updates its row, and a failed
pull changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.integrations.labelstudio.client import LabelStudioError, call, client, full_export

__all__ = [
    "LabelStudioError",
    "label_config",
    "create_project",
    "fetch_annotations",
    "parse_annotation",
    "task_payload",
]

TIE, BOTH_BAD = "Tie", "Both bad"


def label_config(mode: str, n_responses: int = 2) -> str:
    """The labelling config of a pairwise or ranking project."""
    prompt = '<Header value="Prompt"/><Text name="prompt" value="$prompt"/>'
    if mode == "pairwise":
        return (
            "<View>" + prompt + '<Header value="Click the better response"/>'
            '<Pairwise name="pick" toName="a,b"/>'
            '<View style="display: flex; gap: 1em;">'
            '<View style="flex: 50%;"><Header value="Response A"/><Text name="a" value="$a"/>'
            "</View>"
            '<View style="flex: 50%;"><Header value="Response B"/><Text name="b" value="$b"/>'
            "</View></View>"
            '<Header value="Or, when neither wins"/>'
            '<Choices name="other" toName="prompt" choice="single" showInline="true">'
            f'<Choice value="{TIE}"/><Choice value="{BOTH_BAD}"/></Choices>'
            "</View>"
        )
    if mode == "ranking":
        return (
            "<View>"
            + prompt
            + f'<Header value="Drag the {n_responses} answers into order, best first"/>'
            '<List name="answers" value="$answers" title="Answers"/>'
            '<Ranker name="rank" toName="answers"/>'
            "</View>"
        )
    raise ValueError(f"mode {mode!r} is unknown; use pairwise or ranking")


def _prompt_text(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def task_payload(item: dict, mode: str) -> dict:
    """Task data of one item: blind labels only, never the sources."""
    data: dict[str, Any] = {
        "prompt": _prompt_text(item["prompt"]),
        "item_id": item["id"],
        "set_id": item["set_id"],
    }
    texts = [r["text"] for r in item["responses"]]
    if mode == "pairwise":
        data.update(a=texts[0], b=texts[1])
    else:
        data["answers"] = [
            {"id": f"answer-{i + 1}", "title": f"Answer {i + 1}", "body": t}
            for i, t in enumerate(texts)
        ]
    return {"data": data}


def create_project(url: str, token: str, cs: dict, items: list[dict], *, raters: int = 2) -> dict:
    """Create the project of comparison set `cs` and import each item as a task; returns
    {project_id, task_ids: {item id: task id}}. LabelStudioError when Label Studio fails.

    The set's overlap share becomes the project's overlap cohort: that share of tasks is
    asked of `raters` annotators, so agreement can be measured as on the page."""
    n = max(len(i["responses"]) for i in items)
    ls = client(url, token)
    overlap = float(cs["overlap"])
    project = call(
        "creating the project",
        url,
        lambda: ls.projects.create(
            title=f"{cs['name']} ({cs['mode']})"[:50],
            label_config=label_config(cs["mode"], n),
            maximum_annotations=max(raters, 1) if overlap > 0 else 1,
            overlap_cohort_percentage=int(round(overlap * 100)),
            show_collab_predictions=False,
            description=f"Blind {cs['mode']} comparison set {cs['name']} from the studio: sources "
            "are hidden and positions shuffled.",
        ),
    )
    tasks = [task_payload(i, cs["mode"]) for i in items]
    call("importing tasks", url, lambda: ls.projects.import_tasks(project.id, request=tasks))
    listed = call("listing tasks", url, lambda: list(ls.tasks.list(project=project.id)))
    return {"project_id": project.id, "task_ids": {t.data["item_id"]: t.id for t in listed}}


def _annotator(completed_by: Any, users: dict[int, dict]) -> str:
    if isinstance(completed_by, dict):
        return (
            completed_by.get("email")
            or completed_by.get("username")
            or f"ls-user-{completed_by.get('id')}"
        )
    u = users.get(completed_by) or {}
    return u.get("email") or u.get("username") or f"ls-user-{completed_by}"


def parse_annotation(ann: dict, mode: str, n_responses: int) -> tuple[str, list[int] | None]:
    """(verdict, ranking) of one export annotation; ValueError says why it is unusable."""
    if ann.get("was_cancelled"):
        raise ValueError("skipped in Label Studio")
    side, other, order = None, None, None
    for r in ann.get("result") or []:
        value = r.get("value") or {}
        if r.get("type") == "pairwise" or r.get("from_name") == "pick":
            side = value.get("selected")
        elif r.get("from_name") == "other" and value.get("choices"):
            other = value["choices"][0]
        elif r.get("type") == "ranker" or r.get("from_name") == "rank":
            ranked = value.get("ranker")
            if isinstance(ranked, dict):
                ranked = ranked.get("rank", next(iter(ranked.values()), None))
            order = ranked
    if mode == "pairwise":
        if other in (TIE, BOTH_BAD):
            return ("tie" if other == TIE else "both_bad"), None
        if side in ("left", "right"):
            return ("A" if side == "left" else "B"), None
        raise ValueError("no side picked and no tie / both bad")
    if not isinstance(order, list):
        raise ValueError("no ranking in the result")
    ids = [f"answer-{i + 1}" for i in range(n_responses)]
    if sorted(order) != sorted(ids):
        raise ValueError(f"the ranking {order} does not order each answer once")
    return "ranking", [ids.index(x) for x in order]


def fetch_annotations(
    url: str,
    token: str,
    project_id: int,
    mode: str,
    sizes: dict[str, int],
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Every annotation of a project as a judgement row, from the full JSON export.

    `sizes`: {item id: number of responses} of the set. Returns {rows, skipped, tasks}: rows
    of {id, item_id, annotator, verdict, ranking, detail}, and the annotations left out with
    why (skipped in Label Studio, no side picked, a task of another set...)."""
    ls = client(url, token)
    stage = on_stage or (lambda _s: None)
    stage("users")
    users = call("listing users", url, lambda: list(ls.users.list()))
    by_id = {u.id: {"email": u.email, "username": getattr(u, "username", None)} for u in users}
    exported = full_export(ls, url, project_id, stage)
    rows, skipped = [], []
    for task in exported:
        item_id = (task.get("data") or {}).get("item_id")
        for ann in task.get("annotations") or []:
            if item_id not in sizes:
                skipped.append(
                    {
                        "annotation": ann.get("id"),
                        "why": f"task {task.get('id')} names no item of this set",
                    }
                )
                continue
            try:
                verdict, ranking = parse_annotation(ann, mode, sizes[item_id])
            except ValueError as exc:
                skipped.append({"annotation": ann.get("id"), "why": str(exc)})
                continue
            rows.append(
                {
                    "id": f"ls:{project_id}:{ann['id']}",
                    "item_id": item_id,
                    "annotator": _annotator(ann.get("completed_by"), by_id),
                    "verdict": verdict,
                    "ranking": ranking,
                    "detail": {
                        "channel": "label-studio",
                        "project_id": project_id,
                        "task_id": task.get("id"),
                        "annotation_id": ann["id"],
                        "created": ann.get("created_at"),
                        "updated": ann.get("updated_at"),
                    },
                }
            )
    return {"rows": rows, "skipped": skipped, "tasks": len(exported)}
