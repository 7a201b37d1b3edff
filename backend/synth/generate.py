"""The `generate` job: a recipe in the spec becomes examples, rejects and a result.

Files written in the job folder (ingested by backend/store/synth.py):
    generated.jsonl  one valid example per plan item   {item, topic, example_id, messages, origin,
                                                        tools (when the recipe has them)}
    rejects.jsonl    one invalid output per plan item  {item, topic, stage, reason, raw}
    result.jsonl     one line at the end: kept examples, quality removals, QC sample, report

Resume: items already in generated.jsonl or rejects.jsonl are skipped, and a torn last line
left by a crash is cut off before appending, so nothing is redone or duplicated.
The API key is read from Settings at run time; it is never in the spec. The job never opens the
database: backend/synth/actions.py `generate` builds the spec and hands the dataset's current
examples over as a file (`base_jsonl`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from backend.examples import canonical_json, example_id
from backend.integrations import llm
from backend.integrations.llm import Provider
from backend.integrations.pool import Endpoint, make_pool
from backend.jobs.context import JobCancelled, JobContext
from backend.jobs.kinds import JobSpec
from backend.synth import qc, quality
from backend.synth.parse import ParseError, parse_output
from backend.synth.recipe import PlanItem, Recipe, build_prompt, output_schema, plan

OUTPUT_FILES = ("generated.jsonl", "rejects.jsonl")
RAW_LIMIT = 2000


class GenerateSpec(JobSpec):
    """A generate job. Field descriptions are the help texts of the Generate form."""

    dataset: str = Field(description="Dataset the kept examples are added to (a new version).")
    recipe: Recipe = Field(description="The recipe, copied from the dataset when submitted.")
    provider: Literal["openai", "local"] = Field("openai", description="Where text comes from.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (default: Settings)."
    )
    model: str = Field("", description="Endpoint model name or local model folder.")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    endpoints: list[Endpoint] = Field(
        default_factory=list,
        description="Several OpenAI-compatible endpoints (e.g. vLLM replicas) to spread the "
        "requests over, each with its own concurrency, instead of base_url.",
    )
    rpm: float | None = Field(None, gt=0, description="Most requests per minute (empty: none).")
    max_retries: int = Field(4, ge=0, le=20, description="Retries on 429/5xx/timeouts.")
    backoff_s: float = Field(0.5, ge=0, le=60, description="First retry delay; doubles.")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-request timeout.")
    batch_size: int = Field(8, ge=1, le=256, description="Local provider batch size.")
    qc_share: float = Field(qc.DEFAULT_SHARE, description="Share marked for human QC (5-10%).")
    near_dup_threshold: float = Field(
        0.92,
        ge=0.5,
        le=1.0,
        description="Cosine similarity at which two examples count as near duplicates.",
    )
    dedup_method: Literal["embedding", "jaccard"] = Field(
        "embedding", description="Near-dup method."
    )
    min_chars: int = Field(10, ge=0, description="Shortest answer kept, in characters.")
    max_chars: int = Field(8000, ge=1, description="Longest answer kept, in characters.")
    base_jsonl: str | None = Field(
        None,
        description="The dataset's current examples (written by the submitter) to dedupe against.",
    )

    @field_validator("qc_share")
    @classmethod
    def _share(cls, v: float) -> float:
        return qc.check_share(v)

    def title(self) -> str:
        n = len(self.recipe.topics or ["general"]) * self.recipe.per_topic
        return f"generate {n} examples for {self.dataset}"


def recipe_digest(recipe: Recipe) -> str:
    return hashlib.sha256(canonical_json(recipe.model_dump(mode="json")).encode()).hexdigest()[:12]


def repair_tail(path: Path) -> None:
    """Cut a torn last line (a crash mid-write) so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def make_provider(spec: GenerateSpec) -> Provider:
    if spec.provider == "local":
        return llm.make_provider("local", spec.model, batch_size=spec.batch_size)
    if spec.endpoints:
        return make_pool(spec.endpoints, spec.model, timeout_s=spec.timeout_s)
    return llm.make_provider(
        "openai",
        spec.model,
        base_url=spec.base_url,
        concurrency=spec.concurrency,
        rpm=spec.rpm,
        max_retries=spec.max_retries,
        backoff_s=spec.backoff_s,
        timeout_s=spec.timeout_s,
    )


def run_generate(ctx: JobContext, spec: GenerateSpec) -> None:
    """Job entry point (see module docstring)."""
    asyncio.run(_run(ctx, spec))


async def _run(ctx: JobContext, spec: GenerateSpec) -> None:
    recipe = spec.recipe
    items = plan(recipe)
    for name in OUTPUT_FILES:
        repair_tail(ctx.dir / name)
    done = {r["item"] for name in OUTPUT_FILES for r in read_rows(ctx.dir / name)}
    todo = [it for it in items if it.key not in done]
    total = len(items)
    ctx.progress(len(done), total, unit="examples")
    if done:
        ctx.event(f"resuming: {len(done)} of {total} items already done")
    if todo:
        provider = make_provider(spec)
        try:
            await _generate(ctx, spec, provider, todo, done_count=len(done), total=total)
        finally:
            await provider.aclose()
    ctx.check_cancelled()
    _finish(ctx, spec)


