"""The LLM judge as a GRPO reward: the configured (or an allowed) OpenAI-compatible endpoint
scores each sampled answer 0-10 under a rubric; the reward is score / 10.

Answers are judged in batches (one request per answer, `concurrency` at once), and each
(rubric, prompt, answer) is judged once: the cache lives in the job folder
(judge_cache.jsonl), so a resumed run does not pay again. `cost` counts requests, cache hits,
failures and the tokens the endpoint reported; the GRPO callback writes them as judge/*
metrics. A reply that is not a score gives no reward for that answer (None: TRL leaves it out).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from backend.train.rewards import RewardSpec, resolve, text_of

CACHE = "judge_cache.jsonl"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["score", "reason"],
    "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
}
SYSTEM = (
    "You grade one assistant answer against a rubric. Reply with JSON only: "
    '{"score": <0-10>, "reason": "<one sentence>"}.'
)


def parse_score(text: str | None) -> float | None:
    """The 0-10 score of a judge reply (JSON, perhaps fenced, or a bare number), else None.

    >>> parse_score('{"score": 7, "reason": "ok"}')
    7.0
    """
    if not text:
        return None
    match = re.search(r"\{.*\}", text, re.S)
    try:
        value = json.loads(match.group(0))["score"] if match else float(text.strip())
        value = float(value)
    except (ValueError, KeyError, TypeError):
        return None
    return value if 0.0 <= value <= 10.0 else None


class JudgeReward:
    """Scores answers under one rubric through one endpoint; see the module docstring."""

    def __init__(
        self,
        spec: RewardSpec,
        root: Path,
        *,
        model: str,
        base_url: str | None,
        cache_dir: Path,
        concurrency: int = 8,
    ):
        self.rubric = resolve(spec.arg, root).read_text("utf-8").strip()
        self.model, self.base_url, self.concurrency = model, base_url, concurrency
        self.cache_path = Path(cache_dir) / CACHE
        self.cost = {"requests": 0, "cache_hits": 0, "failed": 0, "tokens": 0}
        self.cache: dict[str, float | None] = {}
        if self.cache_path.exists():
            for line in self.cache_path.read_text("utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.cache[row["key"]] = row["score"]

    def _key(self, prompt: str, answer: str) -> str:
        body = json.dumps([self.rubric, self.model, prompt, answer], ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def _messages(self, prompt: str, answer: str) -> list[dict]:
        return [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": f"[Rubric]\n{self.rubric}\n\n[Prompt]\n{prompt}\n\n"
                f"[Answer]\n{answer}\n\nScore the answer from 0 to 10.",
            },
        ]

    async def _judge(self, todo: list[tuple[str, str]]) -> list[Any]:
        from backend.integrations import llm

        provider = llm.make_provider(
            "openai", self.model, base_url=self.base_url, concurrency=self.concurrency
        )
        out: list[Any] = []
        try:
            for i in range(0, len(todo), self.concurrency):
                batch = [self._messages(p, a) for p, a in todo[i : i + self.concurrency]]
                out += await provider.complete(
                    batch, schema=SCHEMA, temperature=0.0, max_tokens=128
                )
        finally:
            await provider.aclose()
        return out

    def __call__(self, prompts: list, completions: list, **_: Any) -> list[float | None]:
        pairs = [(text_of(p), text_of(c)) for p, c in zip(prompts, completions, strict=True)]
        keys = [self._key(p, a) for p, a in pairs]
        fresh: dict[str, float | None] = {}
        todo = {k: pair for k, pair in zip(keys, pairs, strict=True) if k not in self.cache}
        self.cost["cache_hits"] += len(keys) - len(todo)
        if todo:
            results = asyncio.run(self._judge(list(todo.values())))
            rows = []
            for key, res in zip(todo, results, strict=True):
                self.cost["requests"] += res.attempts
                self.cost["tokens"] += sum((res.usage or {}).values())
                fresh[key] = score = None if res.error else parse_score(res.text)
                self.cost["failed"] += score is None
                if score is not None:  # a failure is asked again next time
                    self.cache[key] = score
                    rows.append(json.dumps({"key": key, "score": score}) + "\n")
            with open(self.cache_path, "a", encoding="utf-8") as fh:
                fh.writelines(rows)
        scores = [self.cache.get(k, fresh.get(k)) for k in keys]
        return [None if s is None else s / 10.0 for s in scores]
