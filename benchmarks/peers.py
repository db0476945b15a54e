"""llmroute against its peers (LiteLLM, aisuite, any-llm) and the raw `openai` SDK, on one local server.

    python -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -e '.[aiohttp]'
    /tmp/peers-venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt
    /tmp/peers-venv/bin/python benchmarks/peers.py            # full run (about 3 minutes on 2 cores)
    /tmp/peers-venv/bin/python benchmarks/peers.py --quick    # smoke run (about 30 s)

(`python -m nox -s bench_peers` does the same in its own environment.) Never install the peers into the
development environment: they pin and pull in a lot (LiteLLM alone brings boto3, tokenizers, ...).

Every contender calls the SAME emulator server (`llmroute.testing`, OpenAI dialect, fake key) in the
SAME run, in a child process, and the contenders are interleaved in rounds, as in `overhead.py`:

1. Sequential non-streaming calls: wall time per call (median, p99), client CPU per call, new TCP
   connections per call. `openai.OpenAI`, `llmroute.Router`, `litellm.completion`, `litellm.Router`,
   `aisuite.Client` (openai provider with `base_url`), `any_llm.completion` and an `AnyLLM` client.
2. Async throughput at 64 concurrent calls where the library has an async API: `AsyncOpenAI`,
   `AsyncRouter`, `litellm.acompletion`, `litellm.Router.acompletion`, aisuite's `acreate`,
   `any_llm.acompletion`, `AnyLLM.acompletion`; plus the raw SDK and `AsyncRouter` on the SDK's
   aiohttp transport, since LiteLLM's async path uses aiohttp too.
3. Import time in fresh interpreters (median of several, timed inside the child) and the resident
   memory (VmRSS) of that interpreter right after the import.

Then ONE table with ratios against the raw SDK (import and memory: against `import openai`), the date,
the machine, and the DESIGN.md targets beside llmroute's numbers (and the peers' numbers measured earlier).

A peer that is not installed, cannot be pointed at the local server, or fails is reported as
"n/a (reason)" and the run goes on. Only 127.0.0.1 is used: the peers' phone-home switches are set
before anything is imported (LiteLLM's offline mode and local cost map, Hugging Face offline, no
callbacks), and a guard refuses (and counts) any socket connection to a non-loopback address. Every
loop is bounded and a watchdog ends a run that hangs.
"""

from __future__ import annotations

import os

# Before any peer is imported, here and in the fresh interpreters of section 3 (they inherit os.environ).
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the model cost map at import
    "LITELLM_OFFLINE_MODE": "true",  # none of LiteLLM's own catalog fetches (beta headers, presets, ...)
    "LITELLM_LOG": "ERROR",
    "HF_HUB_OFFLINE": "1",  # tokenizers that LiteLLM might load come from the local cache or not at all
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_PROXY": "127.0.0.1,localhost",  # a proxy from the environment must not sit in front of the emulator
    "no_proxy": "127.0.0.1,localhost",
}
os.environ.update(OFFLINE_ENV)

import argparse  # noqa: E402  (the environment above must be set before anything imports a peer)
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import errno  # noqa: E402
import faulthandler  # noqa: E402
import ipaddress  # noqa: E402
import math  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402  (the benchmarks directory is not a package: see sys.path above)
    AsyncResult,
    EmulatorProcess,
    Samples,
    Table,
    header,
    interleave,
    interleave_async,
    interleave_subprocesses,
    machine,
    median,
    ms,
    percentile,
    us,
)
from overhead import (  # noqa: E402  (same request, same key, same targets as overhead.py)
    API_KEY,
    ASYNC_TARGET,
    CONCURRENCY,
    IMPORT_TARGET,
    KWARGS,
    MESSAGES,
    MODEL,
    PER_CALL_TARGET,
    SERVER_SLOW_S,
    aiohttp_available,
    print_calls,
    server_floor,
)

TIMEOUT_S = 30.0  # per request, where the library takes one: a stuck call fails instead of hanging
PEER_DISTRIBUTIONS = (
    "litellm",
    "aisuite",
    "any-llm-sdk",
    "openai",
    "httpx",
    "httpx2",
    "anthropic",
    "aiohttp",
)

