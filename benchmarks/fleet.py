"""Fleet mode: what shared state on Redis adds per call, and throughput with 1, 4 and 8 processes.

1. Per-call latency, sequential, interleaved, against one emulator server: the raw `openai` SDK,
   the router with in-process budgets and limits, and the router with `state="redis://..."` (a
   budget and an rpm limit shared through a local `redis-server` on loopback). Also: Redis round
   trips per routed call (counted by the link, every thread), the commands the server ran per call
   (INFO commandstats), and one bare round trip (PING).
2. The same for `AsyncRouter` (its round trip goes through `redis.asyncio`).
3. Calls per second with 1, 4 and 8 worker processes (each sequential): the raw SDK, in-process
   state and Redis state, same server.

    python benchmarks/fleet.py [--quick]

Needs `redis-server` on PATH and `pip install 'llmroute[redis]'`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openai
from _common import EmulatorProcess, Summary, Table, header, interleave, machine, ratio, us

import llmroute
from llmroute.fleet import RedisLink
from llmroute.money.budget import Budget, Budgets

warnings.filterwarnings("ignore")
MESSAGES = [{"role": "user", "content": "Summarise the release notes."}]
KEY = "sk-bench-fleet"


def _model() -> llmroute.ModelSpec:
    return llmroute.ModelSpec("m", "vllm", "m", price=llmroute.Price(input=Decimal(1), output=Decimal(2)))


def _router(base_url: str, state: RedisLink | str | None) -> llmroute.Router:
    deployment = llmroute.Deployment(
        "d", model="m", provider="vllm", base_url=base_url, api_key=KEY, rpm=10_000_000
    )
    return llmroute.Router([deployment], models=[_model()], budgets=Budgets([Budget("1000000")]), state=state)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def _commands(client: Any) -> tuple[int, int]:
    """(scripts, commands) the Redis server has run so far (INFO commandstats: a script's own
    commands are counted too)."""
    stats = client.info("commandstats")
    scripts = sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_eval", "cmdstat_evalsha"))
    total = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_ping"))
    return scripts, total


def latency(base_url: str, url: str, rounds: int, per_round: int) -> None:
    header("1. Added latency per call (sequential, one process)")
    raw = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    local = _router(base_url, None)
    link = RedisLink(url)
    fleet = _router(base_url, link)

    def call(client: Any) -> Any:
        return lambda: client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)

    results = interleave(
        {"raw openai SDK": call(raw), "router, in-process": call(local), "router, state=redis": call(fleet)},
        rounds=rounds,
        per_round=per_round,
    )
    base = Summary.of(results["raw openai SDK"].wall)
    table = Table("contender", "median", "p99", "vs raw SDK", "added vs raw")
    for name, samples in results.items():
        s = Summary.of(samples.wall)
        table.row(
            name, us(s.median), us(s.p99), ratio(s.median, base.median), us(s.median - base.median, True)
        )
    table.print()
    in_process = Summary.of(results["router, in-process"].wall).median
    shared = Summary.of(results["router, state=redis"].wall).median
    import redis

    client = redis.Redis.from_url(url)
    link.flush()
    trips, commands = link.round_trips, _commands(client)
    calls = 200
    for _ in range(calls):
        fleet.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    trips = link.round_trips - trips
    link.flush()  # the last call's writes (for the command count)
    print(f"  shared state adds {us(shared - in_process, True)} per call (state=redis - in-process)")
    scripts, total = _commands(client)
    print(
        f"  Redis round trips per routed call: {trips / calls:.2f} (counted by the "
        f"link, all threads); per call the server ran {(scripts - commands[0]) / calls:.1f} scripts "
        f"and {(total - commands[1] - scripts + commands[0]) / calls:.0f} commands inside them "
        "(INFO commandstats)"
    )
    samples = []
    for _ in range(2000):
        t0 = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - t0)
    print(f"  one Redis round trip (PING) on loopback: median {us(Summary.of(samples).median)}")


def async_latency(base_url: str, url: str, rounds: int, per_round: int) -> None:
    header("2. AsyncRouter: added latency per call (sequential, one event loop; redis.asyncio)")
    import asyncio

    async def run() -> dict[str, list[float]]:
        raw = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        deployment = llmroute.Deployment(
            "d", model="m", provider="vllm", base_url=base_url, api_key=KEY, rpm=10_000_000
        )
        routers = {
            "raw openai SDK (async)": raw,
            "AsyncRouter, in-process": llmroute.AsyncRouter(
                [deployment], models=[_model()], budgets=Budgets([Budget("1000000")])
            ),
            "AsyncRouter, state=redis": llmroute.AsyncRouter(
                [deployment], models=[_model()], budgets=Budgets([Budget("1000000")]), state=url
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in routers}
        for client in routers.values():  # warm up
            await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
        for _ in range(rounds):
            for name, client in routers.items():
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
                    walls[name].append(time.perf_counter() - t0)
        return walls

    walls = asyncio.run(run())
    base = Summary.of(walls["raw openai SDK (async)"])
    table = Table("contender", "median", "p99", "vs raw SDK", "added vs raw")
    for name, samples in walls.items():
        s = Summary.of(samples)
        table.row(
            name, us(s.median), us(s.p99), ratio(s.median, base.median), us(s.median - base.median, True)
        )
    table.print()


def _worker(base_url: str, url: str | None, calls: int, start_at: float) -> float:
    router: Any = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) if url == "raw" else None
    router = router or _router(base_url, url)
    router.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)  # connect, warm up
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    for _ in range(calls):
        router.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    return time.perf_counter() - t0


def throughput(base_url: str, url: str, calls: int) -> None:
    header("3. Calls per second, N worker processes (each sequential), same emulator server")
    context = multiprocessing.get_context("spawn")
    table = Table(
        "processes", "raw SDK", "in-process state", "state=redis", "redis / raw", "redis / in-process"
    )
    for n in (1, 4, 8):
        rates: dict[str, float] = {}
        for name, state in (("raw", "raw"), ("local", None), ("redis", url)):
            with concurrent.futures.ProcessPoolExecutor(n, mp_context=context) as pool:
                start_at = time.time() + 3.0 + 0.3 * n
                futures = [pool.submit(_worker, base_url, state, calls, start_at) for _ in range(n)]
                times = [f.result() for f in futures]
            rates[name] = n * calls / max(times)
        table.row(
            n,
            f"{rates['raw']:.0f}/s",
            f"{rates['local']:.0f}/s",
            f"{rates['redis']:.0f}/s",
            ratio(rates["redis"], rates["raw"]),
            ratio(rates["redis"], rates["local"]),
        )
    table.print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess() as server:
        proc, url = _start_redis(tmp)
        try:
            base_url = server.base_url("vllm")
            latency(base_url, url, rounds=4 if options.quick else 20, per_round=25)
            async_latency(base_url, url, rounds=4 if options.quick else 20, per_round=25)
            throughput(base_url, url, calls=50 if options.quick else 300)
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
