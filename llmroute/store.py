"""Keeping the ledger across restarts: a SQLite store, and export to JSONL and CSV.

```python
store = SQLiteStore("llmroute.db")
ledger = Ledger(store=store)            # or store.attach(ledger): every recorded row is saved
router = llmroute.Router(deployments, ledger=ledger)
...
store.close()                           # writes what is queued; raises StoreError if rows were lost

Ledger(SQLiteStore("llmroute.db").rows(since=dt.date(2026, 11, 1)))   # read back after a restart
```

Writes are off the hot path: `record` only puts the row on a bounded queue; a background thread
writes batches (one transaction per batch, `executemany`). When the queue is full the recording thread
waits for room (`on_full="block"`, the default: back-pressure), or the row is dropped, counted in
`lost` and logged at ERROR (`on_full="drop"`); `flush()` and `close()` raise `StoreError` whenever
rows were lost, to a full queue or to a write that kept failing. At interpreter exit, queued rows
are written (waiting up to 30 s; rows still unwritten are logged at ERROR). Rows are never dropped
silently.

SQLite in WAL mode with a busy timeout: several processes on one machine can write to the same file
(each with its own `SQLiteStore`) while others read it. Costs are stored as decimal strings, so they
load back exactly; hints (task, tags, user, budget, extra...) and labels are kept.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import functools
import io
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

from .errors import LLMRouteError
from .ledger import Ledger, LedgerRow, _jsonable, to_epoch

__all__ = ["SQLiteStore", "StoreError", "export_csv", "export_jsonl", "read_jsonl"]

log = logging.getLogger("llmroute.store")

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


class StoreError(LLMRouteError):
    """The store lost rows (a full queue with `on_full="drop"`, or writes that kept failing), or was
    used after `close()`."""


class SQLiteStore:
    """A SQLite file that keeps ledger rows (see the module docstring).

    - `batch_size`: rows per transaction; `queue_size`: rows waiting at most (then `on_full`).
    - `busy_timeout`: seconds to wait for another process's write lock before a write fails (a failed
      batch is retried 3 times, then its rows count as lost and `flush`/`close` raise).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 10_000,
        queue_size: int = 100_000,
        on_full: Literal["block", "drop"] = "block",
        busy_timeout: float = 30.0,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full={on_full!r}: expected 'block' or 'drop'")
        self.path = Path(path)
        self.batch_size = batch_size
        self.on_full = on_full
        self.busy_timeout = busy_timeout
        self.queue_size = queue_size
        self._buffer: deque[LedgerRow] = deque()
        self._done = threading.Condition()  # guards the buffer and the counters below
        self._queued = 0
        self._handled = 0
        self._stopping = False
        self.written = 0
        """Rows written to the file by this object."""
        self.lost = 0
        """Rows that could not be kept (see the module docstring); never silently."""
        self.last_error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._ledgers: list[Ledger] = []
        with contextlib.closing(self._connect()) as db:
            db.executescript(_ddl())
        ref = weakref.ref(self)
        atexit.register(_flush_at_exit, ref)

    # -- connections ----------------------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no ledger database at {self.path}")
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.busy_timeout)
        else:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return db

    @classmethod
    def open_existing(cls, path: str | Path) -> SQLiteStore:
        """A store for reading a file that must already exist (the CLI's `--db`)."""
        if not Path(path).is_file():
            raise StoreError(f"no ledger database at {path}")
        return cls(path)

    # -- writing --------------------------------------------------------------------------------------

    def attach(self, ledger: Ledger) -> None:
        """Save every row recorded on `ledger` from now on."""
        ledger.subscribe(self.put)
        self._ledgers.append(ledger)

    def detach(self, ledger: Ledger) -> None:
        ledger.unsubscribe(self.put)
        self._ledgers = [x for x in self._ledgers if x is not ledger]

    def put(self, row: LedgerRow) -> None:
        """Queue one row for the writer thread (the `Ledger.subscribe` listener)."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; row {row.id} not kept")
        if self._thread is None:
            self._start()
        buffer = self._buffer
        with self._done:
            if len(buffer) >= self.queue_size:
                if self.on_full == "drop":
                    self.lost += 1
                    log.error(
                        "ledger store %s: queue full, row %s of call %s LOST", self.path, row.id, row.call_id
                    )
                    return
                while len(buffer) >= self.queue_size:  # back-pressure: wait for the writer
                    self._done.wait()
            buffer.append(row)
            self._queued += 1
            if len(buffer) == 1:
                self._done.notify_all()  # the writer sleeps only on an empty buffer

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llmroute-store", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        db = self._connect()
        buffer = self._buffer
        try:
            while True:
                with self._done:
                    while not buffer and not self._stopping:
                        self._done.wait()
                    if not buffer:
                        return
                    take = min(len(buffer), self.batch_size)
                    batch = [buffer.popleft() for _ in range(take)]
                    self._done.notify_all()  # room for producers waiting on a full buffer
                self._write_batch(db, batch)
        finally:
            db.close()

    def _write_batch(self, db: sqlite3.Connection, batch: list[LedgerRow]) -> None:
        error: BaseException | None = None
        try:
            records = [_to_record(row) for row in batch]
        except Exception as e:  # a row that cannot be converted: say so, keep the others going
            records, error = [], e
        for attempt in range(4):
            if not records:
                break
            try:
                with db:
                    db.executemany(_INSERT, records)
                error = None
                break
            except sqlite3.Error as e:
                error = e
                time.sleep(0.05 * 2**attempt)
        with self._done:
            if error is None:
                self.written += len(batch)
            else:
                self.lost += len(batch)
                self.last_error = error
            self._handled += len(batch)
            self._done.notify_all()
        if error is not None:
            log.error("ledger store %s: %d rows LOST: %s", self.path, len(batch), error)

    def write(self, rows: Iterable[LedgerRow]) -> int:
        """Write rows now, on this thread, in one transaction per batch (imports, tests)."""
        count = 0
        with contextlib.closing(self._connect()) as db:
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(_to_record(row))
                if len(batch) >= self.batch_size:
                    with db:
                        db.executemany(_INSERT, batch)
                    count += len(batch)
                    batch = []
            if batch:
                with db:
                    db.executemany(_INSERT, batch)
                count += len(batch)
        self.written += count
        return count

    @property
    def pending(self) -> int:
        """Rows queued and not yet written (or lost)."""
        with self._done:
            return self._queued - self._handled

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued row is written. Raises `StoreError` if any row was lost (ever), or
        `TimeoutError` if the writer did not catch up in time."""
        with self._done:
            if not self._done.wait_for(lambda: self._handled >= self._queued, timeout):
                raise TimeoutError(
                    f"ledger store {self.path}: {self._queued - self._handled} rows still queued"
                )
        if self.lost:
            raise StoreError(
                f"ledger store {self.path}: {self.lost} rows were lost"
                + (f" (last error: {self.last_error})" if self.last_error else " (queue full)")
            )

    def close(self) -> None:
        """Write what is queued, stop the writer, stop listening. Raises `StoreError` if rows were lost."""
        if self._closed:
            return
        for ledger in list(self._ledgers):
            self.detach(ledger)
        try:
            self.flush()
        finally:
            self._closed = True
            if self._thread is not None:
                with self._done:
                    self._stopping = True
                    self._done.notify_all()
                self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------------------------------

    def count(self) -> int:
        with contextlib.closing(self._connect(readonly=True)) as db:
            return int(db.execute("SELECT count(*) FROM ledger_rows").fetchone()[0])

    def iter_rows(
        self,
        *,
        since: float | Any = None,
        until: float | Any = None,
        chunk: int = 10_000,
    ) -> Iterator[LedgerRow]:
        """Rows in the order they were written, `since` (inclusive) to `until` (exclusive) by
        timestamp (epoch seconds, a datetime or a date; naive means UTC)."""
        clauses, params = [], []
        if since is not None:
            clauses.append("timestamp >= ?")
            params.append(to_epoch(since))
        if until is not None:
            clauses.append("timestamp < ?")
            params.append(to_epoch(until))
        sql = _SELECT + (f" WHERE {' AND '.join(clauses)}" if clauses else "") + " ORDER BY seq"
        with contextlib.closing(self._connect(readonly=True)) as db:
            cursor = db.execute(sql, params)
            while True:
                records = cursor.fetchmany(chunk)
                if not records:
                    return
                for record in records:
                    yield _from_record(record)

    def rows(self, *, since: float | Any = None, until: float | Any = None) -> list[LedgerRow]:
        return list(self.iter_rows(since=since, until=until))

    def load(self, ledger: Ledger | None = None, **bounds: Any) -> Ledger:
        """The stored rows in a `Ledger` (a new one, or appended to `ledger` without notifying it)."""
        target = ledger if ledger is not None else Ledger()
        target.extend(self.iter_rows(**bounds))
        return target


_EXIT_TIMEOUT = 30.0
"""Seconds the interpreter waits at exit for queued rows to be written (then says what was not)."""


def _flush_at_exit(ref: weakref.ref[SQLiteStore]) -> None:
    store = ref()
    if store is None or store._closed:
        return
    try:
        store.flush(timeout=_EXIT_TIMEOUT)
    except Exception as e:  # at exit nobody can catch it: say it loudly
        log.error("ledger store %s at exit: %s", store.path, e)


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