# DESIGN.md "Performance targets": the peers measured earlier on a 2-core machine, ratios to the raw SDK.
EARLIER = {
    "openai": "earlier: 1.37 ms/call, import 0.86 s",
    "litellm.completion": "earlier: 3.29x; import 3.6x",
    "litellm.Router": "earlier: 4.38x (+4.6 ms); async 0.59x",
    "aisuite": "earlier: 1.08x",
    "any_llm.completion": "earlier: 1.56x; import 2.2x",
    "any_llm AnyLLM": "earlier: 1.56x; import 2.2x",
}


@dataclass(frozen=True)
class Sizes:
    seq_rounds: int
    seq_per_round: int
    seq_warmup: int
    async_rounds: int
    async_total: int
    async_warmup: int
    import_runs: int
    floor_calls: int
    watchdog_s: int


FULL = Sizes(20, 25, 10, 3, 640, 128, 7, 500, 900)
QUICK = Sizes(4, 10, 3, 1, 128, 64, 1, 100, 240)


# -- only 127.0.0.1 --------------------------------------------------------------------------------

BLOCKED: list[str] = []


def _loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX path and the like: not the network
        return True
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:  # a host name: it would be resolved by connect() itself
        return False


def install_loopback_guard() -> None:
    """Refuse socket connections to anything but loopback addresses, and remember them. Peers that try
    to phone home get an `OSError` (as offline), and the summary says how often it happened."""
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refuse(address: Any) -> None:
        BLOCKED.append(repr(address))
        raise OSError(errno.ENETUNREACH, f"benchmarks/peers.py allows only 127.0.0.1, not {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        if not _loopback(address):
            refuse(address)
        original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _loopback(address):
            refuse(address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


# -- the contenders --------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def _quiet_litellm() -> Any:
    import litellm

    litellm.telemetry = False  # the documented opt-out (the SDK sends none by default in this version)
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    litellm.disable_hf_tokenizer_download = True
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm.num_retries = 0
    return litellm


def _litellm_router(url: str) -> Any:
    litellm = _quiet_litellm()
    model_list = [
        {
            "model_name": MODEL,
            "litellm_params": {"model": f"openai/{MODEL}", "api_base": url, "api_key": API_KEY},
        }
    ]
    return litellm.Router(model_list=model_list, num_retries=0, timeout=TIMEOUT_S)


def _deployment(url: str, **extra: Any) -> Any:
    from llmroute import Deployment

    return Deployment("gpt", model=MODEL, base_url=url, api_key=API_KEY, **extra)


Close = Callable[[], object]
SyncCall = Callable[[], object]
AsyncCall = Callable[[], Awaitable[object]]


def sync_raw(url: str) -> tuple[SyncCall, Close]:
    import openai

    client = openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S)
    return lambda: client.chat.completions.create(**KWARGS), client.close


def sync_llmroute(url: str) -> tuple[SyncCall, Close]:
    import llmroute

    router = llmroute.Router([_deployment(url)])
    return lambda: router.chat.completions.create(**KWARGS), router.close


def sync_litellm(url: str) -> tuple[SyncCall, Close]:
    litellm = _quiet_litellm()
    model = f"openai/{MODEL}"
    return (
        lambda: litellm.completion(
            model=model, messages=MESSAGES, api_base=url, api_key=API_KEY, timeout=TIMEOUT_S
        ),
        lambda: None,
    )


def sync_litellm_router(url: str) -> tuple[SyncCall, Close]:
    router = _litellm_router(url)
    return lambda: router.completion(model=MODEL, messages=MESSAGES), lambda: None


def _aisuite_client(url: str) -> Any:
    import aisuite

    config = {"base_url": url, "api_key": API_KEY, "max_retries": 0, "timeout": TIMEOUT_S}
    return aisuite.Client(provider_configs={"openai": config})


def sync_aisuite(url: str) -> tuple[SyncCall, Close]:
    client = _aisuite_client(url)
    model = f"openai:{MODEL}"
    return lambda: client.chat.completions.create(model=model, messages=MESSAGES), lambda: None


def sync_any_llm(url: str) -> tuple[SyncCall, Close]:
    import any_llm

    return (
        lambda: any_llm.completion(
            model=MODEL,
            provider="openai",
            messages=MESSAGES,
            api_base=url,
            api_key=API_KEY,
            timeout=TIMEOUT_S,
        ),
        lambda: None,
    )


def sync_any_llm_client(url: str) -> tuple[SyncCall, Close]:
    import any_llm

    llm = any_llm.AnyLLM.create("openai", api_key=API_KEY, api_base=url)
    return lambda: llm.completion(model=MODEL, messages=MESSAGES, timeout=TIMEOUT_S), lambda: None


async def async_raw(url: str) -> tuple[AsyncCall, Close]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S)
    return lambda: client.chat.completions.create(**KWARGS), client.close


