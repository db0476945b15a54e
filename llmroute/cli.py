"""The `llmroute` command: `llmroute demo`, `llmroute prices`.

Exit codes: 0 success, 1 the command failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _prices(args: argparse.Namespace) -> int:
    from .catalog import default_catalog

    catalog = default_catalog()
    rows = [("model", "provider", "input", "cache read", "output", "context", "as of")]
    for model in sorted(catalog.models(), key=lambda m: (m.provider, m.id)):
        price = model.price
        if args.provider and model.provider != args.provider:
            continue
        rows.append(
            (
                model.id,
                model.provider,
                str(price.input) if price else "unpriced",
                str(price.cache_read) if price and price.cache_read is not None else "-",
                str(price.output) if price else "-",
                f"{model.context_window:,}" if model.context_window else "-",
                str(price.as_of) if price and price.as_of else "-",
            )
        )
    _table(rows)
    print("\nUSD per 1M tokens. Sources: `llmroute prices --sources`." if not args.sources else "")
    if args.sources:
        for model in catalog.models():
            if model.price is not None:
                print(f"{model.id}: {model.price.source}")
    return 0


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmroute", description="Route LLM calls by cost, residency and health."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a routed workload against the built-in provider emulator")
    demo.add_argument("--calls", type=int, default=400, help="number of calls (default 400)")
    demo.add_argument("--seed", type=int, default=7)
    prices = sub.add_parser("prices", help="list the catalog's models and prices")
    prices.add_argument("--provider", help="only this provider")
    prices.add_argument("--sources", action="store_true", help="print where each price was read")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(calls=args.calls, seed=args.seed)
        return _prices(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a readable message instead of a traceback, and a script-friendly code
        from .errors import LLMRouteError

        if not isinstance(e, LLMRouteError):
            raise
        print(f"llmroute: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
