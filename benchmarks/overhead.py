"""llmroute's overhead against the raw `openai` SDK, on the same local emulator server, in one run.

    python benchmarks/overhead.py            # full run (about a minute and a half on 2 cores)
    python benchmarks/overhead.py --quick    # smoke run (about 15 s)

Sections (every contender hits the SAME emulator server in the SAME run, interleaved in rounds):

0. The server itself: a bare `http.client` keep-alive round trip and the raw SDK's per-call time
   (should be about 1 ms; tens of ms would mean a Nagle/delayed-ACK stall, not the code under test).
1. Sequential non-streaming calls: `openai.OpenAI().chat.completions.create` vs `llmroute.Router`:
   wall time per call (median, p99), the added microseconds, CPU time per call.
2. Streaming time to last chunk (whole stream consumed), and TCP connections opened per N streams.
3. Async throughput at 64 concurrent calls: `AsyncOpenAI` vs `AsyncRouter`, on the SDK's default
   httpx transport and on its aiohttp transport (`openai.DefaultAioHttpClient`) when installed.
4. Import time in fresh interpreters, and the first `Router(...)` + first call (which imports
   `openai` and loads the catalog), reported separately.
5. The router's own work per call without I/O (validation, policy, ledger row, ...), in microseconds.

Then a summary with the ratios against the raw SDK and the DESIGN.md targets beside them.
The server runs in a child process so it neither shares the GIL with the measured client nor
counts in its CPU time. Only 127.0.0.1 is used; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import sys
import time
import timeit
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # the benchmarks directory is not a package: see sys.path above
    AsyncResult,
    EmulatorProcess,
    ProcessTimes,
    Samples,
    Summary,
    Table,
    header,
    interleave,
    interleave_async,
    interleave_subprocesses,
    machine,
    median,
    ms,
    percentile,
    ratio,
    run_json,
    us,
)

MODEL = "gpt-5.4"  # a priced catalog model, so the router computes a real Decimal cost
API_KEY = "sk-bench-0000"
SYSTEM = (
    "You are a careful assistant for an online bookshop. Answer questions about orders, shipping, "
    "returns and book recommendations. Be concise, cite the order number when there is one, never "
    "invent tracking numbers, and hand over to a human when the customer asks for a refund above "
    "one hundred euros or is unhappy after two answers."
)
USER = "Where is my order 4711? It was due on Monday. [[emulator:tokens=32]]"
MESSAGES: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
KWARGS: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}

# DESIGN.md "Performance targets"
PER_CALL_TARGET = 1.10  # router / raw per-call wall time, sequential and streaming
ASYNC_TARGET = 0.90  # router / raw calls per second
IMPORT_TARGET = 1.15  # import llmroute / import openai
POLICY_TARGET_US = 20.0  # policy ranking over 50 candidate models
LEDGER_TARGET_RATE = 200_000  # rows appended per second
LEDGER_TARGET_BYTES = 400  # memory per row
SERVER_SLOW_S = 0.003  # a raw SDK median above this suggests the server stalls (expected ~1 ms)


@dataclass(frozen=True)
class Sizes:
    seq_rounds: int
    seq_per_round: int
    stream_rounds: int
    stream_per_round: int
    async_rounds: int
    async_total: int
    import_runs: int
    first_call_runs: int
    micro_number: int
    floor_calls: int


FULL = Sizes(20, 100, 20, 50, 6, 1000, 9, 5, 5000, 1000)
QUICK = Sizes(6, 40, 6, 20, 1, 640, 3, 1, 1000, 300)
CONCURRENCY = 64


def _deployment(base_url: str, **extra: Any) -> Any:
    from llmroute import Deployment

    return Deployment("gpt", model=MODEL, base_url=base_url, api_key=API_KEY, **extra)


# -- 0. the server ---------------------------------------------------------------------------------


def server_floor(server: EmulatorProcess, calls: int) -> Summary:
    """A bare keep-alive HTTP/1.1 round trip with `http.client`: the server's own cost plus the least
    a client can do."""
    body = json.dumps(KWARGS).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {API_KEY}",
        "Connection": "keep-alive",
    }
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    path = "/openai/v1/chat/completions"
    times: list[float] = []
    try:
        for i in range(calls + 20):
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if i >= 20:
                times.append(time.perf_counter() - t0)
            if response.status != 200:
                raise RuntimeError(f"emulator answered {response.status}")
    finally:
        conn.close()
    return Summary.of(times)


def in_thread_raw(calls: int) -> Summary:
    """The raw SDK against the same server run the usual way, `with Emulator().serve()` in a thread
    of this process (it then shares the GIL with the client)."""
    import openai

    from llmroute.testing import Emulator

    emulator = Emulator(seed=0, encoding="approx", max_requests=64)
    with emulator.serve() as server:
        client = openai.OpenAI(base_url=server.base_url("openai"), api_key=API_KEY, max_retries=0)
        try:
            samples = interleave(
                {"raw": lambda: client.chat.completions.create(**KWARGS)},
                rounds=1,
                per_round=calls,
            )
        finally:
            client.close()
    return Summary.of(samples["raw"].wall)


# -- 1 and 2. sequential calls and streams ------------------------------------------------------------


def sequential(server: EmulatorProcess, sizes: Sizes) -> tuple[dict[str, Samples], Any]:
    import openai

    import llmroute

    url = server.base_url("openai")
    client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    router = llmroute.Router([_deployment(url)])
    reply: list[Any] = []

    def raw() -> None:
        client.chat.completions.create(**KWARGS)

    def routed() -> None:
        reply[:] = [router.chat.completions.create(**KWARGS)]

    try:
        samples = interleave(
            {"raw openai.OpenAI": raw, "llmroute.Router": routed},
            rounds=sizes.seq_rounds,
            per_round=sizes.seq_per_round,
            counter=lambda: server.stats().connections,
        )
    finally:
        client.close()
        router.close()
    return samples, reply[0]


def streaming(server: EmulatorProcess, sizes: Sizes) -> tuple[dict[str, Samples], dict[str, int]]:
    import openai

    import llmroute

    url = server.base_url("openai")
    client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)
    router = llmroute.Router([_deployment(url)])
    chunks: dict[str, int] = {}

    def consume(name: str, stream: Any) -> None:
        n = 0
        for _ in stream:
            n += 1
        chunks[name] = n

    def raw() -> None:
        consume("raw openai.OpenAI", client.chat.completions.create(**KWARGS, stream=True))

    def routed() -> None:
        consume("llmroute.Router", router.chat.completions.create(**KWARGS, stream=True))

    try:
        samples = interleave(
            {"raw openai.OpenAI": raw, "llmroute.Router": routed},
            rounds=sizes.stream_rounds,
            per_round=sizes.stream_per_round,
            counter=lambda: server.stats().connections,
        )
    finally:
        client.close()
        router.close()
    return samples, chunks


def print_calls(title: str, samples: dict[str, Samples], metric: str) -> None:
    names = list(samples)
    base = samples[names[0]]
    b = Summary.of(base.wall)
    table = Table(
        "contender", f"{metric} median", "p99", "ratio", "added", "CPU/call", "CPU ratio", "new TCP"
    )
    for name in names:
        s = samples[name]
        m = Summary.of(s.wall)
        table.row(
            name,
            ms(m.median),
            ms(m.p99),
            ratio(m.median, b.median),
            us(m.median - b.median, signed=True) if s is not base else "",
            us(s.cpu_per_call),
            ratio(s.cpu_per_call, base.cpu_per_call),
            f"{s.counted}/{s.calls}",
        )
    print(f"  {title}")
    table.print()


# -- 3. async throughput ----------------------------------------------------------------------------


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
        from openai._vendor.httpx_aiohttp import Httpx2AiohttpClient  # noqa: F401
    except ImportError:
        return False
    return True


async def _async_contenders(server: EmulatorProcess, sizes: Sizes) -> dict[str, AsyncResult]:
    import openai

    import llmroute

    url = server.base_url("openai")
    clients: list[Any] = []
    routers: list[Any] = []
    contenders: dict[str, Callable[[], Any]] = {}

    def raw_of(http_client: Any) -> Callable[[], Any]:
        client = openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, http_client=http_client)
        clients.append(client)
        return lambda: client.chat.completions.create(**KWARGS)

    def router_of(http_client: Any) -> Callable[[], Any]:
        router = llmroute.AsyncRouter([_deployment(url, async_http_client=http_client)])
        routers.append(router)
        return lambda: router.chat.completions.create(**KWARGS)

    contenders["raw AsyncOpenAI (httpx)"] = raw_of(None)
    contenders["llmroute.AsyncRouter (httpx)"] = router_of(None)
    if aiohttp_available():
        contenders["raw AsyncOpenAI (aiohttp)"] = raw_of(openai.DefaultAioHttpClient())
        contenders["llmroute.AsyncRouter (aiohttp)"] = router_of(openai.DefaultAioHttpClient())
    try:
        return await interleave_async(
            contenders,
            rounds=sizes.async_rounds,
            total=sizes.async_total,
            concurrency=CONCURRENCY,
            server=server,
        )
    finally:
        for client in clients:
            await client.close()
        for router in routers:
            await router.close()


def async_throughput(server: EmulatorProcess, sizes: Sizes) -> dict[str, AsyncResult]:
    before = server.stats()
    results = asyncio.run(_async_contenders(server, sizes))
    opened = (server.stats() - before).connections
    names = list(results)
    base = median(results[names[0]].rate)
    base_cpu = median(results[names[0]].cpu_per_call)
    table = Table(
        "contender", "calls/s", "vs raw httpx", "CPU/call", "CPU ratio", "server busy", "new TCP", "failed"
    )
    for name in names:
        r = results[name]
        table.row(
            name,
            f"{median(r.rate):.0f}",
            ratio(median(r.rate), base),
            us(median(r.cpu_per_call)),
            ratio(median(r.cpu_per_call), base_cpu),
            f"{median(r.server_busy):.0%}" if r.server_busy else "n/a",
            f"{r.connections}/{r.calls}",
            r.failures,
        )
    print(
        f"  {sizes.async_total} calls at {CONCURRENCY} concurrent, median of {sizes.async_rounds} round(s);"
        f" {opened} TCP connections opened in all (warm-up included; httpx drops idle pooled connections"
        " after 5 s, so a contender idle while the others run reconnects)"
    )
    table.print()
    if not aiohttp_available():
        print("  (openai[aiohttp] is not installed: aiohttp contenders skipped)")
    busiest = max((median(r.server_busy) for r in results.values() if r.server_busy), default=0.0)
    if busiest > 0.85:
        print(
            "  note: the server process was busy most of the time; throughput ratios are compressed "
            "toward 1.0 (compare CPU/call)."
        )
    return results


# -- 4. import time and the first call --------------------------------------------------------------

_FIRST_RAW = """
import json, os, sys, time
t0 = time.perf_counter()
import openai
OpenAI = openai.OpenAI
t1 = time.perf_counter()
client = OpenAI(base_url=os.environ["BENCH_BASE_URL"], api_key="sk-bench-0000", max_retries=0)
t2 = time.perf_counter()
messages = [{"role": "user", "content": "Hello [[emulator:tokens=32]]"}]
client.chat.completions.create(model="gpt-5.4", messages=messages)
t3 = time.perf_counter()
client.chat.completions.create(model="gpt-5.4", messages=messages)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "construct": t2 - t1, "first": t3 - t2, "second": t4 - t3,
                  "modules": sorted(m for m in ("anthropic", "tiktoken", "tenacity", "openai")
                                    if m in sys.modules)}))