async def async_raw_aiohttp(url: str) -> tuple[AsyncCall, Close]:
    import openai

    if not aiohttp_available():
        raise RuntimeError("openai[aiohttp] is not installed")
    client = openai.AsyncOpenAI(
        base_url=url,
        api_key=API_KEY,
        max_retries=0,
        timeout=TIMEOUT_S,
        http_client=openai.DefaultAioHttpClient(),
    )
    return lambda: client.chat.completions.create(**KWARGS), client.close


async def async_llmroute(url: str) -> tuple[AsyncCall, Close]:
    import llmroute

    router = llmroute.AsyncRouter([_deployment(url)])
    return lambda: router.chat.completions.create(**KWARGS), router.close


async def async_llmroute_aiohttp(url: str) -> tuple[AsyncCall, Close]:
    import openai

    import llmroute

    if not aiohttp_available():
        raise RuntimeError("openai[aiohttp] is not installed")
    router = llmroute.AsyncRouter([_deployment(url, async_http_client=openai.DefaultAioHttpClient())])
    return lambda: router.chat.completions.create(**KWARGS), router.close


async def async_litellm(url: str) -> tuple[AsyncCall, Close]:
    litellm = _quiet_litellm()
    model = f"openai/{MODEL}"
    return (
        lambda: litellm.acompletion(
            model=model, messages=MESSAGES, api_base=url, api_key=API_KEY, timeout=TIMEOUT_S
        ),
        lambda: None,
    )


async def async_litellm_router(url: str) -> tuple[AsyncCall, Close]:
    router = _litellm_router(url)  # a new one, created inside the running loop
    return lambda: router.acompletion(model=MODEL, messages=MESSAGES), lambda: None


async def async_aisuite(url: str) -> tuple[AsyncCall, Close]:
    client = _aisuite_client(url)  # its provider makes its AsyncOpenAI in this loop
    model = f"openai:{MODEL}"
    return lambda: client.chat.completions.acreate(model=model, messages=MESSAGES), lambda: None


async def async_any_llm(url: str) -> tuple[AsyncCall, Close]:
    import any_llm

    return (
        lambda: any_llm.acompletion(
            model=MODEL,
            provider="openai",
            messages=MESSAGES,
            api_base=url,
            api_key=API_KEY,
            timeout=TIMEOUT_S,
        ),
        lambda: None,
    )


async def async_any_llm_client(url: str) -> tuple[AsyncCall, Close]:
    import any_llm

    # A new client inside the running loop: the one of section 1 is bound to any-llm's own loop thread.
    llm = any_llm.AnyLLM.create("openai", api_key=API_KEY, api_base=url)
    return lambda: llm.acompletion(model=MODEL, messages=MESSAGES, timeout=TIMEOUT_S), lambda: None


@dataclass(frozen=True)
class Contender:
    key: str
    """Row of the summary table."""
    sync_name: str
    sync: Callable[[str], tuple[SyncCall, Close]] | None
    async_name: str
    async_: Callable[[str], Awaitable[tuple[AsyncCall, Close]]] | None
    module: str
    """What must be importable for it to run at all."""


