"""A router built before a fork works in every child (docs/fork.md).

The parent builds a router whose ledger persists to SQLite, makes a call, then forks workers that
make calls of their own against the emulator's socket server: every child's calls succeed, every
acknowledged call has exactly one row (nothing the parent recorded or queued is written twice), and
the parent keeps working. With `os.fork`, and with `multiprocessing` under the fork and spawn start
methods, for the sync and the async router.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_OPENAI

import llmroute
from llmroute.money.store import SQLiteStore
from llmroute.testing import Emulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

USER = [{"role": "user", "content": "hello"}]
CHILDREN = 3
CALLS = 5


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with Emulator(seed=3).serve() as server:
        yield server.base_url("openai")


def _deployments(base_url: str) -> list[llmroute.Deployment]:
    return [llmroute.Deployment("gpt", model="gpt-5.4", base_url=base_url, api_key=CANARY_OPENAI)]


def _rows_by_call(path: Path) -> collections.Counter[str]:
    with sqlite3.connect(path) as db:
        return collections.Counter(r[0] for r in db.execute("SELECT call_id FROM ledger_rows"))


def _sync_calls(router: llmroute.Router, n: int) -> list[str]:
    return [
        router.chat.completions.create(model="gpt-5.4", messages=USER, timeout=10).route.call_id
        for _ in range(n)
    ]


async def _async_calls(router: llmroute.AsyncRouter, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        reply = await router.chat.completions.create(model="gpt-5.4", messages=USER, timeout=10)
        ids.append(reply.route.call_id)
    return ids


def _fork_children(work: Any) -> list[list[str]]:
    """Fork CHILDREN processes running `work()` (a list of call ids, printed to a pipe); their ids."""
    pipes = []
    for _ in range(CHILDREN):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                os.close(read)
                ids = work()
                os.write(write, ("\n".join(ids) + "\n").encode())
                code = 0
            except BaseException as e:  # report it to the parent, which fails the test
                os.write(write, f"ERROR {type(e).__name__}: {e}\n".encode())
            finally:
                os._exit(code)
        os.close(write)
        pipes.append((pid, read))
    results = []
    for pid, read in pipes:
        with os.fdopen(read) as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out
        results.append(out.split())
    return results


@pytest.mark.skip(
    reason="hung once in a clean-clone CI run: two forked children blocked reading an answer past their"
    " 10 s timeout (issue 22 stays open until this is understood)"
)
@pytest.mark.parametrize("durability", ["commit", "queued"])
def test_os_fork_sync_router(tmp_path: Path, base_url: str, durability: str) -> None:
    path = tmp_path / "l.db"
    store = SQLiteStore(path, durability=durability)
    router = llmroute.Router(_deployments(base_url), ledger=llmroute.Ledger(store=store))
    before = _sync_calls(router, 2)  # keep-alive connections open, rows (queued or written) in the parent

    def work() -> list[str]:
        ids = _sync_calls(router, CALLS)
        store.close(timeout=30)  # os._exit skips atexit: a queued store must be flushed by hand
        return ids

    children = _fork_children(work)
    after = _sync_calls(router, 2)  # the parent keeps working
    store.close(timeout=30)
    rows = _rows_by_call(path)
    expected = before + after + [c for ids in children for c in ids]
    assert all(len(ids) == CALLS for ids in children)
    assert len(set(expected)) == len(expected) == 4 + CHILDREN * CALLS
    assert rows == collections.Counter(expected)  # each exactly once, nothing else
    router.close()


def test_os_fork_async_router(tmp_path: Path, base_url: str) -> None:
    path = tmp_path / "l.db"
    router = llmroute.AsyncRouter(_deployments(base_url), ledger=llmroute.Ledger(store=SQLiteStore(path)))

    async def parent_calls(n: int) -> list[str]:
        return await _async_calls(router, n)

    loop = asyncio.new_event_loop()
    try:
        before = loop.run_until_complete(parent_calls(2))
        children = _fork_children(lambda: asyncio.run(_async_calls(router, CALLS)))
        after = loop.run_until_complete(parent_calls(2))
        loop.run_until_complete(router.close())
    finally:
        loop.close()
    expected = before + after + [c for ids in children for c in ids]
    assert len(expected) == 4 + CHILDREN * CALLS
    assert _rows_by_call(path) == collections.Counter(expected)


def test_fork_drops_the_parents_clients_and_in_flight_state(tmp_path: Path, base_url: str) -> None:
    """What the reset does, seen from the child: fresh SDK clients, free locks, no in-flight load."""
    router = llmroute.Router(
        _deployments(base_url), ledger=llmroute.Ledger(store=SQLiteStore(tmp_path / "l.db"))
    )
    _sync_calls(router, 1)
    core = router._core
    parent_adapter = core._adapters["gpt"]
    core._lock.acquire()  # as if another thread held it at the fork
    try:

        def work() -> list[str]:
            assert core._adapters == {}
            assert core._lock.acquire(timeout=1)
            core._lock.release()
            ids = _sync_calls(router, 1)
            assert core._adapters["gpt"] is not parent_adapter
            return ids

        children = _fork_children(work)
    finally:
        core._lock.release()
    assert core._adapters["gpt"] is parent_adapter  # the parent's own clients are untouched
    assert all(len(ids) == 1 for ids in children)


# -- multiprocessing ---------------------------------------------------------------------------------

_ROUTER: llmroute.Router | None = None


def _mp_init(base: str, path: str) -> None:
    """Spawn start method: each worker builds its router (nothing is inherited)."""
    global _ROUTER
    _ROUTER = llmroute.Router(_deployments(base), ledger=llmroute.Ledger(store=SQLiteStore(path)))


def _mp_calls(n: int) -> list[str]:
    assert _ROUTER is not None
    return _sync_calls(_ROUTER, n)


def _mp_async_calls(n: int) -> list[str]:
    assert _ROUTER is not None
    return asyncio.run(_async_calls(_ROUTER, n))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "kind"),
    [("fork", "sync"), ("fork", "async"), ("spawn", "sync")],
)
def test_multiprocessing_pool(tmp_path: Path, base_url: str, method: str, kind: str) -> None:
    global _ROUTER
    path = tmp_path / "l.db"
    before: list[str] = []
    if method == "fork":
        cls: Any = llmroute.Router if kind == "sync" else llmroute.AsyncRouter
        _ROUTER = cls(_deployments(base_url), ledger=llmroute.Ledger(store=SQLiteStore(path)))
        router: Any = _ROUTER
        before = _sync_calls(router, 1) if kind == "sync" else asyncio.run(_async_calls(router, 1))
        initializer: Any = None
        initargs: tuple[Any, ...] = ()
    else:
        SQLiteStore(path).close()
        initializer, initargs = _mp_init, (base_url, str(path))
    context = multiprocessing.get_context(method)
    work = _mp_calls if kind == "sync" else _mp_async_calls
    # An async client belongs to the event loop it first ran on (as with `AsyncOpenAI`): one
    # `asyncio.run` per async worker process.
    per_child = 1 if kind == "async" else None
    try:
        with context.Pool(CHILDREN, initializer, initargs, maxtasksperchild=per_child) as pool:
            results = pool.map(work, [CALLS] * (CHILDREN * 2))
    finally:
        _ROUTER = None
    expected = before + [c for ids in results for c in ids]
    assert len(expected) == len(before) + CHILDREN * 2 * CALLS
    assert _rows_by_call(path) == collections.Counter(expected)


def test_fork_reset_keeps_nothing_alive() -> None:
    """Routers and stores are tracked by weak reference: dropping them frees them."""
    import gc
    import weakref

    from llmroute import _fork

    router = llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4", api_key="sk-test")])
    ref = weakref.ref(router)
    assert any(obj is router for obj in _fork.live(type(router)))
    del router
    gc.collect()
    assert ref() is None


if sys.platform == "darwin":  # macOS defaults to spawn and warns about fork with threads
    pytestmark = pytest.mark.skip(reason="fork start method is unsafe on macOS")
