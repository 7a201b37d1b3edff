"""What a review batch looks like in Label Studio, as pure functions: the project (its
labelling config and options), each task, and the verdicts read back from an export. The
requests themselves go through backend/integrations/labelstudio/client.py; the actions
(backend/review/labelstudio_actions.py) push and pull.

The project's labelling config shows the instruction and the response and asks accept /
reject, issue categories and an optional corrected response. Each task carries a prediction
whose score is the model's certainty exp(-uncertainty), and the project samples by lowest
prediction score ("Uncertainty sampling"), so reviewers see the least certain first. A share
of tasks goes to two reviewers (overlap) so agreement can be measured.

A pull reads the full JSON export (not JSON_MIN: it keeps annotation ids, authors and times)
and parses every annotation into a verdict keyed `ls:<annotation id>`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from xml.sax.saxutils import quoteattr

from backend.examples import turn_label, turn_text
from backend.integrations.labelstudio.client import reviewer_name
from backend.review.verdicts import CATEGORIES

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
    """Instruction text (every turn before the last answer) and the response text. Tool use
    reads as text: an assistant turn's calls as `-> tool call name({...})` lines, a tool's
    result under `[tool name]`."""

    def shown(turns: list[dict]) -> str:
        return "\n\n".join(f"[{turn_label(m)}]\n{turn_text(m)}" for m in turns)

    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "assistant":
            return shown(messages[:i]), turn_text(messages[i])
    return shown(messages), ""


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


def project_options(batch: dict, *, overlap_share: float, reviewers_per_overlap: int) -> dict:
    """The Label Studio project of a review batch: title, labelling config, sampling, overlap."""
    return {
        "title": f"{batch['dataset']} review round {batch['round']} ({batch['id']})"[:50],
        "label_config": label_config(notes=(batch["method"] or "").startswith("judge")),
        "sampling": SAMPLING,
        "maximum_annotations": reviewers_per_overlap if overlap_share > 0 else 1,
        "overlap_cohort_percentage": int(round(overlap_share * 100)),
        "show_collab_predictions": False,
        "model_version": batch["model"] or "studio",
        "description": f"Flagged by {batch['method']} under {batch['model']}; least certain first.",
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


def parse_export(tasks: Iterable[dict], emails: dict[int, str]) -> tuple[list[dict], int, set[str]]:
    """The verdict rows of a project's full JSON export (read once, task by task), how many
    annotations were skipped (cancelled, empty, or on a task without an example), and the ids
    (`ls:<id>`) of every annotation present, so verdicts deleted in Label Studio can be told
    apart."""
    rows, skipped, present = [], 0, set()
    for task in tasks:
        example_id = (task.get("data") or {}).get("example_id")
        for ann in task.get("annotations") or []:
            present.add(f"ls:{ann.get('id')}")
            row = parse_annotation(ann, example_id, reviewer_name(ann.get("completed_by"), emails))
            if row is None or example_id is None:
                skipped += 1
            else:
                rows.append(row)
    return rows, skipped, present
