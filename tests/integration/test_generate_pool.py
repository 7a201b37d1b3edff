"""Generation over several real loopback OpenAI-compatible endpoints: each endpoint's own
concurrency limit holds, requests go to the least loaded one, a failing endpoint is taken out
and tried again later without losing an item, and a generate job spreads over a pool end to
end (spec, action, job, ingestion)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from backend.action import Ctx
from backend.config import Settings
from backend.ingest.jobs import ingest_all
from backend.integrations import llm
from backend.integrations.pool import EndpointPool, Member, parse_endpoint
from backend.store import datasets as dstore
from backend.synth.actions import generate
from tests.support.openai_server import OpenAIServer

PROMPT = [{"role": "user", "content": "hello"}]


class Gauge:
    """Requests in flight at one server (the responder runs while the request is open)."""

    def __init__(self, hold_s: float):
        self.hold_s, self.now, self.most = hold_s, 0, 0
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.hold_s)
        with self._lock:
            self.now -= 1
        return "fine"


def member(srv: OpenAIServer, limit: int) -> Member:
    provider = llm.make_provider(
        "openai", "test-model", base_url=srv.base_url, max_retries=0, timeout_s=5.0
    )
    return Member(srv.base_url, limit, provider)


def complete(pool: EndpointPool, n: int) -> list[llm.Completion]:
    async def go():
        try:
            return await asyncio.gather(
                *(
                    pool.complete([PROMPT], schema={}, temperature=0.0, max_tokens=8)
                    for _ in range(n)
                )
            )
        finally:
            await pool.aclose()

    return [r for batch in asyncio.run(go()) for r in batch]


def test_parse_endpoint():
    e = parse_endpoint("http://127.0.0.1:8000/v1@3")
    assert (e.base_url, e.concurrency) == ("http://127.0.0.1:8000/v1", 3)
    assert parse_endpoint("http://h/v1").concurrency == 8
    with pytest.raises(ValueError, match="base URL"):
        parse_endpoint("h:8000@2")


def test_each_limit_holds_and_the_least_loaded_endpoint_gets_the_request():
    slow, fast = Gauge(0.05), Gauge(0.05)
    with OpenAIServer(responder=slow) as a, OpenAIServer(responder=fast) as b:
        pool = EndpointPool([member(a, 2), member(b, 6)])
        results = complete(pool, 48)
    assert all(r.text == "fine" and r.error is None for r in results)
    assert slow.most <= 2 and fast.most <= 6
    assert fast.most == 6  # the pool filled the bigger endpoint: 8 requests in flight in all
    # equal latency: each endpoint's share follows its limit (6:2), within a few requests
    assert a.served + b.served == 48
    assert 8 <= a.served <= 16 and b.served >= 32, (a.served, b.served)


def test_a_failing_endpoint_is_taken_out_and_tried_again_later_without_losing_items():
    down = {"on": True}
    notes: list[str] = []

    async def batch(pool: EndpointPool, n: int) -> list[llm.Completion]:
        args = {"schema": {}, "temperature": 0.0, "max_tokens": 8}
        done = await asyncio.gather(*(pool.complete([PROMPT], **args) for _ in range(n)))
        return [r for b in done for r in b]

    async def scenario(pool: EndpointPool, a: OpenAIServer):
        try:
            first = await batch(pool, 20)
            served_while_down = a.served
            down["on"] = False
            await asyncio.sleep(0.7)  # past the cool-down: a is tried again and stays in
            second = await batch(pool, 20)
            return first, served_while_down, second
        finally:
            await pool.aclose()

    with OpenAIServer() as a, OpenAIServer(delay_s=0.01) as b:
        a.fault_when = lambda body: "500" if down["on"] else None
        pool = EndpointPool([member(a, 4), member(b, 4)], cooldown_s=0.3, note=notes.append)
        first, served_while_down, second = asyncio.run(scenario(pool, a))
        url = a.base_url
    assert all(r.text for r in first + second)  # every item answered: none lost
    assert served_while_down == 0 and pool.members[0].failed >= 1
    assert any("taken out" in n and url in n for n in notes)
    assert a.served > 0, "the endpoint that came back got requests again"
    assert any("answers again" in n for n in notes)


def test_an_item_fails_only_after_every_endpoint_failed_it():
    with OpenAIServer() as a, OpenAIServer() as b:
        a.fault_when = b.fault_when = lambda body: "503"
        pool = EndpointPool([member(a, 2), member(b, 2)], cooldown_s=0.01)
        (result,) = complete(pool, 1)
    assert result.text is None and "HTTP 503" in result.error
    assert len(a.requests) >= 2 and len(b.requests) >= 2  # each endpoint failed it twice
    assert len(a.requests) + len(b.requests) == pool.attempts == 5


def test_a_generate_job_spreads_over_a_pool(ws, store, run_inline):
    with OpenAIServer(delay_s=0.01) as a, OpenAIServer(delay_s=0.01) as b:
        b.inject("disconnect")  # b fails its first request: b is out, the item goes to a
        ctx = Ctx(store=store, ws=ws, settings=Settings(), actor=None)
        recipe = {
            "task": "Answer Tasklane customer questions",
            "topics": ["billing", "gantt chart", "permissions"],
            "per_topic": 4,
            "model": "test-model",
        }
        job_id = generate(
            ctx,
            "support",
            recipe=recipe,
            start_worker=False,
            endpoints=[parse_endpoint(f"{a.base_url}@2"), parse_endpoint(f"{b.base_url}@3")],
            timeout_s=2.0,
            near_dup_threshold=0.999,
        )
        status = run_inline(ws, job_id)
    assert status.state == "succeeded", status.error
    ingest_all(store, ws)
    assert dstore.resolve_version(store, "support")["n_examples"] == 12  # nothing lost
    assert a.served > 0 and b.served > 0 and a.served + b.served == 12
    events = (ws.job_dir(job_id) / "events.jsonl").read_text()
    assert "endpoints: " in events and "1 failed" in events
