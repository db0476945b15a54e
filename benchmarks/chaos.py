"""Chaos: the router against the raw `openai` SDK under faults, and the soak.

Default (`python benchmarks/chaos.py`): "never worse than no router". For 5%, 20% and 50% mixed
faults (of the faults: 25% 429 with Retry-After, 25% 500, 50% 503, as the outside prober's server),
for 20% with a fallback deployment, and with one of two deployments fully down (503), the router with
its DEFAULT settings and the raw `openai` SDK with its default retries (2) each make `--calls` calls at
`--concurrency`, async, against the same real-socket emulator with the same faults, in the same run.
Prints success share, p50/p99 latency per call and attempts (requests the server saw) per call. The
SDK is pointed at the first deployment (it has no fallback). About two minutes with the defaults;
`--calls 2000` for tighter numbers. Then (alone: `--cut-gap`) the ledger against the emulator's
bill for streams of reasoning models cut before their usage chunk (DeepSeek `reasoning_content`,
Anthropic thinking): the gap on output tokens, which the estimate keeps within 1% by counting the
reasoning it saw, beside what counting the visible text alone would give.

`--soak`: 20,000 calls at 128-way concurrency, three providers, 30% faults of every kind the emulator
has, one provider fully down for a stretch. Prints calls completed and failed (and why), retries,
fallbacks, Retry-After violations (must be 0), gate violations (must be 0: PII never reaches
DeepSeek), the ledger against the emulator's bill (must differ by 0 tokens), p50/p99 latency, and
peak memory. Not part of CI.
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
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from tenacity import stop_after_attempt, wait_random_exponential

import llmroute
from llmroute.policies import Residency
from llmroute.routing.cooldown import Cooldowns
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
            cooldowns=Cooldowns(min_samples=10, base_s=0.05, max_s=0.5, rate_limit_s=0.02),
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


def mixed(retry_after: float) -> list[Fault]:
    """The outside prober's mix: of the faults, 25% 429 (with Retry-After), 25% 500, 50% 503."""
    return [
        Fault.rate_limit(retry_after=retry_after),
        Fault.server_error(500),
        Fault.overloaded(),
        Fault.overloaded(),
    ]


SCENARIOS: list[tuple[str, float, bool, bool]] = [
    # label, fault rate on every deployment, two deployments (a fallback), the first fully down
    ("5% faults, 1 deployment", 0.05, False, False),
    ("20% faults, 1 deployment", 0.20, False, False),
    ("50% faults, 1 deployment", 0.50, False, False),
    ("20% faults, 2 deployments", 0.20, True, False),
    ("1 of 2 deployments down", 0.0, True, True),
]


async def _run(
    emu: Emulator, call: Callable[[], Awaitable[None]], calls: int, concurrency: int
) -> tuple[float, float, float, float]:
    """Success share, p50 and p99 latency (ms), attempts per call (requests the server saw)."""
    before = len(emu.requests)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    ok = 0

    async def one() -> None:
        nonlocal ok
        async with gate:
            started = time.perf_counter()
            try:
                await call()
                ok += 1
            except openai.APIError:
                pass
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(calls)))
    lat = sorted(latencies)
    p50, p99 = statistics.median(lat) * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    return ok / calls, p50, p99, (len(emu.requests) - before) / calls


MESSAGES: list[Any] = [{"role": "user", "content": "Say something short."}]


async def _cell(
    who: str, emu: Emulator, server: Any, two: bool, calls: int, concurrency: int
) -> tuple[float, float, float, float]:
    if who == "sdk":
        sdk = openai.AsyncOpenAI(base_url=server.base_url("openai"), api_key="sk-test")

        async def sdk_call() -> None:
            await sdk.chat.completions.create(model="gpt-5.4", messages=MESSAGES)

        try:
            return await _run(emu, sdk_call, calls, concurrency)
        finally:
            await sdk.close()
    deployments = [
        llmroute.Deployment("gpt", model="gpt-5.4", api_key="sk-test", base_url=server.base_url("openai"))
    ]
    if two:
        deployments.append(
            llmroute.Deployment(
                "ds", model="deepseek-v3.2", api_key="sk-test", base_url=server.base_url("deepseek")
            )
        )
    router = llmroute.AsyncRouter(deployments, fallbacks=["deepseek-v3.2"] if two else ())

    async def router_call() -> None:
        await router.chat.completions.create(model="gpt-5.4", messages=MESSAGES)

    try:
        return await _run(emu, router_call, calls, concurrency)
    finally:
        await router.close()


