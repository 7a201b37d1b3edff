"""The `judge` job: an LLM (through the synth provider interface) compares the two responses
of each pairwise item, twice with the positions swapped, and gives a verdict and a rationale.

A verdict that survives the swap stands; one that flips is written as 'inconsistent' and
counts for nobody. A ranking item (3+ responses) is judged as a round robin: every pair, both
orders, then the responses ranked by Copeland score (a pair won 1, tied or inconsistent 1/2
each, both bad 0; ties keep the item's order); the row is a `ranking` verdict with each
pair's passes. The submitter writes the items to a JSONL file named in the spec (a job never
opens DuckDB); the job appends one line per fully judged item to judgements.jsonl (ingested
into `comparisons` with source judge). An item whose calls fail or whose reply is not a verdict
gets a warning event naming it and no row; a re-queued job skips items already judged.

    ftstudio prefs judge SET --model gpt-4o-mini [--base-url URL]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec
from backend.jsonl import done_keys
from backend.prefs.pairs import VERDICTS, combine

OUTPUT = "judgements.jsonl"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["verdict", "rationale"],
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "rationale": {"type": "string"},
    },
}
DEFAULT_CRITERIA = (
    "Prefer the response that answers the user's request correctly, helpfully "
    "and concisely. Say tie when they are equally good, both_bad when neither "
    "is acceptable."
)
SYSTEM = (
    "You are an impartial judge of assistant responses. Do not let the order of the "
    "responses or their length sway you. Reply with JSON only: "
    '{"verdict": "A" | "B" | "tie" | "both_bad", "rationale": "<one or two sentences>"}.'
)


class JudgeSpec(JobSpec):
    """A judge job. Field descriptions are the help texts of the Judge tab."""

    comparison_set: str = Field(description="Comparison set whose pairs are judged.")
    items_path: str = Field(
        description="JSONL of {item_id, prompt, responses} written by the submitter."
    )
    provider: Literal["openai", "local"] = Field(
        "openai",
        description="Where the judge runs: an OpenAI-compatible endpoint or a local model folder.",
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (default: Settings)."
    )
    model: str = Field("", description="Judge model name at the endpoint, or a local folder.")
    criteria: str = Field(DEFAULT_CRITERIA, description="What makes a response better.")
    concurrency: int = Field(8, ge=1, le=256, description="Items judged at once.")
    max_retries: int = Field(3, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-request timeout.")
    max_tokens: int = Field(256, ge=16, le=4096, description="Longest judge reply.")

    def title(self) -> str:
        return f"judge {self.comparison_set} with {Path(self.model).name or 'the endpoint'}"


class VerdictError(ValueError):
    """A judge reply that is not a verdict."""


def judge_prompt(prompt: list[dict], first: str, second: str, criteria: str) -> list[dict]:
    convo = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"{criteria}\n\n[Conversation]\n{convo}\n\n"
            f"[Response A]\n{first}\n\n[Response B]\n{second}\n\n"
            "Which response is better?",
        },
    ]


_ALIASES = {
    "a": "A",
    "b": "B",
    "tie": "tie",
    "both_bad": "both_bad",
    "both bad": "both_bad",
    "bothbad": "both_bad",
    "both-bad": "both_bad",
}


def parse_verdict(text: str | None) -> tuple[str, str]:
    """(verdict, rationale) from a judge reply (JSON, possibly inside a code fence).

    >>> parse_verdict('```json\\n{"verdict": "b", "rationale": "clearer"}\\n```')
    ('B', 'clearer')
    """
    if not text or not text.strip():
        raise VerdictError("empty reply")
    match = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(match.group(0) if match else text)
    except ValueError:
        raise VerdictError(f"reply is not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise VerdictError(f"reply is not a JSON object: {text[:80]!r}")
    verdict = _ALIASES.get(str(data.get("verdict", "")).strip().lower())
    if verdict is None:
        raise VerdictError(f"verdict {data.get('verdict')!r} is not one of {', '.join(VERDICTS)}")
    return verdict, str(data.get("rationale") or "")


def round_robin(n: int) -> list[tuple[int, int]]:
    """Every pair of `n` responses once, (i, j) with i < j."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def copeland(n: int, verdicts: dict[tuple[int, int], str]) -> tuple[list[int], list[float]]:
    """(ranking best first, scores) of `n` responses from pair verdicts ('A' = i beat j).

    >>> copeland(3, {(0, 1): "B", (0, 2): "tie", (1, 2): "A"})
    ([1, 0, 2], [0.5, 2.0, 0.5])
    """
    score = [0.0] * n
    for (i, j), verdict in verdicts.items():
        if verdict == "A":
            score[i] += 1
        elif verdict == "B":
            score[j] += 1
        elif verdict in ("tie", "inconsistent"):
            score[i] += 0.5
            score[j] += 0.5
    return sorted(range(n), key=lambda k: (-score[k], k)), score


