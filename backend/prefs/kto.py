"""KTO rows (prompt / completion / label) from what the studio already collects, as pure
functions: review verdicts, thumbs ratings, and kto-jsonl files in and out.

A row is TRL's conversational unpaired-preference format: `prompt` the turns before the
answer, `completion` the answer as one assistant turn, `label` true when it is desirable.
From a review decision (several reviewers' verdicts resolved as the review loop resolves
them): accept = desirable, reject = undesirable, correct = the corrected answer desirable and
the original undesirable.

    >>> ex = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    >>> [r["label"] for r in verdict_rows(ex, {"verdict": "correct", "corrected": "Hello!"})]
    [True, False]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from backend.review.verdicts import decide

FORMAT = "kto-jsonl"


def split_answer(messages: list[dict]) -> tuple[list[dict], str] | None:
    """(turns before the last assistant turn, its text); None without one."""
    idx = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if idx is None or not any(m.get("role") == "user" for m in messages[:idx]):
        return None
    prompt = [{"role": m["role"], "content": m.get("content") or ""} for m in messages[:idx]]
    return prompt, messages[idx].get("content") or ""


def row(prompt: list[dict], completion: str, label: bool) -> dict:
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": completion}],
        "label": bool(label),
    }


def verdict_rows(messages: list[dict], decision: dict) -> list[dict]:
    """The KTO rows of one example's review decision (see the module docstring)."""
    split = split_answer(messages)
    if split is None:
        return []
    prompt, answer = split
    if decision["verdict"] == "accept":
        return [row(prompt, answer, True)]
    if decision["verdict"] == "reject":
        return [row(prompt, answer, False)]
    fixed = (decision.get("corrected") or "").strip()
    out = [row(prompt, fixed, True)] if fixed and fixed != answer.strip() else []
    return [*out, row(prompt, answer, False)]


def rows_from_verdicts(verdicts: list[dict]) -> tuple[list[dict], list[str]]:
    """(KTO rows, the review ids they came from) from stored verdicts with their example's
    messages (backend.store.feedback.dataset_verdicts): one decision per batch and example."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for v in verdicts:
        by_key.setdefault((v["batch_id"], v["example_id"]), []).append(v)
    rows, ids = [], []
    for (_, example_id), vs in sorted(by_key.items()):
        decision = decide(vs)[example_id]
        rows += verdict_rows(vs[0]["messages"], decision)
        ids += [v["id"] for v in vs]
    return rows, ids


def feedback_to_row(r: dict) -> dict:
    """A stored feedback row (rating or import) as a KTO row."""
    return row(r["prompt"], r["completion"], r["label"])


def _turns(value: Any, what: str) -> list[dict]:
    if isinstance(value, str) and value.strip():
        return [{"role": "user", "content": value}]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    ):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise ValueError(f"'{what}' must be a non-empty string or a list of {{role, content}} turns")


def parse_row(obj: dict) -> tuple[list[dict], str, bool]:
    """(prompt turns, answer text, label) of one kto-jsonl line; ValueError says what is wrong.

    >>> parse_row({"prompt": "2+2?", "completion": "4", "label": True})
    ([{'role': 'user', 'content': '2+2?'}], '4', True)
    """
    if any(k not in obj for k in ("prompt", "completion", "label")):
        raise ValueError("a kto-jsonl row needs prompt, completion and label")
    if not isinstance(obj["label"], bool):
        raise ValueError(f"label must be true or false, not {obj['label']!r}")
    prompt = _turns(obj["prompt"], "prompt")
    completion = obj["completion"]
    if isinstance(completion, list):
        completion = "".join(str(m.get("content", "")) for m in _turns(completion, "completion"))
    if not isinstance(completion, str) or not completion.strip():
        raise ValueError("'completion' must be a non-empty string or assistant turns")
    return prompt, completion, obj["label"]


def row_id(prompt: list[dict], completion: str, label: bool) -> str:
    body = json.dumps([prompt, completion, label], sort_keys=True, ensure_ascii=False)
    return "imp:" + hashlib.sha256(body.encode()).hexdigest()[:24]


def read_file(path: Path, *, skip_invalid: bool = False) -> tuple[list[dict], list[dict]]:
    """(parsed rows {prompt, completion, label, line}, invalid [{line, reason}]) of a
    kto-jsonl file. Without `skip_invalid` the first invalid line raises ValueError naming it."""
    rows, invalid = [], []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                prompt, completion, label = parse_row(obj)
            except ValueError as exc:
                if not skip_invalid:
                    raise ValueError(f"{Path(path).name} line {n}: {exc}") from None
                invalid.append({"line": n, "reason": str(exc)})
                continue
            rows.append({"prompt": prompt, "completion": completion, "label": label, "line": n})
    return rows, invalid


def jsonl_text(rows: list[dict]) -> str:
    """KTO rows as kto-jsonl text (prompt, completion, label per line)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_rows(folder: Path, stem: str, rows: list[dict]) -> tuple[Path, str]:
    """Write KTO rows to a content-addressed file in `folder` (a run's input never changes
    under it); returns (path, sha256 of the text)."""
    text = jsonl_text(rows)
    digest = hashlib.sha256(text.encode()).hexdigest()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    path = Path(folder) / f"kto-{safe}-{digest[:12]}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path, digest