async def compare(calls: int, concurrency: int, retry_after: float) -> None:
    print(
        f"{calls} calls per cell, {concurrency}-way async, 429s ask Retry-After {retry_after:g}s; "
        "router = llmroute defaults, SDK = openai defaults (2 retries)"
    )
    header = f"{'scenario':<27} {'':<7} {'success':>8} {'p50 ms':>8} {'p99 ms':>9} {'attempts':>9}"
    print(header)
    print("-" * len(header))
    for i, (label, rate, two, down) in enumerate(SCENARIOS):
        results = {}
        for who in ("sdk", "router"):
            emu = Emulator(seed=100 + i, encoding="approx")
            if down:
                emu.fault_rate(1.0, [Fault.server_error(503)], provider="openai", seed=1)
            elif rate:
                emu.fault_rate(rate, mixed(retry_after), provider="openai", seed=2)
                emu.fault_rate(rate, mixed(retry_after), provider="deepseek", seed=3)
            with emu.serve() as server:
                results[who] = await _cell(who, emu, server, two, calls, concurrency)
        for who, (share, p50, p99, attempts) in results.items():
            name = label if who == "sdk" else ""
            print(f"{name:<27} {who:<7} {share:>8.1%} {p50:>8.1f} {p99:>9.1f} {attempts:>9.2f}")
        verdict = "ok" if results["router"][0] >= results["sdk"][0] else "ROUTER BELOW SDK"
        print(f"{'':<27} {'':<7} {verdict}")


CUT_MODELS: list[tuple[str, str, str, dict[str, Any]]] = [
    # label, deployment model, emulator path, extra body: reasoning that streams as text
    ("DeepSeek reasoning_content", "deepseek-v4-pro", "deepseek", {}),
    (
        "Anthropic thinking",
        "claude-sonnet-4.6",
        "anthropic",
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    ),
]


async def cut_gap(calls: int, concurrency: int) -> None:
    """Cut streams from reasoning models: the ledger's output tokens against the emulator's bill.

    Every stream is cut after a random number of output tokens, before any usage chunk, so each row
    is an estimate from what the stream carried; reasoning comes first in these answers, so a cut
    stream is mostly reasoning. The column "text only" is what the estimate would be if it counted
    the visible text alone (the ledger keeps the reasoning part as `reasoning_tokens`)."""
    print(
        f"\ncut streams from reasoning models: {calls} streams each, {concurrency}-way async, every one cut"
    )
    header = f"{'model':<28} {'billed':>8} {'ledger':>8} {'gap':>7} {'text only':>10} {'gap':>7}"
    print(header)
    print("-" * len(header))
    for i, (label, model, path, extra) in enumerate(CUT_MODELS):
        billed, ledger, text_only = await _cut_cell(i, model, path, extra, calls, concurrency)
        gap, old_gap = (ledger - billed) / billed, (text_only - billed) / billed
        print(f"{label:<28} {billed:>8} {ledger:>8} {gap:>+7.1%} {text_only:>10} {old_gap:>+7.1%}")


async def _cut_cell(
    seed: int, model: str, path: str, extra: dict[str, Any], calls: int, concurrency: int
) -> tuple[int, int, int]:
    """Output tokens billed, in the ledger, and in the ledger less the reasoning its estimates counted."""
    emu = Emulator(seed=300 + seed)
    rng = random.Random(seed)
    cuts = [Fault.stream_cut(after_tokens=rng.randint(1, 120)) for _ in range(calls)]
    gate = asyncio.Semaphore(concurrency)
    with emu.serve() as server:
        router = llmroute.AsyncRouter(
            [llmroute.Deployment("d", model=model, api_key="sk-test", base_url=server.base_url(path))],
            retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)),
        )

        async def one(n: int) -> None:
            async with gate:
                emu.inject(cuts[n], times=1)
                messages = [{"role": "user", "content": f"Explain step {n} of routing in detail."}]
                try:
                    stream = await router.chat.completions.create(
                        model=model, messages=messages, stream=True, extra_body=extra or None
                    )
                    async for _ in stream:
                        pass
                except llmroute.LLMRouteError:
                    pass

        await asyncio.gather(*(one(n) for n in range(calls)))
        await router.close()
    rows = router.ledger.rows()
    ledger = sum(row.usage.output_tokens for row in rows)
    text_only = ledger - sum(row.usage.reasoning_tokens for row in rows if row.usage.estimated)
    return emu.bill.total().output_tokens, ledger, text_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak", action="store_true", help="run the 20,000-call soak instead")
    parser.add_argument("--cut-gap", action="store_true", help="only the cut-stream ledger gap")
    parser.add_argument("--calls", type=int, default=None, help="calls per cell (soak: in total)")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--retry-after", type=float, default=0.1, help="seconds the injected 429s ask")
    args = parser.parse_args()
    if args.soak:
        asyncio.run(soak(args.calls or 20_000, args.concurrency or 128))
    elif args.cut_gap:
        asyncio.run(cut_gap(args.calls or 400, args.concurrency or 32))
    else:
        asyncio.run(compare(args.calls or 400, args.concurrency or 32, args.retry_after))
        asyncio.run(cut_gap(args.calls or 400, args.concurrency or 32))


if __name__ == "__main__":
    main()
