"""Shared helpers for the benchmark scripts: the emulator server, timing loops, statistics, tables.

Every benchmark compares contenders against the SAME emulator socket server in the SAME run, and
interleaves them (A, B, B, A, A, B, ... in small blocks) so that machine noise hits all of them.

- `EmulatorProcess`: the `llmroute.testing` emulator's real HTTP/1.1 keep-alive server, run in a
  child process (so the server neither shares the GIL with the client being measured nor shows up in
  its CPU time). It counts accepted TCP connections and its own CPU time: `stats()`.
- `interleave` / `interleave_async`: bounded timing loops over several contenders.
- `interleave_subprocesses`: wall time of fresh `python -c ...` runs (import time), interleaved.
- `Summary`, `median`, `percentile`: statistics; `Table`, `ratio`, `us`, `ms`: printing.

Run `python benchmarks/_common.py --serve` to start the server by hand (it prints its port as JSON
and answers `stats` on stdin).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import TracebackType
from typing import Any, Self

__all__ = [
    "AsyncResult",
    "EmulatorProcess",
    "ProcessTimes",
    "Samples",
    "ServerStats",
    "Summary",
    "Table",
    "header",
    "interleave",
    "interleave_async",
    "interleave_subprocesses",
    "machine",
    "median",
    "ms",
    "percentile",
    "ratio",
    "run_json",
    "us",
]

HOST = "127.0.0.1"


# -- machine ---------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "cpu": platform.processor() or platform.machine(),
        "os": platform.platform(terse=True),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "openai": _version("openai"),
        "httpx2": _version("httpx2"),
        "aiohttp": _version("aiohttp"),
        "pydantic": _version("pydantic"),
        "llmroute": f"{_version('llmroute')} ({_git_state()})",
        "load": _load(),
    }


def _load() -> str:
    """Load averages: other work on the machine is the main source of noise."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} (1 min), {five:.2f} (5 min) before the run"


