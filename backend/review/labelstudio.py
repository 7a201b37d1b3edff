"""Label Studio sync through label-studio-sdk 2.x: push a review batch, pull verdicts back.

Push creates a project whose labelling config shows the instruction and the response and asks
accept / reject, issue categories and an optional corrected response. Each task carries a
prediction whose score is the model's certainty exp(-uncertainty), and the project samples by
lowest prediction score ("Uncertainty sampling"), so reviewers see the least certain first.
A share of tasks goes to two reviewers (overlap) so agreement can be measured.

Pull reads the full JSON export (not JSON_MIN: it keeps annotation ids, authors and times),
parses every annotation into a verdict keyed `ls:<annotation id>`, and only then writes them in
one transaction, so a server that dies mid-pull raises `LabelStudioError` and changes nothing.
The token is passed in by the caller at the point of use and never stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from backend.integrations.labelstudio.client import (
    call,
    client,
    full_export,
    reviewer_name,
)
from backend.review.verdicts import CATEGORIES
from backend.store import review as rstore
from backend.store.db import Store
from backend.store.users import audited

SAMPLING = "Uncertainty sampling"


def label_config(categories: list[str] = CATEGORIES, *, notes: bool = False) -> str:
    """The review project's labelling config; `notes` adds the judge's rationale below the
    response (tasks then carry `note`)."""
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in categories)
    note = '<Header value="LLM judge says"/><Text name="note" value="$note"/>' if notes else ""
    return (
        "<View>"
        '<Header value="Instruction"/><Text name="instruction" value="$instruction"/>'
        '<Header value="Response"/><Text name="response" value="$response"/>'
        f"{note}"
        '<Header value="Verdict"/>'
        '<Choices name="verdict" toName="response" choice="single" showInLine="true"'
        ' required="true"><Choice value="accept"/><Choice value="reject"/></Choices>'
        '<Header value="Issues"/>'
        f'<Choices name="issues" toName="response" choice="multiple">{choices}</Choices>'
        '<Header value="Corrected response (optional: makes a new example)"/>'
        '<TextArea name="corrected" toName="response" rows="6" maxSubmissions="1"'
        ' editable="true"/>'
        "</View>"
    )


def split_prompt(messages: list[dict]) -> tuple[str, str]:
    """Instruction text (every turn before the last answer) and the response text."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            prompt = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages[:i])
            return prompt, messages[i]["content"]
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages), ""


def certainty(score: float | None, method: str = "nll") -> float:
    """How sure the model (or judge) is of a response, 0-1: the prediction score Label
    Studio's uncertainty sampling orders tasks by. nll/entropy: exp(-score) (nats per token);
    judge_flaw (10 - a 1-10 rating): the rating's place between 1 and 10.

    >>> certainty(0.0), certainty(0.0, "judge_flaw"), certainty(9.0, "judge_flaw")
    (1.0, 1.0, 0.0)
    """
    if score is None or score < 0:
        return 0.5
    if method == "judge_flaw":
        return min(1.0, max(0.0, (9.0 - score) / 9.0))
    return math.exp(-score)


def task_payload(item: dict, batch_id: str, model: str | None, method: str = "nll") -> dict:
    instruction, response = split_prompt(item["messages"])
    score = item.get("score")
    sure = certainty(score, method)
    return {
        "data": {
            "instruction": instruction,
            "response": response,
            "example_id": item["example_id"],
            "batch_id": batch_id,
            "uncertainty": score,
            "reason": item["reason"],
            **({"note": item.get("note") or "(no note)"} if method.startswith("judge") else {}),
        },
        "predictions": [
            {
                "model_version": model or "studio",
                "score": sure,
                "result": [
                    {
                        "from_name": "verdict",
                        "to_name": "response",
                        "type": "choices",
                        "value": {"choices": ["accept" if sure >= 0.5 else "reject"]},
                    }
                ],
            }
        ],
    }


@audited("edit_data", "review.push", "batch_id")
def push_batch(
    store: Store,
    batch_id: str,
    url: str,
    token: str,
    *,
    overlap_share: float = 0.2,
    reviewers_per_overlap: int = 2,
) -> dict:
    """Create a project for the batch and import its items as tasks with predictions."""
    batch = rstore.get_batch(store, batch_id)
    if batch["ls_project_id"]:
        raise ValueError(
            f"batch {batch_id} is already in Label Studio project "
            f"{batch['ls_project_id']} at {batch['ls_url']}"
        )
    items = rstore.batch_items(store, batch_id)
    if not items:
        raise ValueError(f"batch {batch_id} has no items to push")
    ls = client(url, token)
    title = f"{batch['dataset']} review round {batch['round']} ({batch_id})"[:50]
    project = call(
        "creating the project",
        url,
        lambda: ls.projects.create(
            title=title,
            label_config=label_config(notes=batch["method"].startswith("judge")),
            sampling=SAMPLING,
            maximum_annotations=reviewers_per_overlap if overlap_share > 0 else 1,
            overlap_cohort_percentage=int(round(overlap_share * 100)),
            show_collab_predictions=False,
            model_version=batch["model"] or "studio",
            description=(
                f"Flagged by {batch['method']} under {batch['model']}; least certain first."
            ),
        ),
    )
    tasks = [task_payload(i, batch_id, batch["model"], batch["method"]) for i in items]
    call("importing tasks", url, lambda: ls.projects.import_tasks(project.id, request=tasks))
    listed = call("listing tasks", url, lambda: list(ls.tasks.list(project=project.id)))
    task_ids = {t.data["example_id"]: t.id for t in listed}
    rstore.set_project(store, batch_id, url, project.id, task_ids)
    return {
        "batch": batch_id,
        "project_id": project.id,
        "tasks": len(task_ids),
        "url": f"{url.rstrip('/')}/projects/{project.id}/data",
    }


