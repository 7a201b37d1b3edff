"""The `eval` job: every target answers every prompt of a suite, then the answers are scored.

Local targets (a base model, or a run's base model with its adapter) answer one prompt at a
time, greedily, so latency and tokens are per answer; endpoints answer through the one
OpenAI-compatible client (backend.integrations.llm), which reports the tokens. Reference
scorers (backend.evaluate.scorers) run on each answer; the pointwise judge scores each
answer 1-10 on its row's rubric; the pairwise judge compares each target with the baseline,
asked in both orders. One row per (target, prompt) goes to eval_results.jsonl, ingested into
eval_outputs and eval_scores (backend.store.evals).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from backend.evaluate import judges
from backend.evaluate.scorers import REFERENCE_SCORERS, score
from backend.evaluate.suites import EvalSpec, EvalTarget
from backend.jobs.context import JobContext


def _answer_local(target: EvalTarget, rows: list[dict], spec: EvalSpec) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backend.evaluate.heldout import generate

    tok = AutoTokenizer.from_pretrained(target.adapter or target.base_model)
    model = AutoModelForCausalLM.from_pretrained(target.base_model, use_safetensors=True)
    if target.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, target.adapter)
    if torch.cuda.is_available():
        model = model.to("cuda")
    out = []
    for row in rows:
        start = time.perf_counter()
        [g] = generate(
            model, tok, [row["prompt"]], max_new_tokens=spec.max_new_tokens, seed=spec.seed
        )
        latency = time.perf_counter() - start
        prompt_ids = tok.apply_chat_template(
            [{"role": "user", "content": row["prompt"]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        out.append(
            {
                "output": g["output"],
                "latency_s": latency,
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": len(tok(g["output"], add_special_tokens=False)["input_ids"]),
                "error": None,
            }
        )
    return out


async def _answer_endpoint(target: EvalTarget, rows: list[dict], spec: EvalSpec) -> list[dict]:
    from backend.integrations import llm

    provider = llm.make_provider("openai", target.model, base_url=target.base_url, structured=False)

    async def one(row: dict) -> dict:
        start = time.perf_counter()
        [c] = await provider.complete(
            [[{"role": "user", "content": row["prompt"]}]],
            schema={},
            temperature=0.0,
            max_tokens=spec.max_new_tokens,
        )
        usage = c.usage or {}
        return {
            "output": c.text or "",
            "latency_s": time.perf_counter() - start,
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "error": c.error,
        }

    try:
        return list(await asyncio.gather(*(one(r) for r in rows)))
    finally:
        await provider.aclose()


async def _judge(provider, messages: list[dict], schema: dict) -> str | None:
    [c] = await provider.complete([messages], schema=schema, temperature=0.0, max_tokens=256)
    if c.error:
        raise judges.JudgeReplyError(c.error)
    return c.text


async def _judged(spec: EvalSpec, rows: list[dict], answers: dict[str, list[dict]]) -> dict:
    """{(target, idx): {scorer: (score, note)}} from the pointwise and pairwise judges."""
    from backend.integrations import llm

    provider = llm.make_provider("openai", spec.judge_model, base_url=spec.judge_base_url)
    found: dict[tuple[str, int], dict[str, tuple[float | None, str]]] = {}

    async def pointwise(label: str, i: int) -> None:
        row, ans = rows[i], answers[label][i]
        msgs = judges.pointwise_prompt(row, ans["output"], judges.rubric_of(row, spec.rubric))
        try:
            value, reason = judges.parse_score(
                await _judge(provider, msgs, judges.POINTWISE_SCHEMA)
            )
            found.setdefault((label, i), {})["judge"] = (value, reason)
        except judges.JudgeReplyError as exc:
            found.setdefault((label, i), {})["judge"] = (None, f"judge: {exc}")

    async def pairwise(label: str, i: int) -> None:
        row, rubric = rows[i], judges.rubric_of(rows[i], spec.rubric)
        mine, base = answers[label][i]["output"], answers[spec.baseline][i]["output"]
        try:
            first = judges.parse_winner(
                await _judge(
                    provider,
                    judges.pairwise_prompt(row, mine, base, rubric),
                    judges.PAIRWISE_SCHEMA,
                )
            )
            second = judges.parse_winner(
                await _judge(
                    provider,
                    judges.pairwise_prompt(row, base, mine, rubric),
                    judges.PAIRWISE_SCHEMA,
                )
            )
            note = f"as A: {first}; as B: {second}" + (
                "" if (first == "A") == (second == "B") else " (order changed the verdict)"
            )
            found.setdefault((label, i), {})["pairwise"] = (
                judges.pairwise_score(first, second),
                note,
            )
        except judges.JudgeReplyError as exc:
            found.setdefault((label, i), {})["pairwise"] = (None, f"judge: {exc}")

    tasks = []
    for label in answers:
        for i in range(len(rows)):
            if "judge" in spec.scorers:
                tasks.append(pointwise(label, i))
            if "pairwise" in spec.scorers and spec.baseline and label != spec.baseline:
                tasks.append(pairwise(label, i))
    try:
        await asyncio.gather(*tasks)
    finally:
        await provider.aclose()
    return found


def run_eval(ctx: JobContext, spec: EvalSpec) -> None:
    """The `eval` job's runner."""
    rows = [
        json.loads(line)
        for line in Path(spec.prompts_path).read_text().splitlines()
        if line.strip()
    ]
    total = len(rows) * len(spec.targets)
    ctx.progress(0, total, unit="answers")
    answers: dict[str, list[dict]] = {}
    for t in spec.targets:
        ctx.check_cancelled()
        ctx.event(f"{t.label} answers {len(rows)} prompts")
        if t.kind == "endpoint":
            answers[t.label] = asyncio.run(_answer_endpoint(t, rows, spec))
        else:
            answers[t.label] = _answer_local(t, rows, spec)
        ctx.progress(len(answers) * len(rows), total, unit="answers")
    judged: dict = {}
    if {"judge", "pairwise"} & set(spec.scorers):
        ctx.event("judging the answers")
        judged = asyncio.run(_judged(spec, rows, answers))
    out: list[dict[str, Any]] = []
    for label, got in answers.items():
        for i, (row, ans) in enumerate(zip(rows, got, strict=True)):
            scores: dict[str, float | None] = {}
            notes: dict[str, str] = {}
            for name in spec.scorers:
                if name in REFERENCE_SCORERS:
                    scores[name], notes[name] = score(name, ans["output"], row)
                elif name == "latency":
                    scores[name], notes[name] = ans["latency_s"], ""
                elif name == "tokens":
                    scores[name], notes[name] = ans["completion_tokens"], ""
                elif name in judged.get((label, i), {}):
                    scores[name], notes[name] = judged[(label, i)][name]
            out.append(
                {
                    "suite_id": spec.suite_id,
                    "target": label,
                    "idx": row["idx"],
                    **ans,
                    "scores": scores,
                    "notes": notes,
                }
            )
    ctx.output("eval_results.jsonl", out)
    ctx.event(f"scored {len(out)} answers with {', '.join(spec.scorers)}")
