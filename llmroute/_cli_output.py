"""Output for the `llmroute` command: tables (rich when installed, else plain aligned text), JSON,
and what the commands share: the small parsers and formatters, the errors that set the exit code,
and the catalog and price files given with `--catalog` and `--prices`."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Catalog
    from .money.pricing import PriceTable

__all__ = [
    "UsageError",
    "_Failure",
    "_rich_available",
    "_console",
    "_plain_table",
    "_width",
    "_numeric",
    "_table",
    "_say",
    "_json",
    "_share",
    "_when",
    "_tokens",
    "_parse_routes",
    "_catalog",
    "_price_table",
    "_check_models",
]


class UsageError(Exception):
    """Bad command line: exit code 2."""


class _Failure(Exception):
    """The command failed: exit code 1."""


# -- output ------------------------------------------------------------------------------------------


def _rich_available() -> bool:
    if os.environ.get("LLMROUTE_PLAIN"):
        return False
    return importlib.util.find_spec("rich") is not None


def _console(stderr: bool = False, wide: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=1000 if wide else _width(), soft_wrap=False, highlight=False)


def _width() -> int:
    """The terminal's width; 100 columns when the output is not a terminal (`$COLUMNS` overrides)."""
    import shutil

    return max(40, shutil.get_terminal_size((100, 24)).columns)


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = [i > 0 and all(_numeric(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            (str(c).rjust(w) if right[i] else str(c).ljust(w))
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def _numeric(cell: str) -> bool:
    text = str(cell).replace(",", "").replace("$", "").replace("%", "").replace("s", "").strip("-+~ ")
    if text in ("", "unpriced"):
        return True
    try:
        float(text.split(" ")[0])
    except ValueError:
        return False
    return True


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], wide: bool = False) -> None:
    """A titled table; `wide`: as wide as its content, whatever the terminal."""
    if _rich_available():
        from rich import box
        from rich.table import Table

        table = Table(
            title=title,
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
        for i, name in enumerate(header):
            right = i and all(_numeric(r[i]) for r in rows)
            # The first column names the row: other columns wrap before it is cut.
            first = max((len(str(r[0])) for r in rows), default=0) if i == 0 else None
            table.add_column(
                name,
                justify="right" if right else "left",
                min_width=min(first, 18) if first else None,
                overflow="fold",
            )
        for row in rows:
            table.add_row(*[str(c) for c in row])
        _console(wide=wide).print(table)
    else:
        if title:
            print(title)
        _plain_table(header, rows)
        print()


def _say(text: str) -> None:
    if _rich_available():
        _console().print(text, markup=False, soft_wrap=True)
    else:
        print(text)


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _share(value: float) -> str:
    return f"{value:.1%}"


# -- shared arguments ----------------------------------------------------------------------------------


def _when(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}") from e
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _tokens(text: str) -> int:
    units = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
    raw = text.strip().lower().replace(",", "").replace("_", "")
    scale = units.get(raw[-1:], 1)
    number = raw[:-1] if scale != 1 else raw
    try:
        value = Decimal(number) * scale
    except ArithmeticError as e:
        raise argparse.ArgumentTypeError(f"not a token count: {text!r} (e.g. 8500, 8.5K, 80M)") from e
    if value < 0 or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"not a whole token count: {text!r}")
    return int(value)


def _parse_routes(items: Sequence[str]) -> dict[str, str]:
    table = {}
    for item in items:
        task, sep, model = item.partition("=")
        if not sep or not task or not model:
            raise UsageError(f"--route {item!r}: expected TASK=MODEL (or *=MODEL for every other task)")
        table[task] = model
    return table


# -- catalog and prices ------------------------------------------------------------------------------


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
