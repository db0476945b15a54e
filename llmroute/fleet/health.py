"""Latency and outcome statistics shared by a fleet, on Redis (`RedisHealthStore`).

A `HealthStore` (`llmroute.health`): `Health(store=RedisHealthStore(link))`, or `Router(state=URL)`,
which gives the router's `Health` this store when it keeps its observations in memory. Latency-aware
policies and balancers (`LowestLatency`, `Fastest`...) in every worker then rank targets by the
whole fleet's observations.

Per target one hash, `{<prefix>}:health:<name>`: success and failure counts, consecutive failures,
the latency and time-to-first-token averages (the same EWMA as in one process, its half-life counted
in the fleet's observations), and the last error. Each observation is one script call sent with the
next round trip (`RedisLink.defer`: no round trip of its own); its reply refreshes this process's
copy of that target. Reads are served from that copy, refreshed by the flusher thread when older
than `cache_s` (1 s); only the first look at a target reads Redis on the caller's thread (on an event
loop it is fetched in the background, and the local observations are served meanwhile). While
Redis is unavailable the local observations (`local`, always kept) are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from typing import Any

from ..routing.health import MemoryHealthStore, TargetHealth
from ._link import Op, RedisLink, Unavailable

__all__ = ["RedisHealthStore"]

TTL_S = 86400

_FIELDS = ("ok", "fail", "streak", "lat", "ttft", "err")

# KEYS: the target's hash. ARGV: ok (1/0), latency, ttft ('' none), error, alpha, ttl.
# Returns the hash's fields after the update, in _FIELDS order.
_OBSERVE = """
local h = KEYS[1]
if ARGV[1] == '1' then
  redis.call('HINCRBY', h, 'ok', 1)
  redis.call('HSET', h, 'streak', 0)
  local alpha = tonumber(ARGV[5])
  local function ewma(field, value)
    local old = redis.call('HGET', h, field)
    if old then value = tonumber(old) + alpha * (value - tonumber(old)) end
    redis.call('HSET', h, field, string.format('%.17g', value))
  end
  ewma('lat', tonumber(ARGV[2]))
  if ARGV[3] ~= '' then ewma('ttft', tonumber(ARGV[3])) end
else
  redis.call('HINCRBY', h, 'fail', 1)
  redis.call('HINCRBY', h, 'streak', 1)
  redis.call('HSET', h, 'err', ARGV[4])
end
redis.call('EXPIRE', h, tonumber(ARGV[6]))
return redis.call('HMGET', h, 'ok', 'fail', 'streak', 'lat', 'ttft', 'err')
"""

_READ = """
return redis.call('HMGET', KEYS[1], 'ok', 'fail', 'streak', 'lat', 'ttft', 'err')
"""


def _parse(values: list[Any]) -> TargetHealth | None:
    ok, fail, streak, lat, ttft, err = (None if v is None else _text(v) for v in values)
    if ok is None and fail is None:
        return None
    return TargetHealth(
        successes=int(ok or 0),
        failures=int(fail or 0),
        consecutive_failures=int(streak or 0),
        latency_s=float(lat) if lat is not None else None,
        ttft_s=float(ttft) if ttft is not None else None,
        last_error=err or None,
    )


class RedisHealthStore:
    """Observations per target in Redis (see the module docstring)."""

    def __init__(self, link: RedisLink | str, *, cache_s: float = 1.0) -> None:
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self.cache_s = cache_s
        self.local = MemoryHealthStore()
        """This process's own observations: served while the fleet's are unknown or unreachable."""
        self._fleet: dict[str, tuple[float, TargetHealth | None]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def _key(self, name: str) -> str:
        return self.link.tag("health", name)

    def get(self, name: str) -> TargetHealth | None:
        seen = self._fleet.get(name)
        if seen is None and self.link.available and asyncio._get_running_loop() is None:
            with contextlib.suppress(Unavailable):  # the first look, on the sync router's thread
                self._saw(name, self.link.run(_READ, [self._key(name)], []))
            seen = self._fleet.get(name)
        elif seen is None or time.monotonic() - seen[0] >= self.cache_s:
            self._refresh_later(name)
        if seen is None or seen[1] is None or not self.link.available:
            return self.local.get(name)
        return dataclasses.replace(seen[1])

    def observe(
        self,
        name: str,
        *,
        ok: bool,
        latency_s: float,
        ttft_s: float | None,
        error: str | None,
        alpha: float,
    ) -> None:
        self.local.observe(name, ok=ok, latency_s=latency_s, ttft_s=ttft_s, error=error, alpha=alpha)
        args = [
            int(ok),
            repr(latency_s),
            "" if ttft_s is None else repr(ttft_s),
            error or "",
            repr(alpha),
            TTL_S,
        ]
        self.link.defer(Op(_OBSERVE, [self._key(name)], args, lambda values: self._saw(name, values)))

    def _saw(self, name: str, values: list[Any]) -> None:
        self._fleet[name] = (time.monotonic(), _parse(values))

    def _refresh_later(self, name: str) -> None:
        with self._lock:
            if name in self._refreshing or not self.link.available:
                return
            self._refreshing.add(name)

        def refresh() -> None:
            try:
                self._saw(name, self.link.run(_READ, [self._key(name)], []))
            finally:
                with self._lock:
                    self._refreshing.discard(name)

        self.link.background(refresh)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
