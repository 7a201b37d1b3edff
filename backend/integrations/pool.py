"""Generation over several OpenAI-compatible endpoints at once (e.g. vLLM replicas), behind the
same `Provider` interface as one endpoint (backend/integrations/llm.py).

Each endpoint has its own concurrency limit. A request goes to the endpoint with the fewest
outstanding requests for its limit (least loaded), waiting when every one is full. An endpoint
whose request fails (timeout, connection error, 429, 5xx, an unreadable reply) is taken out
for a cool-down that doubles with each failure in a row (5 s, 10 s, ... up to a minute) and its
request goes to another endpoint, so no item is lost; after the cool-down the endpoint is
tried again, and one success puts it back for good. An endpoint that refuses the credentials or
does not know the model is taken out for the rest of the job; only when every endpoint is out
for good does the job fail (`ProviderFatal`).

    pool = EndpointPool([Member("http://a/v1", 8, provider_a), Member("http://b/v1", 4, ...)])
    results = await pool.complete(prompts, schema=..., temperature=0.7, max_tokens=512)
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.integrations.llm import Completion, ProviderFatal

COOLDOWN_S = 5.0
MAX_COOLDOWN_S = 60.0


class Endpoint(BaseModel):
    """One endpoint of a generation pool, as a job spec holds it."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="The endpoint's OpenAI-compatible base URL.")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at most there.")


def parse_endpoint(text: str) -> Endpoint:
    """`URL` or `URL@N` (N requests in flight at most; default 8).

    >>> parse_endpoint("http://127.0.0.1:8000/v1@4").concurrency
    4
    """
    url, sep, limit = text.strip().rpartition("@")
    if not sep or not limit.isdigit():
        url, limit = text.strip(), "8"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint {text!r}: give a base URL http(s)://host[:port]/path[@N]")
    return Endpoint(base_url=url, concurrency=int(limit))


@dataclass
class Member:
    """An endpoint in the pool and its live state."""

    url: str
    limit: int
    provider: Any  # an OpenAIProvider for this endpoint (its own retries off: the pool's)
    outstanding: int = 0
    failures: int = 0  # in a row
    down_until: float = 0.0
    gone: str | None = None  # why it is out for good
    served: int = 0
    failed: int = 0


class EndpointPool:
    """A Provider over several endpoints (see the module docstring)."""

    name = "openai"
    batch_size = 1

    def __init__(
        self,
        members: list[Member],
        *,
        cooldown_s: float = COOLDOWN_S,
        max_cooldown_s: float = MAX_COOLDOWN_S,
        note: Callable[[str], object] | None = None,
    ):
        if not members:
            raise ProviderFatal("a generation pool needs at least one endpoint")
        self.members = members
        self.model = members[0].provider.model
        self.concurrency = sum(m.limit for m in members)
        self.cooldown_s, self.max_cooldown_s = cooldown_s, max_cooldown_s
        # an item is given up (a reject) only after every endpoint failed it twice
        self.attempts = 2 * len(members) + 1
        self.failovers = 0
        self.note = note or (lambda msg: sys.stderr.write(msg + "\n"))  # stderr is log.txt
        self._cond: asyncio.Condition | None = None

    @property
    def retries(self) -> int:
        return self.failovers

    @property
    def fallbacks(self) -> int:
        return sum(getattr(m.provider, "fallbacks", 0) for m in self.members)

    def summary(self) -> str:
        """Requests served and failed per endpoint, for the job's events."""
        parts = [
            f"{m.url}: {m.served} served, {m.failed} failed" + (" (out)" if m.gone else "")
            for m in self.members
        ]
        return "; ".join(parts)

    async def _acquire(self) -> Member:
        assert self._cond is not None
        async with self._cond:
            while True:
                live = [m for m in self.members if m.gone is None]
                if not live:
                    reasons = "; ".join(f"{m.url}: {m.gone}" for m in self.members)
                    raise ProviderFatal(f"every endpoint of the pool is out: {reasons}")
                now = time.monotonic()
                ready = [m for m in live if m.down_until <= now and m.outstanding < m.limit]
                if ready:
                    best = min(ready, key=lambda m: (m.outstanding / m.limit, m.outstanding))
                    best.outstanding += 1
                    return best
                wake = [m.down_until - now for m in live if m.down_until > now]
                try:
                    await asyncio.wait_for(self._cond.wait(), min(wake) if wake else None)
                except TimeoutError:
                    pass

    async def _release(self, m: Member, outcome: str, why: str = "") -> None:
        assert self._cond is not None
        async with self._cond:
            m.outstanding -= 1
            if outcome == "ok":
                m.served += 1
                if m.failures:
                    self.note(f"endpoint {m.url} answers again: back in the pool")
                m.failures = 0
            elif outcome == "failed":
                m.failed += 1
                if m.down_until <= time.monotonic():  # requests in flight as it went out
                    m.failures += 1  # count as the one failure that took it out
                    pause = min(self.cooldown_s * 2 ** (m.failures - 1), self.max_cooldown_s)
                    m.down_until = time.monotonic() + pause
                    self.note(f"endpoint {m.url} taken out for {pause:g}s: {why}")
            elif outcome == "gone" and m.gone is None:
                m.gone = why
                self.note(f"endpoint {m.url} taken out for good: {why}")
            self._cond.notify_all()

    async def _one(self, prompt: list[dict], **kwargs: Any) -> Completion:
        last = Completion(None, "no endpoint answered")
        for attempt in range(self.attempts):
            if attempt:
                self.failovers += 1
            m = await self._acquire()
            try:
                (res,) = await m.provider.complete([prompt], **kwargs)
            except ProviderFatal as exc:
                await self._release(m, "gone", str(exc))
                continue
            except BaseException:
                await self._release(m, "cancelled")
                raise
            if res.error and res.retryable:
                await self._release(m, "failed", res.error)
                last = res
                continue
            await self._release(m, "ok")
            return res
        return last

    async def complete(
        self, prompts: list[list[dict]], *, schema: dict, temperature: float, max_tokens: int
    ) -> list[Completion]:
        if self._cond is None:
            self._cond = asyncio.Condition()
        kwargs = {"schema": schema, "temperature": temperature, "max_tokens": max_tokens}
        return list(await asyncio.gather(*(self._one(p, **kwargs) for p in prompts)))

    async def aclose(self) -> None:
        for m in self.members:
            await m.provider.aclose()


def make_pool(
    endpoints: list[Endpoint],
    model: str | None,
    *,
    timeout_s: float = 60.0,
    note: Callable[[str], object] | None = None,
) -> EndpointPool:
    """A pool over `endpoints`, each client made by the one factory (llm.make_provider), so
    each endpoint gets only the key given for its own origin."""
    from backend.integrations import llm

    members = [
        Member(
            e.base_url,
            e.concurrency,
            llm.make_provider(
                "openai",
                model,
                base_url=e.base_url,
                concurrency=e.concurrency,
                max_retries=0,  # the pool retries on another endpoint instead
                timeout_s=timeout_s,
            ),
        )
        for e in endpoints
    ]
    return EndpointPool(members, note=note)