CONTENDERS = (
    Contender("openai", "openai.OpenAI (raw)", sync_raw, "AsyncOpenAI (raw)", async_raw, "openai"),
    Contender(
        "llmroute", "llmroute.Router", sync_llmroute, "llmroute.AsyncRouter", async_llmroute, "llmroute"
    ),
    Contender(
        "litellm.completion",
        "litellm.completion",
        sync_litellm,
        "litellm.acompletion",
        async_litellm,
        "litellm",
    ),
    Contender(
        "litellm.Router",
        "litellm.Router.completion",
        sync_litellm_router,
        "litellm.Router.acompletion",
        async_litellm_router,
        "litellm",
    ),
    Contender(
        "aisuite", "aisuite.Client create", sync_aisuite, "aisuite.Client acreate", async_aisuite, "aisuite"
    ),
    Contender(
        "any_llm.completion",
        "any_llm.completion",
        sync_any_llm,
        "any_llm.acompletion",
        async_any_llm,
        "any_llm",
    ),
    Contender(
        "any_llm AnyLLM",
        "any_llm AnyLLM.completion",
        sync_any_llm_client,
        "any_llm AnyLLM.acompletion",
        async_any_llm_client,
        "any_llm",
    ),
    Contender("openai aiohttp", "", None, "AsyncOpenAI on aiohttp (raw)", async_raw_aiohttp, "aiohttp"),
    Contender(
        "llmroute aiohttp", "", None, "llmroute.AsyncRouter on aiohttp", async_llmroute_aiohttp, "aiohttp"
    ),
)

# Import cases: the import that makes each library ready to call the OpenAI dialect.
IMPORTS = {
    "pass": "pass",
    "openai": "import openai",
    "llmroute": "from llmroute import Router, Deployment",
    "litellm": "import litellm",
    # aisuite imports its provider (and with it openai) when a Client is configured: count it here.
    "aisuite": "import aisuite, aisuite.providers.openai_provider",
    "any_llm": "import any_llm, any_llm.providers.openai",
}
IMPORT_MODULE = {name: ("sys" if name == "pass" else name) for name in IMPORTS}  # must be importable
IMPORT_OF = {
    "openai": "openai",
    "llmroute": "llmroute",
    "litellm.completion": "litellm",
    "litellm.Router": "litellm",
    "aisuite": "aisuite",
    "any_llm.completion": "any_llm",
    "any_llm AnyLLM": "any_llm",
}


def _missing(module: str) -> str | None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as e:
        return f"not importable: {_reason(e)}"
    return None if found else "not installed"


def _content(reply: Any) -> str:
    return str(reply.choices[0].message.content or "")


@dataclass
class Failures:
    count: int = 0
    first: str = ""


@dataclass
class Results:
    seq: dict[str, Samples] = field(default_factory=dict)
    asyncs: dict[str, AsyncResult] = field(default_factory=dict)
    imports: dict[str, float] = field(default_factory=dict)
    rss_kb: dict[str, float] = field(default_factory=dict)
    na: dict[tuple[str, str], str] = field(default_factory=dict)
    """(row key, section) -> reason it is n/a."""
    failures: dict[str, Failures] = field(default_factory=dict)


# -- 1. sequential ---------------------------------------------------------------------------------


def _checked(server: EmulatorProcess, call: Callable[[], object], calls: int = 3) -> None:
    """A few calls that must reach the emulator and come back with content."""
    before = server.stats()
    for _ in range(calls):
        reply = call()
        if not _content(reply):
            raise RuntimeError(f"empty reply: {reply!r:.80}")
    served = (server.stats() - before).requests
    if served < calls:
        raise RuntimeError(f"{calls} calls but the emulator served {served} requests")