def _git_state() -> str:
    """The commit the benchmarked llmroute is at, and whether its files differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--", "llmroute"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no git"
    if not head:
        return "no git"
    return f"{head}, with uncommitted changes" if dirty else head


# -- statistics ------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (`q` in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    median: float
    p99: float
    mean: float
    minimum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            len(values),
            median(values),
            percentile(values, 99),
            statistics.fmean(values) if values else math.nan,
            min(values) if values else math.nan,
        )


# -- formatting ------------------------------------------------------------------------------------


def us(seconds: float, signed: bool = False) -> str:
    """Seconds as microseconds."""
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1e6:+.1f} us" if signed else f"{seconds * 1e6:.1f} us"


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1e3:.3f} ms"


def ratio(value: float, baseline: float) -> str:
    if math.isnan(value) or math.isnan(baseline) or baseline == 0:
        return "n/a"
    return f"{value / baseline:.3f}x"


def header(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)), flush=True)


class Table:
    """A plain-text table: `Table("a", "b").row(1, 2).print()`. Numbers are given as strings."""

    def __init__(self, *columns: str) -> None:
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []

    def row(self, *cells: object) -> Table:
        cells_s = tuple(str(c) for c in cells)
        self.rows.append(cells_s + ("",) * (len(self.columns) - len(cells_s)))
        return self

    def print(self, indent: str = "  ") -> None:
        widths = [max(len(r[i]) for r in [self.columns, *self.rows]) for i in range(len(self.columns))]

        def line(cells: Sequence[str]) -> str:
            first = cells[0].ljust(widths[0])
            rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            return indent + "  ".join([first, *rest]).rstrip()

        print(line(self.columns))
        print(indent + "  ".join("-" * w for w in widths))
        for r in self.rows:
            print(line(r))
        sys.stdout.flush()


# -- the emulator server in a child process ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerStats:
    """Cumulative counters of the emulator server since it started."""

    connections: int
    """TCP connections the server accepted (-1 if the emulator could not be instrumented)."""
    requests: int
    cpu_s: float
    """CPU time of the server process."""

    def __sub__(self, other: ServerStats) -> ServerStats:
        return ServerStats(
            self.connections - other.connections, self.requests - other.requests, self.cpu_s - other.cpu_s
        )


class EmulatorProcess:
    """The emulator's socket server (`Emulator(...).serve()`) in a child process on 127.0.0.1.

    ```python
    with EmulatorProcess() as server:
        client = openai.OpenAI(base_url=server.base_url("openai"), api_key="sk-x", max_retries=0)
        before = server.stats(); ...; opened = (server.stats() - before).connections
    ```

    `encoding="approx"` makes the server's token counting cheap and independent of whether
    tiktoken's files are available, so the server's cost is the same on every machine.
    """

    def __init__(self, *, seed: int = 0, encoding: str | None = "approx") -> None:
        self.seed = seed
        self.encoding = encoding
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        args = [sys.executable, os.path.abspath(__file__), "--serve", "--seed", str(self.seed)]
        if self.encoding:
            args += ["--encoding", self.encoding]
        self._proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            proc, self._proc = self._proc, None
            code = proc.wait(timeout=10)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()
            raise RuntimeError(f"the emulator server exited ({code}) before listening (see its stderr above)")
        self.port = int(json.loads(line)["port"])
        return self

    def base_url(self, provider: str) -> str:
        return f"http://{HOST}:{self.port}/{provider}/v1"

    def stats(self) -> ServerStats:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("stats\n")
        proc.stdin.flush()
        data = json.loads(proc.stdout.readline())
        return ServerStats(int(data["connections"]), int(data["requests"]), float(data["cpu_s"]))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()  # EOF: the server shuts down
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Accepted:
    count = 0


def _count_connections() -> bool:
    """Count accepted connections by wrapping the emulator server's protocol class (private API;
    if it changes, connection counts show as n/a and everything else still works)."""
    try:
        from llmroute.testing import _server
    except ImportError:
        return False
    base = getattr(_server, "_Connection", None)
    if base is None or not hasattr(base, "connection_made"):
        return False

    class Counting(base):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:
            _Accepted.count += 1
            super().connection_made(transport)

    _server._Connection = Counting  # type: ignore[attr-defined]
    return True


def _serve(seed: int, encoding: str | None) -> None:
    """Child side of `EmulatorProcess`: serve until stdin closes, answering `stats` lines."""
    counting = _count_connections()
    from llmroute.testing import Emulator

    emulator = Emulator(seed=seed, encoding=encoding, max_requests=256)
    with emulator.serve(HOST, 0) as server:
        print(json.dumps({"port": server.port}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {
                    "connections": _Accepted.count if counting else -1,
                    "requests": emulator.bill.total().requests,
                    "cpu_s": time.process_time(),
                }
                print(json.dumps(stats), flush=True)


# -- timing loops ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Samples:
    """What one contender did across all its blocks."""

    wall: list[float] = field(default_factory=list)
    """Wall time of each call (seconds)."""
    cpu_s: float = 0.0
    """Process CPU time over all its calls (this process only: the server runs elsewhere)."""
    counted: int = 0
    """Sum of the `counter` deltas over its blocks (e.g. TCP connections opened)."""

    @property
    def calls(self) -> int:
        return len(self.wall)

    @property
    def cpu_per_call(self) -> float:
        return self.cpu_s / self.calls if self.calls else math.nan


def _order(names: Sequence[str], round_no: int) -> list[str]:
    """A, B, C / C, B, A / A, B, C ...: no contender always runs first."""
    return list(names) if round_no % 2 == 0 else list(reversed(names))


def interleave(
    contenders: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    per_round: int,
    warmup: int = 20,
    counter: Callable[[], int] | None = None,
) -> dict[str, Samples]:
    """Call each contender `per_round` times per round, for `rounds` rounds, alternating the order.

    `warmup` untimed calls per contender come first. `counter()` (e.g. the server's accepted
    connections) is read around each block; its deltas are summed into `Samples.counted`.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    results = {name: Samples() for name in contenders}
    perf, cpu = time.perf_counter, time.process_time
    for r in range(rounds):
        for name in _order(list(contenders), r):
            fn, samples = contenders[name], results[name]
            wall = samples.wall
            before = counter() if counter is not None else 0
            c0 = cpu()
            for _ in range(per_round):
                t0 = perf()
                fn()
                wall.append(perf() - t0)
            samples.cpu_s += cpu() - c0
            if counter is not None:
                samples.counted += counter() - before
    return results


