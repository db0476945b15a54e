"""Ledger throughput and memory: appends per second, bytes per row, SQLite rows per second, and
the per-call price of the durability guarantee.

    python benchmarks/ledger.py            # 100k rows (about 60 s)
    python benchmarks/ledger.py --quick    # 20k rows

Durability (docs/ledger.md): against the emulator's socket server (in its own process), sequential
calls, interleaved: the raw `openai` SDK, the router with an in-memory ledger only, and the router
persisting to SQLite in each mode (`commit`, the default: the row is committed before `create`
returns; `queued`: written by a background thread). Ratios are against the raw SDK and against the
router without a store, measured in the same run; target: commit mode adds at most 5% to a call.
Ratios are taken round by round (interleaved blocks of calls) and summarised as the median over the
rounds with the 25th-75th percentile, so one noisy moment of a shared machine cannot make the
verdict. SQLite rows/s are the median (and range) of repeated runs, for queued mode from one thread
and for commit mode from 1, 8 and 32 threads, with the rows each transaction carried (group commit:
threads that record while a commit is in progress go together in the next one).

    python benchmarks/ledger.py --part durability   # only the per-call measurement
    python benchmarks/ledger.py --part sqlite       # only the SQLite rows/s

Targets (DESIGN.md): 200k rows/s appended in memory, under 400 bytes a row, 50k rows/s into SQLite.

Rows are built the way the router builds them: a fresh `call_id` (uuid4 hex) per call with one retry
in ten, a provider request id per answered attempt, fresh `RouteHints` per call from a few tasks, a
fresh `Usage` per attempt. Two ways to give the cost are measured:

- eager: `cost=price.cost(usage)` (what `RouterCore.row` does today): four `Decimal`s per row;
- lazy: `price=price` (the proposed one-line change): `row.cost` is computed when read.

"bytes/row" is what the ledger retains (tracemalloc, current size after N rows over before). The
"objects" line is the baseline: the same rows kept as objects in a list, as the ledger did before.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from llmroute.hinting import RouteHints
from llmroute.money.budget import Budget, Budgets
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.money.store import SQLiteStore
from llmroute.usage import Price, Usage

PRICE = Price(input=Decimal("0.28"), output=Decimal("0.42"), cache_read=Decimal("0.028"), source="bench")
TASKS = ("code_review", "chat", "documentation", "complex_debugging")


def make_rows(n: int, *, lazy: bool) -> list[LedgerRow]:
    rows = []
    call_id = uuid.uuid4().hex
    hints = RouteHints(task=TASKS[0])
    for i in range(n):
        retry = i % 10 == 1
        if not retry:
            call_id = uuid.uuid4().hex
            hints = RouteHints(task=TASKS[i % 4], tags=("bench",))
        usage = Usage(8_500 + i % 977, 400 + i % 131, cache_read_tokens=8_000 if i % 3 else 0)
        cost: Any = {"price": PRICE} if lazy else {"cost": PRICE.cost(usage)}
        rows.append(
            LedgerRow(
                call_id=call_id,
                attempt=2 if retry else 1,
                timestamp=1_795_000_000.0 + i,
                deployment="ds",
                provider="deepseek",
                requested_model="auto",
                model="deepseek-v3.2",
                served_model="deepseek-chat",
                hints=hints,
                usage=usage,
                latency_s=0.2 + (i % 100) / 1000,
                outcome="ok",
                finish_reason="stop",
                request_id=f"req_{uuid.uuid4().hex[:24]}",
                **cost,
            )
        )
    return rows


def rate(n: int, fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def bytes_per_row(n: int, *, lazy: bool, keep: str) -> float:
    """Bytes retained per row after building and recording `n` rows inside the measurement:
    `keep="ledger"`: recorded on a `Ledger` and the row objects dropped, as the router does;
    `keep="objects"`: the row objects kept in a list (what the ledger did before: the baseline)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    holder: Any
    if keep == "ledger":
        holder = Ledger()
        for row in make_rows(n, lazy=lazy):
            holder.record(row)
    else:
        holder = make_rows(n, lazy=lazy)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del holder
    return (after - before) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=("all", "memory", "sqlite", "durability"), default="all")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    if args.part == "durability":
        durability_per_call(quick=args.quick)
        return
    results: list[tuple[str, str, str, str]] = []

    def add(name: str, value: str, target: str = "", verdict: str = "") -> None:
        results.append((name, value, target, verdict))
        print(f"  {name:<60} {value:>26}  {target:<12} {verdict}", flush=True)

    print(f"llmroute ledger benchmark, {n:,} rows, Python {sys.version.split()[0]}")
    if args.part in ("all", "memory"):
        for lazy in (False, True):
            label = "lazy cost (price=)" if lazy else "eager cost (cost=, today)"
            build = rate(n, functools.partial(make_rows, n, lazy=lazy), repeat=1)
            add(f"build rows, {label}", f"{build:,.0f}/s")
            rows = make_rows(n, lazy=lazy)

            def record(rows: list[LedgerRow] = rows) -> None:
                ledger = Ledger()
                for row in rows:
                    ledger.record(row)

            appended = rate(n, record)
            add(f"Ledger.record, {label}", f"{appended:,.0f}/s", ">= 200,000/s", _ok(appended >= 200_000))
            both = 1 / (1 / build + 1 / appended)
            add(f"build + record, {label}", f"{both:,.0f}/s")
            kept = bytes_per_row(n, lazy=lazy, keep="ledger")
            add(f"bytes/row kept by the ledger, {label}", f"{kept:,.0f} B", "< 400 B", _ok(kept < 400))
        objects = bytes_per_row(n, lazy=False, keep="objects")
        add("bytes/row as objects in a list (the old ledger)", f"{objects:,.0f} B", "(baseline)")

        ledger = Ledger()
        for row in make_rows(n, lazy=True):
            ledger.record(row)
        read = rate(n, lambda: list(ledger), repeat=1)
        add("read back (materialise rows)", f"{read:,.0f}/s")
        total = rate(n, ledger.total, repeat=1)
        add("Ledger.total() (lazy costs computed)", f"{total:,.0f} rows/s")

        budgets = Budgets([Budget("1e12"), Budget("1e12", "task:chat", "day")])
        hints = RouteHints(task="chat")

        def reserve_settle() -> None:
            for _ in range(n):
                budgets.reserve(hints, None, Decimal("0.001")).settle(Decimal("0.001"))

        add("Budgets.reserve + settle (2 budgets)", f"{rate(n, reserve_settle, repeat=1):,.0f}/s")
    if args.part in ("all", "sqlite"):
        rows = make_rows(n, lazy=True)
        repeats = 3 if args.quick else 5
        with tempfile.TemporaryDirectory() as tmp:
            queued = [_queued_rate(os.path.join(tmp, f"queued{i}.db"), rows) for i in range(repeats)]
            rates = [r for r, _, _ in queued]
            add(
                "SQLite queued (record + flush), rows/s",
                _spread(rates),
                ">= 50,000/s",
                _ok(statistics.median(rates) >= 50_000),
            )
            add("  of which the recording thread's time", _spread([q for _, q, _ in queued]))
            add("  rows per CPU second (both threads)", _spread([c for _, _, c in queued]))
            few = rows[: max(n // 5, 1000)]
            for threads in (1, 8, 32):
                runs = [
                    _commit_rate(os.path.join(tmp, f"commit{threads}-{i}.db"), few, threads)
                    for i in range(repeats)
                ]
                add(
                    f"SQLite commit (durable at record), {threads} thread(s), rows/s",
                    _spread([r for r, _, _ in runs]),
                )
                add(f"  rows per transaction, {threads} thread(s)", _spread([b for _, b, _ in runs], ".1f"))
                add(f"  rows per CPU second, {threads} thread(s)", _spread([c for _, _, c in runs]))
            direct = SQLiteStore(os.path.join(tmp, "direct.db"))
            write_rate = rate(n, lambda: direct.write(rows), repeat=1)
            add("SQLite direct batched write (store.write)", f"{write_rate:,.0f}/s")
            count = SQLiteStore(os.path.join(tmp, "queued0.db")).count()
            assert count == n, count
            load = rate(n, lambda: SQLiteStore(os.path.join(tmp, "queued0.db")).rows(), repeat=1)
            add("SQLite read back (rows)", f"{load:,.0f}/s")

    if args.part == "all":
        durability_per_call(quick=args.quick)


def _spread(values: list[float], fmt: str = ",.0f") -> str:
    """The median of repeated runs, and their range."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def _queued_rate(path: str, rows: list[LedgerRow]) -> tuple[float, float, float]:
    """(rows/s from the first `record` to the end of `flush`, rows/s of the recording loop alone,
    rows per CPU second of the process: both threads, whatever else the machine was doing)."""
    store = SQLiteStore(path, durability="queued")
    target = Ledger(store=store)
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    for row in rows:
        target.record(row)
    queued = time.perf_counter() - start
    store.flush()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    store.close()
    return len(rows) / elapsed, len(rows) / queued, len(rows) / cpu


def _commit_rate(path: str, rows: list[LedgerRow], threads: int) -> tuple[float, float, float]:
    """(rows/s, rows per transaction, rows per CPU second) recorded through a commit-mode store from
    `threads` threads: every `record` returns with its row committed; rows recorded while a commit is
    in progress go together in the next one (group commit)."""
    store = SQLiteStore(path)
    ledger = Ledger(store=store)
    share = [rows[i::threads] for i in range(threads)]
    ready = threading.Barrier(threads + 1)

    def work(part: list[LedgerRow]) -> None:
        ready.wait()
        for row in part:
            ledger.record(row)

    workers = [threading.Thread(target=work, args=(part,)) for part in share]
    for w in workers:
        w.start()
    cpu = time.process_time()
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    transactions = store._commits
    store.close()
    assert SQLiteStore(path).count() == len(rows)
    return len(rows) / elapsed, len(rows) / max(transactions, 1), len(rows) / cpu


def durability_per_call(*, quick: bool) -> None:
    """Per-call wall time against the emulator server, sequential: the raw SDK, the router with an
    in-memory ledger only, and the router persisting to SQLite in each mode, interleaved in rounds.

    Each round runs every contender for a block of calls (order alternating between rounds); the
    ratios are computed round by round (a contender's median over the router-without-store's
    median in the same round), then summarised over the rounds: the median and the spread (the
    25th-75th percentile of the per-round ratios). Machine noise that lasts longer than a round hits
    both sides of a ratio alike. CPU per call is the process's CPU time (all threads: the queued
    writer's work included) over the calls of the block."""
    import openai
    from _common import EmulatorProcess, Table, percentile, us

    import llmroute

    rounds, per_round = (40, 15) if quick else (100, 20)  # short blocks: pairs close in time
    kwargs: dict[str, Any] = {"model": "gpt-5.4", "messages": [{"role": "user", "content": "Say hi."}]}
    print("\nDurability: per-call wall time, sequential, against the emulator server", flush=True)
    with EmulatorProcess() as server, tempfile.TemporaryDirectory() as tmp:
        url = server.base_url("openai")
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)

        def router(ledger: Ledger) -> llmroute.Router:
            deployment = llmroute.Deployment("gpt", model="gpt-5.4", base_url=url, api_key="sk-bench")
            return llmroute.Router([deployment], ledger=ledger)

        commit = SQLiteStore(os.path.join(tmp, "commit.db"))
        queued = SQLiteStore(os.path.join(tmp, "queued.db"), durability="queued")
        in_put: list[float] = []

        def timed_put(row: LedgerRow) -> None:
            t0 = time.perf_counter()
            commit.put(row)
            in_put.append(time.perf_counter() - t0)

        timed_ledger = Ledger()
        timed_ledger.subscribe(timed_put)
        routers = {
            "router, no store": router(Ledger()),
            "router + SQLite commit": router(timed_ledger),
            "router + SQLite queued": router(Ledger(store=queued)),
        }
        contenders: dict[str, Callable[[], object]] = {
            "raw openai.OpenAI": lambda: client.chat.completions.create(**kwargs)
        }
        for name, r in routers.items():
            contenders[name] = functools.partial(r.chat.completions.create, **kwargs)
        walls: dict[str, list[list[float]]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        puts: list[float] = []  # median time inside put, per round
        for fn in contenders.values():
            for _ in range(20):
                fn()
        in_put.clear()
        names = list(contenders)
        for r_no in range(rounds):
            for name in names if r_no % 2 == 0 else reversed(names):
                fn, block = contenders[name], []
                c0 = time.process_time()
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    fn()
                    block.append(time.perf_counter() - t0)
                cpus[name].append((time.process_time() - c0) / per_round)
                walls[name].append(block)
            puts.append(statistics.median(in_put))
            in_put.clear()
        commit.close()
        queued.close()
        for r in routers.values():
            r.close()
        client.close()

    def medians(name: str) -> list[float]:
        return [statistics.median(block) for block in walls[name]]

    def summary(values: list[float], fmt: str = ".3f") -> str:
        low, high = percentile(values, 25), percentile(values, 75)
        return f"{statistics.median(values):{fmt}} ({low:{fmt}}-{high:{fmt}})"

    raw, bare = medians("raw openai.OpenAI"), medians("router, no store")
    table = Table("contender", "median/call", "vs raw SDK", "vs router without store", "CPU/call")
    for name in contenders:
        mine = medians(name)
        table.row(
            name,
            us(statistics.median([x for block in walls[name] for x in block])),
            summary([m / b for m, b in zip(mine, raw, strict=True)]) + "x",
            summary([m / b for m, b in zip(mine, bare, strict=True)]) + "x"
            if name.startswith("router")
            else "",
            us(statistics.median(cpus[name])),
        )
    print(f"  {rounds} rounds x {per_round} calls per contender; ratios: median over rounds (25th-75th pct)")
    table.print()
    added = [m / b - 1 for m, b in zip(medians("router + SQLite commit"), bare, strict=True)]
    share = [p / b for p, b in zip(puts, bare, strict=True)]
    cpu_added = [
        c / b - 1 for c, b in zip(cpus["router + SQLite commit"], cpus["router, no store"], strict=True)
    ]
    verdict = _ok(statistics.median(added) <= 0.05)
    print(
        f"  commit mode adds {summary(added, '+.1%')} to a routed call's wall time (target <= +5%): "
        f"{verdict}\n"
        f"  time inside SQLiteStore.put (the commit itself): median {us(statistics.median(puts))} "
        f"({us(percentile(puts, 25))}-{us(percentile(puts, 75))}), {summary(share, '.1%')} of a routed call\n"
        f"  CPU per call added by commit mode: {summary(cpu_added, '+.1%')}",
        flush=True,
    )


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    main()
