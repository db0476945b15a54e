"""One Redis connection shared by the fleet stores, with short timeouts and a breaker in front of it.

Every call goes through `RedisLink.run`: a Lua script, one round trip. A connection error or a timeout
(`socket_timeout`, 0.1 s by default) opens the breaker: for `retry_s` seconds no call is sent and the
stores serve from in-process state (`Unavailable` is raised to them at once), `fallbacks` counts the
calls served so, and one warning is logged per outage. The first call after `retry_s` is a probe; when
it succeeds the link is back, the recovery callbacks run (the budgets replay the spend they settled
during the outage) and an info line is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["RedisLink", "Unavailable"]

log = logging.getLogger("llmroute.fleet")


class Unavailable(Exception):
    """Redis cannot be used now (down, slow, or the breaker is open): serve from local state."""


class RedisLink:
    """A Redis (or Redis Cluster) client for the fleet stores.

    - `url`: `redis://host:port/db`, `rediss://...`, or `redis+cluster://host:port` for a cluster.
    - `prefix`: the start of every key (several fleets can share one server).
    - `socket_timeout` / `connect_timeout`: seconds; a slow or dead server costs a call at most this.
    - `retry_s`: how long the breaker stays open before a probe.
    - `client`: an existing `redis.Redis` / `redis.RedisCluster` to use instead of `url`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "llmroute",
        socket_timeout: float = 0.1,
        connect_timeout: float = 0.1,
        retry_s: float = 1.0,
        client: Any = None,
    ) -> None:
        if client is None:
            if url is None:
                raise ValueError("RedisLink needs a url or a client")
            client = _client(url, socket_timeout, connect_timeout)
        self.client = client
        self.prefix = prefix
        self.retry_s = retry_s
        self.fallbacks = 0
        """Store operations served from in-process state because Redis was unavailable."""
        self.outages = 0
        """Times the breaker opened."""
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._down = False
        self._probing = False
        self._scripts: dict[str, Any] = {}
        self._recovery: list[Callable[[], object]] = []
        import redis.exceptions as rex

        self._transient: tuple[type[BaseException], ...] = (
            rex.ConnectionError,
            rex.TimeoutError,
            rex.BusyLoadingError,
            OSError,
            *((rex.ClusterDownError,) if hasattr(rex, "ClusterDownError") else ()),
            *((rex.TryAgainError,) if hasattr(rex, "TryAgainError") else ()),
        )

    def tag(self, *parts: str) -> str:
        """A key prefix with a hash tag: every key built on it lives in one Redis Cluster slot."""
        return "{" + ":".join((self.prefix, *parts)) + "}"

    @property
    def available(self) -> bool:
        """False while the breaker is open (calls go to local state without trying Redis)."""
        return not (self._down and time.monotonic() < self._open_until)

    def on_recovery(self, callback: Callable[[], object]) -> None:
        """Call `callback()` each time Redis answers again after an outage."""
        self._recovery.append(callback)

    def run(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script (cached by its text; EVALSHA, loaded once). Raises `Unavailable`."""
        with self._lock:
            script = self._scripts.get(source)
            if script is None:
                script = self._scripts[source] = self.client.register_script(source)
        return self.call(lambda client: script(keys=list(keys), args=list(args)))

    def call(self, operation: Callable[[Any], Any]) -> Any:
        """`operation(client)` behind the breaker. Raises `Unavailable`."""
        with self._lock:
            if self._down:
                if time.monotonic() < self._open_until or self._probing:
                    self.fallbacks += 1
                    raise Unavailable("breaker open")
                self._probing = True
        try:
            result = operation(self.client)
        except self._transient as e:
            self._fail(e)
            raise Unavailable(str(e)) from e
        recovered = False
        with self._lock:
            if self._down:
                self._down = self._probing = False
                recovered = True
        if recovered:
            log.info("Redis is back; fleet state is shared again")
            for callback in self._recovery:
                try:
                    callback()
                except Unavailable:
                    break
        return result

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self.fallbacks += 1
            self._probing = False
            self._open_until = time.monotonic() + self.retry_s
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

    def close(self) -> None:
        self.client.close()


def _client(url: str, socket_timeout: float, connect_timeout: float) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fleet state on Redis needs the redis client: pip install 'llmroute[redis]'") from e
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(NoBackoff(), 0),  # the breaker decides; the client never retries in a loop
    }
    if url.startswith("redis+cluster://"):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"), **options)
    return redis.Redis.from_url(url, **options)
