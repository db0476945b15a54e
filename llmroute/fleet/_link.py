"""One Redis connection shared by the fleet stores, with short timeouts and a breaker in front of it.

Round trips. A routed call costs one round trip on its hot path: `exchange` (or `aexchange` on the
event loop, through `redis.asyncio`) sends one pipeline holding the call's admission script and every
write that was waiting (`defer`). The writes an attempt makes when it ends (settle, release, outcome
sample, latency) are not sent then: they wait for the next call's round trip, or for the flusher
thread, which sends them when they have waited `flush_s` (5 ms) with no call to carry them. A script
goes as `EVAL` the first time and `EVALSHA` after; one that Redis lost (`NOSCRIPT`: it restarted
empty) is sent again in full right after the pipeline.

Failures. A connection error, a timeout (`socket_timeout`, 0.1 s by default), or an error reply to one
of the scripts (out of memory, a read-only replica, a foreign value at one of our keys) opens the breaker:
for `retry_s` seconds nothing is sent and the stores serve from in-process state (`Unavailable` is
raised to them at once, and deferred writes are handed back to them), `fallbacks` counts the
operations served so, and one warning is logged per outage. The first operation after `retry_s` is a
probe; when it succeeds the link is back, the recovery callbacks run (the budgets replay the spend
they settled during the outage) and an info line is logged.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Op", "RedisLink", "Unavailable"]

log = logging.getLogger("llmroute.fleet")


class Unavailable(Exception):
    """Redis cannot be used now (down, slow, or the breaker is open): serve from local state."""


@dataclass(slots=True)
class Op:
    """One script call in a pipeline. `done(result)` gets its result; `failed()` is called instead
    when it could not be sent (Redis unavailable), so the store can fall back."""

    source: str
    keys: Sequence[str]
    args: Sequence[Any]
    done: Callable[[Any], None] | None = None
    failed: Callable[[], None] | None = None

    def finish(self, result: Any) -> None:
        if isinstance(result, Exception):  # an error reply: the link's breaker opened (`_answered`)
            self.fail()
        elif self.done is not None:
            self.done(result)

    def fail(self) -> None:
        if self.failed is not None:
            self.failed()


_JOBS_WAIT_S = 5.0
"""The longest `flush` waits for the flusher thread's background jobs."""

