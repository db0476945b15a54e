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
    from .money.whatif import Workload

__all__ = ["main"]


from ._cli_ledger import _add_source, _report, _whatif
from ._cli_output import (
    UsageError,
    _catalog,
    _check_models,
    _Failure,
    _json,
    _parse_routes,
    _price_table,
    _say,
    _share,
    _table,
    _tokens,
    _when,
)

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
