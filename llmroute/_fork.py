"""Fork safety: what a process holds that cannot cross `os.fork`, reset in the child.

gunicorn `--preload`, Celery's prefork pool and `multiprocessing` (fork start method) build objects in
a parent and fork workers that use them. A child inherits the parent's memory but not its threads;
its copies of the parent's sockets are the same connections (two processes writing one HTTP/1.1
keep-alive connection interleave their requests), and a lock another thread held at the fork stays
held forever. Objects that own such things register here (`track`, by weak reference: nothing is kept
alive) and implement `_after_fork_in_child()`, which `os.register_at_fork` calls in every child.

An object that must be idle at the moment of the fork (a library such as SQLite keeps process-wide
locks and bookkeeping that a child copies as they are) also implements `_before_fork()`, called in the
forking thread just before the fork, and `_after_fork_in_parent()`, called in the parent just after.

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


_quiesced: list[Any] = []


def _before_fork() -> None:
    with _tracked_lock:
        objs = [obj for obj in _tracked if hasattr(obj, "_before_fork")]
    for obj in objs:
        try:
            obj._before_fork()
        except Exception:
            log.exception("llmroute: preparing %r for a fork failed", type(obj).__name__)
            continue
        _quiesced.append(obj)


def _after_fork_in_parent() -> None:
    objs = _quiesced[:]
    _quiesced.clear()
    for obj in reversed(objs):
        try:
            obj._after_fork_in_parent()
        except Exception:
            log.exception("llmroute: resuming %r after a fork failed", type(obj).__name__)


def _after_fork_in_child() -> None:
    _tracked_lock._at_fork_reinit()  # type: ignore[attr-defined]
    _quiesced.clear()
    for obj in list(_tracked):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's reset must not leave the others unreset
            log.exception("llmroute: resetting %r after fork failed", type(obj).__name__)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


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
    health = getattr(core.health, "store", None)  # latency statistics (in memory, or the fleet's)
    reinit_lock(getattr(health, "_lock", None))
    reinit_lock(getattr(getattr(health, "local", None), "_lock", None))
    load = core.load
    if isinstance(load, LoadTracker):
        reinit_lock(load._lock)
        load._states.clear()
    store = getattr(core.cooldowns, "store", None)
    if isinstance(store, MemoryStore):
        reinit_lock(store._lock)
    local = getattr(load, "local", None)  # the fleet's in-process fallback of shared limits
    if isinstance(local, LoadTracker):
        reinit_lock(local._lock)
        local._states.clear()
    budgets = core.budgets
    for part in (
        core._model_notes,
        core.balancer,
        load,
        getattr(load, "link", None),
        store,
        getattr(store, "link", None),
        getattr(budgets, "link", None),
    ):
        reinit_lock(getattr(part, "_lock", None))
    reinit_lock(getattr(budgets, "_replay_lock", None))
    if core.budgets is not None:
        core.budgets._after_fork_in_child()
    for deployment in core.deployments.values():
        for injected in (
            deployment.client,
            deployment.async_client,
            deployment.http_client,
            deployment.async_http_client,
        ):
            if injected is not None:
                forget_connections(injected)


def forget_connections(client: Any) -> None:
    """An `httpx2` client (or an SDK client over one, `openai.OpenAI`, `anthropic.Anthropic` and their
    async twins) in a forked child: its connection pools drop the parent's keep-alive connections
    (kept, never closed) and get a free lock; the client opens its own connections from then on.
    Used on the clients a deployment was given (`Deployment.client`, `http_client`...), which the
    child cannot rebuild; the ones llmroute builds are simply built again."""
    http = getattr(client, "_client", client)  # an SDK client's httpx2 client
    transports = [getattr(http, "_transport", None), *getattr(http, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        connections = getattr(pool, "_connections", None)
        if pool is None or not isinstance(connections, list):
            continue
        keep(list(connections))
        pool._connections = []
        pool._requests = []
        lock = getattr(pool, "_optional_thread_lock", None)
        if lock is not None:
            pool._optional_thread_lock = type(lock)()


def reset_router(router: Any) -> None:
    """A router in a forked child: the SDK clients its non-chat resources were sent through
    (`router.models`, `router.embeddings`... on the default deployment) are dropped and built again
    from the core's fresh adapters on first use; copies made by `with_options` share the dict."""
    delegates = getattr(router, "_llmroute_delegates", None)
    if delegates:
        keep(list(delegates.values()))
        delegates.clear()


class Gate:
    """Sections of work that must not be in progress when the process forks (`with gate: ...`).

    Any number of threads may be inside at once (sections may nest). Just before a fork the forking
    thread waits until no thread is inside (at most `wait` seconds, then it forks anyway and says so),
    calls `quiet()` and keeps every thread out until the fork is done. A child starts with an empty
    gate. SQLite needs this: its process-wide mutexes and per-file lock bookkeeping are copied into a
    child as they were at the fork, so a child forked while another thread was inside SQLite
    deadlocks on its first SQLite call (or on garbage collecting a connection) and can wait forever
    for a write lock its copy says another connection of its own holds.
    """

    def __init__(self, name: str, quiet: Any = None, wait: float = 30.0) -> None:
        self.name = name
        self.wait = wait
        self._quiet = quiet
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._held = False
        track(self)

    def __enter__(self) -> None:
        with self._cond:
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._inside = max(0, self._inside - 1)  # a section entered before a fork, left in the child
            if not self._inside:
                self._cond.notify_all()

    def _before_fork(self) -> None:
        cond = self._cond
        cond.acquire()
        self._held = True
        if not cond.wait_for(lambda: self._inside == 0, self.wait):
            log.warning(
                "llmroute: forking while %d %s operation(s) of another thread are still running"
                " (waited %.0f s); the child may block on its first %s call",
                self._inside,
                self.name,
                self.wait,
                self.name,
            )
            return
        if self._quiet is not None:
            try:
                self._quiet()
            except Exception:  # the fork goes on; the parent must get its gate back
                log.exception("llmroute: quieting %s before a fork failed", self.name)

    def _after_fork_in_parent(self) -> None:
        if self._held:
            self._held = False
            self._cond.release()

    def _after_fork_in_child(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._held = False
