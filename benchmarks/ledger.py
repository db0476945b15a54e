"""Ledger throughput and memory: appends per second, bytes per row, SQLite rows per second, and
the per-call price of the durability guarantee.

    python benchmarks/ledger.py            # 100k rows (about 60 s)
    python benchmarks/ledger.py --quick    # 20k rows

Durability (docs/ledger.md): against the emulator's socket server (in its own process), sequential
calls, interleaved: the raw `openai` SDK, the router with an in-memory ledger only, and the router
persisting to SQLite in each mode (`commit`, the default: the row is committed before `create`
returns; `queued`: written by a background thread). Ratios are against the raw SDK and against the
router without a store, measured in the same run; target: commit mode adds at most 5% to a call.
SQLite rows/s are given for each mode from one thread and, for commit mode, from 4 threads (group
commits).

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
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    results: list[tuple[str, str, str, str]] = []

    def add(name: str, value: str, target: str = "", verdict: str = "") -> None:
        results.append((name, value, target, verdict))
        print(f"  {name:<52} {value:>14}  {target:<12} {verdict}", flush=True)

    print(f"llmroute ledger benchmark, {n:,} rows, Python {sys.version.split()[0]}")
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

    rows = make_rows(n, lazy=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "bench.db"), durability="queued")
        target = Ledger(store=store)
        start = time.perf_counter()
        for row in rows:
            target.record(row)
        queued = time.perf_counter() - start
        store.flush()
        elapsed = time.perf_counter() - start
        store.close()
        sqlite_rate = n / elapsed
        add(
            "SQLite queued (record + flush), rows/s",
            f"{sqlite_rate:,.0f}/s",
            ">= 50,000/s",
            _ok(sqlite_rate >= 50_000),
        )
        add("  of which the recording thread's time", f"{n / queued:,.0f}/s")
        few = rows[: max(n // 5, 1000)]
        for threads in (1, 4):
            committed = _commit_rate(os.path.join(tmp, f"commit{threads}.db"), few, threads)
            add(f"SQLite commit (durable at record), {threads} thread(s), rows/s", f"{committed:,.0f}/s")
        direct = SQLiteStore(os.path.join(tmp, "direct.db"))
        write_rate = rate(n, lambda: direct.write(rows), repeat=1)
        add("SQLite direct batched write (store.write)", f"{write_rate:,.0f}/s")
        count = SQLiteStore(os.path.join(tmp, "bench.db")).count()
        assert count == n, count
        load = rate(n, lambda: SQLiteStore(os.path.join(tmp, "bench.db")).rows(), repeat=1)
        add("SQLite read back (rows)", f"{load:,.0f}/s")

    budgets = Budgets([Budget("1e12"), Budget("1e12", "task:chat", "day")])
    hints = RouteHints(task="chat")

    def reserve_settle() -> None:
        for _ in range(n):
            budgets.reserve(hints, None, Decimal("0.001")).settle(Decimal("0.001"))

    add("Budgets.reserve + settle (2 budgets)", f"{rate(n, reserve_settle, repeat=1):,.0f}/s")
    durability_per_call(quick=args.quick)


def _commit_rate(path: str, rows: list[LedgerRow], threads: int) -> float:
    """Rows/s recorded through a commit-mode store: every `record` returns with its row committed."""
    store = SQLiteStore(path)
    ledger = Ledger(store=store)
    share = [rows[i::threads] for i in range(threads)]

    def work(part: list[LedgerRow]) -> None:
        for row in part:
            ledger.record(row)

    workers = [threading.Thread(target=work, args=(part,)) for part in share]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    store.close()
    assert SQLiteStore(path).count() == len(rows)
    return len(rows) / elapsed


def durability_per_call(*, quick: bool) -> None:
    """Per-call wall time against the emulator server: raw SDK, router, router + SQLite."""
    import openai
    from _common import EmulatorProcess, Table, interleave, median, ratio, us

    import llmroute

    rounds, per_round = (10, 50) if quick else (30, 100)
    kwargs: dict[str, Any] = {"model": "gpt-5.4", "messages": [{"role": "user", "content": "Say hi."}]}
    print("\nDurability: per-call wall time, sequential, against the emulator server", flush=True)
    with EmulatorProcess() as server, tempfile.TemporaryDirectory() as tmp:
        url = server.base_url("openai")
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)

        def router(store: SQLiteStore | None, ledger: Ledger | None = None) -> llmroute.Router:
            deployment = llmroute.Deployment("gpt", model="gpt-5.4", base_url=url, api_key="sk-bench")
            return llmroute.Router([deployment], ledger=ledger if ledger is not None else Ledger(store=store))

        commit = SQLiteStore(os.path.join(tmp, "commit.db"))
        queued = SQLiteStore(os.path.join(tmp, "queued.db"), durability="queued")
        in_put: list[float] = []

        def timed_put(row: LedgerRow) -> None:
            t0 = time.perf_counter()
            commit.put(row)
            in_put.append(time.perf_counter() - t0)

        def spin(row: LedgerRow) -> None:  # the control: a listener that only burns CPU as long
            until = time.perf_counter() + (median(in_put) if in_put else 50e-6)
            while time.perf_counter() < until:
                pass

        timed_ledger = Ledger()
        timed_ledger.subscribe(timed_put)
        spin_ledger = Ledger()
        spin_ledger.subscribe(spin)
        routers = {
            "router, no store": router(None),
            "router + SQLite commit": router(None, timed_ledger),
            "router + SQLite queued": router(queued),
            "router + busy listener (control)": router(None, spin_ledger),
        }
        contenders: dict[str, Callable[[], object]] = {
            "raw openai.OpenAI": lambda: client.chat.completions.create(**kwargs)
        }
        for name, r in routers.items():
            contenders[name] = functools.partial(r.chat.completions.create, **kwargs)
        samples = interleave(contenders, rounds=rounds, per_round=per_round)
        commit.close()
        queued.close()
        for r in routers.values():
            r.close()
        client.close()
    raw = median(samples["raw openai.OpenAI"].wall)
    bare = median(samples["router, no store"].wall)
    table = Table("contender", "median/call", "vs raw SDK", "vs router without store")
    for name, got in samples.items():
        m = median(got.wall)
        table.row(name, us(m), ratio(m, raw), ratio(m, bare) if name.startswith("router") else "")
    table.print()
    added = median(samples["router + SQLite commit"].wall) / bare - 1
    control = median(samples["router + busy listener (control)"].wall) / bare - 1
    put = median(in_put)
    print(
        f"  commit mode adds {added:+.1%} to a routed call (target <= +5%): {_ok(added <= 0.05)}; "
        f"{rounds * per_round} calls each\n"
        f"  time inside SQLiteStore.put (the commit itself): median {us(put)}, "
        f"{put / bare:.1%} of a routed call\n"
        f"  control, a listener that only spins that long: {control:+.1%} "
        "(the rest of the difference is the machine, not SQLite)",
        flush=True,
    )


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    main()
