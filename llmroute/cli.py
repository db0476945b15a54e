"""The `llmroute` command: `demo`, `prices`, `report`, `whatif`, `estimate`, `lint-prompt`,
`emulator`, `tokenizers`.

```
llmroute prices [--provider P] [--sources] [--at DATE] [--prices FILE] [--json]
llmroute report   --db llmroute.db [--since DATE] [--until DATE] [--by FIELD ...] [--json] [--html FILE]
llmroute whatif   --db llmroute.db --model deepseek-v3.2 [--task code_review] [--route TASK=MODEL] [--json]
llmroute estimate workload.toml [--model M ...] [--json]
llmroute estimate --input 80M --output 45M --model gpt-5.5 --model deepseek-v4-pro
```

Tables are drawn with `rich` when it is installed (`pip install llmroute[cli]`), else as plain aligned
text; `--json` prints machine-readable output either way. `--db` reads a SQLite ledger written by
`llmroute.money.store.SQLiteStore`; `--jsonl` reads an `export_jsonl` file.

Exit codes: 0 success; 1 the command failed (a missing or unreadable file, a file that is not what
the option expects, a bad workload, catalog or price file, rows lost); 2 bad usage (unknown option,
missing ledger source, unknown model, provider, task or report field, malformed value); 141 the
reader of the output went away (`llmroute prices | head -2`), silently, like other Unix tools.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Catalog
    from .money.ledger import LedgerRow
    from .money.pricing import PriceTable
    from .money.reports import Stats
    from .money.store import SQLiteStore
    from .money.whatif import Repricing, Workload

__all__ = ["main"]


from ._cli_output import (
    UsageError,
    _console,
    _json,
    _rich_available,
    _say,
    _share,
    _table,
    _tokens,
    _when,
)


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


def _catalog(args: argparse.Namespace) -> Catalog:
    import tomllib

    from .catalog import Catalog, default_catalog

    base = default_catalog()
    path = getattr(args, "catalog", None)
    if not path:
        return base
    try:
        extra = Catalog.from_file(path)
    except OSError as e:
        raise _Failure(f"cannot read the catalog file {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise _Failure(f"{path} is not a valid TOML catalog file: {e}") from e
    merged = base.with_rows(extra.models(), extra.providers())
    merged.check()
    return merged


def _price_table(args: argparse.Namespace, catalog: Catalog) -> PriceTable | None:
    from .money.pricing import PriceTable, load_price_changes

    path = getattr(args, "prices", None)
    if not path:
        return None
    return PriceTable(catalog, load_price_changes(path))


def _check_models(catalog: Catalog, names: Sequence[str]) -> None:
    unknown = [n for n in names if catalog.model(n) is None]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; `llmroute prices` lists the known ones")


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


class _Failure(Exception):
    """The command failed: exit code 1."""


# -- prices --------------------------------------------------------------------------------------------


def _prices(args: argparse.Namespace) -> int:
    from .money.pricing import PricePeriod, PriceTable

    catalog = _catalog(args)
    known = sorted(p.name for p in catalog.providers())
    if args.provider and args.provider not in known:
        raise UsageError(f"unknown provider {args.provider!r}; known: {', '.join(known)}")
    table = _price_table(args, catalog) or PriceTable(catalog)
    at = args.at.timestamp() if args.at else None
    records: list[dict[str, Any]] = []
    for model in sorted(catalog.models(), key=lambda m: (m.provider, m.id)):
        if args.provider and model.provider != args.provider:
            continue
        shown: list[PricePeriod | None] = [*table.history(model.id)] if args.history else []
        for period in shown or [None]:
            price = period.price if period is not None else table.price_at(model.id, at)
            records.append(
                {
                    "model": model.id,
                    "provider": model.provider,
                    "api_name": model.api_name,
                    "effective": period.since_label
                    if period is not None and period.origin == "change"
                    else None,
                    "currency": price.currency if price else None,
                    "input": str(price.input) if price else None,
                    "cache_read": _opt(price.cache_read) if price else None,
                    "cache_write_5m": _opt(price.cache_write_5m) if price else None,
                    "cache_write_1h": _opt(price.cache_write_1h) if price else None,
                    "output": str(price.output) if price else None,
                    "reasoning": _opt(price.reasoning) if price else None,
                    "long_context_threshold": price.long_context_threshold if price else None,
                    "context_window": model.context_window,
                    "as_of": str(price.as_of) if price and price.as_of else None,
                    "source": price.source if price else None,
                    "priced": price is not None,
                }
            )
    if args.json:
        _json(records)
        return 0
    header = ["model", "provider", "input", "cache read", "cache write", "output", "context", "as of"]
    if args.history:
        header.insert(2, "from")
    rows = []
    for r in records:
        cells: list[str] = [
            r["model"],
            r["provider"],
            r["input"] or "unpriced",
            r["cache_read"] or "-",
            r["cache_write_5m"] or "-",
            r["output"] or "-",
            f"{r['context_window']:,}" if r["context_window"] else "-",
            r["as_of"] or "-",
        ]
        if args.history:
            cells.insert(2, r["effective"] or "-")
        rows.append(cells)
    when = f" in force at {args.at:%Y-%m-%d %H:%M} UTC" if args.at else ""
    _table(f"Prices{when} (USD per 1M tokens)", header, rows)
    if args.sources:  # below the table: a source is a sentence, too long for a column
        _say("Sources:")
        seen = set()
        for r in records:
            if (r["model"], r["source"]) not in seen:
                seen.add((r["model"], r["source"]))
                _say(f"  {r['model']}: {r['source'] or '-'}")
    else:
        _say("Sources: `llmroute prices --sources`; dated changes: `--prices FILE --history`.")
    return 0


def _opt(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


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


def _parse_routes(items: Sequence[str]) -> dict[str, str]:
    table = {}
    for item in items:
        task, sep, model = item.partition("=")
        if not sep or not task or not model:
            raise UsageError(f"--route {item!r}: expected TASK=MODEL (or *=MODEL for every other task)")
        table[task] = model
    return table


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


# -- estimate ------------------------------------------------------------------------------------------


def _estimate(args: argparse.Namespace) -> int:
    from .money.pricing import money
    from .money.whatif import TaskLoad, Workload, estimate_workload, load_workload

    catalog = _catalog(args)
    inline = args.input is not None or args.output is not None
    if args.workload and inline:
        raise UsageError("give a workload file or --input/--output, not both")
    workload: Workload
    if args.workload:
        workload = load_workload(args.workload)
    elif inline:
        if args.input is None or args.output is None:
            raise UsageError("--input and --output are both needed (tokens per request, e.g. 8.5K and 400)")
        try:
            load = TaskLoad(args.task, args.requests, args.input, args.output, cache_share=args.cache_share)
        except ValueError as e:
            raise UsageError(str(e)) from e
        workload = Workload((load,), name="command line")
    else:
        raise UsageError("describe the workload: a TOML/JSON file, or --input N --output N [--requests N]")
    routes = _parse_routes(args.route or ())
    models = list(args.model or workload.models)
    routings = dict(workload.routings)
    if routes:
        routings["command line"] = routes
    if not models and not routings:
        raise UsageError("name models to compare with --model (or list them in the workload file)")
    _check_models(catalog, [*models, *(m for table in routings.values() for m in table.values())])
    result = estimate_workload(workload, models, routings, catalog=catalog)
    if args.json:
        _json(result.as_dict())
        return 0
    tasks = [t.task for t in workload.tasks]
    _table(
        f"{workload.name}: tasks per month",
        ["task", "requests", "input", "output", "cache share"],
        [
            [
                t.task,
                f"{t.requests:,}",
                f"{t.input_tokens:,}",
                f"{t.output_tokens:,}",
                _share(float(t.cache_share)),
            ]
            for t in workload.tasks
        ],
    )
    if result.models:
        _table(
            "Monthly cost per model",
            ["model", *tasks, "total"],
            [[m.model, *(money(m.per_task[t]) for t in tasks), money(m.total)] for m in result.models],
        )
    if result.routings:
        _table(
            "Monthly cost per routing table",
            ["routing", *tasks, "total"],
            [
                [r.name, *(f"{money(r.per_task[t][1])} ({r.per_task[t][0]})" for t in tasks), money(r.total)]
                for r in result.routings
            ],
        )
    return 0


# -- main ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="llmroute", description="Route LLM calls by cost, residency and health."
    )
    parser.add_argument("--version", action="version", version=f"llmroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs: dict[str, argparse.ArgumentParser] = {}

    def command(name: str, help: str, description: str | None = None, **kw: Any) -> argparse.ArgumentParser:
        text = description or help[:1].upper() + help[1:] + "."
        subs[name] = sub.add_parser(name, help=help, description=text, **kw)
        return subs[name]

    command(
        "lint-prompt",
        help="find what breaks prompt caching in recorded requests (JSON/JSONL)",
        add_help=False,
    )
    emulator = command(
        "emulator",
        help="run the provider emulator on a local port until Ctrl-C (OpenAI, Anthropic, DeepSeek wire)",
        description="Serve llmroute's provider emulator (llmroute.testing) on a real local socket, in the "
        "foreground until Ctrl-C, and print the base URLs to set as OPENAI_BASE_URL, ANTHROPIC_BASE_URL "
        "and DEEPSEEK_BASE_URL. Any API key is accepted; nothing leaves the machine.",
    )
    from .testing._cli import add_options as _emulator_options

    _emulator_options(emulator)
    tokenizers = command(
        "tokenizers",
        help="show which tiktoken encodings are installed; --fetch installs them",
        description="Token counts are exact with tiktoken's encoding files and approximate without "
        "them. This shows which are present in tiktoken's cache directory; --fetch downloads them "
        "(from the litellm wheel on PyPI, via pip, so it works where only PyPI is reachable).",
    )
    tokenizers.add_argument("--fetch", action="store_true", help="download the missing encodings")
    tokenizers.add_argument("--dir", metavar="DIR", help="cache directory (default: tiktoken's own)")
    tokenizers.add_argument("--json", action="store_true", help="machine-readable output")
    demo = command(
        "demo",
        help="a 10-developer team's month of routed calls against the built-in provider emulator",
        description="A 10-developer team's month of LLM calls (the seed analyses' task mix and sizes), "
        "routed across OpenAI, DeepSeek, Anthropic and a self-hosted model on the built-in emulator, "
        "with rate limits, an outage and truncated answers injected. No API keys, no network.",
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument(
        "--scale",
        type=float,
        metavar="S",
        help="share of the month's 3,700 calls to run, same proportions (default 0.5; --live: 0.002)",
    )
    size.add_argument("--calls", type=int, metavar="N", help="about N calls in all, instead of --scale")
    demo.add_argument("--seed", type=int, default=7, help="seeds the workload and the faults (default 7)")
    demo.add_argument("--html", metavar="FILE", help="also write the report as one HTML page with charts")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON instead of the report")
    demo.add_argument(
        "--live",
        action="store_true",
        help="run against the real providers (needs OPENAI_API_KEY, ANTHROPIC_API_KEY, DEEPSEEK_API_KEY)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--ledger",
        metavar="FILE",
        help="also save the month's ledger rows to this new SQLite file (for `report` and `whatif`)",
    )

    prices = command("prices", help="list the catalog's models and prices")
    prices.add_argument("--provider", help="only this provider")
    prices.add_argument("--sources", action="store_true", help="show where each price was read")
    prices.add_argument("--at", type=_when, metavar="DATE", help="prices in force at this UTC date/time")
    prices.add_argument("--history", action="store_true", help="every dated price row, not only the current")
    prices.add_argument("--prices", metavar="FILE", help="dated price rows (TOML [[price]] tables)")
    prices.add_argument("--catalog", metavar="FILE", help="extra or overriding catalog rows (TOML)")
    prices.add_argument("--json", action="store_true", help="machine-readable output")

    report = command(
        "report",
        help="cost, tokens, cache hits, latency and failures from a ledger",
        description="Cost, tokens, cache hits, latency and failures from a ledger (a SQLite file written "
        "by llmroute.money.store.SQLiteStore or `llmroute demo --ledger`, or a JSONL export), in total and "
        "broken down by model, task, day or any other field.",
    )
    _add_source(report)
    report.add_argument(
        "--by",
        action="append",
        metavar="FIELD",
        help="break down by model, provider, deployment, task, tag, user, day, week, month, label:NAME, "
        "or FIELD+FIELD; 'all' for the usual set (repeatable; default: model, task, day)",
    )
    report.add_argument("--whatif", action="append", metavar="MODEL", help="also reprice on this model")
    report.add_argument("--html", metavar="FILE", help="also write a single-file HTML report with charts")
    report.add_argument(
        "--wide", action="store_true", help="every column (attempts, cache reads/writes, p50/p99...)"
    )

    whatif = command(
        "whatif",
        help="what the recorded calls would have cost elsewhere",
        description="What the calls recorded in a ledger would have cost on another model, or with "
        "some tasks routed elsewhere, token kind by token kind at that model's prices.",
    )
    _add_source(whatif)
    whatif.add_argument("--model", action="append", metavar="MODEL", help="reprice every row on MODEL")
    whatif.add_argument("--route", action="append", metavar="TASK=MODEL", help="a routing table row")
    whatif.add_argument("--default", metavar="MODEL", help="with --route: the model for other tasks")
    whatif.add_argument("--task", action="append", metavar="TASK", help="savings of moving only this task")
    whatif.add_argument("--period", default="These rows", help="how the narrative names the period")

    estimate = command(
        "estimate",
        help="monthly cost of a described workload, per model",
        description="The monthly cost of a described workload (a TOML/JSON file of tasks, or one task "
        "given by --input/--output/--requests) on each model or routing table.",
    )
    estimate.add_argument("workload", nargs="?", help="a workload file (.toml or .json)")
    estimate.add_argument("--input", type=_tokens, metavar="N", help="input tokens per request (8.5K, 80M)")
    estimate.add_argument("--output", type=_tokens, metavar="N", help="output tokens per request")
    estimate.add_argument(
        "--requests", type=_tokens, default=1, metavar="N", help="requests a month (default 1)"
    )
    estimate.add_argument(
        "--cache-share", default="0", metavar="S", help="share of input read from cache, 0-1"
    )
    estimate.add_argument("--task", default="workload", help="the task's name")
    estimate.add_argument("--model", action="append", metavar="MODEL", help="a model to price it on")
    estimate.add_argument("--route", action="append", metavar="TASK=MODEL", help="a routing table row")
    estimate.add_argument("--catalog", metavar="FILE", help="extra or overriding catalog rows (TOML)")
    estimate.add_argument("--json", action="store_true", help="machine-readable output")
    return parser, subs


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "prices": _prices,
    "report": _report,
    "whatif": _whatif,
    "estimate": _estimate,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`llmroute prices | head -2`): stop quietly. Point stdout at devnull
        # so the interpreter's final flush does not raise again.
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a real file (captured in tests)
            pass
        return 141


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["lint-prompt"]:  # its own parser: llmroute.prefix.lint
        from .prefix.lint import main as lint_prompt

        return lint_prompt(arguments[1:])
    parser, subs = _build()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as e:  # argparse: --help (0) or bad usage (2)
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        if args.command == "emulator":
            from .testing._cli import run as run_emulator

            return run_emulator(args)
        if args.command == "tokenizers":
            from ._tokenizers import tokenizers_command

            return tokenizers_command(fetch=args.fetch, directory=args.dir, as_json=args.json)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(
                scale=args.scale,
                calls=args.calls,
                seed=args.seed,
                html=args.html,
                as_json=args.json,
                live=args.live,
                progress=not args.no_progress,
                ledger=args.ledger,
            )
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except UsageError as e:
        subs.get(args.command, parser).print_usage(sys.stderr)
        print(f"llmroute {args.command}: error: {e}", file=sys.stderr)
        return 2
    except _Failure as e:
        print(f"llmroute {args.command}: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as e:  # a file named on the command line: missing, unreadable, a directory...
        where = f"{e.filename}: " if e.filename else ""
        print(f"llmroute {args.command}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # a readable message instead of a traceback, and a script-friendly code
        from .errors import LLMRouteError

        if not isinstance(e, LLMRouteError):
            raise
        print(f"llmroute {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