def sequential(server: EmulatorProcess, sizes: Sizes, results: Results) -> None:
    url = server.base_url("openai")
    calls: dict[str, SyncCall] = {}
    closers: list[Close] = []
    for c in CONTENDERS:
        if c.sync is None:
            continue
        missing = _missing(c.module)
        if missing:
            results.na[(c.key, "seq")] = missing
            continue
        try:
            call, close = c.sync(url)
            closers.append(close)
            _checked(server, call)
        except Exception as e:
            results.na[(c.key, "seq")] = _reason(e)
            continue
        failures = results.failures.setdefault(c.key, Failures())

        def guarded(call: SyncCall = call, failures: Failures = failures) -> None:
            try:
                call()
            except Exception as e:  # counted and reported; the run goes on
                failures.count += 1
                failures.first = failures.first or _reason(e)

        calls[c.sync_name] = guarded
    if not calls:
        print("  no contender could run")
        return
    try:
        samples = interleave(
            calls,
            rounds=sizes.seq_rounds,
            per_round=sizes.seq_per_round,
            warmup=sizes.seq_warmup,
            counter=lambda: server.stats().connections,
        )
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                close()
    by_name = {c.sync_name: c.key for c in CONTENDERS}
    results.seq = {by_name[name]: s for name, s in samples.items()}
    print_calls(
        f"{sizes.seq_rounds} rounds x {sizes.seq_per_round} calls per contender, interleaved "
        f"(+{sizes.seq_warmup} warm-up calls each); new TCP = connections the server accepted / calls",
        samples,
        "wall",
    )
    for c in CONTENDERS:
        f = results.failures.get(c.key)
        if f and f.count:
            print(f"  {c.sync_name}: {f.count} calls failed during the run, first: {f.first}")


# -- 2. async --------------------------------------------------------------------------------------


async def _async_contenders(
    server: EmulatorProcess, sizes: Sizes, results: Results
) -> dict[str, AsyncResult]:
    url = server.base_url("openai")
    calls: dict[str, AsyncCall] = {}
    closers: list[Close] = []
    for c in CONTENDERS:
        if c.async_ is None:
            continue
        missing = _missing(c.module)
        if missing:
            results.na[(c.key, "async")] = missing
            continue
        try:
            call, close = await c.async_(url)
            closers.append(close)
            before = server.stats()
            replies = await asyncio.wait_for(asyncio.gather(*(call() for _ in range(4))), 60)
            if not all(_content(r) for r in replies):
                raise RuntimeError("empty reply")
            if (server.stats() - before).requests < 4:
                raise RuntimeError("the calls did not reach the emulator")
        except Exception as e:
            results.na[(c.key, "async")] = _reason(e)
            continue
        calls[c.async_name] = call
    try:
        return await interleave_async(
            calls,
            rounds=sizes.async_rounds,
            total=sizes.async_total,
            concurrency=CONCURRENCY,
            warmup=sizes.async_warmup,
            server=server,
        )
    finally:
        for close in closers:
            try:
                done = close()
                if asyncio.iscoroutine(done):
                    await done
            except Exception:
                pass


def async_throughput(server: EmulatorProcess, sizes: Sizes, results: Results) -> None:
    by_name = {c.async_name: c.key for c in CONTENDERS}
    raw = asyncio.run(_async_contenders(server, sizes, results))
    results.asyncs = {by_name[name]: r for name, r in raw.items()}
    first = raw.get(CONTENDERS[0].async_name)
    base = median(first.rate) if first else math.nan
    base_cpu = median(first.cpu_per_call) if first else math.nan
    table = Table(
        "contender", "calls/s", "vs raw", "CPU/call", "CPU ratio", "server busy", "new TCP", "failed"
    )
    for name, r in raw.items():
        table.row(
            name,
            f"{median(r.rate):.0f}",
            _x(median(r.rate), base),
            us(median(r.cpu_per_call)),
            _x(median(r.cpu_per_call), base_cpu),
            f"{median(r.server_busy):.0%}" if r.server_busy else "n/a",
            f"{r.connections}/{r.calls}",
            r.failures,
        )
    print(
        f"  {sizes.async_total} calls at {CONCURRENCY} concurrent per round, median of {sizes.async_rounds} "
        f"round(s), interleaved; vs raw = against AsyncOpenAI on its default (httpx) transport"
    )
    table.print()
    busiest = max((median(r.server_busy) for r in raw.values() if r.server_busy), default=0.0)
    if busiest > 0.85:
        print(
            "  note: the server process was busy most of the time for the fastest contenders; their "
            "throughput ratios are compressed toward 1.0 (compare CPU/call)."
        )


# -- 3. import time and memory ---------------------------------------------------------------------

_RSS_HOOK = """
import atexit as _atexit
def _rss(path):
    kb = None
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    kb = int(line.split()[1])
    except OSError:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(path, 'a') as out:
        out.write(f'{kb}\\n')
_atexit.register(_rss, PATH)
"""


