"""Load balancing under client-side limits: 5,000 calls at 128-way concurrency over 3 deployments.

Three deployments of one model, each an account (API key) that the emulator limits to RPM requests
a minute and that the router is told about (`Deployment(rpm=...)`). Prints the 429s the providers
had to send (target: 0 while total capacity suffices), each deployment's share against its limit,
throughput, and the router's added time per call against the raw `AsyncOpenAI` on the same server.

    python benchmarks/balance.py [--calls 5000] [--concurrency 128] [--rpm 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from collections import Counter

import openai

import llmroute
from llmroute.routing.balance import LeastBusy
from llmroute.testing import Emulator

warnings.filterwarnings("ignore")
MESSAGES = [{"role": "user", "content": "Summarise the release notes."}]
MODEL = llmroute.ModelSpec("m", "vllm", "m")


async def run_router(server_url: str, calls: int, concurrency: int, rpm: int) -> tuple[float, Counter[str]]:
    deployments = [
        llmroute.Deployment(
            f"account-{k}", model="m", provider="vllm", base_url=server_url, api_key=f"key-{k}", rpm=rpm
        )
        for k in "abc"
    ]
    router = llmroute.AsyncRouter(deployments, models=[MODEL], balancer=LeastBusy(), queue_timeout=5.0)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            reply = await router.chat.completions.create(model="m", messages=MESSAGES)
            return reply.route.deployment

    started = time.perf_counter()
    served = Counter(await asyncio.gather(*(one() for _ in range(calls))))
    elapsed = time.perf_counter() - started
    await router.close()
    return elapsed, served


async def run_raw(server_url: str, calls: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=server_url, api_key="key-raw", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--rpm", type=int, default=2000)
    args = parser.parse_args()
    emu = Emulator(seed=0, encoding="approx")
    for k in "abc":
        emu.set_rate_limit("vllm", args.rpm, key=f"key-{k}")
    with emu.serve() as server:
        url = server.base_url("vllm")
        raw = asyncio.run(run_raw(url, args.calls, args.concurrency))
        emu.reset()
        elapsed, served = asyncio.run(run_router(url, args.calls, args.concurrency, args.rpm))
    rejected = sum(1 for r in emu.requests if r.status == 429)
    capacity = 3 * args.rpm
    print(f"{args.calls} calls, {args.concurrency}-way, 3 deployments x {args.rpm} rpm (emulator-enforced)")
    print(f"  429s the providers sent: {rejected}  (target 0 while {args.calls} <= capacity {capacity}/min)")
    for name, count in sorted(served.items()):
        print(f"  {name}: {count} calls (limit {args.rpm}/min)  {'ok' if count <= args.rpm else 'OVER'}")
    print(f"  throughput: router {args.calls / elapsed:,.0f}/s, raw AsyncOpenAI {args.calls / raw:,.0f}/s")
    added = (elapsed - raw) / args.calls * args.concurrency
    print(f"  router's added time per call at this concurrency: {added * 1e3:+.3f} ms (same server)")


if __name__ == "__main__":
    main()
