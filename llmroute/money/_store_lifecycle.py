"""The SQLite ledger stores' part in the life of the process (`llmroute.money.store`): what runs
beside the writes rather than in them.

- at interpreter exit, every open store's rows are flushed (`register`);
- on SIGTERM, a queued store's rows are written before the signal does what it did before
  (`install_sigterm_handler`, `on_sigterm`);
- around `os.fork`, no thread is inside SQLite and no writing connection is open (`SQLITE`, a
  `llmroute._fork.Gate`);
- in commit mode, the WAL is checkpointed by a background thread (`start_checkpointer`).

It knows a store only by the few members it uses (`_ProcessStore`), never by importing the store
module; logs go to the store's logger, `llmroute.money.store`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol

from .. import _fork

log = logging.getLogger("llmroute.money.store")


class _ProcessStore(Protocol):
    """What this module uses of a `SQLiteStore`."""

    path: Path
    _closed: bool

    @property
    def durability(self) -> str: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection: ...

    def _drop_connection(self) -> None: ...


_stores: weakref.WeakSet[_ProcessStore] = weakref.WeakSet()
"""Every store registered, alive now (weakly held: nothing is kept alive)."""


def register(store: _ProcessStore) -> None:
    """A new store: flushed at interpreter exit, its writing connection closed before a fork, and (in
    queued mode) flushed on SIGTERM once a handler is installed."""
    _stores.add(store)
    atexit.register(_flush_at_exit, weakref.ref(store))


def start_checkpointer(store: _ProcessStore, due: threading.Event) -> threading.Thread:
    """Start `store`'s checkpointer thread, which checkpoints whenever `due` is set."""
    thread = threading.Thread(
        target=_checkpoint_loop,
        args=(weakref.ref(store), due),
        name="llmroute-store-checkpoint",
        daemon=True,
    )
    thread.start()
    return thread


def _checkpoint_loop(ref: weakref.ref[_ProcessStore], due: threading.Event) -> None:
    """A commit-mode store's WAL copied into the database in the background (PASSIVE: never blocks a
    writer), so the WAL stays small though the writing connection never checkpoints. Holds the store
    only weakly: ends when it is closed or collected. Each checkpoint opens and closes its own
    connection (one every `_CHECKPOINT_EVERY` commits), so none is open across a fork."""
    while True:
        woken = due.wait(1.0)
        store = ref()
        if store is None or store._closed:
            return
        if woken:
            due.clear()
            try:
                with SQLITE, contextlib.closing(store._connect()) as db:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as e:  # busy, or the file went away: the next one will do
                log.debug("ledger store %s: checkpoint skipped: %r", store.path, e)
        del store


def _close_writing_connections() -> None:
    """Just before a fork, no thread inside SQLite: every store's writing connection is closed (the
    next write reopens it), so the child inherits no open connection, lock or transaction of ours."""
    for store in list(_stores):
        store._drop_connection()


SQLITE = _fork.Gate("SQLite", quiet=_close_writing_connections)
"""Every SQLite call of the stores runs inside this gate (`llmroute._fork.Gate`)."""


_EXIT_TIMEOUT = 30.0
"""Seconds the interpreter waits at exit for queued rows to be written (then says what was not)."""
_SIGTERM_TIMEOUT = 10.0
"""Seconds a SIGTERM waits for queued rows (container runtimes send SIGKILL after about 10 s)."""


def _flush_at_exit(ref: weakref.ref[_ProcessStore]) -> None:
    store = ref()
    if store is None or store._closed:
        return
    try:
        store.flush(timeout=_EXIT_TIMEOUT)
    except Exception as e:  # at exit nobody can catch it: say it loudly
        log.error("ledger store %s at exit: %s", store.path, e)


_sigterm_installed = False


def install_sigterm_handler(handler: Callable[[int, FrameType | None], None]) -> None:
    """Install `handler` (which calls `on_sigterm`) for SIGTERM, only where that changes nothing
    else: in the main thread, and only if SIGTERM still has its default action (an application's own
    handler is never replaced)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm_installed = True


def on_sigterm() -> None:
    """Flush the queued stores, then let SIGTERM do what it did before: end the process."""
    for store in list(_stores):
        if store.durability == "queued" and not store._closed:
            try:
                store.flush(timeout=_SIGTERM_TIMEOUT)
            except Exception as e:
                log.error("ledger store %s on SIGTERM: %s", store.path, e)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
