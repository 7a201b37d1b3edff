"""Generation throughput: 200 requests to a local endpoint that answers after 50 ms, through the
real provider (AsyncOpenAI, retries, parsing), at concurrency 16 and at 1, in one run.

    .venv/bin/python bench/generate.py [--requests 200] [--delay 0.05] [--concurrency 16]

The endpoint is tests/support/openai_server.py in its own process (a real server is another
process; sharing the GIL with the client would measure Python, not the pipeline). The last line
is the ratio; the goal is >= 10x and >= 70% of the ideal concurrency / delay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.integrations.llm import OpenAIProvider  # noqa: E402
from backend.synth.parse import parse_output  # noqa: E402
from backend.synth.recipe import Recipe, build_prompt, output_schema, plan  # noqa: E402

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.openai_server import OpenAIServer
srv = OpenAIServer(delay_s={delay}).start()
print(srv.base_url, flush=True)
sys.stdin.read()
"""


async def run(base_url: str, n: int, concurrency: int) -> tuple[float, int]:
    """Send n requests with `concurrency` in flight; return (seconds, valid examples)."""
    recipe = Recipe(
        topics=["billing", "gantt chart", "permissions", "exports"], per_topic=(n + 3) // 4
    )
    items = plan(recipe)[:n]
    provider = OpenAIProvider(
        base_url=base_url, api_key="bench", model="bench", concurrency=concurrency
    )
    schema = output_schema("messages")
    queue = list(items)
    ok = 0

    async def worker() -> None:
        nonlocal ok
        while queue:
            item = queue.pop()
            [res] = await provider.complete(
                [build_prompt(recipe, item)], schema=schema, temperature=0.8, max_tokens=256
            )
            if res.text and parse_output(res.text, "messages"):
                ok += 1

    # warm up: open the `concurrency` keep-alive connections before timing the steady state
    await provider.complete(
        [build_prompt(recipe, it) for it in items[:concurrency]],
        schema=schema,
        temperature=0.8,
        max_tokens=256,
    )
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    await provider.aclose()
    return seconds, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(ROOT), delay=args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        results = {}
        for c in (args.concurrency, 1):
            seconds, ok = asyncio.run(run(base_url, args.requests, c))
            assert ok == args.requests, f"only {ok} of {args.requests} valid at concurrency {c}"
            results[c] = args.requests / seconds
            print(
                f"concurrency {c:3}: {args.requests} requests in {seconds:.2f} s = "
                f"{results[c]:.1f} req/s"
            )
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    ideal = args.concurrency / args.delay
    hi = results[args.concurrency]
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} (others' work slows both)")
    print(
        f"ideal at concurrency {args.concurrency}: {ideal:.0f} req/s; reached "
        f"{hi / ideal:.0%} of it"
    )
    print(f"ratio concurrency {args.concurrency} / 1: {hi / results[1]:.1f}x")


if __name__ == "__main__":
    main()
