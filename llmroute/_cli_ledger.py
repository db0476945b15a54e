"""The `llmroute report` and `llmroute whatif` commands: the two that read a recorded ledger
(`--db`, `--jsonl` or `--dsn`); `llmroute.cli` parses the command line and runs them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Catalog
    from .money.ledger import LedgerRow
    from .money.pricing import PriceTable
    from .money.reports import Stats
    from .money.store import SQLiteStore
    from .money.whatif import Repricing

__all__ = ["_add_source", "_report", "_whatif"]


from ._cli_output import (
    UsageError,
    _catalog,
    _check_models,
    _console,
    _Failure,
    _json,
    _parse_routes,
    _price_table,
    _rich_available,
    _say,
    _share,
    _table,
    _when,
)

# -- the ledger ----------------------------------------------------------------------------------------


def _add_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("ledger source (one is required)")
    source.add_argument("--db", metavar="PATH", help="a SQLite ledger (llmroute.money.store.SQLiteStore)")
    source.add_argument("--jsonl", metavar="PATH", help="a JSONL export (llmroute.money.store.export_jsonl)")
    source.add_argument(
        "--dsn", metavar="URL", help="a PostgreSQL ledger (llmroute.fleet.postgres.PostgresStore)"
    )
    parser.add_argument("--since", type=_when, metavar="DATE", help="rows from this UTC date/time on")
    parser.add_argument("--until", type=_when, metavar="DATE", help="rows before this UTC date/time")
    parser.add_argument("--prices", metavar="FILE", help="dated price rows (TOML) to replay costs with")
    parser.add_argument("--catalog", metavar="FILE", help="extra or overriding catalog rows (TOML)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _load_rows(args: argparse.Namespace) -> list[LedgerRow]:
    if [bool(args.db), bool(args.jsonl), bool(args.dsn)].count(True) != 1:
        raise UsageError("give the ledger to read: --db PATH, --jsonl PATH or --dsn URL (one of them)")
    bounds = {"since": args.since, "until": args.until}
    if args.dsn:
        from .fleet.postgres import read_rows
        from .money.store import StoreError

        try:
            return read_rows(args.dsn, **bounds)
        except (ImportError, StoreError) as e:
            raise _Failure(str(e)) from e
    if args.jsonl:
        from .money.ledger import Ledger
        from .money.store import read_jsonl

        try:
            rows = read_jsonl(args.jsonl)
        except OSError as e:
            raise _Failure(f"cannot read {args.jsonl}: {e.strerror or e}") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
            raise _Failure(
                f"{args.jsonl} is not a JSONL ledger export (llmroute.money.store.export_jsonl): "
                f"{type(e).__name__}: {e}"
            ) from e
        return Ledger(rows).rows(**bounds)
    import sqlite3

    from .money.store import SQLiteStore

    try:
        store = SQLiteStore.open_existing(args.db)
        total = store.count()
    except sqlite3.DatabaseError as e:
        raise _Failure(f"{args.db} is not an llmroute SQLite ledger (sqlite: {e})") from e
    try:
        return _read_store(store, args, total, bounds)
    except sqlite3.DatabaseError as e:
        raise _Failure(f"{args.db} is not an llmroute SQLite ledger (sqlite: {e})") from e


def _read_store(
    store: SQLiteStore, args: argparse.Namespace, total: int, bounds: dict[str, Any]
) -> list[LedgerRow]:
    if total > 50_000 and sys.stderr.isatty() and _rich_available() and not args.json:
        from rich.progress import Progress

        out: list[LedgerRow] = []
        with Progress(console=_console(stderr=True), transient=True) as progress:
            task = progress.add_task("reading ledger", total=total)
            for n, row in enumerate(store.iter_rows(**bounds), 1):
                out.append(row)
                if n % 5000 == 0:
                    progress.update(task, completed=n)
        return out
    return store.rows(**bounds)


# -- report --------------------------------------------------------------------------------------------


def _stats_cells(s: Stats, wide: bool = True) -> list[str]:
    from .money.pricing import money

    if not wide:
        return [
            str(s.key) if not isinstance(s.key, tuple) else " / ".join(map(str, s.key)),
            f"{s.calls:,}",
            _short(s.usage.input_tokens),
            _short(s.usage.output_tokens),
            _share(s.cache_hit_share),
            money(s.cost_or_none, s.unpriced if s.priced else 0),
            money(s.cost_per_call) if s.cost_per_call is not None else ("unpriced" if s.unpriced else "-"),
            _seconds(s.latency_p95),
            _share(s.failure_rate),
            _share(s.fallback_rate),
        ]
    return [
        str(s.key) if not isinstance(s.key, tuple) else " / ".join(map(str, s.key)),
        f"{s.calls:,}",
        f"{s.attempts:,}",
        f"{s.usage.input_tokens:,}",
        f"{s.usage.cache_read_tokens:,}",
        f"{s.usage.cache_write_tokens:,}",
        f"{s.usage.output_tokens:,}",
        f"{s.usage.reasoning_tokens:,}",
        _share(s.cache_hit_share),
        money(s.cost_or_none, s.unpriced if s.priced else 0),
        money(s.cost_per_call) if s.cost_per_call is not None else ("unpriced" if s.unpriced else "-"),
        _seconds(s.latency_p50),
        _seconds(s.latency_p95),
        _seconds(s.latency_p99),
        _share(s.failure_rate),
        _share(s.fallback_rate),
        f"{s.truncated:,}",
    ]


_STATS_HEADER = [
    "",
    "calls",
    "attempts",
    "input",
    "cached",
    "cache write",
    "output",
    "reasoning",
    "cache hit",
    "cost",
    "per call",
    "p50",
    "p95",
    "p99",
    "failed",
    "fallback",
    "truncated",
]


_COMPACT_HEADER = [
    *("", "calls", "input", "output", "cache hit"),
    *("cost", "per call", "p95", "failed", "fallback"),
]
"""The default report columns: they fit 100 columns; `--wide` shows every column of `_STATS_HEADER`."""


def _short(tokens: int) -> str:
    """`9,999`, `12.3K`, `4.56M`, `1.20B`: token counts in at most 6 characters."""
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if tokens >= size * 10 or (unit != "K" and tokens >= size):
            value = tokens / size
            return f"{value:.3g}{unit}" if value < 1000 else f"{value:,.0f}{unit}"
    return f"{tokens:,}"


_PERIODS = ("day", "week", "month", "hour")


def _check_fields(by: Sequence[str]) -> None:
    """Every `--by` field (or `A+B` combination) names something a ledger row has."""
    import dataclasses

    from .money.ledger import _HINT_FIELDS, LedgerRow
    from .money.reports import DEFAULT_BREAKDOWNS

    own = {f.name for f in dataclasses.fields(LedgerRow)} | {
        n for n in dir(LedgerRow) if not n.startswith("_")
    }
    known = {*_HINT_FIELDS, *_PERIODS, "tag", *own}
    for item in by:
        if item == "all":
            continue
        for name in item.split("+"):
            if name.startswith("label:") and len(name) > 6:
                continue
            if name not in known:
                usual = ", ".join([*DEFAULT_BREAKDOWNS, "week", "month", "label:NAME"])
                raise UsageError(f"--by {name!r}: not a ledger field; e.g. {usual}, or FIELD+FIELD")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _report(args: argparse.Namespace) -> int:
    from .money.reports import DEFAULT_BREAKDOWNS, breakdown, build_report

    catalog = _catalog(args)
    _check_models(catalog, args.whatif or ())
    _check_fields(args.by or ())
    rows = _load_rows(args)
    prices = _price_table(args, catalog)
    if prices is not None:
        rows = prices.reprice(rows)
    by = tuple(args.by) if args.by else ("model", "task", "day")
    if "all" in by:
        by = DEFAULT_BREAKDOWNS
    report = build_report(rows, by)
    whatifs = _whatifs(rows, args.whatif or (), catalog, prices)
    if args.html:
        from .money.htmlreport import render_html
        from .money.whatif import narrate

        story = (
            narrate(rows, args.whatif[0], catalog=catalog, prices=prices, period="These rows")
            if (args.whatif and rows)
            else ""
        )
        page = render_html(report, breakdown(rows, ("day", "model")), whatifs, narrative=story)
        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(page)
        except OSError as e:
            raise _Failure(f"cannot write {args.html}: {e}") from e
    if args.json:
        data = report.as_dict()
        data["whatif"] = [w.as_dict() for w in whatifs]
        _json(data)
        return 0
    if not rows:
        _say("No rows in this ledger for that period.")
        return 0
    header = _STATS_HEADER if args.wide else _COMPACT_HEADER
    _table("Total", header, [_stats_cells(report.total, args.wide)], wide=args.wide)
    for name, stats in report.groups.items():
        _table(f"By {name}", header, [_stats_cells(s, args.wide) for s in stats], wide=args.wide)
    drifted = [d for d in report.drift if d.drifted]
    if drifted:
        _table(
            "Served-model drift",
            ["deployment", "model", "served versions (attempts)", "changes"],
            [
                [
                    d.deployment,
                    d.model,
                    ", ".join(f"{v.served_model} ({v.attempts})" for v in d.versions),
                    str(len(d.changes)),
                ]
                for d in drifted
            ],
        )
    if whatifs:
        _whatif_table(whatifs)
    if args.html:
        _say(f"HTML report written to {args.html}")
    return 0


def _whatifs(
    rows: list[LedgerRow], models: Sequence[str], catalog: Catalog, prices: PriceTable | None
) -> list[Repricing]:
    from .money.whatif import reprice

    return [reprice(rows, m, catalog=catalog, prices=prices) for m in models]


def _whatif_table(results: Sequence[Repricing]) -> None:
    from .money.pricing import money

    rows = []
    for r in results:
        savings = r.savings
        rows.append(
            [
                r.label,
                f"{r.moved:,}",
                money(r.actual, r.actual_unpriced),
                ("~" if r.estimate else "") + money(r.hypothetical, r.hypothetical_unpriced),
                money(savings) if savings is not None else "unknown",
            ]
        )
    _table("What if", ["scenario", "rows moved", "recorded", "would have cost", "saved"], rows)
    notes = sorted({n for r in results for n in r.notes})
    for note in notes:
        _say(f"  ~ estimate: {note}")


# -- whatif --------------------------------------------------------------------------------------------


# -- whatif --------------------------------------------------------------------------------------------


def _whatif(args: argparse.Namespace) -> int:
    from .money.whatif import narrate, reprice, reroute

    catalog = _catalog(args)
    routes = _parse_routes(args.route or ())
    if not args.model and not routes:
        raise UsageError("name an alternative: --model MODEL and/or --route TASK=MODEL")
    _check_models(catalog, [*(args.model or ()), *routes.values(), *([args.default] if args.default else [])])
    rows = _load_rows(args)
    present = {row.hints.task for row in rows}
    absent = [t for t in args.task or () if t not in present]
    if rows and absent:
        tasks = ", ".join(sorted(str(t) for t in present if t is not None)) or "none (no task hints)"
        raise UsageError(f"no rows with task {absent[0]!r} in this ledger; its tasks: {tasks}")
    prices = _price_table(args, catalog)
    results = [reprice(rows, m, catalog=catalog, prices=prices) for m in args.model or ()]
    if routes:
        results.append(reroute(rows, routes, default=args.default, catalog=catalog, prices=prices))
    for task in args.task or ():
        for model in args.model or ():
            moved = reroute(rows, {task: model}, catalog=catalog, prices=prices)
            results.append(moved)
    story = (
        narrate(
            rows, args.model[0], tasks=args.task or (), period=args.period, catalog=catalog, prices=prices
        )
        if args.model
        else ""
    )
    if args.json:
        _json({"narrative": story, "results": [r.as_dict() for r in results]})
        return 0
    if not rows:
        _say("No rows in this ledger for that period.")
        return 0
    if story:
        _say(story)
    _whatif_table(results)
    return 0