def imports_and_memory(sizes: Sizes, results: Results) -> None:
    """Import time timed inside fresh interpreters; VmRSS of each interpreter after its import, read
    at exit (an `atexit` hook registered right after the import: a few microseconds inside the timed
    part, nothing else runs before it fires)."""
    cases: dict[str, str] = {}
    for name, code in IMPORTS.items():
        missing = _missing(IMPORT_MODULE[name])
        if missing:
            results.na[(name, "import")] = missing
        else:
            cases[name] = code
    with tempfile.TemporaryDirectory(prefix="peers-rss-") as tmp:
        paths = {name: os.path.join(tmp, f"{name}.txt") for name in cases}
        wrapped = {
            name: code + "\n" + _RSS_HOOK.replace("PATH", repr(paths[name])) for name, code in cases.items()
        }
        try:
            times = interleave_subprocesses(wrapped, runs=sizes.import_runs)
        except RuntimeError:  # one of them fails to import: find which, run the others
            times = {}
            for name, code in wrapped.items():
                try:
                    times.update(interleave_subprocesses({name: code}, runs=sizes.import_runs))
                except RuntimeError as e:
                    results.na[(name, "import")] = _reason(RuntimeError(str(e).splitlines()[-1]))
        for name, t in times.items():
            results.imports[name] = median(t.inner)
            try:
                with open(paths[name]) as f:
                    values = [float(v) for v in f.read().split() if v != "None"]
                results.rss_kb[name] = median(values)
            except (OSError, ValueError):
                results.na[(name, "rss")] = "no VmRSS"
    base = results.imports.get("openai", math.nan)
    base_rss = results.rss_kb.get("openai", math.nan)
    table = Table("fresh interpreter", "import median", "vs openai", "min", "VmRSS after", "vs openai")
    for name, code in IMPORTS.items():
        if name not in times:
            table.row(name, f"n/a ({results.na.get((name, 'import'), 'not run')})")
            continue
        t = times[name]
        rss = results.rss_kb.get(name, math.nan)
        table.row(
            f"{name}: {code}",
            ms(median(t.inner)),
            _x(median(t.inner), base) if name != "pass" else "",
            ms(min(t.inner)),
            _mb(rss),
            _x(rss, base_rss) if name != "pass" else "",
        )
    print(
        f"  median of {sizes.import_runs} run(s) each (+1 untimed warm-up), interleaved, timed inside the "
        "child; VmRSS of the same interpreter after the import (bare interpreter: 'pass')"
    )
    table.print()


# -- the summary -----------------------------------------------------------------------------------


def _x(value: float, base: float) -> str:
    if math.isnan(value) or math.isnan(base) or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def _mb(kb: float) -> str:
    return "n/a" if math.isnan(kb) else f"{kb / 1024:.0f} MB"


def _s(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.2f} s"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


ROWS = (  # key, library, entry point (sync / async where both)
    ("openai", "raw openai SDK", "OpenAI / AsyncOpenAI"),
    ("llmroute", "llmroute", "Router / AsyncRouter"),
    ("litellm.completion", "LiteLLM", "(a)completion"),
    ("litellm.Router", "LiteLLM", "Router.(a)completion"),
    ("aisuite", "aisuite", "Client (a)create"),
    ("any_llm.completion", "any-llm", "(a)completion"),
    ("any_llm AnyLLM", "any-llm", "AnyLLM.(a)completion"),
    ("openai aiohttp", "raw openai SDK", "AsyncOpenAI on aiohttp"),
    ("llmroute aiohttp", "llmroute", "AsyncRouter on aiohttp"),
)

SUMMARY_COLUMNS = (
    "library",
    "entry point",
    "median",
    "x raw",
    "p99",
    "x raw",
    "CPU/call",
    "x raw",
    "TCP/call",
    "async x64/s",
    "x raw",
    "import",
    "x openai",
    "RSS",
    "x openai",
    "DESIGN.md",
)