def parse_annotation(ann: dict, example_id: str, reviewer: str) -> dict | None:
    """One export annotation as a verdict row; None for a skipped or empty annotation."""
    if ann.get("was_cancelled"):
        return None
    verdict, categories, corrected = None, [], None
    for r in ann.get("result") or []:
        value = r.get("value") or {}
        if r.get("from_name") == "verdict" and value.get("choices"):
            verdict = value["choices"][0]
        elif r.get("from_name") == "issues":
            categories = [c for c in value.get("choices", []) if c in CATEGORIES]
        elif r.get("from_name") == "corrected":
            text = "\n".join(value.get("text") or []).strip()
            corrected = text or None
    if corrected:
        verdict = "correct"
    if verdict not in ("accept", "reject", "correct"):
        return None
    return {
        "id": f"ls:{ann['id']}",
        "external_id": str(ann["id"]),
        "example_id": example_id,
        "reviewer": reviewer,
        "verdict": verdict,
        "categories": categories,
        "corrected": corrected,
        "source": "label-studio",
        "created": ann.get("created_at"),
        "updated": ann.get("updated_at"),
    }


@audited("review", "review.pull", "batch_id")
def pull_batch(
    store: Store, batch_id: str, url: str, token: str, on_stage: Callable[[str], None] | None = None
) -> dict:
    """Fetch the project's full JSON export and upsert its verdicts (idempotent)."""
    batch = rstore.get_batch(store, batch_id)
    if not batch["ls_project_id"]:
        raise ValueError(f"batch {batch_id} was not pushed to Label Studio yet")
    ls = client(url, token)
    stage = on_stage or (lambda _s: None)
    stage("users")
    users = call("listing users", url, lambda: list(ls.users.list()))
    emails = {u.id: u.email for u in users}
    exported = full_export(ls, url, batch["ls_project_id"], stage)
    rows, skipped, present = [], 0, set()
    for task in exported:
        example_id = (task.get("data") or {}).get("example_id")
        for ann in task.get("annotations") or []:
            present.add(f"ls:{ann.get('id')}")
            row = parse_annotation(ann, example_id, reviewer_name(ann.get("completed_by"), emails))
            if row is None or example_id is None:
                skipped += 1
            else:
                rows.append(row)
    stage("store")
    counts = rstore.upsert_reviews(store, batch_id, rows)
    # verdicts whose annotation is gone from the project were deleted in Label Studio
    stored = {r["id"] for r in rstore.reviews(store, batch_id) if r["source"] == "label-studio"}
    gone = rstore.remove_ls_reviews(store, sorted(stored - present), batch_id=batch_id)
    return {
        "batch": batch_id,
        "tasks": len(exported),
        "annotations": len(rows),
        "skipped": skipped,
        **counts,
        "removed": gone["removed"],
        "kept_deleted": gone["kept"],
    }


def progress(store: Store, batch_id: str) -> dict:
    """Per-reviewer counts and agreement on the items reviewed by two or more people."""
    from backend.review.verdicts import cohen_kappa, fleiss_kappa

    reviews = rstore.reviews(store, batch_id)
    per: dict[str, dict[str, int]] = {}
    by_item: dict[str, dict[str, str]] = {}
    for r in reviews:
        c = per.setdefault(r["reviewer"], {"accept": 0, "reject": 0, "correct": 0})
        c[r["verdict"]] += 1
        by_item.setdefault(r["example_id"], {})[r["reviewer"]] = r["verdict"]
    overlap = [v for v in by_item.values() if len(v) >= 2]
    pair_kappa = None
    if overlap and all(len(v) == 2 for v in overlap):
        a = [list(v.values())[0] for v in overlap]
        b = [list(v.values())[1] for v in overlap]
        pair_kappa = cohen_kappa(a, b)
    n_items = len(rstore.batch_items(store, batch_id))
    return {
        "items": n_items,
        "reviewed": len(by_item),
        "reviewers": per,
        "overlap_items": len(overlap),
        "cohen_kappa": pair_kappa,
        "fleiss_kappa": fleiss_kappa(list(v.values()) for v in overlap),
    }
