"""Keeping the ledger across restarts: a SQLite store, and export to JSONL and CSV.

```python
store = SQLiteStore("llmroute.db")
ledger = Ledger(store=store)            # or store.attach(ledger): every recorded row is saved
router = llmroute.Router(deployments, ledger=ledger)
...
store.close()                           # raises StoreError if rows were lost

Ledger(SQLiteStore("llmroute.db").rows(since=dt.date(2026, 11, 1)))   # read back after a restart
```

Durability (`durability=`, see `Store` for the contract every store meets):

- `"commit"` (the default): `put` returns once the row is committed. A call the router has returned
  to its caller has its rows in the file, whatever happens to the process next (`kill -9`, SIGTERM,
  a crash). Writers group-commit: a thread that finds no commit in progress commits its own row at
  once (one INSERT in autocommit); rows recorded by other threads meanwhile form the next group,
  which the group's first thread writes in one transaction as soon as the commit in progress ends,
  each of the group's threads woken once, when its row is in. In WAL mode with
  `synchronous="NORMAL"` a commit is a write into the WAL file, not an fsync: it survives the
  process dying, not the machine losing power; `synchronous="FULL"` adds an fsync per commit for
  that.
- `"queued"`: `put` only queues the row; a background thread writes batches. Faster for bulk
  recording, but rows still queued when the process is killed (`kill -9`) are lost. On SIGTERM (when
  the application has no SIGTERM handler of its own, see below) and at interpreter exit, queued rows
  are written first (waiting up to 30 s). When the queue is full the recording thread waits for room
  (`on_full="block"`) or the row is dropped, counted in `lost` and logged at ERROR (`on_full="drop"`).

Nothing is dropped silently and the writer never dies: a row whose text SQLite cannot take as is (a
lone surrogate, a number too large for a column) is written with that value escaped
(`"\\ud800"`, the number as text) and counted in `escaped`; a row that still cannot be written, or a
batch that failed after retries (the file locked past `busy_timeout`, a full disk), is counted in
`lost`, logged at ERROR, and `flush()` / `close()` raise `StoreError`. `flush(timeout)` and
`close(timeout)` return (or raise) within their timeout whatever the writer is doing.

SIGTERM: a store in `"queued"` mode installs a SIGTERM handler that writes the queued rows, then
lets the signal do what it did before (the process ends, with the same exit status) — only when it
is created in the main thread and SIGTERM still has its default action. An application with its own
SIGTERM handler keeps it untouched; it should call `store.close()` (or `flush()`) in it. Commit mode
needs no handler: what was acknowledged is already in the file.

Fork: in a child process (gunicorn `--preload`, Celery prefork, `multiprocessing`), a store forgets
the parent's connection, queue and writer thread (the parent writes what it had queued; the child
never writes it twice) and opens its own on first use, with the same guarantee.

SQLite in WAL mode with a busy timeout: several processes on one machine can write to the same file
(each with its own `SQLiteStore`) while others read it. Costs are stored as decimal strings, so they
load back exactly; hints (task, tags, user, budget, extra...) and labels are kept.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Self

from .. import _fork
from ..errors import LLMRouteError
from . import _store_lifecycle
from ._records import (
    _INSERT,
    _INTEGER,
    _REAL,
    _SELECT,
    COLUMNS,
    _ddl,
    _escape,
    _from_record,
    _to_record,
    export_csv,
    export_jsonl,
    read_jsonl,
)
from ._store_lifecycle import SQLITE as _SQLITE
from .ledger import Ledger, LedgerRow, to_epoch

__all__ = ["SQLiteStore", "Store", "StoreError", "export_csv", "export_jsonl", "read_jsonl"]

log = logging.getLogger("llmroute.money.store")


class StoreError(LLMRouteError):
    """The store lost rows (a full queue with `on_full="drop"`, or writes that kept failing), or was
    used after `close()`."""


class Store(ABC):
    """Where ledger rows are kept beyond the process: the interface every store implements
    (`SQLiteStore` here; a database server's store the same way).

    The durability contract (what the router's callers rely on):

    1. `put(row)` is the durability point. In a store's default mode, when `put` returns the row is
       committed where it survives the recording process dying at any moment after (SIGKILL
       included). The router calls it (through `Ledger.record`) before a call returns to its
       caller, so a call the caller saw succeed has its row. A mode that only queues (faster, weaker)
       must say so and must not be the default.
    2. `put` never raises because of the row's content, and never raises because a write failed: a
       value the backend cannot take as is is escaped and the row written (counted in `escaped`); a
       row that still cannot be kept is counted in `lost` and logged at ERROR. It raises
       `StoreError` only after `close()`.
    3. A row is written at most once per `put`, whole (one transaction, never half a row).
    4. `flush(timeout)` returns once every row put so far is written or counted lost, and raises
       `StoreError` if any row was ever lost; it returns or raises within `timeout`. `close(timeout)`
       flushes, stops listening to its ledgers and releases its resources, within `timeout`.
    5. Safe to call from any thread; after `os.fork` the child must not reuse the parent's
       connections or threads (`_after_fork_in_child` resets them; stores are registered for it by
       `Store.__init__`), and nothing the parent put is written again by the child.
    6. Reading (`iter_rows`, `count`) returns rows equal to the ones put (text escaped by rule 2
       aside), in the order they were written.
    """

    written: int
    """Rows this object wrote (in this process)."""
    lost: int
    """Rows this object could not keep; never silently (each one logged)."""
    escaped: int
    """Rows written with some value escaped (rule 2)."""

    def __init__(self) -> None:
        self._ledgers: list[Ledger] = []
        _fork.track(self)

    def attach(self, ledger: Ledger) -> None:
        """Save every row recorded on `ledger` from now on."""
        ledger.subscribe(self.put)
        self._ledgers.append(ledger)

    def detach(self, ledger: Ledger) -> None:
        ledger.unsubscribe(self.put)
        self._ledgers = [x for x in self._ledgers if x is not ledger]

    @abstractmethod
    def put(self, row: LedgerRow) -> None:
        """Keep one row (the `Ledger.subscribe` listener); see the contract above."""

    @abstractmethod
    def write(self, rows: Iterable[LedgerRow]) -> int:
        """Write rows now, in bulk (imports, tests); returns how many were written."""

    @abstractmethod
    def flush(self, timeout: float | None = None) -> None: ...

    @abstractmethod
    def close(self, timeout: float | None = 30.0) -> None: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def iter_rows(
        self, *, since: float | Any = None, until: float | Any = None, chunk: int = 10_000
    ) -> Iterator[LedgerRow]:
        """Rows in the order they were written, `since` (inclusive) to `until` (exclusive) by
        timestamp (epoch seconds, a datetime or a date; naive means UTC)."""

    def _after_fork_in_child(self) -> None:  # noqa: B027  # a store without process state needs nothing
        """Forget the parent's connections, threads, locks and queued rows (see rule 5)."""

    def rows(self, *, since: float | Any = None, until: float | Any = None) -> list[LedgerRow]:
        return list(self.iter_rows(since=since, until=until))

    def load(self, ledger: Ledger | None = None, **bounds: Any) -> Ledger:
        """The stored rows in a `Ledger` (a new one, or appended to `ledger` without notifying it)."""
        target = ledger if ledger is not None else Ledger()
        target.extend(self.iter_rows(**bounds))
        return target

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_TRANSIENT = (sqlite3.OperationalError,)
"""Errors of the whole write (the file locked past the busy timeout, disk I/O, a full disk): the batch
is retried. Every other error belongs to a row: that row is escaped, then written alone."""

_RETRIES = 4
_CHECKPOINT_EVERY = 200
"""Commits between background WAL checkpoints in commit mode (a few hundred pages of WAL)."""
_WAL_LIMIT_PAGES = 10_000
"""WAL pages after which the writing connection checkpoints itself (the background fell behind)."""


class SQLiteStore(Store):
    """A SQLite file that keeps ledger rows (see the module docstring).

    - `durability`: `"commit"` (default; `put` returns once the row is committed) or `"queued"`
      (a background thread writes batches; see the module docstring for what each guarantees).
    - `synchronous`: SQLite's `synchronous` setting for writes: `"NORMAL"` (default; survives the
      process dying) or `"FULL"` (also survives power loss, an fsync per commit).
    - `batch_size`: rows per transaction at most; `queue_size`: rows waiting at most in queued mode
      (then `on_full`).
    - `busy_timeout`: seconds to wait for another process's write lock before a write fails (a failed
      write is retried, then its rows count as lost and `flush`/`close` raise).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Literal["commit", "queued"] = "commit",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        batch_size: int = 10_000,
        queue_size: int = 100_000,
        on_full: Literal["block", "drop"] = "block",
        busy_timeout: float = 30.0,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full={on_full!r}: expected 'block' or 'drop'")
        if durability not in ("commit", "queued"):
            raise ValueError(f"durability={durability!r}: expected 'commit' or 'queued'")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous={synchronous!r}: expected 'NORMAL' or 'FULL'")
        self.path = Path(path)
        self.durability = durability
        self.synchronous = synchronous
        self.batch_size = batch_size
        self.on_full = on_full
        self.busy_timeout = busy_timeout
        self.queue_size = queue_size
        self._closed = False
        self._reset()
        with _SQLITE, contextlib.closing(self._connect()) as db:
            db.executescript(_ddl())
            _migrate(db)
        super().__init__()
        _store_lifecycle.register(self)
        if durability == "queued":
            _store_lifecycle.install_sigterm_handler(_on_sigterm)

    def _reset(self) -> None:
        """Fresh process-local state: at construction, and in a forked child."""
        self._done = threading.Condition(threading.RLock())  # guards everything below
        self.written = 0
        self.lost = 0
        self.escaped = 0
        self.last_error: BaseException | None = None
        # commit mode: a group commit led by one recording thread at a time
        self._db: sqlite3.Connection | None = None
        self._open = _Group()  # rows put while a commit is in progress: the next commit's
        self._issued = 0  # rows put so far (sequence numbers)
        self._settled = 0  # rows [0, _settled) are written or counted lost
        self._leading = False
        # queued mode: a background writer
        self._buffer: deque[LedgerRow] = deque()
        self._queued = 0
        self._handled = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        # commit mode: WAL checkpoints off the recording threads
        self._commits = 0
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_due = threading.Event()

    def _after_fork_in_child(self) -> None:
        db = self._db
        if db is not None:
            _fork.keep(db)  # the parent's connection: never used, never closed, here
        self._reset()  # the parent's queued rows stay the parent's to write

    # -- connections ----------------------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no ledger database at {self.path}")
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.busy_timeout)
        else:
            # isolation_level=None: transactions are the store's own (`BEGIN` for a batch); a
            # single row is one INSERT in autocommit, its own transaction: one statement fewer
            # than BEGIN + INSERT + COMMIT (about 6 us of a commit).
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, check_same_thread=False, isolation_level=None
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return db

    @classmethod
    def open_existing(cls, path: str | Path) -> SQLiteStore:
        """A store for reading a file that must already exist (the CLI's `--db`)."""
        if not Path(path).is_file():
            raise StoreError(f"no ledger database at {path}")
        return cls(path)

    # -- writing --------------------------------------------------------------------------------------

    def put(self, row: LedgerRow) -> None:
        """Keep one row: committed before returning (`"commit"`), or queued (`"queued"`)."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; row {row.id} not kept")
        if self.durability == "commit":
            self._commit(row)
        else:
            self._enqueue(row)

    def _commit(self, row: LedgerRow) -> None:
        """Group commit. A row put while no commit is in progress is written at once by its own
        thread. Rows put while one is in progress join the open group; when that commit ends, its
        leader hands the connection to the group's first thread, which writes the whole group in one
        transaction while the group's other threads sleep until it is done: each waiting thread is
        woken once, when its row is written (not at every commit). A thread alone touches no event."""
        done = self._done
        with done:
            self._issued += 1
            group = self._open
            group.rows.append(row)
            if not self._leading:
                self._leading = True
                self._close_group()
                turn = committed = None  # it leads now
            elif len(group.rows) == 1:
                turn, committed = threading.Event(), None  # it leads this group on its turn
                group.turn = turn
            else:
                if group.committed is None:
                    group.committed = threading.Event()
                turn, committed = None, group.committed
        if committed is not None:
            committed.wait()
            return
        # The rest of the group waits on this thread: it leads the group even if interrupted while
        # waiting for its turn (a KeyboardInterrupt is raised once the group is written).
        interrupted = _wait_through_interrupts(turn) if turn is not None else None
        self._lead(group)
        if interrupted is not None:
            raise interrupted

    def _close_group(self) -> None:
        """Close the open group (its rows are those put so far) and give it the connection; open a
        new one. Lock held."""
        group = self._open
        group.upto = self._issued
        self._open = _Group()
        if group.turn is not None:
            group.turn.set()

    def _lead(self, group: _Group) -> None:
        try:
            self._write_batch(group.rows)
        finally:
            with self._done:
                self._settled = group.upto
                self._hand_over()
                if group.committed is not None:
                    group.committed.set()

    def _hand_over(self) -> None:
        """Give up the writing connection (lock held): to the open group's first thread if rows are
        waiting there, else to whoever asks next (`_leadership`, a new `put`)."""
        if self._open.rows:
            self._close_group()  # `_leading` stays set: that group's first thread has it now
        else:
            self._leading = False
        self._done.notify_all()  # flush(), pending and _leadership() wait on the counters

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = self._connect()
            if self.durability == "commit":
                # A commit is then a write into the WAL and nothing more (two pages for one row:
                # the table's and the timestamp index's; 30-65 us with the INSERT, measured by
                # benchmarks/ledger.py); copying the WAL
                # back into the database (with an fsync) is the checkpointer thread's job. This
                # connection checkpoints only if that thread falls far behind (a 40 MB WAL).
                db.execute(f"PRAGMA wal_autocheckpoint={_WAL_LIMIT_PAGES}")
            self._db = db
        return self._db

    def _committed(self) -> None:
        """Count a commit; every `_CHECKPOINT_EVERY` wake the checkpointer (started on first use)."""
        self._commits += 1
        if self._commits % _CHECKPOINT_EVERY == 0:
            thread = self._checkpointer
            if thread is None or not thread.is_alive():
                self._checkpointer = _store_lifecycle.start_checkpointer(self, self._checkpoint_due)
            self._checkpoint_due.set()

    def _enqueue(self, row: LedgerRow) -> None:
        buffer = self._buffer
        with self._done:
            if len(buffer) >= self.queue_size:
                self._start()  # a full queue needs a live writer (it never ends while rows wait)
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
            if len(buffer) == 1:  # the writer sleeps only on an empty buffer: wake it, or start it
                self._start()  # (first row, or after a fork); checked here, not on every row
                self._done.notify_all()

    def _start(self) -> None:
        with self._done:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llmroute-store", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        buffer = self._buffer
        while True:
            with self._done:
                while not buffer and not self._stopping:
                    self._done.wait()
                if not buffer:
                    return
                if len(buffer) <= self.batch_size:  # all of it (the usual case): one C-level copy
                    batch = list(buffer)
                    buffer.clear()
                else:
                    batch = [buffer.popleft() for _ in range(self.batch_size)]
                self._done.notify_all()  # room for producers waiting on a full buffer
            try:
                with self._leadership():
                    self._write_batch(batch)
            finally:
                with self._done:
                    self._handled += len(batch)
                    self._done.notify_all()

    def _write_batch(self, batch: list[LedgerRow]) -> int:
        """Write `batch` in one transaction, with the rules of the module docstring; returns the rows
        written. Never raises (but for KeyboardInterrupt and the like); accounts for every row in
        `written` or `lost`. The caller holds `_leadership`."""
        written = escaped = 0
        error: BaseException | None = None
        try:
            records: list[tuple[Any, ...]] = []
            for row in batch:
                try:
                    records.append(_to_record(row))
                except Exception as e:  # a row whose fields cannot even be read: nothing to write
                    error = e
                    log.error("ledger store %s: row %s LOST: %r", self.path, getattr(row, "id", "?"), e)
            for attempt in range(_RETRIES):
                try:
                    with _SQLITE:
                        written, escaped = self._insert(records)
                    break
                except _TRANSIENT as e:
                    error = e
                    with _SQLITE:
                        self._drop_connection()
                    if attempt + 1 < _RETRIES:
                        time.sleep(0.05 * 2**attempt)
        except Exception as e:  # the connection could not even be opened
            error = e
        finally:
            lost = len(batch) - written
            with self._done:
                self.written += written
                self.escaped += escaped
                self.lost += lost
                if lost:
                    self.last_error = error
        if lost:
            log.error("ledger store %s: %d rows LOST: %r", self.path, lost, error)
        return written

    def _insert(self, records: list[tuple[Any, ...]]) -> tuple[int, int]:
        """(rows written, of which escaped). Raises only `_TRANSIENT` errors (nothing written)."""
        db = self._connection()
        try:
            with db:  # commits what BEGIN opened, or rolls it back
                if len(records) == 1:
                    db.execute(_INSERT, records[0])  # autocommit: one statement, one transaction
                else:
                    db.execute("BEGIN")
                    db.executemany(_INSERT, records)
            if self.durability == "commit":
                self._committed()
            return len(records), 0
        except _TRANSIENT:
            raise
        except Exception:  # some row SQLite cannot take as is: go row by row, in one transaction
            pass
        written = escaped = 0
        with db:
            db.execute("BEGIN")
            for record in records:
                try:
                    db.execute(_INSERT, record)
                    written += 1
                    continue
                except _TRANSIENT:
                    raise
                except Exception as e:
                    first = e
                try:
                    db.execute(_INSERT, tuple(_escape(v) for v in record))
                    written += 1
                    escaped += 1
                    log.warning(
                        "ledger store %s: row %s written with escaped values (%r)",
                        self.path,
                        record[0],
                        first,
                    )
                except _TRANSIENT:
                    raise
                except Exception as e:
                    self.last_error = e
                    log.error("ledger store %s: row %s LOST: %r", self.path, record[0], e)
        if self.durability == "commit":
            self._committed()
        return written, escaped

    def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.close()

    def write(self, rows: Iterable[LedgerRow]) -> int:
        """Write rows now, on this thread, in one transaction per `batch_size` rows (imports, tests),
        with the same escaping and accounting as `put`. Returns the rows written."""
        count = 0
        batch: list[LedgerRow] = []
        with self._leadership():
            for row in rows:
                batch.append(row)
                if len(batch) >= self.batch_size:
                    count += self._write_batch(batch)
                    batch = []
            if batch:
                count += self._write_batch(batch)
        return count

    @contextlib.contextmanager
    def _leadership(self) -> Iterator[None]:
        """The exclusive use of the writing connection (group commits, the queued writer, `write`)."""
        done = self._done
        with done:
            while self._leading:
                done.wait()
            self._leading = True
        try:
            yield
        finally:
            with done:
                self._hand_over()

    @property
    def pending(self) -> int:
        """Rows put and not yet written (or lost)."""
        with self._done:
            return (self._queued - self._handled) + (self._issued - self._settled)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every row put so far is written (or lost). Raises `StoreError` if any row was
        lost (ever), or `TimeoutError` if that did not happen within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not _acquire(self._done, deadline):
            raise TimeoutError(f"ledger store {self.path}: busy for {timeout}s")
        try:
            if self._thread is not None and not self._thread.is_alive() and self._queued > self._handled:
                self._start()  # cannot happen (the writer never returns while rows wait): belt and braces
            settled = self._done.wait_for(
                lambda: self._handled >= self._queued and self._settled >= self._issued,
                None if deadline is None else max(0.0, deadline - time.monotonic()),
            )
            if not settled:
                raise TimeoutError(f"ledger store {self.path}: {self.pending} rows still not written")
            lost, last = self.lost, self.last_error
        finally:
            self._done.release()
        if lost:
            raise StoreError(
                f"ledger store {self.path}: {lost} rows were lost"
                + (f" (last error: {last!r})" if last else " (queue full)")
            )

    def close(self, timeout: float | None = 30.0) -> None:
        """Write what is waiting, stop the writer, stop listening, release the connection, within
        `timeout` seconds. Raises `StoreError` if rows were lost, `TimeoutError` if rows were still
        unwritten at the deadline (they are not written later: the store is closed)."""
        if self._closed:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        for ledger in list(self._ledgers):
            self.detach(ledger)
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            thread = self._thread
            if thread is not None:
                if _acquire(self._done, deadline):
                    self._stopping = True
                    self._done.notify_all()
                    self._done.release()
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            self._checkpoint_due.set()  # the checkpointer sees `_closed` and ends
            if _acquire(self._done, deadline):
                try:
                    if not self._leading:
                        with _SQLITE:
                            self._drop_connection()
                finally:
                    self._done.release()

    # -- reading ----------------------------------------------------------------------------------------

    def count(self) -> int:
        with _SQLITE, contextlib.closing(self._connect(readonly=True)) as db:
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
        with _SQLITE:
            db = self._connect(readonly=True)
        try:
            with _SQLITE:
                cursor = db.execute(sql, params)
            while True:
                with _SQLITE:
                    records = cursor.fetchmany(chunk)
                if not records:
                    return
                for record in records:
                    yield _from_record(record)
        finally:
            with _SQLITE:
                db.close()


class _Group:
    """The rows of one group commit, and (when other threads wait) the events they wait for."""

    __slots__ = ("committed", "rows", "turn", "upto")

    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []
        self.upto = 0
        """Rows put when the group was closed: `_settled` once it is written."""
        self.turn: threading.Event | None = None
        """Its first thread's, set when the group is closed and has the connection."""
        self.committed: threading.Event | None = None
        """Its other threads', set when its rows are written (or counted lost)."""


def _wait_through_interrupts(event: threading.Event) -> BaseException | None:
    """Wait for `event` even through a KeyboardInterrupt (or another exception a signal handler
    raises); returns the first one, for the caller to raise when it has done what others wait on."""
    interrupted: BaseException | None = None
    while not event.is_set():
        try:
            event.wait()
        except BaseException as e:  # returned, re-raised by the caller
            interrupted = interrupted or e
    return interrupted


def _acquire(condition: threading.Condition, deadline: float | None) -> bool:
    if deadline is None:
        return condition.acquire()
    return condition.acquire(timeout=max(0.0, deadline - time.monotonic()))


def _migrate(db: sqlite3.Connection) -> None:
    """Columns added since a file was created (`usage_raw`)."""
    have = {record[1] for record in db.execute("PRAGMA table_info(ledger_rows)")}
    for column in COLUMNS:
        if column not in have:
            kind = "INTEGER" if column in _INTEGER else "REAL" if column in _REAL else "TEXT"
            with db:
                db.execute(f'ALTER TABLE ledger_rows ADD COLUMN "{column}" {kind}')


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler of queued stores (see the module docstring); `_store_lifecycle` has the
    work, this module the name that `signal.getsignal(signal.SIGTERM)` shows."""
    _store_lifecycle.on_sigterm()