def summary_rows(results: Results) -> tuple[list[tuple[str, ...]], list[str]]:
    seq, asyncs = results.seq, results.asyncs
    raw = seq.get("openai")
    raw_med = median(raw.wall) if raw else math.nan
    raw_p99 = percentile(raw.wall, 99) if raw else math.nan
    raw_cpu = raw.cpu_per_call if raw else math.nan
    raw_rate = median(asyncs["openai"].rate) if "openai" in asyncs else math.nan
    imp_base = results.imports.get("openai", math.nan)
    rss_base = results.rss_kb.get("openai", math.nan)
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []

    def na(reason: str, label: str = "") -> str:
        """'n/a (reason)' in the cell when short; a numbered note below the table otherwise."""
        if len(reason) <= 20:
            return f"n/a ({reason})"
        note = f"{label}: {reason}" if label else reason
        if note not in notes:
            notes.append(note)
        return f"n/a [{notes.index(note) + 1}]"

    def missing(key: str, section: str, label: str) -> str:
        reason = results.na.get((key, section))
        return "(skipped)" if reason is None else na(reason, label)

    for key, library, api in ROWS:
        sync_cells: list[str]
        s = seq.get(key)
        failures = results.failures.get(key)
        if s is not None and not (failures and failures.count):
            m, p, cpu = median(s.wall), percentile(s.wall, 99), s.cpu_per_call
            sync_cells = [
                ms(m),
                _x(m, raw_med),
                ms(p),
                _x(p, raw_p99),
                ms(cpu),
                _x(cpu, raw_cpu),
                f"{s.counted / s.calls:.2f}",
            ]
        elif s is not None and failures:
            failed = f"{failures.count} of {s.calls} calls failed, first: {failures.first}"
            sync_cells = [na(failed, f"{library} {api}, sequential"), "", "", "", "", "", ""]
        elif key in ("openai aiohttp", "llmroute aiohttp"):
            sync_cells = ["(async only)", "", "", "", "", "", ""]
        else:
            sync_cells = [missing(key, "seq", f"{library} {api}"), "", "", "", "", "", ""]
        a = asyncs.get(key)
        if a is not None and not a.failures:
            rate = median(a.rate)
            async_cells = [f"{rate:.0f}", _x(rate, raw_rate)]
        elif a is not None:
            async_cells = [na(f"{a.failures} of {a.calls} failed", f"{library} {api}, async"), ""]
        else:
            async_cells = [missing(key, "async", f"{library} {api}, async"), ""]
        module = IMPORT_OF.get(key)
        if module and module in results.imports:
            t = results.imports[module]
            rss = results.rss_kb.get(module, math.nan)
            import_cells = [_s(t), _x(t, imp_base), _mb(rss), _x(rss, rss_base)]
        elif module:
            import_cells = [missing(module, "import", f"import {module}"), "", "", ""]
        else:
            import_cells = ["", "", "", ""]
        rows.append((library, api, *sync_cells, *async_cells, *import_cells, _design(key, results)))
    return rows, notes


def _design(key: str, results: Results) -> str:
    """DESIGN.md beside the row: llmroute's targets with a verdict, the peers' earlier numbers."""
    if key == "llmroute":
        parts = []
        raw, routed = results.seq.get("openai"), results.seq.get("llmroute")
        if raw and routed:
            r = median(routed.wall) / median(raw.wall)
            parts.append(f"<={PER_CALL_TARGET:.2f}x {_verdict(r <= PER_CALL_TARGET)}")
        a, b = results.asyncs.get("openai"), results.asyncs.get("llmroute")
        if a and b:
            r = median(b.rate) / median(a.rate)
            parts.append(f"async >={ASYNC_TARGET:.2f}x {_verdict(r >= ASYNC_TARGET)}")
        i, j = results.imports.get("openai"), results.imports.get("llmroute")
        if i and j:
            parts.append(f"import <={IMPORT_TARGET:.2f}x {_verdict(j / i <= IMPORT_TARGET)}")
        return "target " + ", ".join(parts) if parts else f"target <={PER_CALL_TARGET:.2f}x"
    if key == "llmroute aiohttp":
        a, b = results.asyncs.get("openai aiohttp"), results.asyncs.get("llmroute aiohttp")
        if a and b:
            r = median(b.rate) / median(a.rate)
            return f"target vs raw on aiohttp >={ASYNC_TARGET:.2f}x: {r:.2f}x {_verdict(r >= ASYNC_TARGET)}"
        return ""
    if key == "openai aiohttp":
        return "hint: 2.2x the httpx transport"
    return EARLIER.get(key, "")


