"""Annotating in a real Label Studio through its REST API, as a reviewer or analyst would in
the browser (the integration tests' stand-in for clicks)."""

from __future__ import annotations

import httpx


def review_result(
    verdict: str, categories: tuple[str, ...] = ("factual error",), corrected: str | None = None
) -> list[dict]:
    """The result of a review task: accept/reject, issue categories, an optional correction."""
    result = [
        {
            "from_name": "verdict",
            "to_name": "response",
            "type": "choices",
            "value": {"choices": [verdict]},
        },
        {
            "from_name": "issues",
            "to_name": "response",
            "type": "choices",
            "value": {"choices": list(categories)},
        },
    ]
    if corrected:
        result.append(
            {
                "from_name": "corrected",
                "to_name": "response",
                "type": "textarea",
                "value": {"text": [corrected]},
            }
        )
    return result


def annotate(url: str, token: str, task_id: int, result: list[dict]) -> int:
    """Create an annotation on a task; returns its id."""
    r = httpx.post(
        f"{url}/api/tasks/{task_id}/annotations/",
        json={"result": result},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def update_annotation(url: str, token: str, annotation_id: int, result: list[dict]) -> None:
    """Replace an annotation's result, as a reviewer changing their mind."""
    r = httpx.patch(
        f"{url}/api/annotations/{annotation_id}/",
        json={"result": result},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def delete_annotation(url: str, token: str, annotation_id: int) -> None:
    """Delete an annotation, as a reviewer removing a mistaken one."""
    r = httpx.delete(
        f"{url}/api/annotations/{annotation_id}/",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert r.status_code == 204, r.text
