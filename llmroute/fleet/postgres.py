"""The ledger of a whole fleet in one PostgreSQL database (`PostgresStore`, psycopg 3).

```py
store = PostgresStore("postgresql://llmroute@db.internal/llmroute")
ledger = Ledger(store=store)            # or store.attach(ledger)
router = llmroute.Router(deployments, ledger=ledger, state="redis://...")
...
store.close()                           # writes what is queued; raises StoreError if rows were lost
```
`llmroute report --dsn postgresql://...` and `llmroute whatif --dsn ...` read it.

The same contract as `llmroute.money.store.SQLiteStore`: `record` only queues the row; a background thread
writes batches, each in one transaction, with `COPY` into a staging table then one
`INSERT ... ON CONFLICT DO NOTHING` (a batch retried after a lost commit acknowledgement is not
written twice: rows are unique by `(call_id, attempt, row id)`). A full queue blocks the recording
thread (`on_full="block"`) or drops and counts the row (`"drop"`); `flush()` and `close()` raise
`StoreError` whenever rows were lost, to a full queue or to a write that kept failing (4 tries over
about a second, reconnecting each time); at interpreter exit queued rows are written. Rows are never
dropped silently. Costs are `numeric` (exact), hints and labels `jsonb`.

The schema is versioned (`llmroute_meta.schema`); a database written by a newer version of llmroute
is refused rather than misread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from .. import _fork
from ..money._records import _INTEGER, _JSON_COLUMNS, _REAL, COLUMNS, _from_record, _to_record
from ..money.ledger import Ledger, LedgerRow, to_epoch
from ..money.store import StoreError

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "PostgresStore", "read_rows"]

log = logging.getLogger("llmroute.money.store")

SCHEMA_VERSION = 1
_NUMERIC = frozenset(
    {"max_cost", "cost", "cost_uncached_input", "cost_cache_read", "cost_cache_write", "cost_output"}
)


def _type(column: str) -> str:
    if column in _INTEGER:
        return "bigint"
    if column in _REAL:
        return "double precision"
    if column in _NUMERIC:
        return "numeric"
    if column in _JSON_COLUMNS:
        return "jsonb"
    return "text"


_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
_DDL = [
    "CREATE TABLE IF NOT EXISTS llmroute_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ledger_rows (seq bigserial PRIMARY KEY, "
    + ", ".join(f'"{c}" {_type(c)}' for c in COLUMNS)
    + ', UNIQUE ("call_id", "attempt", "id"))',
    'CREATE INDEX IF NOT EXISTS ledger_rows_timestamp ON ledger_rows ("timestamp")',
]
# numeric and jsonb come back as the text SQLite gives, so rows load through the same code
_SELECT = "SELECT " + ", ".join(
    f'"{c}"::text' if c in _NUMERIC or c in _JSON_COLUMNS else f'"{c}"' for c in COLUMNS
)


class PostgresStore:
    """Ledger rows in PostgreSQL (see the module docstring).

    - `dsn`: a libpq connection string or URL, `postgresql://user@host:port/db`.
    - `batch_size`, `queue_size`, `on_full`: as `SQLiteStore`.
    - `create`: create the tables if missing (False: the database must hold a ledger already).
    """

    def __init__(
        self,
        dsn: str,
        *,
        batch_size: int = 10_000,
        queue_size: int = 100_000,
        on_full: Literal["block", "drop"] = "block",
        create: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full={on_full!r}: expected 'block' or 'drop'")
        try:
            import psycopg  # noqa: F401
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("PostgresStore needs psycopg 3: pip install 'llmroute[postgres]'") from e
        self.dsn = dsn
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.on_full = on_full
        self.connect_timeout = connect_timeout
        self._buffer: deque[LedgerRow] = deque()
        self._done = threading.Condition()
        self._queued = 0
        self._handled = 0
        self._stopping = False
        self.written = 0
        """Rows written by this object."""
        self.lost = 0
        """Rows that could not be kept; never silently."""
        self.last_error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._ledgers: list[Ledger] = []
        with contextlib.closing(self._connect()) as db:
            self._schema(db, create)
        atexit.register(_flush_at_exit, weakref.ref(self))
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child (`llmroute._fork`): the parent's writer thread, its connection and the
        rows queued before the fork stay the parent's (written once, by the parent); the child's rows
        get a writer and a connection of its own on first use."""
        self._buffer = deque()
        self._done = threading.Condition()
        self._queued = self._handled = 0
        self._stopping = False
        self.written = self.lost = 0
        self.last_error = None
        self._thread = None
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({_safe(self.dsn)!r})"

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout)))

    def _schema(self, db: psycopg.Connection[Any], create: bool) -> None:
        with db.transaction():
            if create:
                db.execute("SELECT pg_advisory_xact_lock(7201919)")  # one creator at a time
                for statement in _DDL:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO llmroute_meta VALUES ('schema', %s) ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
            found = db.execute("SELECT to_regclass('llmroute_meta')").fetchone()
            if found is None or found[0] is None:
                raise StoreError(f"{_safe(self.dsn)} holds no llmroute ledger")
            version = db.execute("SELECT value FROM llmroute_meta WHERE key = 'schema'").fetchone()
        if version is None or int(version[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{_safe(self.dsn)}: ledger schema {version[0] if version else '?'} is newer than this "
                f"llmroute understands ({SCHEMA_VERSION}); upgrade llmroute"
            )

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
            raise StoreError(f"store {self!r} is closed; row {row.id} not kept")
        if self._thread is None:
            self._start()
        with self._done:
            if len(self._buffer) >= self.queue_size:
                if self.on_full == "drop":
                    self.lost += 1
                    log.error(
                        "ledger store %r: queue full, row %s of call %s LOST", self, row.id, row.call_id
                    )
                    return
                while len(self._buffer) >= self.queue_size:
                    self._done.wait()
            self._buffer.append(row)
            self._queued += 1
            if len(self._buffer) == 1:
                self._done.notify_all()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llmroute-pgstore", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        db: psycopg.Connection[Any] | None = None
        try:
            while True:
                with self._done:
                    while not self._buffer and not self._stopping:
                        self._done.wait()
                    if not self._buffer:
                        return
                    take = min(len(self._buffer), self.batch_size)
                    batch = [self._buffer.popleft() for _ in range(take)]
                    self._done.notify_all()
                db = self._write_batch(db, batch)
        finally:
            if db is not None:
                db.close()

    def _write_batch(
        self, db: psycopg.Connection[Any] | None, batch: list[LedgerRow]
    ) -> psycopg.Connection[Any] | None:
        import psycopg

        error: BaseException | None = None
        try:
            records = [_to_record(row) for row in batch]
        except Exception as e:  # a row that cannot be converted: say so, keep the others going
            records, error = [], e
        for attempt in range(4):
            if not records:
                break
            try:
                if db is None or db.closed:
                    db = self._connect()
                _insert(db, records)
                error = None
                break
            except psycopg.Error as e:
                error = e
                if db is not None:
                    db.close()
                db = None
                time.sleep(0.1 * 2**attempt)
        with self._done:
            if error is None:
                self.written += len(batch)
            else:
                self.lost += len(batch)
                self.last_error = error
            self._handled += len(batch)
            self._done.notify_all()
        if error is not None:
            log.error("ledger store %r: %d rows LOST: %s", self, len(batch), error)
        return db

    def write(self, rows: Iterable[LedgerRow]) -> int:
        """Write rows now, on this thread, one transaction per batch (imports, tests)."""
        count = 0
        with contextlib.closing(self._connect()) as db:
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(_to_record(row))
                if len(batch) >= self.batch_size:
                    count += _insert(db, batch)
                    batch = []
            if batch:
                count += _insert(db, batch)
        self.written += count
        return count

    @property
    def pending(self) -> int:
        with self._done:
            return self._queued - self._handled

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued row is written. Raises `StoreError` if any row was lost (ever), or
        `TimeoutError` if the writer did not catch up in time."""
        with self._done:
            if not self._done.wait_for(lambda: self._handled >= self._queued, timeout):
                raise TimeoutError(f"ledger store {self!r}: {self._queued - self._handled} rows still queued")
        if self.lost:
            raise StoreError(
                f"ledger store {self!r}: {self.lost} rows were lost"
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
        with contextlib.closing(self._connect()) as db:
            found = db.execute("SELECT count(*) FROM ledger_rows").fetchone()
            return int(found[0]) if found else 0

    def iter_rows(
        self, *, since: float | Any = None, until: float | Any = None, chunk: int = 10_000
    ) -> Iterator[LedgerRow]:
        """Rows in the order they were written, `since` (inclusive) to `until` (exclusive)."""
        clauses, params = [], []
        if since is not None:
            clauses.append('"timestamp" >= %s')
            params.append(to_epoch(since))
        if until is not None:
            clauses.append('"timestamp" < %s')
            params.append(to_epoch(until))
        sql = _SELECT + " FROM ledger_rows" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        with contextlib.closing(self._connect()) as db, db.cursor(name="llmroute_rows") as cursor:
            cursor.itersize = chunk
            cursor.execute(sql + " ORDER BY seq", params)
            for record in cursor:
                yield _from_record(record)

    def rows(self, *, since: float | Any = None, until: float | Any = None) -> list[LedgerRow]:
        return list(self.iter_rows(since=since, until=until))

    def load(self, ledger: Ledger | None = None, **bounds: Any) -> Ledger:
        target = ledger if ledger is not None else Ledger()
        target.extend(self.iter_rows(**bounds))
        return target


def read_rows(dsn: str, *, since: float | Any = None, until: float | Any = None) -> list[LedgerRow]:
    """The rows of the ledger at `dsn` (the CLI's `--dsn`). Raises `StoreError` if it cannot be read."""
    import psycopg

    try:
        return PostgresStore(dsn, create=False).rows(since=since, until=until)
    except psycopg.Error as e:
        raise StoreError(f"cannot read the PostgreSQL ledger: {e}") from e


def _insert(db: psycopg.Connection[Any], records: list[tuple[Any, ...]]) -> int:
    """One transaction: COPY into a staging table, then insert what is not there yet."""
    with db.transaction():
        db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ledger_stage (LIKE ledger_rows INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        with db.cursor().copy(f"COPY ledger_stage ({_COLS}) FROM STDIN") as copy:
            for record in records:
                copy.write_row(record)
        db.execute(
            f"INSERT INTO ledger_rows ({_COLS}) SELECT {_COLS} FROM ledger_stage "
            'ORDER BY seq ON CONFLICT ("call_id", "attempt", "id") DO NOTHING'
        )
    return len(records)


def _safe(dsn: str) -> str:
    """The DSN without its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(dsn)
    except Exception:
        return "<dsn>"
    params.pop("password", None)
    return make_conninfo("", **{k: str(v) for k, v in params.items() if v is not None})


_EXIT_TIMEOUT = 30.0


def _flush_at_exit(ref: weakref.ref[PostgresStore]) -> None:
    store = ref()
    if store is None or store._closed or store._thread is None:
        return
    try:
        store.flush(_EXIT_TIMEOUT)
    except (TimeoutError, StoreError) as e:
        log.error("ledger store %r at exit: %s", store, e)