def print_summary(results: Results, when: str, facts: dict[str, str], markdown: str | None) -> None:
    rows, notes = summary_rows(results)
    table = Table(*SUMMARY_COLUMNS)
    for row in rows:
        table.row(*row)
    print(f"  {when}; {facts['cores']} cores, {facts['python']}; {facts['versions']}")
    print(
        "  sequential: wall per call (median, p99), client CPU per call, new TCP connections per call; "
        f"async: calls/s at {CONCURRENCY} concurrent;\n  x raw = ratio to the raw openai SDK in this run "
        "(async: to AsyncOpenAI on httpx); import and RSS: ratio to `import openai`."
    )
    table.print()
    for i, note in enumerate(notes, 1):
        print(f"  [{i}] {note}")
    blocked = f": {', '.join(BLOCKED[:3])}" if BLOCKED else ""
    print(f"  connections to non-loopback addresses refused during the run: {len(BLOCKED)}{blocked}")
    if markdown:
        _write_markdown(markdown, rows, notes, when, facts)
        print(f"  markdown table written to {markdown}")


def _write_markdown(
    path: str, rows: list[tuple[str, ...]], notes: list[str], when: str, facts: dict[str, str]
) -> None:
    lines = [
        f"Measured {when} with `benchmarks/peers.py` on {facts['cores']} cores, {facts['python']}; "
        f"{facts['versions']}.",
        "",
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(SUMMARY_COLUMNS) - 1)) + "|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    lines += [""] + [f"{i}. {note}" for i, note in enumerate(notes, 1)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _versions() -> str:
    parts = []
    for dist in PEER_DISTRIBUTIONS:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} not installed")
    return ", ".join(parts)


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run with fewer calls")
    parser.add_argument("--skip-async", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--markdown", metavar="FILE", help="also write the summary table as markdown")
    options = parser.parse_args(argv)
    sizes = QUICK if options.quick else FULL
    started = time.perf_counter()
    faulthandler.dump_traceback_later(sizes.watchdog_s, exit=True)  # a hung run ends, with a traceback
    warnings.simplefilter("ignore")  # the peers' deprecation chatter would bury the tables
    install_loopback_guard()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")

    header("machine")
    facts = machine()
    for key, value in facts.items():
        print(f"  {key:<9} {value}")
    facts["versions"] = _versions()
    print(f"  date      {when}")
    print(f"  versions  {facts['versions']}")
    run = "--quick" if options.quick else "full"
    print(
        f"  run       {run}; server: the llmroute.testing emulator in its own process; "
        "offline env: " + ", ".join(k for k in OFFLINE_ENV if k.isupper())
    )

    results = Results()
    with EmulatorProcess() as server:
        header("0. the emulator server itself")
        floor = server_floor(server, sizes.floor_calls)
        print(f"  http.client keep-alive round trip: median {ms(floor.median)}, p99 {ms(floor.p99)}")

        header("1. sequential non-streaming calls")
        sequential(server, sizes, results)
        raw = results.seq.get("openai")
        if raw is not None:
            raw_median = median(raw.wall)
            if raw_median > SERVER_SLOW_S:
                print(
                    f"  WARNING: the raw SDK takes {ms(raw_median)} a call (expected ~1 ms): the server or "
                    "the machine stalls; ratios below are not trustworthy."
                )
        for (key, section), reason in results.na.items():
            if section == "seq":
                print(f"  {key}: n/a ({reason})")

        if not options.skip_async:
            header(f"2. async throughput, {CONCURRENCY} concurrent calls")
            async_throughput(server, sizes, results)
            for (key, section), reason in results.na.items():
                if section == "async":
                    print(f"  {key}: n/a ({reason})")

    if not options.skip_import:
        header("3. import time and memory after import (fresh interpreters)")
        imports_and_memory(sizes, results)

    header("summary: ratios against the raw openai SDK, same server, same run")
    print_summary(results, when, facts, options.markdown)
    print(f"\n  total run time {time.perf_counter() - started:.1f} s")
    faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
