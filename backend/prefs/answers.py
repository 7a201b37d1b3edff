"""The `answer` job: outputs of the base model (a local folder) or an endpoint on a list of
prompts, so they can be compared against runs.

Rows go to generations.jsonl under the source id `base:<folder name>` or `endpoint:<model>`,
ingested by the same handler as a run's eval generations; a comparison set then treats the
source like any run. A prompt whose call fails gets a warning event and no row.

    ftstudio prefs answer --base-model workspace/models/tiny-llama --prompts-from RUN_ID
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from backend.jobs.context import JobContext
from backend.jobs.kinds import JobSpec


class AnswerSpec(JobSpec):
    """An answer job: one reply per prompt from a base model or an endpoint."""

    provider: Literal["local", "openai"] = Field(
        "local",
        description="A local model folder (the base model) or an OpenAI-compatible endpoint.",
    )
    model: str = Field(description="Local model folder, or the model name at the endpoint.")
    base_url: str | None = Field(None, description="Endpoint base URL (default: Settings).")
    prompts: list[str] = Field(min_length=1, description="Prompts, each one user turn.")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="Longest reply in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy.")

    def source_id(self) -> str:
        if self.provider == "local":
            return f"base:{Path(self.model).name}"
        return f"endpoint:{self.model}"

    def title(self) -> str:
        return f"answer {len(self.prompts)} prompts with {self.source_id()}"


def run_answer(ctx: JobContext, spec: AnswerSpec) -> None:
    asyncio.run(_run(ctx, spec))


async def _run(ctx: JobContext, spec: AnswerSpec) -> None:
    from backend.integrations import llm

    provider = llm.make_provider(spec.provider, spec.model, base_url=spec.base_url)
    source = spec.source_id()
    ctx.progress(0, len(spec.prompts), unit="prompts")
    try:
        results = await provider.complete(
            [[{"role": "user", "content": p}] for p in spec.prompts],
            schema={},
            temperature=spec.temperature,
            max_tokens=spec.max_new_tokens,
        )
    finally:
        await provider.aclose()
    rows = []
    for prompt, res in zip(spec.prompts, results, strict=True):
        if res.error or res.text is None:
            ctx.event(f"no answer to {prompt[:60]!r}: {res.error}", level="warning")
            continue
        rows.append(
            {
                "run_id": source,
                "step": 0,
                "prompt": prompt,
                "output": res.text,
                "params": {
                    "max_new_tokens": spec.max_new_tokens,
                    "temperature": spec.temperature,
                    "t": time.time(),
                },
            }
        )
    ctx.output("generations.jsonl", rows)
    ctx.progress(len(spec.prompts), len(spec.prompts))
    ctx.event(f"{len(rows)} of {len(spec.prompts)} prompts answered as {source}")