"""

_FIRST_ROUTER = """
import json, os, sys, time
t0 = time.perf_counter()
import llmroute
Router, Deployment = llmroute.Router, llmroute.Deployment  # the lazy names import openai here
t1 = time.perf_counter()
url = os.environ["BENCH_BASE_URL"]
deployment = Deployment("gpt", model="gpt-5.4", base_url=url, api_key="sk-bench-0000")
router = Router([deployment])
t2 = time.perf_counter()
messages = [{"role": "user", "content": "Hello [[emulator:tokens=32]]"}]
router.chat.completions.create(model="gpt-5.4", messages=messages)
t3 = time.perf_counter()
router.chat.completions.create(model="gpt-5.4", messages=messages)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "construct": t2 - t1, "first": t3 - t2, "second": t4 - t3,
                  "modules": sorted(m for m in ("anthropic", "tiktoken", "tenacity", "openai")
                                    if m in sys.modules)}))
"""


@dataclass
class ImportResult:
    times: dict[str, ProcessTimes]
    first: dict[str, dict[str, float]]
    modules: dict[str, list[str]]

    def import_s(self, name: str) -> float:
        return median(self.times[name].inner)


def import_time(server: EmulatorProcess, sizes: Sizes) -> ImportResult:
    cases = {
        "pass": "pass",
        "import openai": "import openai",
        "import llmroute": "import llmroute",
        "from llmroute import Router, Deployment": "from llmroute import Router, Deployment",
    }
    times = interleave_subprocesses(cases, runs=sizes.import_runs)
    table = Table(
        "fresh interpreter", "import median", "vs openai", "import min", "vs openai (mins)", "whole python -c"
    )
    openai_s, openai_min = median(times["import openai"].inner), min(times["import openai"].inner)
    for name, t in times.items():
        table.row(
            name,
            ms(median(t.inner)),
            ratio(median(t.inner), openai_s) if name != "pass" else "",
            ms(min(t.inner)),
            ratio(min(t.inner), openai_min) if name != "pass" else "",
            ms(median(t.wall)),
        )
    print(
        f"  median of {sizes.import_runs} runs each, interleaved; import time is timed inside the child "
        "(the whole python -c includes interpreter start-up)"
    )
    table.print()

    env = {"BENCH_BASE_URL": server.base_url("openai")}
    runs: dict[str, list[dict[str, Any]]] = {"raw openai": [], "llmroute": []}
    for _ in range(sizes.first_call_runs):
        runs["raw openai"].append(run_json(_FIRST_RAW, env))
        runs["llmroute"].append(run_json(_FIRST_ROUTER, env))
    first = {
        name: {k: median([r[k] for r in rs]) for k in ("import", "construct", "first", "second")}
        for name, rs in runs.items()
    }
    modules = {name: rs[-1]["modules"] for name, rs in runs.items()}
    table = Table(
        "fresh process", "import + names", "construct", "first call", "second call", "heavy modules loaded"
    )
    for name, f in first.items():
        table.row(
            name,
            ms(f["import"]),
            ms(f["construct"]),
            ms(f["first"]),
            ms(f["second"]),
            ", ".join(modules[name]),
        )
    print(f"\n  first client + first call, median of {sizes.first_call_runs} fresh process(es) each")
    table.print()
    raw_total = sum(first["raw openai"][k] for k in ("import", "construct", "first"))
    router_total = sum(first["llmroute"][k] for k in ("import", "construct", "first"))
    print(
        f"  import + construct + first call: raw {ms(raw_total)}, llmroute {ms(router_total)} "
        f"({ratio(router_total, raw_total)}, {us(router_total - raw_total, signed=True)})"
    )
    return ImportResult(times, first, modules)


# -- 5. the router's own work per call ---------------------------------------------------------------


def _per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Mean time of `fn()` over `number` calls, the best of `repeat` runs (GC paused, as timeit):
    noise from other processes only ever adds time."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


@dataclass
class MicroResult:
    rows: list[tuple[str, float, str]]
    prepare: float
    policy50: float
    ledger_rate: float
    ledger_bytes: float
    router_sum: float
    sdk_transform: float


def router_work(reply: Any, sizes: Sizes) -> MicroResult:
    """Time the router's per-call steps without I/O, on a router like the one of section 1."""
    import tracemalloc

    import llmroute
    from llmroute.hinting import current_hints
    from llmroute.money.ledger import LedgerRow
    from llmroute.policy import RouteContext
    from llmroute.request import ChatRequest
    from llmroute.response import RoutedChatCompletion
    from llmroute.routing.core import new_call_id
    from llmroute.routing.engine import Attempt, drive

    n = sizes.micro_number
    router = llmroute.Router([_deployment("http://127.0.0.1:9/openai/v1")])
    core = router._core
    request, decision = core.prepare(dict(KWARGS))
    target = decision.targets[0]
    adapter = core.adapter(target)
    completion = reply if isinstance(reply, RoutedChatCompletion) else None
    headers = {"x-request-id": "req_0", "content-type": "application/json"}
    if completion is None:  # pragma: no cover - section 1 always gives one
        raise RuntimeError("no RoutedChatCompletion from section 1")
    done = adapter.decode(completion, headers)
    hints = current_hints()
    ctx = RouteContext(
        request=request,
        hints=hints,
        candidates=core.candidates(decision.targets),
        requested=decision.targets,
        health=core.health,
        ledger=core.ledger,
    )
    call_id = new_call_id()

    def engine() -> object:
        def attempt(call: Any) -> Attempt[Any]:
            return Attempt(result=done)

        return drive(core.plan(decision, request), attempt)

    from llmroute.routing.engine import Call

    call = Call(target, 1, 1)
    started = time.perf_counter()

    def row() -> object:
        return core.row(
            call_id,
            call,
            request,
            usage=done.usage,
            outcome="truncated" if done.finish_reason in ("length", "content_filter") else "ok",
            started=started,
            finish=done.finish_reason,
            served_model=done.served_model,
            request_id=done.request_id,
            decision=decision,
        )

    ledger_row = row()

    def route_info() -> object:
        return core.route_info(
            call_id, request, decision, [ledger_row], done.usage, done.finish_reason, done.served_model, False
        )

    price = target.model.price
    steps: list[tuple[str, Callable[[], object], str]] = [
        ("prepare: validation + hints + policy", lambda: core.prepare(dict(KWARGS)), "incl. the next 2"),
        ("  ChatRequest.from_kwargs", lambda: ChatRequest.from_kwargs(KWARGS, hints), "validation"),
        ("  policy.decide + cooldown filter", lambda: core._skip_cooling(core.policy.decide(ctx)), ""),
        ("new_call_id (uuid4().hex)", new_call_id, ""),
        ("engine: plan + drive (no I/O)", engine, "generator state machine"),
        ("adapter.encode", lambda: adapter.encode(request, target, False), "body + options"),
        ("adapter.decode", lambda: adapter.decode(completion, headers), "usage, finish"),
        ("core.row: ledger row + health + cooldown", row, "Decimal cost, 3 locks"),
        ("  price.cost(usage)", lambda: price.cost(done.usage) if price else None, "Decimal"),
        ("core.route_info (RouteInfo + call_cost)", route_info, ""),
    ]
    rows: list[tuple[str, float, str]] = []
    for name, fn, note in steps:
        core.ledger.clear()
        try:
            rows.append((name, _per_call(fn, n), note))
        except Exception as e:  # an internal API changed: report it, keep going
            rows.append((name, math.nan, f"failed: {type(e).__name__}: {e}"[:60]))
    core.ledger.clear()
    top_level = {
        "prepare: validation + hints + policy",
        "new_call_id (uuid4().hex)",
        "engine: plan + drive (no I/O)",
        "adapter.encode",
        "adapter.decode",
        "core.row: ledger row + health + cooldown",
        "core.route_info (RouteInfo + call_cost)",
    }
    router_sum = math.fsum(t for name, t, _ in rows if name in top_level)

    # What the raw SDK does that the router's adapter skips: walking the request against its
    # TypedDicts (`maybe_transform` -> `_transform_recursive`).
    from openai._utils import maybe_transform
    from openai.types.chat import completion_create_params

    params = completion_create_params.CompletionCreateParamsNonStreaming
    sdk_transform = _per_call(lambda: maybe_transform(dict(KWARGS), params), n)

    # Policy ranking over 50 candidate models (the default policy, model="auto"): 50 distinct models,
    # one deployment each, as in the DESIGN.md target.
    many = llmroute.Router(
        [
            llmroute.Deployment(
                f"d{i}",
                model=f"bench-model-{i:02d}",
                provider="openai",
                base_url="http://127.0.0.1:9/openai/v1",
                api_key=API_KEY,
            )
            for i in range(50)
        ]
    )
    auto = {**KWARGS, "model": "auto"}
    req50, _ = many._core.prepare(dict(auto))
    ctx50 = RouteContext(
        request=req50,
        hints=hints,
        candidates=many._core.candidates(()),
        requested=(),
        health=many._core.health,
        ledger=many._core.ledger,
    )
    # Measured on a new candidates tuple each call (copy + context included), so that no memo of a
    # policy can answer it; the router's own calls (the same tuple each time) are timed as well.
    listed = list(ctx50.candidates)
    fresh50 = lambda: many._core.policy.decide(ctx50.with_candidates(tuple(listed)))  # noqa: E731
    policy50 = _per_call(fresh50, max(200, n // 10))
    policy50_same = _per_call(lambda: many._core.policy.decide(ctx50), max(200, n // 10))
    prepare50 = _per_call(lambda: many._core.prepare(dict(auto)), max(200, n // 10))

    # Ledger: bare row construction + append, and memory per row.
    ledger = llmroute.Ledger()
    usage, cost = done.usage, price.cost(done.usage) if price else None

    def append() -> None:
        ledger.record(
            LedgerRow(
                call_id=call_id,
                attempt=1,
                timestamp=time.time(),
                deployment="gpt",
                provider="openai",
                requested_model=MODEL,
                model=MODEL,
                served_model=MODEL,
                hints=hints,
                usage=usage,
                cost=cost,
                latency_s=0.001,
                outcome="ok",
            )
        )

    ledger_rate = 1.0 / _per_call(append, n * 4, repeat=3)
    ledger.clear()
    core.ledger.clear()
    tracemalloc.start()
    base_mem = tracemalloc.get_traced_memory()[0]
    rows_for_memory = 5000
    for _ in range(rows_for_memory):
        call_id = new_call_id()
        row()  # a realistic row: its own call id, usage, Decimal cost, timestamps
    ledger_bytes = (tracemalloc.get_traced_memory()[0] - base_mem) / rows_for_memory
    tracemalloc.stop()
    core.ledger.clear()
    router.close()
    many.close()

    table = Table("step (no I/O)", "per call", "note")
    for name, t, note in rows:
        table.row(name, us(t), note)
    table.row("sum of the top-level steps", us(router_sum), "the router's own work")
    table.row("raw SDK's maybe_transform(body)", us(sdk_transform), "skipped by the adapter")
    table.row("policy.decide over 50 candidates", us(policy50), f"target < {POLICY_TARGET_US:.0f} us")
    table.row("  the same candidates again (as the router)", us(policy50_same), "memo of the last tuple")
    table.row("prepare over 50 candidates (model=auto)", us(prepare50), "")
    table.row("ledger: LedgerRow + record", f"{ledger_rate:,.0f} rows/s", f">= {LEDGER_TARGET_RATE:,}/s")
    table.row("ledger: memory per row (core.row)", f"{ledger_bytes:.0f} B", f"< {LEDGER_TARGET_BYTES} B")
    print(f"  best of 5 x {n} calls each")
    table.print()
    prepare = rows[0][1]
    return MicroResult(rows, prepare, policy50, ledger_rate, ledger_bytes, router_sum, sdk_transform)


# -- summary ---------------------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def summary(
    seq: dict[str, Samples],
    streams: dict[str, Samples],
    asyncs: dict[str, AsyncResult] | None,
    imports: ImportResult | None,
    micro: MicroResult | None,
) -> None:
    table = Table("measure", "raw openai", "llmroute", "ratio", "target", "verdict")

    def calls(label: str, samples: dict[str, Samples]) -> None:
        raw, routed = list(samples.values())
        for what, pick in (("median", lambda s: median(s.wall)), ("p99", lambda s: percentile(s.wall, 99))):
            a, b = pick(raw), pick(routed)
            target = f"<= {PER_CALL_TARGET:.2f}x" if what == "median" else ""
            ok = (b / a <= PER_CALL_TARGET) if what == "median" else None
            verdict = _verdict(ok) if target else ""
            table.row(f"{label} wall {what}", ms(a), ms(b), ratio(b, a), target, verdict)
        a, b = median(raw.wall), median(routed.wall)
        table.row(f"{label} added per call", "", us(b - a, signed=True))
        a, b = raw.cpu_per_call, routed.cpu_per_call
        table.row(f"{label} CPU/call", us(a), us(b), ratio(b, a))

    calls("sequential", seq)
    calls("stream to last chunk", streams)
    raw_s, routed_s = list(streams.values())
    table.row(
        "new TCP connections per stream",
        f"{raw_s.counted / raw_s.calls:.2f}",
        f"{routed_s.counted / routed_s.calls:.2f}",
        "",
        "0 (keep-alive)",
        _verdict(routed_s.counted <= max(2, routed_s.calls // 100)),
    )
    if asyncs:
        names = list(asyncs)
        base = median(asyncs[names[0]].rate)
        for name in names[1:]:
            rate = median(asyncs[name].rate)
            is_router = "Router" in name
            transport = "aiohttp" if "aiohttp" in name else "httpx"
            label = f"async x{CONCURRENCY} calls/s, {'router' if is_router else 'raw SDK'} on {transport}"
            table.row(
                label,
                f"{base:.0f}",
                f"{rate:.0f}",
                ratio(rate, base),
                f">= {ASYNC_TARGET:.2f}x" if is_router else "(reference)",
                _verdict(rate / base >= ASYNC_TARGET) if is_router else "",
            )
        if len(names) == 4:
            raw_aio, router_aio = median(asyncs[names[2]].rate), median(asyncs[names[3]].rate)
            table.row(
                "async: router aiohttp vs raw aiohttp",
                f"{raw_aio:.0f}",
                f"{router_aio:.0f}",
                ratio(router_aio, raw_aio),
                f">= {ASYNC_TARGET:.2f}x",
                _verdict(router_aio / raw_aio >= ASYNC_TARGET),
            )
    if imports:
        openai_s = imports.import_s("import openai")
        for name in ("import llmroute", "from llmroute import Router, Deployment"):
            own = imports.import_s(name)
            table.row(
                f"{name} vs import openai",
                ms(openai_s),
                ms(own),
                ratio(own, openai_s),
                f"<= {IMPORT_TARGET:.2f}x",
                _verdict(own / openai_s <= IMPORT_TARGET),
            )
        raw_first, router_first = imports.first["raw openai"], imports.first["llmroute"]
        a = raw_first["construct"] + raw_first["first"]
        b = router_first["construct"] + router_first["first"]
        table.row("first client + first call", ms(a), ms(b), ratio(b, a), "(reported)")
    if micro:
        table.row("router work/call, no I/O (sum)", "", us(micro.router_sum), "", "microseconds")
        table.row("  of which prepare()", "", us(micro.prepare))
        table.row("SDK request transform (llmroute skips it)", us(micro.sdk_transform), "", "", "(reported)")
        table.row(
            "policy over 50 candidates",
            "",
            us(micro.policy50),
            "",
            f"< {POLICY_TARGET_US:.0f} us",
            _verdict(micro.policy50 * 1e6 < POLICY_TARGET_US),
        )
        table.row(
            "ledger append",
            "",
            f"{micro.ledger_rate:,.0f}/s",
            "",
            f">= {LEDGER_TARGET_RATE:,}/s",
            _verdict(micro.ledger_rate >= LEDGER_TARGET_RATE),
        )
        table.row(
            "ledger memory per row",
            "",
            f"{micro.ledger_bytes:.0f} B",
            "",
            f"< {LEDGER_TARGET_BYTES} B",
            _verdict(micro.ledger_bytes < LEDGER_TARGET_BYTES),
        )
    table.print()


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~15 s smoke run with fewer calls")
    parser.add_argument("--skip-async", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    options = parser.parse_args(argv)
    sizes = QUICK if options.quick else FULL
    started = time.perf_counter()
    warnings.simplefilter("default")

    header("machine")
    for key, value in machine().items():
        print(f"  {key:<9} {value}")
    run = "--quick" if options.quick else "full"
    print(f"  run       {run}; server: the llmroute.testing emulator in its own process")

    import openai  # noqa: F401  # imported here so sections 1-3 do not time the first import

    with EmulatorProcess() as server:
        header("0. the emulator server itself")
        floor = server_floor(server, sizes.floor_calls)
        print(
            f"  http.client keep-alive round trip: median {ms(floor.median)}, p99 {ms(floor.p99)}, "
            f"min {ms(floor.minimum)}"
        )
        threaded = in_thread_raw(sizes.floor_calls // 2)
        print(
            f"  raw SDK vs the server in a thread of this process (shares the GIL): median "
            f"{ms(threaded.median)}, p99 {ms(threaded.p99)}"
        )

        header("1. sequential non-streaming calls")
        seq, reply = sequential(server, sizes)
        print_calls(
            f"{sizes.seq_rounds} rounds x {sizes.seq_per_round} calls per contender, interleaved",
            seq,
            "wall",
        )
        raw_median = median(next(iter(seq.values())).wall)
        if raw_median > SERVER_SLOW_S:
            print(
                f"  WARNING: the raw SDK takes {ms(raw_median)} a call (expected ~1 ms): the server or the "
                "machine stalls (Nagle/delayed ACK?); ratios below are not trustworthy."
            )
        else:
            print(f"  server check: raw SDK median {ms(raw_median)} a call (expected ~1 ms): OK")

        header("2. streaming: time to last chunk")
        streams, chunks = streaming(server, sizes)
        print_calls(
            f"{sizes.stream_rounds} rounds x {sizes.stream_per_round} streams per contender, interleaved; "
            f"chunks per stream: " + ", ".join(f"{k} {v}" for k, v in chunks.items()),
            streams,
            "last chunk",
        )

        asyncs = None
        if not options.skip_async:
            header(f"3. async throughput, {CONCURRENCY} concurrent calls")
            asyncs = async_throughput(server, sizes)

        imports = None
        if not options.skip_import:
            header("4. import time and first call (fresh interpreters)")
            imports = import_time(server, sizes)

    header("5. the router's own work per call (no I/O)")
    micro = None
    try:
        micro = router_work(reply, sizes)
    except Exception:  # it reaches into llmroute internals, which may have moved: keep the summary
        print("  section 5 failed (llmroute internals changed?):")
        traceback.print_exc(limit=3, file=sys.stdout)

    header("summary (ratios: llmroute / raw openai SDK, same server, same run)")
    summary(seq, streams, asyncs, imports, micro)
    print(f"\n  total run time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
