"""Reliability properties: validation never crashes, ledger arithmetic holds, concurrency loses
nothing, and thousands of calls leak no descriptors or threads."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
from decimal import Decimal
from typing import Any

import pytest
from conftest import USER, deployments, reconcile_ledger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmroute
from llmroute.errors import ServerError
from llmroute.hinting import RouteHints
from llmroute.request import ChatRequest
from llmroute.routing.cooldown import Cooldowns
from llmroute.testing import Emulator
from llmroute.usage import Price, Usage

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5)
)
values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "robot", 3])},
    optional={"content": values, "name": values, "tool_call_id": values, "tool_calls": values},
)
argument_names = st.sampled_from(
    [
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "stream",
        "tools",
        "tool_choice",
        "response_format",
        "seed",
        "user",
        "metadata",
        "stream_options",
        "logit_bias",
        "presence_penalty",
        "timeout",
        "extra_headers",
        "not_an_argument",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.one_of(st.just("gpt-5.4"), values),
    messages=st.one_of(st.lists(message, max_size=3), values),
    extra=st.dictionaries(argument_names, values, max_size=4),
)
def test_validation_gives_a_typed_error_or_a_request(
    model: Any, messages: Any, extra: dict[str, Any]
) -> None:
    try:
        request = ChatRequest.from_kwargs({"model": model, "messages": messages, **extra}, RouteHints())
    except llmroute.InvalidRequest as e:
        assert e.argument  # names the argument
    else:
        assert isinstance(request.model, str) and request.messages


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(argument_names, values, max_size=3))
def test_invalid_calls_never_reach_the_network(extra: dict[str, Any]) -> None:
    emu = Emulator()
    router = llmroute.Router(deployments(emu))
    try:
        router.chat.completions.create(model="deepseek-v3.2", messages=USER, **extra)
    except llmroute.InvalidRequest:
        assert emu.requests == []
    except llmroute.ProviderError:
        assert emu.requests  # a valid request the provider refused: it was sent, and recorded
    else:
        assert len(emu.requests) >= 1
    finally:
        router.close()


tokens = st.integers(0, 10**7)
rates = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(
    total=tokens,
    read=tokens,
    write=tokens,
    out=tokens,
    reasoning=tokens,
    price=st.builds(
        Price,
        input=rates,
        output=rates,
        cache_read=st.none() | rates,
        cache_write_5m=st.none() | rates,
        cache_write_1h=st.none() | rates,
        reasoning=st.none() | rates,
    ),
)
def test_cost_breakdown_sums_to_total_exactly(
    total: int, read: int, write: int, out: int, reasoning: int, price: Price
) -> None:
    read, write = min(read, total), min(write, max(0, total - min(read, total)))
    usage = Usage(
        total, out, cache_read_tokens=read, cache_write_tokens=write, reasoning_tokens=min(reasoning, out)
    )
    cost = price.cost(usage)
    assert cost.total == cost.uncached_input + cost.cache_read + cost.cache_write + cost.output
    assert cost.total >= 0
    full = Price(input=price.input, output=price.output, reasoning=price.reasoning).cost(
        Usage(total, out, reasoning_tokens=min(reasoning, out))
    )
    if price.cache_read is not None and price.cache_read <= price.input and not write:
        assert cost.total <= full.total  # a cache discount never costs more


def test_ledger_under_many_threads_loses_nothing() -> None:
    emu = Emulator()
    router = llmroute.Router(deployments(emu))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                router.chat.completions.create(model="deepseek-v3.2", messages=USER)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(router.ledger) == 200 and len({r.id for r in router.ledger}) == 200
    reconcile_ledger(router.ledger, emu)
    router.close()


async def test_many_asyncio_tasks_lose_nothing() -> None:
    emu = Emulator()
    router = llmroute.AsyncRouter(deployments(emu, asynchronous=True))
    replies = await asyncio.gather(
        *(router.chat.completions.create(model="gpt-5.4", messages=USER) for _ in range(256))
    )
    assert len(replies) == 256 and len(router.ledger) == 256
    assert len({r.route.call_id for r in replies}) == 256
    reconcile_ledger(router.ledger, emu)
    await router.close()


def test_cooldown_deadlines_only_move_later_under_threads() -> None:
    cooldowns = Cooldowns(min_samples=1, base_s=1.0, max_s=100.0)
    seen: list[float] = []
    lock = threading.Lock()
    import httpx2

    request = httpx2.Request("POST", "http://x.invalid")

    def hammer() -> None:
        for _ in range(200):
            cooldowns.observe(
                "d", ServerError("x", request=request, response=httpx2.Response(500, request=request))
            )
            until = cooldowns.cooling_until("d")
            with lock:
                if until is not None:
                    seen.append(until)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = cooldowns.cooling_until("d")
    assert final is not None and final >= max(seen) - 1e-9


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_async_calls_with_faults_leak_nothing_and_memory_stays_flat() -> None:
    import tracemalloc

    from llmroute.testing import Fault

    emu = Emulator()
    emu.fault_rate(
        0.3, [Fault.server_error(500), Fault.rate_limit(retry_after=0), Fault.connection_reset()], seed=3
    )
    with emu.serve() as server:

        async def burst(router: llmroute.AsyncRouter, n: int) -> None:
            async def one(i: int) -> None:
                try:
                    if i % 3 == 0:
                        stream = await router.chat.completions.create(
                            model="gpt-5.4", messages=USER, stream=True
                        )
                        async for _ in stream:
                            pass
                    else:
                        await router.chat.completions.create(model="gpt-5.4", messages=USER)
                except llmroute.LLMRouteError:
                    pass

            await asyncio.gather(*(one(i) for i in range(n)))

        def quiet_reset() -> None:  # measure the router, not the emulator's request log
            emu.reset()
            emu.fault_rate(
                0.3,
                [Fault.server_error(500), Fault.rate_limit(retry_after=0), Fault.connection_reset()],
                seed=3,
            )

        async def run() -> tuple[int, int, int, int]:
            router = llmroute.AsyncRouter(
                [
                    llmroute.Deployment(
                        "gpt", model="gpt-5.4", api_key="sk-test", base_url=server.base_url("openai")
                    )
                ],
                retry=llmroute.RetryPolicy(wait=__import__("tenacity").wait_none()),
                cooldowns=Cooldowns(base_s=0.0, rate_limit_s=0.0),
            )
            await burst(router, 300)  # warm up
            router.ledger.clear()
            fds = len(os.listdir("/proc/self/fd"))
            tracemalloc.start()
            await burst(router, 300)
            router.ledger.clear()
            quiet_reset()
            gc.collect()  # failed calls leave reference cycles (exceptions and their tracebacks)
            first, _ = tracemalloc.get_traced_memory()
            await burst(router, 900)
            router.ledger.clear()
            quiet_reset()
            gc.collect()
            second, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            await router.close()
            return fds, len(os.listdir("/proc/self/fd")), first, second

        logging.disable(logging.DEBUG)  # pytest keeps every captured record: not the router's memory
        try:
            fds_before, fds_after, first, second = asyncio.run(run())
        finally:
            logging.disable(logging.NOTSET)
    assert fds_after <= fds_before + 4
    # 900 more calls (30% failing): the router's own state is bounded (rate windows of 60 s, caches);
    # what remains is the SDK's and httpx's, which alone grow by ~4.4 MB over the same 900 calls
    # (measured with the raw AsyncOpenAI; this test typically sees ~3 MB). Keeping each call's response
    # or error (with its request, headers and traceback: over 10 kB each) would exceed the bound.
    assert second - first < 8_000_000


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_thousands_of_calls_leak_no_descriptors_or_threads() -> None:
    emu = Emulator()
    with emu.serve() as server:
        router = llmroute.Router(
            [
                llmroute.Deployment(
                    "gpt", model="gpt-5.4", api_key="sk-test", base_url=server.base_url("openai")
                )
            ]
        )

        def burst(n: int) -> None:
            for i in range(n):
                if i % 4 == 0:
                    list(router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True))
                else:
                    router.chat.completions.create(model="gpt-5.4", messages=USER)

        burst(200)  # warm up pools and caches
        fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
        burst(1500)
        assert len(os.listdir("/proc/self/fd")) <= fds + 4
        assert threading.active_count() <= threads
        router.close()
    assert sum(1 for r in router.ledger if r.outcome == "ok") == 1700
    assert router.ledger.total().cost > Decimal(0)
