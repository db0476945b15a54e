"""Fork safety: what a process holds that cannot cross `os.fork`, reset in the child.

gunicorn `--preload`, Celery's prefork pool and `multiprocessing` (fork start method) build objects in
a parent and fork workers that use them. A child inherits the parent's memory but not its threads;
its copies of the parent's sockets are the same connections (two processes writing one HTTP/1.1
keep-alive connection interleave their requests), and a lock another thread held at the fork stays
held forever. Objects that own such things register here (`track`, by weak reference: nothing is kept
alive) and implement `_after_fork_in_child()`, which `os.register_at_fork` calls in every child.

What a child drops (sockets, SQLite connections) is kept referenced (`keep`), never closed: closing
would send a TLS close-notify or checkpoint a database on the parent's behalf. The parent is
untouched.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any, TypeVar

__all__ = ["keep", "live", "reinit_lock", "track"]

log = logging.getLogger("llmroute")

T = TypeVar("T")

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()
_tracked_lock = threading.Lock()
_inherited: list[Any] = []


def track(obj: Any) -> None:
    """Call `obj._after_fork_in_child()` in every child forked while `obj` is alive."""
    with _tracked_lock:
        _tracked.add(obj)


def live(kind: type[T]) -> Iterator[T]:
    """The tracked objects of a type, alive now."""
    return (obj for obj in list(_tracked) if isinstance(obj, kind))


def keep(obj: Any) -> None:
    """Hold what the parent owns (a socket pool, a database connection) for the rest of the child's
    life without using or closing it."""
    _inherited.append(obj)


def reinit_lock(lock: Any) -> None:
    """Make a lock (or a `Condition`'s) free again in the child, in place: every object sharing it
    sees the fresh lock. A lock held by a parent thread at the fork would otherwise stay held."""
    reinit = getattr(lock, "_at_fork_reinit", None)
    if reinit is not None:
        reinit()


def _after_fork_in_child() -> None:
    _tracked_lock._at_fork_reinit()  # type: ignore[attr-defined]
    for obj in list(_tracked):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's reset must not leave the others unreset
            log.exception("llmroute: resetting %r after fork failed", type(obj).__name__)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_core(core: Any) -> None:
    """A `RouterCore` in a forked child: the parent's SDK clients (and their keep-alive connections)
    are dropped and recreated on first use; locks are freed; in-flight load and budget reservations of
    the parent's calls, which will never finish here, are forgotten. Health, cooldowns and settled
    spend are kept: they are facts about the providers and the account, true in the child too."""
    from .routing.balance import LoadTracker
    from .routing.cooldown import MemoryStore

    adapters = core._adapters
    keep(list(adapters.values()))
    adapters.clear()  # in place: copies made by `with_options` share this dict
    reinit_lock(core._lock)
    reinit_lock(getattr(core.ledger, "_lock", None))
    reinit_lock(getattr(core.health, "_lock", None))
    load = core.load
    if isinstance(load, LoadTracker):
        reinit_lock(load._lock)
        load._states.clear()
    store = getattr(core.cooldowns, "store", None)
    if isinstance(store, MemoryStore):
        reinit_lock(store._lock)
    if core.budgets is not None:
        core.budgets._after_fork_in_child()