def items_file(ws_exports: Path, set_name: str, items: list[dict]) -> Path:
    """Write the items a judge job reads (content-addressed, so it never changes under a job)."""
    body = "".join(
        json.dumps(
            {
                "item_id": it["id"],
                "prompt": it["prompt"],
                "responses": [r["text"] for r in it["responses"]],
            },
            ensure_ascii=False,
        )
        + "\n"
        for it in items
    )
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    path = Path(ws_exports) / f"judge-{set_name}-{digest}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(path)
    return path


def make_provider(spec: JudgeSpec):
    from backend.integrations import llm

    if spec.provider == "local":
        return llm.make_provider("local", spec.model)
    return llm.make_provider(
        "openai",
        spec.model,
        base_url=spec.base_url,
        concurrency=spec.concurrency,
        max_retries=spec.max_retries,
        backoff_s=spec.backoff_s,
        timeout_s=spec.timeout_s,
    )


def run_judge(ctx: JobContext, spec: JudgeSpec) -> None:
    """Job entry point (see module docstring)."""
    asyncio.run(_run(ctx, spec))


async def _run(ctx: JobContext, spec: JudgeSpec) -> None:
    items = [
        json.loads(line)
        for line in Path(spec.items_path).read_text("utf-8").splitlines()
        if line.strip()
    ]
    done = done_keys(ctx.dir / OUTPUT, "item_id")
    todo = [it for it in items if it["item_id"] not in done]
    ctx.progress(len(done), len(items), unit="items")
    provider = make_provider(spec)
    model = Path(spec.model).name if spec.provider == "local" else provider.model
    counts = {"judged": 0, "failed": 0, "inconsistent": 0}
    sem = asyncio.Semaphore(spec.concurrency)

    async def passes_of(it: dict, pairs: list[tuple[int, int]]) -> list[list[tuple]]:
        """Both orders of each pair: [[(order, verdict, rationale) x 2] per pair]."""
        responses = it["responses"]
        prompts = [
            judge_prompt(it["prompt"], responses[x], responses[y], spec.criteria)
            for i, j in pairs
            for x, y in ((i, j), (j, i))
        ]
        results = await provider.complete(
            prompts, schema=SCHEMA, temperature=0.0, max_tokens=spec.max_tokens
        )
        out = []
        for k in range(len(pairs)):
            both = []
            for order, res in zip(("AB", "BA"), results[2 * k : 2 * k + 2], strict=True):
                if res.error:
                    raise VerdictError(res.error)
                both.append((order, *parse_verdict(res.text)))
            out.append(both)
        return out

    async def one(it: dict) -> None:
        async with sem:
            ctx.check_cancelled()
            n = len(it["responses"])
            pairs = round_robin(n)
            try:
                judged = await passes_of(it, pairs)
            except VerdictError as exc:
                counts["failed"] += 1
                ctx.event(
                    f"item {it['item_id']}: no verdict ({exc})",
                    level="warning",
                    item_id=it["item_id"],
                    error=str(exc),
                )
                return
            verdicts = {p: combine(b[0][1], b[1][1]) for p, b in zip(pairs, judged, strict=True)}
            counts["inconsistent"] += sum(v == "inconsistent" for v in verdicts.values())
            counts["judged"] += 1
            row = {"item_id": it["item_id"], "model": model, "t": time.time()}
            if n == 2:
                (passes,) = judged
                row |= {
                    "verdict": verdicts[(0, 1)],
                    "rationale": passes[0][2],
                    "passes": [{"order": o, "verdict": v, "rationale": r} for o, v, r in passes],
                }
            else:
                ranking, score = copeland(n, verdicts)
                row |= {
                    "verdict": "ranking",
                    "ranking": ranking,
                    "rationale": "round robin, Copeland scores best first: "
                    + ", ".join(f"#{k + 1} {score[k]:g}" for k in ranking),
                    "passes": [
                        {"pair": [i, j], "order": o, "verdict": v, "rationale": r}
                        for (i, j), both in zip(pairs, judged, strict=True)
                        for o, v, r in both
                    ],
                }
            ctx.output(OUTPUT, [row])
            ctx.progress(len(done) + counts["judged"] + counts["failed"], len(items))

    try:
        await asyncio.gather(*(one(it) for it in todo))
    finally:
        await provider.aclose()
    ctx.event(
        f"judged {counts['judged']} items ({counts['inconsistent']} pairs inconsistent when "
        f"swapped), {counts['failed']} without a verdict",
        **counts,
    )
    if todo and counts["failed"] == len(todo):
        raise RuntimeError(
            f"the judge gave no verdict on any of {len(todo)} items; see the "
            "warnings in the job's events (endpoint errors or replies that are "
            "not JSON verdicts)"
        )
