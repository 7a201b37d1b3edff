"""Judge quality: an LLM rates the window's (prompt, response) pairs 1-10, against its rating
of the newest run's held-out examples (the training-time value).

This module is the job runner and its pure helpers; it never opens DuckDB (the submitter
side, which reads the store, is backend/drift/judging.py). When a monitor names a
`judge_model`, each drift check also queues `quality-judge` jobs over a JSONL file of pairs
named in the spec: the window's prompts that came with responses and, once per run and judge
model, that run's held-out split. The endpoint and key come from Settings (OPENAI_BASE_URL /
OPENAI_API_KEY) when the job runs; no key is ever in a spec. Each job asks for
`{"score": 1-10, "rationale": ...}` with a JSON schema through the synth provider (retries on
429/5xx/timeouts) and writes scores.jsonl rows (method `judge`), ingested into `scores`.

The Review page runs the same job kind over a dataset version as a second review signal
(`launch_judge` in backend/review/actions.py): method `judge_flaw` (10 minus the rating, so
the flagging policies' "higher is less certain" holds) with the dataset, version and round on
every row.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec
from backend.jsonl import done_keys

METHOD = "quality_judge"
OUTPUT = "scores.jsonl"
FLAW_TOP = 10.0  # judge_flaw = FLAW_TOP - rating: 0 for a perfect answer, 9 for a useless one
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "rationale"],
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "rationale": {"type": "string"},
    },
}
DEFAULT_CRITERIA = (
    "Rate how well the response answers the user's request: correct, helpful, on topic and "
    "concise. 10 is an excellent answer, 1 is useless or unrelated."
)
SYSTEM = (
    "You are an impartial judge of assistant responses. Reply with JSON only: "
    '{"score": <integer 1-10>, "rationale": "<one sentence>"}.'
)


class QualityJudgeSpec(JobSpec):
    """A quality-judge job: rate each example's last assistant turn 1-10."""

    examples_path: str = Field(description="JSONL of {id, messages} written by the submitter.")
    model: str = Field(min_length=1, description="Judge model name at the endpoint.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (default: Settings OPENAI_BASE_URL)."
    )
    criteria: str = Field(DEFAULT_CRITERIA, description="What makes a response good.")
    concurrency: int = Field(8, ge=1, le=256, description="Pairs judged at once.")
    max_retries: int = Field(3, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-request timeout.")
    max_tokens: int = Field(200, ge=16, le=4096, description="Longest judge reply.")
    method: str = Field(
        "judge",
        pattern="^(judge|judge_flaw)$",
        description="judge: the 1-10 rating as scored (drift checks); judge_flaw: 10 minus "
        "the rating, so that higher means worse like nll and entropy (review flagging).",
    )
    dataset: str | None = Field(None, description="Dataset name (review scoring, for the record).")
    version_id: str | None = Field(None, description="Dataset version id (for the record).")
    round: int = Field(1, ge=1, description="Review round this judging belongs to.")

    def title(self) -> str:
        what = self.dataset or Path(self.examples_path).parent.name
        return f"judge quality of {what} with {self.model}"


class ScoreError(ValueError):
    """A judge reply that is not a 1-10 score."""


def parse_score(text: str | None) -> tuple[float, str]:
    """(score, rationale) from a judge reply (JSON, possibly inside a code fence).

    >>> parse_score('```json\\n{"score": 7, "rationale": "fine"}\\n```')
    (7.0, 'fine')
    """
    if not text or not text.strip():
        raise ScoreError("empty reply")
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0) if match else text)
    except ValueError:
        raise ScoreError(f"reply is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise ScoreError(f"reply is not a JSON object: {text[:80]!r}")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 1 <= score <= 10:
        raise ScoreError(f"score {score!r} is not a number from 1 to 10")
    return float(score), str(data.get("rationale") or "")


def judge_prompt(messages: list[dict], criteria: str) -> list[dict]:
    """The judge's chat: the conversation up to the last assistant turn, then that turn."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
    convo = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:last])
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"{criteria}\n\n[Conversation]\n{convo}\n\n"
            f"[Response]\n{messages[last]['content']}\n\nRate the response from 1 to 10.",
        },
    ]


def run_job(ctx: JobContext, spec: QualityJudgeSpec) -> None:
    """Job entry point (see module docstring); a re-queued job skips pairs already scored."""
    asyncio.run(_run(ctx, spec))


async def _run(ctx: JobContext, spec: QualityJudgeSpec) -> None:
    from backend.integrations import llm

    path = Path(spec.examples_path)
    items = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    done = done_keys(ctx.dir / OUTPUT, "example_id")
    todo = [it for it in items if it["id"] not in done]
    ctx.progress(len(done), len(items), unit="pairs")
    provider = llm.make_provider(
        "openai",
        spec.model,
        base_url=spec.base_url,
        concurrency=spec.concurrency,
        max_retries=spec.max_retries,
        backoff_s=spec.backoff_s,
        timeout_s=spec.timeout_s,
    )
    counts = {"scored": 0, "failed": 0}
    sem = asyncio.Semaphore(spec.concurrency)

    async def one(it: dict) -> None:
        async with sem:
            ctx.check_cancelled()
            (res,) = await provider.complete(
                [judge_prompt(it["messages"], spec.criteria)],
                schema=SCHEMA,
                temperature=0.0,
                max_tokens=spec.max_tokens,
            )
            try:
                if res.error:
                    raise ScoreError(res.error)
                score, rationale = parse_score(res.text)
            except ScoreError as exc:
                counts["failed"] += 1
                ctx.event(
                    f"pair {it['id']}: no score ({exc})", level="warning", example_id=it["id"]
                )
                return
            counts["scored"] += 1
            row = {
                "example_id": it["id"],
                "method": spec.method,
                "model": spec.model,
                "score": score if spec.method == "judge" else FLAW_TOP - score,
                "rationale": rationale,
            }
            if spec.dataset:
                row |= {"dataset": spec.dataset, "version_id": spec.version_id}
                row |= {"round": spec.round}
            ctx.output(OUTPUT, [row])
            ctx.progress(len(done) + counts["scored"] + counts["failed"], len(items))

    try:
        await asyncio.gather(*(one(it) for it in todo))
    finally:
        await provider.aclose()
    ctx.event(f"judged {counts['scored']} pairs, {counts['failed']} without a score", **counts)
    if todo and counts["failed"] == len(todo):
        raise RuntimeError(
            f"the judge gave no score for any of {len(todo)} pairs; see the warnings in the "
            "job's events (endpoint errors or replies that are not 1-10 JSON scores)"
        )
