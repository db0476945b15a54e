"""How ledger rows become records and files: the table's columns and schema version, the record codec
shared by the SQLite and PostgreSQL stores, the escaping of values a database refuses, and the JSONL
and CSV exports. `llmroute.money.store` re-exports the public names."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .ledger import LedgerRow, _jsonable

__all__ = ["COLUMNS", "SCHEMA_VERSION", "export_csv", "export_jsonl", "read_jsonl"]

COLUMNS = (
    "id",
    "call_id",
    "attempt",
    "timestamp",
    "deployment",
    "provider",
    "requested_model",
    "model",
    "served_model",
    "task",
    "sensitivity",
    "tags",
    "user",
    "budget",
    "max_cost",
    "latency",
    "extra",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "usage_raw",
    "cost",
    "cost_uncached_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "currency",
    "latency_s",
    "ttft_s",
    "stream",
    "outcome",
    "finish_reason",
    "error",
    "status_code",
    "request_id",
    "labels",
)
"""Column order of the `ledger_rows` table: the keys of `LedgerRow.as_dict()`."""
_JSON_COLUMNS = frozenset({"tags", "extra", "labels"})
_INTEGER = frozenset(
    {
        "id",
        "attempt",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "output_tokens",
        "reasoning_tokens",
        "usage_estimated",
        "stream",
        "status_code",
    }
)
_REAL = frozenset({"timestamp", "latency_s", "ttft_s"})
SCHEMA_VERSION = 1


def _ddl() -> str:
    cols = ",\n  ".join(
        f'"{c}" {"INTEGER" if c in _INTEGER else "REAL" if c in _REAL else "TEXT"}' for c in COLUMNS
    )
    return (
        "CREATE TABLE IF NOT EXISTS ledger_rows (\n  seq INTEGER PRIMARY KEY,\n  " + cols + "\n);\n"
        "CREATE INDEX IF NOT EXISTS ledger_rows_timestamp ON ledger_rows(timestamp);\n"
        "CREATE TABLE IF NOT EXISTS llmroute_meta (key TEXT PRIMARY KEY, value TEXT);\n"
        f"INSERT OR IGNORE INTO llmroute_meta VALUES ('schema', '{SCHEMA_VERSION}');\n"
    )


_INSERT = (
    f"INSERT INTO ledger_rows ({', '.join(chr(34) + c + chr(34) for c in COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
_SELECT = f"SELECT {', '.join(chr(34) + c + chr(34) for c in COLUMNS)} FROM ledger_rows"


def _dump(value: Any) -> str:
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _to_record(row: LedgerRow) -> tuple[Any, ...]:
    """The row as a `ledger_rows` record, in `COLUMNS` order (the values of `as_dict()`, built
    directly: this runs on the writer thread for every row)."""
    hints = row.hints
    usage = row.usage
    cost = row.cost
    extra = hints.extra
    labels = row.labels
    money = (
        (
            str(cost.total),
            str(cost.uncached_input),
            str(cost.cache_read),
            str(cost.cache_write),
            str(cost.output),
            cost.currency,
        )
        if cost is not None
        else _NO_COST
    )
    return (
        row.id,
        row.call_id,
        row.attempt,
        row.timestamp,
        row.deployment,
        row.provider,
        row.requested_model,
        row.model,
        row.served_model,
        hints.task,
        hints.sensitivity,
        _json_list(hints.tags) if hints.tags else "[]",
        hints.user,
        hints.budget,
        str(hints.max_cost) if hints.max_cost is not None else None,
        hints.latency,
        _dump({str(k): _jsonable(v) for k, v in extra.items()}) if extra else "{}",
        usage.input_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        int(usage.estimated),
        usage.raw,
        *money,
        row.latency_s,
        row.ttft_s,
        int(row.stream),
        row.outcome,
        row.finish_reason,
        row.error,
        row.status_code,
        row.request_id,
        _json_pairs(tuple(labels.items())) if labels else "{}",
    )


_NO_COST = (None, None, None, None, None, None)


@functools.lru_cache(maxsize=4096)
def _json_list(items: tuple[str, ...]) -> str:
    return _dump(list(items))  # tags repeat from row to row: encode each tuple once


@functools.lru_cache(maxsize=4096)
def _json_pairs(items: tuple[tuple[str, str], ...]) -> str:
    return _dump(dict(items))


def _from_record(record: Iterable[Any]) -> LedgerRow:
    data = dict(zip(COLUMNS, record, strict=True))
    for name in _JSON_COLUMNS:
        data[name] = json.loads(data[name]) if data[name] else None
    return LedgerRow.from_dict(data)


_INT64 = (-(2**63), 2**63 - 1)


def _escape(value: Any) -> Any:
    """A value SQLite can store, for one it refused: text with its unencodable characters escaped
    (`\\ud800`), an integer beyond 64 bits as its digits, anything else as escaped text."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, bool):
        return int(value)
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# -- export ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _text_out(dest: str | Path | IO[str]) -> Iterator[IO[str]]:
    if isinstance(dest, str | Path):
        with open(dest, "w", encoding="utf-8", newline="") as f:
            yield f
    else:
        yield dest


def export_jsonl(rows: Iterable[LedgerRow], dest: str | Path | IO[str]) -> int:
    """One JSON object per line (`LedgerRow.as_dict()`); `read_jsonl` reads it back exactly."""
    count = 0
    with _text_out(dest) as out:
        for row in rows:
            out.write(json.dumps(row.as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def read_jsonl(source: str | Path | IO[str]) -> list[LedgerRow]:
    """Rows from a JSONL export."""
    text = Path(source).read_text("utf-8") if isinstance(source, str | Path) else source.read()
    return [LedgerRow.from_dict(json.loads(line)) for line in io.StringIO(text) if line.strip()]


def export_csv(rows: Iterable[LedgerRow], dest: str | Path | IO[str]) -> int:
    """A CSV with one column per `LedgerRow.as_dict()` key; tags, extra and labels as JSON."""
    count = 0
    with _text_out(dest) as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            data: Mapping[str, Any] = row.as_dict()
            writer.writerow(
                [
                    _dump(data[c]) if c in _JSON_COLUMNS else "" if data[c] is None else data[c]
                    for c in COLUMNS
                ]
            )
            count += 1
    return count
