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
import concurrent.futures
import gc
import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
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


def test_fork_while_another_thread_is_inside_sqlite(tmp_path: Path, base_url: str) -> None:
    """The cause of the children that hung (issue 22): a thread of the parent inside SQLite at the fork
    (here the queued store's writer, in the middle of a transaction). SQLite's process-wide mutexes and
    per-file lock bookkeeping are copied into the child as they were: the child then blocks forever on
    its first SQLite call, even one made by the garbage collector in the middle of an HTTP call, or
    waits for a write lock its copy says the parent's transaction holds. The fork waits for the writer
    to finish its transaction, and the child starts with no connection of the parent's."""
    path = tmp_path / "l.db"
    store = SQLiteStore(path, durability="queued")
    router = llmroute.Router(_deployments(base_url), ledger=llmroute.Ledger(store=store))
    inside, go = threading.Event(), threading.Event()

    def hold_once() -> int:  # SQLite calls this while it executes the writer's INSERT
        if not inside.is_set():
            inside.set()
            go.wait(30)
        return 0

    store._connection().set_progress_handler(hold_once, 1)
    _ARMED.append(go)  # set by the test's own before-fork hook, which runs before llmroute's
    try:
        before = _sync_calls(router, 1)
        assert inside.wait(30)  # the writer thread is inside its transaction

        def work() -> list[str]:
            gc.collect()  # finalizes stray SQLite objects: blocked forever if a mutex was copied held
            ids = _sync_calls(router, CALLS)
            store.close(timeout=20)  # the child's writer could write: nothing left waiting
            return ids

        children = _fork_children(work)
    finally:
        _ARMED.clear()
        go.set()
    after = _sync_calls(router, 1)
    store.close(timeout=30)
    expected = before + after + [c for ids in children for c in ids]
    assert len(expected) == 2 + CHILDREN * CALLS
    assert _rows_by_call(path) == collections.Counter(expected)


_ARMED: list[threading.Event] = []


def _release_armed() -> None:
    for event in _ARMED:
        event.set()


os.register_at_fork(before=_release_armed)  # registered after llmroute's: runs before them


def test_fork_resets_injected_http_clients_and_sdk_resources(tmp_path: Path, base_url: str) -> None:
    """A deployment given its own `httpx2.Client` (the router cannot build it again): in a child its
    pool holds none of the parent's connections; `router.models` / `router.embeddings`, sent through the
    default deployment's SDK client, get a fresh one too. The parent's connection stays the parent's."""
    http = httpx2.Client()
    deployments = [
        llmroute.Deployment(
            "gpt", model="gpt-5.4", base_url=base_url, api_key=CANARY_OPENAI, http_client=http
        )
    ]
    router = llmroute.Router(deployments, ledger=llmroute.Ledger(store=SQLiteStore(tmp_path / "l.db")))
    before = _sync_calls(router, 1)
    assert router.models.list().data
    pool: Any = http._transport._pool  # type: ignore[attr-defined]
    parents = list(pool._connections)
    assert parents  # a keep-alive connection the children must not use
    delegates = dict(router._llmroute_delegates)

    def work() -> list[str]:
        assert pool._connections == [] and router._llmroute_delegates == {}
        ids = _sync_calls(router, CALLS)
        assert router.models.list().data
        assert pool._connections and not set(pool._connections) & set(parents)
        assert router._llmroute_delegates and router._llmroute_delegates != delegates
        return ids

    children = _fork_children(work)
    assert pool._connections == parents and router._llmroute_delegates == delegates
    after = _sync_calls(router, 1)
    router.close()
    http.close()
    expected = before + after + [c for ids in children for c in ids]
    assert len(set(expected)) == 2 + CHILDREN * CALLS


# -- multiprocessing ---------------------------------------------------------------------------------

_ROUTER: llmroute.Router | None = None


def _mp_init(base: str, path: str, kind: str) -> None:
    """Spawn start method: each worker builds its router (nothing is inherited)."""
    global _ROUTER
    cls: Any = llmroute.Router if kind == "sync" else llmroute.AsyncRouter
    _ROUTER = cls(_deployments(base), ledger=llmroute.Ledger(store=SQLiteStore(path)))


def _mp_calls(n: int) -> list[str]:
    assert _ROUTER is not None
    return _sync_calls(_ROUTER, n)


def _mp_async_calls(n: int) -> list[str]:
    assert _ROUTER is not None
    return asyncio.run(_async_calls(_ROUTER, n))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "kind"),
    [("fork", "sync"), ("fork", "async"), ("spawn", "sync"), ("spawn", "async")],
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
        initializer, initargs = _mp_init, (base_url, str(path), kind)
    context = multiprocessing.get_context(method)
    work = _mp_calls if kind == "sync" else _mp_async_calls
    # An async client belongs to the event loop it first ran on (as with `AsyncOpenAI`): one
    # `asyncio.run` per async worker process.
    per_child = 1 if kind == "async" else None
    try:
        with context.Pool(CHILDREN, initializer, initargs, maxtasksperchild=per_child) as pool:
            results = pool.map(work, [CALLS] * (CHILDREN * 2))
            # Workers end on their own, not by `terminate()` (which `with` calls): a worker that the
            # pool forks again (maxtasksperchild) can lose the SIGTERM if it comes before the new
            # interpreter is ready, when a Python SIGTERM handler is installed (a queued store's, from
            # an earlier test), and the pool then waits for it forever (CPython's).
            pool.close()
            pool.join()
    finally:
        _ROUTER = None
    expected = before + [c for ids in results for c in ids]
    assert len(expected) == len(before) + CHILDREN * 2 * CALLS
    assert _rows_by_call(path) == collections.Counter(expected)


# -- gunicorn --preload ---------------------------------------------------------------------------------


def _listening_port(proc: subprocess.Popen[str], log: list[str]) -> int:
    """The port gunicorn says it listens on (its log, on stderr)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        log.append(line)
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
    raise AssertionError("gunicorn ended before listening:\n" + "".join(log))


def test_gunicorn_preload_workers(tmp_path: Path, base_url: str) -> None:
    """`gunicorn --preload --workers 4` over a WSGI app whose router is built (and has made a call) in
    the master: concurrent requests are served by the workers, every call's row is in the store once."""
    pytest.importorskip("gunicorn")
    path = tmp_path / "l.db"
    env = {
        **os.environ,
        "FORK_TEST_DB": str(path),
        "FORK_TEST_BASE_URL": base_url,
        "FORK_TEST_KEY": CANARY_OPENAI,
    }
    command = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "4", "--bind", "127.0.0.1:0"]
    command += ["--graceful-timeout", "20", "--pythonpath", str(Path(__file__).parent), "fork_wsgi_app:app"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    try:
        port = _listening_port(proc, log)
        drain = threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True)
        drain.start()

        def get(_: int) -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(get, range(32)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(log)
    masters = {a["master"] for a in answers}
    assert len(masters) == 1 and masters.isdisjoint(a["pid"] for a in answers)  # served by workers
    master_calls = {a["master_call"] for a in answers}
    assert len(master_calls) == 1
    expected = [*master_calls, *(a["call_id"] for a in answers)]
    assert len(set(expected)) == len(expected) == 33
    assert _rows_by_call(path) == collections.Counter(expected)  # each exactly once, nothing else
    assert not [line for line in log if "Traceback" in line or "[ERROR]" in line], "".join(log)


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