_LINKS: weakref.WeakSet[RedisLink] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Writes still waiting when the interpreter exits are sent (a settle must not be lost)."""
    for link in list(_LINKS):
        link.flush()


class RedisLink:
    """A Redis (or Redis Cluster) client for the fleet stores.

    - `url`: `redis://host:port/db`, `rediss://...`, or `redis+cluster://host:port` for a cluster.
    - `prefix`: the start of every key (several fleets can share one server).
    - `socket_timeout` / `connect_timeout`: seconds; a slow or dead server costs a call at most this.
    - `retry_s`: how long the breaker stays open before a probe.
    - `flush_s`: how long deferred writes wait for a call's round trip to carry them before the
      flusher thread sends them on its own.
    - `client`: an existing `redis.Redis` / `redis.RedisCluster` to use instead of `url` (the async
      router then runs its round trip on a worker thread, never on the event loop).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "llmroute",
        socket_timeout: float = 0.1,
        connect_timeout: float = 0.1,
        retry_s: float = 1.0,
        flush_s: float = 0.005,
        client: Any = None,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisLink needs a url or a client")
            client = _client(url, socket_timeout, connect_timeout)
        self.client = client
        self.url = url
        self._timeouts = (socket_timeout, connect_timeout)
        self.prefix = prefix
        self.retry_s = retry_s
        self.flush_s = flush_s
        self.fallbacks = 0
        """Store operations served from in-process state because Redis was unavailable."""
        self.outages = 0
        """Times the breaker opened."""
        self.round_trips = 0
        """Pipelines and commands sent (each one network round trip), by this process."""
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._down = False
        self._probing = False
        self._shas: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._recovery: list[Callable[[], object]] = []
        self._reset()
        _LINKS.add(self)
        import redis.exceptions as rex

        self._noscript = rex.NoScriptError
        self._reply_error = rex.ResponseError
        self._cluster = url is not None and url.startswith("redis+cluster://")
        self._transient: tuple[type[BaseException], ...] = (
            rex.ConnectionError,
            rex.TimeoutError,
            rex.BusyLoadingError,
            OSError,
            asyncio.TimeoutError,
            # a cluster with a slot down, migrating (TRYAGAIN), uncovered, or no node reachable
            *(
                getattr(rex, name)
                for name in (
                    "ClusterError",
                    "TryAgainError",
                    "SlotNotCoveredError",
                    "RedisClusterUnreachableError",
                )
                if hasattr(rex, name)
            ),
        )
        self._redirect: type[BaseException] = getattr(rex, "AskError", rex.ResponseError)

    def _reset(self) -> None:
        """Fresh queue, thread and async client (at start, and in a forked child)."""
        self._pid = os.getpid()
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._finished = threading.Condition(lock)  # background jobs done (`flush` waits on it)
        self._waiting: list[Op] = []
        self._since = 0.0
        self._jobs: list[Callable[[], object]] = []
        self._unfinished = 0  # background jobs queued or running (`flush` waits for them)
        self._idle = True  # the flusher waits to be woken (no write for a second)
        self._last = 0.0
        self._carried = threading.Condition()
        self._carrying = 0  # exchanges in flight carrying deferred writes
        self._flusher_carrying = 0  # of those, on the flusher thread
        self._thread: threading.Thread | None = None
        self._closed = False
        self._aloop: asyncio.AbstractEventLoop | None = None
        # Idle connections, with the outage count (`_epoch`) they were last used in: one kept from
        # before an outage is closed rather than used (Redis may have restarted). A forked child
        # opens its own.
        self._epoch = 0
        self._connections: list[tuple[int, Any]] = []
        self._aconnections: list[tuple[int, Any]] = []
        self._aclient: Any = None

    def tag(self, *parts: str) -> str:
        """A key prefix. Every key of a fleet carries the one hash tag `{prefix}`, so all of a call's
        keys live in one Redis Cluster slot and one script can check and take them together."""
        return "{" + self.prefix + "}" + "".join(":" + p for p in parts)

    @property
    def available(self) -> bool:
        """False while the breaker is open (calls go to local state without trying Redis)."""
        return not (self._down and time.monotonic() < self._open_until)

    def on_recovery(self, callback: Callable[[], object]) -> None:
        """Call `callback()` each time Redis answers again after an outage."""
        self._recovery.append(callback)

    # -- breaker -----------------------------------------------------------------------------------

    def _enter(self) -> None:
        """Raise `Unavailable` while the breaker is open; the first caller after it is the probe."""
        with self._lock:
            if self._down:
                if time.monotonic() < self._open_until or self._probing:
                    self.fallbacks += 1
                    raise Unavailable("breaker open")
                self._probing = True

    def _succeeded(self) -> None:
        recovered = False
        with self._lock:
            if self._down:
                self._down = self._probing = False
                recovered = True
        if recovered:
            log.info("Redis is back; fleet state is shared again")
            if asyncio._get_running_loop() is not None:
                self.background(self._recovered)  # never replay on the event loop
            else:
                self._recovered()

    def _recovered(self) -> None:
        for callback in self._recovery:
            try:
                callback()
            except Unavailable:
                break

    def _answered(self, results: Sequence[Any]) -> None:
        """Redis answered. An error reply to one of our scripts (out of memory, a read-only replica,
        another application's value at one of our keys) counts as an outage: the ops it failed fall
        back to local state, and the breaker keeps the next ones off Redis for `retry_s` (one warning,
        and what was settled meanwhile is replayed when a probe succeeds)."""
        error = next((r for r in results if isinstance(r, Exception)), None)
        if error is None:
            self._succeeded()
        else:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self.fallbacks += 1
            self._probing = False
            self._open_until = time.monotonic() + self.retry_s
            self._epoch += 1
            if self._down:
                return
            self._down = True
            self.outages += 1
        log.warning(
            "Redis unavailable (%s: %s); using in-process limits and budgets for %gs",
            type(error).__name__,
            error,
            self.retry_s,
        )

    # -- one operation -------------------------------------------------------------------------------

    def run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one Lua script now (with the writes waiting, in one round trip). Raises `Unavailable`,
        also when Redis answered it with an error (the store serves from local state)."""
        return _result(self.exchange([Op(source, keys, args)])[0])

    async def arun(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """`run` on the event loop (`aexchange`)."""
        return _result((await self.aexchange([Op(source, keys, args)]))[0])

    # -- pipelines -----------------------------------------------------------------------------------

    def _here(self) -> None:
        """In a forked child: a fresh queue, flusher and async client (the parent's writes are the
        parent's to send)."""
        if self._pid != os.getpid():
            self._reset()

    def _take(self) -> list[Op]:
        with self._cond:
            waiting, self._waiting = self._waiting, []
        return waiting

    def _sha(self, source: str) -> str:
        sha = self._shas.get(source)
        if sha is None:
            sha = self._shas[source] = hashlib.sha1(source.encode()).hexdigest()
        return sha

    def _results(self, ops: Sequence[Op], results: list[Any]) -> list[int]:
        """Indexes of the ops Redis did not know the script of."""
        return [i for i, r in enumerate(results) if isinstance(r, self._noscript)]

    def exchange(self, ops: Sequence[Op]) -> list[Any]:
        """Send the deferred writes and `ops` in one pipeline (one round trip); the results of `ops`
        (a script error comes back as the exception object). Raises `Unavailable`."""
        self._here()
        if self._flusher_carrying and threading.current_thread() is not self._thread:
            with self._carried:  # the flusher is sending writes this call must not overtake
                while self._flusher_carrying:
                    self._carried.wait()
        return self._exchange(ops)

    def _carry(self, waiting: Sequence[Op], delta: int) -> None:
        """Count exchanges in flight that carry deferred writes (`flush` waits for them)."""
        if not waiting:
            return
        with self._carried:
            self._carrying += delta
            if threading.current_thread() is self._thread:
                self._flusher_carrying += delta
            if delta < 0:
                self._carried.notify_all()

    def _exchange(self, ops: Sequence[Op]) -> list[Any]:
        waiting, every = self._begin(ops)
        try:
            results = self._send(every)
            missing = self._results(every, results)
            if missing:  # Redis lost its scripts (restarted): send those again, in full
                self._loaded.clear()
                self._resent(results, missing, self._send([every[i] for i in missing]))
        except self._transient as e:
            raise self._broke(waiting, e) from e
        except BaseException:
            self._carry(waiting, -1)
            raise
        return self._end(waiting, results)

    # The steps of an exchange, shared by `_exchange` and `aexchange` (which differ only in how they
    # send: `_send` or `_asend`).

    def _begin(self, ops: Sequence[Op]) -> tuple[list[Op], list[Op]]:
        """Take the deferred writes to carry ahead of `ops` (handed back if the breaker is open)."""
        waiting = self._take()
        try:
            self._enter()
        except Unavailable:
            self._hand_back(waiting)
            raise
        self._carry(waiting, 1)
        return waiting, [*waiting, *ops]

    @staticmethod
    def _resent(results: list[Any], missing: list[int], again: list[Any]) -> None:
        for i, result in zip(missing, again, strict=True):
            results[i] = result

    def _broke(self, waiting: Sequence[Op], error: BaseException) -> Unavailable:
        """Redis failed mid-exchange: the breaker opens and the carried writes go back to their stores."""
        self._carry(waiting, -1)
        self._fail(error)
        self._hand_back(waiting)
        return Unavailable(str(error))

    def _end(self, waiting: Sequence[Op], results: list[Any]) -> list[Any]:
        """Redis answered: the carried writes get their results; the results of the call's own ops."""
        self._carry(waiting, -1)  # before the callbacks: one of them may read (and flush)
        self._answered(results)
        for op, result in zip(waiting, results, strict=False):
            op.finish(result)
        return results[len(waiting) :]

    def _commands(self, ops: Sequence[Op]) -> list[tuple[Any, ...]]:
        """`EVALSHA` for scripts this link has sent before, `EVAL` (which also caches them on the
        server) the first time: no separate load, and the pipeline's order is kept."""
        commands = []
        for op in ops:
            sha = self._sha(op.source)
            if sha in self._loaded:
                commands.append(("EVALSHA", sha, len(op.keys), *op.keys, *op.args))
            else:
                commands.append(("EVAL", op.source, len(op.keys), *op.keys, *op.args))
                self._loaded.add(sha)
        return commands

    def _send(self, ops: Sequence[Op]) -> list[Any]:
        self.round_trips += 1
        if self._cluster:
            return self._send_cluster(ops)
        pool = getattr(self.client, "connection_pool", None)
        if pool is None:
            pipe = self.client.pipeline(transaction=False)
            for command in self._commands(ops):
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))
        # one connection, the commands packed in one write (redis-py's pipeline packs each argument
        # through its generic encoder: a third of the call's added time for these ~70 arguments)
        # Connections are kept by the link, not returned to redis-py's pool after each round trip
        # (its lock and its check for unread data cost ~20 us): one that failed mid-exchange is
        # disconnected here, and reconnects at its next use.
        epoch = self._epoch
        try:
            kept, connection = self._connections.pop()
        except IndexError:
            connection = pool.get_connection()
        else:
            if kept != epoch:  # kept from before an outage (Redis may have restarted): reconnect
                connection.disconnect()
        clean = False
        try:
            connection.send_packed_command([_pack(self._commands(ops))], check_health=False)
            results: list[Any] = []
            for _ in ops:
                try:
                    results.append(connection.read_response())
                except self._reply_error as e:  # an error reply: the connection stays usable
                    results.append(e)
            clean = True
            return results
        finally:
            if not clean:
                connection.disconnect()
            self._connections.append((epoch, connection))

    async def aexchange(self, ops: Sequence[Op]) -> list[Any]:
        """`exchange` on the event loop: through `redis.asyncio` (or on a worker thread when the link
        was given a sync `client`), never blocking the loop."""
        self._here()
        client = self._async_client()
        if client is None:
            return await asyncio.to_thread(self.exchange, ops)
        while self._flusher_carrying:  # the flusher is sending writes this call must not overtake
            await asyncio.sleep(0.0002)
        waiting, every = self._begin(ops)
        try:
            results = await self._asend(client, every)
            missing = self._results(every, results)
            if missing:
                self._loaded.clear()
                self._resent(results, missing, await self._asend(client, [every[i] for i in missing]))
        except self._transient as e:
            raise self._broke(waiting, e) from e
        except BaseException:  # cancelled: the writes may or may not have been applied
            self._carry(waiting, -1)
            raise
        return self._end(waiting, results)

    async def _asend(self, client: Any, ops: Sequence[Op]) -> list[Any]:
        self.round_trips += 1
        if self._cluster:
            return await self._asend_cluster(client, ops)
        pool = getattr(client, "connection_pool", None)
        if pool is None:
            pipe = client.pipeline(transaction=False)
            for command in self._commands(ops):
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))
        epoch = self._epoch  # kept by the link, as in `_send` (these belong to this loop's client)
        try:
            kept, connection = self._aconnections.pop()
        except IndexError:
            connection = await pool.get_connection()
        else:
            if kept != epoch:
                with contextlib.suppress(Exception):
                    await connection.disconnect(nowait=True)
        clean = False
        try:
            await connection.send_packed_command([_pack(self._commands(ops))], check_health=False)
            results: list[Any] = []
            for _ in ops:
                try:
                    results.append(await connection.read_response())
                except self._reply_error as e:
                    results.append(e)
            clean = True
            return results
        finally:
            if not clean:  # failed or cancelled mid-exchange: replies may be left unread
                with contextlib.suppress(Exception):
                    await connection.disconnect(nowait=True)
            self._aconnections.append((epoch, connection))

    # -- Redis Cluster -------------------------------------------------------------------------------
    #
    # redis-py's cluster pipeline hands a connection error or a timeout back as each command's
    # result (with `raise_on_error=False`) instead of raising it, and the sync one then resends
    # every failed command on its own (one more timeout each: 0.6 s for a pipeline of six on a hung
    # node). So the pipeline goes without its redirections, an error that means the node is
    # unreachable or the slot unavailable is raised (the breaker opens, as on one server), and only
    # the commands answered MOVED or ASK (the slot moved, or is moving) are sent again, one at a
    # time through the cluster client, which follows the redirection and learns the new owner.

    def _send_cluster(self, ops: Sequence[Op]) -> list[Any]:
        from redis import cluster

        command: Any = cluster.PipelineCommand  # untyped in redis-py
        commands = self._commands(ops)
        stack = [command(args, {}, i) for i, args in enumerate(commands)]
        pipe = self.client.pipeline(transaction=False)
        results = list(pipe.send_cluster_commands(stack, raise_on_error=False, allow_redirections=False))
        for i in self._redirected(results):
            try:
                results[i] = self.client.execute_command(*commands[i])
            except self._reply_error as e:
                results[i] = self._unavailable(e)
        return results

    async def _asend_cluster(self, client: Any, ops: Sequence[Op]) -> list[Any]:
        commands = self._commands(ops)
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        results = list(await pipe.execute(raise_on_error=False, allow_redirections=False))
        for i in self._redirected(results):
            try:
                results[i] = await client.execute_command(*commands[i])
            except self._reply_error as e:
                results[i] = self._unavailable(e)
        return results

    def _unavailable(self, result: Any) -> Any:
        """`result`, unless it says the node or the slot cannot be used now: then it is raised."""
        if isinstance(result, self._transient):
            raise result
        return result

    def _redirected(self, results: list[Any]) -> list[int]:
        """Raise the first result that is an unavailable node's or slot's error; the indexes of the
        commands answered MOVED or ASK."""
        for result in results:
            self._unavailable(result)
        return [i for i, r in enumerate(results) if isinstance(r, self._redirect)]

    def _async_client(self) -> Any:
        if self.url is None:
            return None
        loop = asyncio.get_running_loop()
        if self._aloop is not loop:
            self._aclient = _client(self.url, *self._timeouts, asyncio_client=True)
            self._aconnections = []
            self._aloop = loop
        return self._aclient

    # -- deferred writes and background work ---------------------------------------------------------

    def defer(self, op: Op) -> None:
        """Queue a write: it goes with the next round trip of this process, or within `flush_s`.
        While the breaker is open, `op.failed()` runs at once instead."""
        if not self.available:
            with self._lock:
                self.fallbacks += 1
            op.fail()
            return
        self._here()
        with self._cond:
            if not self._waiting:
                self._since = time.monotonic()
            self._waiting.append(op)
            self._last = self._since
            if self._idle:  # a busy flusher polls every flush_s: no wake-up (thread switch) per write
                self._idle = False
                self._start()
                self._cond.notify()

    def background(self, job: Callable[[], object]) -> None:
        """Run `job()` on the flusher thread (a refresh, or a write that must read first)."""
        self._here()
        with self._cond:
            self._jobs.append(job)
            self._unfinished += 1
            self._idle = False
            self._start()
            self._cond.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._flusher, name="llmroute-fleet-flush", daemon=True)
            self._thread.start()

    def _flusher(self) -> None:
        while True:
            with self._cond:
                while not (self._waiting or self._jobs or self._closed):
                    if time.monotonic() - self._last < 1.0:
                        break  # writes came lately: poll (sleep flush_s) rather than wait to be woken
                    self._idle = True
                    self._cond.wait()
                if self._closed and not self._waiting and not self._jobs:
                    return
                jobs, self._jobs = self._jobs, []
                waiting = bool(self._waiting)
                delay = (
                    0.0
                    if jobs
                    else (self._since + self.flush_s - time.monotonic() if waiting else self.flush_s)
                )
            if delay > 0:
                time.sleep(delay)  # meanwhile a call's round trip may carry the writes
                continue
            for job in jobs:
                try:
                    job()
                except Unavailable:
                    pass
                except Exception:  # a background job must never kill the flusher
                    log.exception("fleet background job failed")
            if jobs:
                with self._cond:
                    self._unfinished -= len(jobs)
                    self._finished.notify_all()
            self.flush()

    def flush(self) -> None:
        """Send the deferred writes now (before a read that must see this process's own writes), and
        wait for the background jobs queued so far (a replay after an outage, a breaker write)."""
        self._here()
        if threading.current_thread() is not self._thread:
            self._jobs_done()
        if self._waiting:
            with contextlib.suppress(Unavailable):
                self._exchange([])
        with self._carried:  # writes another thread's round trip is carrying
            while self._carrying:
                self._carried.wait()

    def _jobs_done(self) -> None:
        """Wait for the background jobs queued so far. Each is bounded by the socket timeouts; the
        wait is bounded too (`_JOBS_WAIT_S`), so a flusher that cannot run never hangs the caller."""
        deadline = time.monotonic() + _JOBS_WAIT_S
        with self._cond:
            while self._unfinished and not self._closed and time.monotonic() < deadline:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    break
                self._finished.wait(0.05)

    async def aflush(self) -> None:
        """`flush` on the event loop: this process's deferred writes reach Redis before what follows."""
        self._here()
        deadline = time.monotonic() + _JOBS_WAIT_S
        while self._unfinished and not self._closed and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)  # background jobs queued so far
        if self._waiting:
            with contextlib.suppress(Unavailable):
                await self.aexchange([])
        while self._carrying:  # writes another thread or task is carrying
            await asyncio.sleep(0.0002)

    def _hand_back(self, ops: Sequence[Op]) -> None:
        for op in ops:
            op.fail()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify()
        self.client.close()


