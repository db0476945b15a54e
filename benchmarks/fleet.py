"""Fleet mode: what shared state on Redis adds per call, and throughput with 1, 4 and 8 processes.

1. Per-call latency, sequential, interleaved, against one emulator server: the raw `openai` SDK,
   the router with in-process budgets and limits, and the router with `state="redis://..."` (a
   budget and an rpm limit shared through a local `redis-server` on loopback). Also: Redis round
   trips per routed call, and one script round trip on its own.
2. Calls per second with 1, 4 and 8 worker processes (each sequential), in-process state against
   Redis state, same server.

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


class CountingLink(RedisLink):
    """Counts scripts run (each is one round trip)."""

    runs = 0

    def run(self, source: str, keys: Any, args: Any) -> Any:
        self.runs += 1
        return super().run(source, keys, args)


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


def latency(base_url: str, url: str, rounds: int, per_round: int) -> None:
    header("1. Added latency per call (sequential, one process)")
    raw = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    local = _router(base_url, None)
    link = CountingLink(url)
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
    before = link.runs
    for _ in range(50):
        fleet.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    per_call = (link.runs - before) / 50
    print(f"  shared state adds {us(shared - in_process, True)} per call (state=redis - in-process)")
    print(f"  Redis round trips per routed call: {per_call:g}")
    import redis

    client = redis.Redis.from_url(url)
    samples = []
    for _ in range(2000):
        t0 = time.perf_counter()
        client.ping()
        samples.append(time.perf_counter() - t0)
    print(f"  one Redis round trip (PING) on loopback: median {us(Summary.of(samples).median)}")


def _worker(base_url: str, url: str | None, calls: int, start_at: float) -> float:
    router = _router(base_url, url)
    router.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)  # connect, warm up
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    for _ in range(calls):
        router.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    return time.perf_counter() - t0


def throughput(base_url: str, url: str, calls: int) -> None:
    header("2. Calls per second, N worker processes (each sequential), same emulator server")
    context = multiprocessing.get_context("spawn")
    table = Table("processes", "in-process state", "state=redis", "redis / in-process")
    for n in (1, 4, 8):
        rates: dict[str, float] = {}
        for name, state in (("local", None), ("redis", url)):
            with concurrent.futures.ProcessPoolExecutor(n, mp_context=context) as pool:
                start_at = time.time() + 3.0 + 0.3 * n
                futures = [pool.submit(_worker, base_url, state, calls, start_at) for _ in range(n)]
                times = [f.result() for f in futures]
            rates[name] = n * calls / max(times)
        table.row(
            n, f"{rates['local']:.0f}/s", f"{rates['redis']:.0f}/s", ratio(rates["redis"], rates["local"])
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
            throughput(base_url, url, calls=50 if options.quick else 300)
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
