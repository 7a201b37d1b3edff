"""Eval suites as plain data: the rows of a suite file, the targets a suite runs against, the
`eval` job's spec, and the interval a leaderboard shows.

A suite is a named, versioned list of rows {"prompt", "reference"?, "criteria"?}; criteria is
a dict a scorer reads (regex, tolerance, schema, rubric). A file is JSONL (one object a line)
or CSV (columns prompt, reference, criteria as JSON text); a bad row is an error naming the
file and line. A target is a run id, `base:PATH` (a local model folder) or
`endpoint:MODEL@URL` (an OpenAI-compatible endpoint).

    >>> parse_target("endpoint:gpt-4o-mini@http://127.0.0.1:8000/v1").model
    'gpt-4o-mini'
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from backend.evaluate.judges import DEFAULT_RUBRIC
from backend.jobs.kinds import JobSpec

MAX_ROWS = 10_000


class SuiteError(ValueError):
    """A suite file, row or target that cannot be used: the message says where."""


def _row(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SuiteError(f"{where}: expected an object with a 'prompt'")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SuiteError(f"{where}: needs a non-empty 'prompt' string")
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str | int | float):
        raise SuiteError(f"{where}: 'reference' must be text")
    criteria = obj.get("criteria") or {}
    if isinstance(criteria, str):
        try:
            criteria = json.loads(criteria) if criteria.strip() else {}
        except ValueError as exc:
            raise SuiteError(f"{where}: 'criteria' is not JSON ({exc})") from None
    if not isinstance(criteria, dict):
        raise SuiteError(f"{where}: 'criteria' must be an object")
    unknown = set(obj) - {"prompt", "reference", "criteria", "id"}
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    ref = None if reference in (None, "") else str(reference)
    return {"prompt": prompt, "reference": ref, "criteria": criteria}


def parse_suite(text: str, name: str) -> list[dict[str, Any]]:
    """Rows of a suite file's text; `name` (the file name) picks CSV or JSONL and is named
    in errors."""
    rows: list[dict[str, Any]] = []
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise SuiteError(f"{name}: the CSV needs a 'prompt' column")
        for i, rec in enumerate(reader, start=2):
            rows.append(_row({k: v for k, v in rec.items() if k}, f"{name} line {i}"))
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise SuiteError(f"{name} line {i}: not JSON ({exc})") from None
            rows.append(_row(obj, f"{name} line {i}"))
    if not rows:
        raise SuiteError(f"{name}: no prompts")
    if len(rows) > MAX_ROWS:
        raise SuiteError(f"{name}: {len(rows)} prompts; a suite holds at most {MAX_ROWS}")
    return rows


def suite_hash(rows: list[dict[str, Any]]) -> str:
    """Content hash of a suite's rows: the same rows make the same version."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


class EvalTarget(BaseModel):
    """What answers a suite: a run (base model + its adapter), a base model, an endpoint."""

    label: str = Field(description="As typed: a run id, base:PATH or endpoint:MODEL@URL.")
    kind: Literal["run", "base", "endpoint"]
    base_model: str | None = None
    adapter: str | None = None
    model: str | None = None
    base_url: str | None = None


def parse_target(text: str) -> EvalTarget:
    """A `base:` or `endpoint:` target; anything else is a run id the submitter resolves."""
    text = text.strip()
    if text.startswith("base:"):
        path = text[5:]
        if not path:
            raise SuiteError("target base: needs a model folder, e.g. base:models/tiny-llama")
        return EvalTarget(label=text, kind="base", base_model=path)
    if text.startswith("endpoint:"):
        model, sep, url = text[9:].partition("@")
        if not (model and sep and url.startswith(("http://", "https://"))):
            raise SuiteError(f"target {text!r}: write endpoint:MODEL@http(s)://HOST/v1")
        return EvalTarget(label=text, kind="endpoint", model=model, base_url=url)
    if not text:
        raise SuiteError("empty target")
    return EvalTarget(label=text, kind="run")


class EvalSpec(JobSpec):
    """An `eval` job: answer a suite's prompts with each target and score the answers."""

    suite: str = Field(description="Suite name.")
    suite_id: str = Field(description="Suite version id.")
    prompts_path: str = Field(description="JSONL of the suite's rows (written by the submitter).")
    targets: list[EvalTarget] = Field(min_length=1, description="What answers the prompts.")
    scorers: list[str] = Field(min_length=1, description="Scorers to apply.")
    baseline: str | None = Field(None, description="Target the pairwise judge compares with.")
    judge_base_url: str | None = Field(None, description="Judge endpoint (default: Settings).")
    judge_model: str | None = Field(None, description="Judge model (default: Settings).")
    rubric: str = Field(DEFAULT_RUBRIC, description="Default rubric of the judges.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Longest answer in tokens.")
    seed: int = Field(0, description="Seed of local generation.")

    def title(self) -> str:
        return f"eval {self.suite} on {len(self.targets)} target(s)"


def mean_ci(values: list[float], z: float = 1.96) -> tuple[float | None, float | None, float]:
    """(low, high, mean) of a normal-approximation 95% interval of the mean; with one value
    the interval is that value.

    >>> mean_ci([1.0, 0.0, 1.0, 1.0])[2]
    0.75
    """
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None, None, math.nan
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, m, m
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    half = z * sd / math.sqrt(len(vals))
    return m - half, m + half, m


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A suite's rows as the JSONL the job reads (written once: the name holds the hash)."""
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps({"idx": i, **r}) + "\n" for i, r in enumerate(rows)))
        tmp.replace(path)
    return path