_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    import hiredis

    _hiredis_pack = hiredis.pack_command
except ImportError:  # pragma: no cover - depends on the environment
    _hiredis_pack = None


def _result(result: Any) -> Any:
    if isinstance(result, Exception):  # an error reply: the link's breaker opened (`_answered`)
        raise Unavailable(str(result))
    return result


def _pack(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """Commands in the Redis protocol (RESP arrays of bulk strings); by hiredis's packer when it is
    installed (`llmroute[redis]` installs it: 2.5x faster, and its reply parser 3x)."""
    if _hiredis_pack is not None:
        return b"".join([_hiredis_pack(command) for command in commands])
    return _pack_resp(commands)


def _pack_resp(commands: Sequence[tuple[Any, ...]]) -> bytes:
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _client(url: str, socket_timeout: float, connect_timeout: float, *, asyncio_client: bool = False) -> Any:
    try:
        import redis
        import redis.asyncio
        from redis.backoff import NoBackoff
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fleet state on Redis needs the redis client: pip install 'llmroute[redis]'") from e
    if asyncio_client:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry: Any = AsyncRetry(NoBackoff(), 0)
    else:
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 0)  # the breaker decides; the client never retries in a loop
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": retry,
    }
    if url.startswith("redis+cluster://"):
        plain = "redis://" + url.removeprefix("redis+cluster://")
        if asyncio_client:
            from redis.asyncio.cluster import RedisCluster as AsyncCluster

            return AsyncCluster.from_url(plain, **options)
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(plain, **options)
    if asyncio_client:
        return redis.asyncio.Redis.from_url(url, **options)
    return redis.Redis.from_url(url, **options)
