"""The soak: 20,000 calls at 128-way concurrency against the real-socket emulator, three providers,
30% faults of every kind the emulator has, one provider fully down for a stretch.

Prints calls completed and failed (and why), retries, fallbacks, cooldowns opened, Retry-After
violations (must be 0), gate violations (must be 0: PII never reaches DeepSeek), the ledger against
the emulator's bill (must differ by 0 tokens), p50/p99 added latency per call against the fault-free
round trip, and peak memory. Not part of CI: `python benchmarks/chaos.py [--calls N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import resource
import statistics
import time
import warnings
from collections import Counter

from tenacity import wait_random_exponential

import llmroute
from llmroute.cooldown import Cooldowns
from llmroute.policies import Residency
from llmroute.testing import Emulator, Fault

warnings.filterwarnings("ignore")

FAULTS = [
    Fault.rate_limit(retry_after=0.02),
    Fault.rate_limit(retry_after=0.02, retry_after_ms=True),
    Fault.server_error(500),
    Fault.server_error(502),
    Fault.overloaded(),
    Fault.timeout(delay=0.5),
    Fault.connection_reset(),
    Fault.content_filter(after_tokens=3),
    Fault.silent_stop(after_tokens=4),
]
STREAM_FAULTS = [*FAULTS, Fault.stream_cut(after_tokens=0, final_chunk=True)]


async def soak(calls: int, concurrency: int) -> None:
    emu = Emulator(seed=11, encoding="approx")
    for provider in ("openai", "deepseek"):
        emu.fault_rate(0.3, FAULTS, provider=provider, stream=False, seed=hash(provider) % 1000)
        emu.fault_rate(0.3, STREAM_FAULTS, provider=provider, stream=True, seed=hash(provider) % 1000 + 1)
    with emu.serve() as server:
        deployments = [
            llmroute.Deployment(
                "gpt", model="gpt-5.4", api_key="sk-test", base_url=server.base_url("openai")
            ),
            llmroute.Deployment(
                "ds", model="deepseek-v3.2", api_key="sk-test", base_url=server.base_url("deepseek")
            ),
            llmroute.Deployment("local", model="qwen3-8b", provider="vllm", base_url=server.base_url("vllm")),
        ]
        residency = Residency(
            {"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]}, default="internal"
        )
        router = llmroute.AsyncRouter(
            deployments,
            models=[llmroute.ModelSpec("qwen3-8b", "vllm", "qwen3-8b")],
            policy=residency | llmroute.Requested(["deepseek-v3.2", "gpt-5.4", "qwen3-8b"]),
            retry=llmroute.RetryPolicy(
                wait=wait_random_exponential(multiplier=0.01, max=0.05), switch_after=0.05
            ),
            cooldowns=Cooldowns(base_s=0.05, max_s=0.5, rate_limit_s=0.02),
        )
        rng = random.Random(5)
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        pii_calls = 0
        outage = (calls // 3, calls // 3 + calls // 10)

        async def one(i: int) -> None:
            nonlocal pii_calls
            if i == outage[0]:
                emu.inject(Fault.server_error(503), provider="openai", times=10**9)
            if i == outage[1]:
                emu.clear_faults()
                for provider in ("openai", "deepseek"):
                    emu.fault_rate(0.3, FAULTS, provider=provider, stream=False, seed=i)
                    emu.fault_rate(0.3, STREAM_FAULTS, provider=provider, stream=True, seed=i + 1)
            model = rng.choice(["gpt-5.4", "deepseek-v3.2"])
            sensitivity = "pii" if rng.random() < 0.15 else "internal"
            pii_calls += sensitivity == "pii"
            messages = [{"role": "user", "content": f"Question {i}: {'context ' * rng.randint(1, 40)}"}]
            async with gate:
                started = time.perf_counter()
                try:
                    if i % 5 == 0:
                        stream = await router.chat.completions.create(
                            model=model, messages=messages, stream=True, route={"sensitivity": sensitivity}
                        )
                        async for _ in stream:
                            pass
                    else:
                        await router.chat.completions.create(
                            model=model, messages=messages, route={"sensitivity": sensitivity}
                        )
                except llmroute.LLMRouteError as e:
                    failures[type(e).__name__] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        elapsed = time.perf_counter() - started
        await router.close()

    rows = router.ledger.rows()
    bill = emu.bill.total()
    usage = router.ledger.total().usage
    retries = sum(1 for r in rows if r.attempt > 1)
    errors = Counter(r.error for r in rows if r.error)
    pii_to_cn = sum(1 for r in rows if r.hints.sensitivity == "pii" and r.provider == "deepseek")
    # Retry-After: within a call, the next attempt at a deployment that answered 429 ("wait 20 ms")
    # starts no sooner than 20 ms after that answer arrived.
    by_call: dict[str, list[llmroute.LedgerRow]] = {}
    for row in rows:
        by_call.setdefault(row.call_id, []).append(row)
    violations = 0
    fallbacks = sum(1 for attempts in by_call.values() if len({r.deployment for r in attempts}) > 1)
    for attempts in by_call.values():
        attempts.sort(key=lambda r: r.attempt)
        for before, after in itertools.pairwise(attempts):
            same = before.deployment == after.deployment
            if (
                same
                and before.error == "RateLimited"
                and (after.timestamp - after.latency_s) - before.timestamp < 0.02
            ):
                violations += 1
    completed = calls - sum(failures.values())
    print(
        f"{calls} calls at {concurrency}-way concurrency in {elapsed:.1f}s ({calls / elapsed:,.0f} calls/s)"
    )
    print(f"  completed: {completed}; failed: {sum(failures.values())} {dict(failures) or ''}")
    print(f"  attempts: {len(rows)}; retried attempts: {retries}; errors survived by kind: {dict(errors)}")
    print(f"  Retry-After violations: {violations} (must be 0)")
    print(
        f"  gate violations (PII attempts to DeepSeek/CN): {pii_to_cn} of {pii_calls} PII calls (must be 0)"
    )
    diff = (
        usage.input_tokens - bill.input_tokens,
        usage.output_tokens - bill.output_tokens,
        usage.cache_read_tokens - bill.cached_tokens,
    )
    print(f"  ledger - emulator bill (input, output, cached tokens): {diff} (must be 0)")
    lat = sorted(latencies)
    p50, p99 = statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99)] * 1e3
    print(f"  latency per call (incl. waits for retries): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  fallback calls: {fallbacks}; peak RSS {peak:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    asyncio.run(soak(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