@dataclass(slots=True)
class AsyncResult:
    """One contender's async runs: calls per second and client CPU per call, one entry per round."""

    rate: list[float] = field(default_factory=list)
    cpu_per_call: list[float] = field(default_factory=list)
    server_busy: list[float] = field(default_factory=list)
    """Server CPU time / wall time in each round (near 1.0: the server was the bottleneck)."""
    connections: int = 0
    """TCP connections the server accepted during this contender's rounds."""
    calls: int = 0
    failures: int = 0


async def _burst(call: Callable[[], Awaitable[object]], total: int, concurrency: int) -> int:
    """`total` calls with at most `concurrency` in flight; returns how many raised."""
    remaining = total
    failures = 0

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            try:
                await call()
            except Exception:
                failures += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def interleave_async(
    contenders: Mapping[str, Callable[[], Awaitable[object]]],
    *,
    rounds: int,
    total: int,
    concurrency: int,
    warmup: int | None = None,
    server: EmulatorProcess | None = None,
) -> dict[str, AsyncResult]:
    """Throughput of each contender: `total` calls, `concurrency` at a time, per round, alternating.

    A warm-up burst per contender (default: `concurrency` * 2 calls) opens its connection pool first.
    """
    for call in contenders.values():
        await _burst(call, warmup if warmup is not None else concurrency * 2, concurrency)
    results = {name: AsyncResult() for name in contenders}
    for r in range(rounds):
        for name in _order(list(contenders), r):
            s0 = server.stats() if server is not None else None
            c0, t0 = time.process_time(), time.perf_counter()
            failures = await _burst(contenders[name], total, concurrency)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
            result = results[name]
            result.rate.append(total / elapsed)
            result.cpu_per_call.append(cpu / total)
            result.failures += failures
            result.calls += total
            if server is not None and s0 is not None:
                delta = server.stats() - s0
                result.server_busy.append(delta.cpu_s / elapsed)
                result.connections += delta.connections
    return results


# -- fresh interpreters ----------------------------------------------------------------------------


def _python(code: str, env: Mapping[str, str] | None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, check=False, timeout=120
    )


@dataclass(slots=True)
class ProcessTimes:
    """Fresh-interpreter timings of one case."""

    wall: list[float] = field(default_factory=list)
    """Whole `python -c` runs, interpreter start-up included."""
    inner: list[float] = field(default_factory=list)
    """The code alone, timed inside the child (`perf_counter` around it): less noisy."""


def interleave_subprocesses(
    cases: Mapping[str, str], *, runs: int, env: Mapping[str, str] | None = None
) -> dict[str, ProcessTimes]:
    """Time `python -c CODE` for each case, `runs` times each, interleaved. One untimed run of each
    first (warms the OS file cache and `__pycache__`)."""
    wrapped = {
        name: "import time as _t\n_t0 = _t.perf_counter()\n" + code + "\nprint(repr(_t.perf_counter() - _t0))"
        for name, code in cases.items()
    }
    for code in wrapped.values():
        _python(code, env)
    times = {name: ProcessTimes() for name in cases}
    for r in range(runs):
        for name in _order(list(cases), r):
            t0 = time.perf_counter()
            done = _python(wrapped[name], env)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"{name}: python -c failed:\n{done.stderr}")
            times[name].wall.append(wall)
            times[name].inner.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def run_json(code: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run `python -c CODE` in a fresh interpreter; CODE prints one JSON object as its last line."""
    done = _python(code, env)
    if done.returncode != 0:
        raise RuntimeError(f"python -c failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run the emulator server (stdin: 'stats')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", default=None)
    options = parser.parse_args()
    if not options.serve:
        parser.error("nothing to do (use --serve)")
    _serve(options.seed, options.encoding)