async def _generate(
    ctx: JobContext,
    spec: GenerateSpec,
    provider: Provider,
    todo: list[PlanItem],
    *,
    done_count: int,
    total: int,
) -> None:
    recipe = spec.recipe
    schema = output_schema(recipe.format, recipe.tools)
    digest = recipe_digest(recipe)
    chunks = [todo[i : i + provider.batch_size] for i in range(0, len(todo), provider.batch_size)]
    queue: asyncio.Queue = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    counts = {"done": done_count, "kept": 0, "rejected": 0}

    async def worker() -> None:
        while not ctx.cancel_requested:
            try:
                chunk = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            prompts = [build_prompt(recipe, it) for it in chunk]
            results = await provider.complete(
                prompts, schema=schema, temperature=recipe.temperature, max_tokens=recipe.max_tokens
            )
            for it, res in zip(chunk, results, strict=True):
                _record(ctx, spec, provider, it, res, digest, counts)
            counts["done"] += len(chunk)
            ctx.progress(counts["done"], total)

    await asyncio.gather(*(worker() for _ in range(min(provider.concurrency, len(chunks)))))
    retries = getattr(provider, "retries", 0)
    fallbacks = getattr(provider, "fallbacks", 0)
    ctx.metric(counts["done"], kept=counts["kept"], rejected=counts["rejected"], retries=retries)
    if hasattr(provider, "summary"):  # a pool of endpoints: who served what
        ctx.event(f"endpoints: {provider.summary()}")
    if fallbacks:
        ctx.event(
            "the endpoint refused response_format: asked for JSON in the prompt instead",
            level="warning",
        )
    if ctx.cancel_requested:
        raise JobCancelled("cancelled by request")


def _record(
    ctx: JobContext,
    spec: GenerateSpec,
    provider: Provider,
    it: PlanItem,
    res,
    digest: str,
    counts: dict,
) -> None:
    recipe = spec.recipe
    base = {"item": it.key, "topic": it.topic}
    if res.error:
        ctx.output(
            "rejects.jsonl", [{**base, "stage": "request", "reason": res.error, "raw": None}]
        )
        counts["rejected"] += 1
        return
    try:
        messages = parse_output(res.text, recipe.format, recipe.system_prompt, recipe.tools)
    except ParseError as exc:
        ctx.output(
            "rejects.jsonl",
            [
                {
                    **base,
                    "stage": exc.stage,
                    "reason": exc.reason,
                    "raw": (res.text or "")[:RAW_LIMIT],
                }
            ],
        )
        counts["rejected"] += 1
        return
    origin = {
        "job": ctx.id,
        "provider": provider.name,
        "model": provider.model,
        "recipe": digest,
        "item": it.key,
        "structured": res.structured,
        "knobs": {
            k: v
            for k, v in {
                "tone": it.tone,
                "complexity": it.complexity,
                "persona": it.persona,
                "language": it.language,
            }.items()
            if v
        },
    }
    tools = {"tools": recipe.tools} if recipe.tools else {}  # the example's id covers them
    row = {**base, "example_id": example_id(messages, recipe.tools), "messages": messages}
    ctx.output("generated.jsonl", [{**row, "origin": origin, **tools}])
    counts["kept"] += 1


def _finish(ctx: JobContext, spec: GenerateSpec) -> None:
    """Quality filters and the QC sample over everything generated; one result line."""
    rows = {r["item"]: r for r in read_rows(ctx.dir / "generated.jsonl")}
    order = {it.key: i for i, it in enumerate(plan(spec.recipe))}
    generated = sorted(rows.values(), key=lambda r: order.get(r["item"], len(order)))
    base = read_rows(Path(spec.base_jsonl)) if spec.base_jsonl else []
    ctx.progress(len(order), len(order), message="quality filters")
    kept, removed, report = quality.filter_examples(
        generated,
        base=base,
        min_chars=spec.min_chars,
        max_chars=spec.max_chars,
        near_dup_threshold=spec.near_dup_threshold,
        method=spec.dedup_method,
    )
    rejects = read_rows(ctx.dir / "rejects.jsonl")
    report["rejected"] = len(rejects)
    report["rejected_by_stage"] = {
        s: sum(1 for r in rejects if r["stage"] == s) for s in sorted({r["stage"] for r in rejects})
    }
    sample = qc.qc_sample([r["example_id"] for r in kept], spec.qc_share, seed=ctx.id)
    report["qc_sampled"] = len(sample)
    result = {
        "dataset": spec.dataset,
        "examples": [
            {"messages": r["messages"], "topic": r["topic"], "origin": r["origin"]}
            | ({"tools": r["tools"]} if r.get("tools") else {})
            for r in kept
        ],
        "removed": [
            {
                "item": r["item"],
                "topic": r["topic"],
                "example_id": r["example_id"],
                "reason": r["reason"],
                "raw": quality.example_text(r["messages"])[:RAW_LIMIT],
            }
            for r in removed
        ],
        "qc": sample,
        "qc_share": spec.qc_share,
        "report": report,
    }
    ctx.output("result.jsonl", [result])
    ctx.event(
        f"kept {len(kept)} of {len(generated)} valid outputs "
        f"({len(rejects)} rejected, {len(removed)} filtered, {len(sample)} for QC)",
        **{k: report[k] for k in ("kept", "removed", "rejected", "qc_sampled")},
    )
