"""Client-side rate and concurrency limits shared by a fleet, on Redis (`RedisLoadStore`).

A `LoadStore` (see `llmroute.routing.balance`): `Router(load=RedisLoadStore(link))`, or `Router(state=URL)`.
Per deployment, in one Redis Cluster slot (`{prefix:load:<deployment>}`):
- requests per minute: a sliding 60-second window of admitted attempts (a sorted set);
- tokens per minute: the same window of token estimates, settled to actual usage on release;
- in flight: a sorted set of leases; a lease of a worker that died ends after `lease_s`;
- the provider's word: `x-ratelimit-remaining-*: 0` (and Anthropic's) with its reset time, so when one
  worker learns the account is out of requests every worker waits.
`admit` checks and takes room in one Lua script (one round trip) on the Redis server's clock, so the
window is the same for every machine; `release` is one more. Limits are counted per deployment
name, so every process must configure the same `rpm` / `tpm` / `max_in_flight` for it.

When Redis is unavailable the store admits against an in-process `LoadTracker` (each process then
enforces the whole limit on its own) and goes back to Redis when it answers.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..routing.balance import WINDOW_S, LoadTracker, Ticket, _int
from ._link import RedisLink, Unavailable

if TYPE_CHECKING:
    from ..target import Target

__all__ = ["RedisLoadStore"]

# KEYS: requests zset, token zset, token amounts hash, token sum, leases zset, provider hash.
# ARGV: ticket, tokens, max_in_flight, rpm, tpm (-1: none), lease seconds, window seconds, admit (1/0).
# Returns {admitted, wait ('' none, '-1' unknown), in_flight, requests, tokens, provider_blocked}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[7])
local horizon = now - window
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
for _, id in ipairs(old) do
  local v = redis.call('HGET', KEYS[3], id)
  if v then redis.call('DECRBY', KEYS[4], v); redis.call('HDEL', KEYS[3], id) end
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon) end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local tokens, mif, rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local flying = redis.call('ZCARD', KEYS[5])
local nreq = redis.call('ZCARD', KEYS[1])
local ntok = redis.call('ZCARD', KEYS[2])
local tsum = tonumber(redis.call('GET', KEYS[4]) or '0')
local blocked_until = tonumber(redis.call('HGET', KEYS[6], 'until') or '0')
local wait, unknown = -1, false
if mif >= 0 and flying >= mif then unknown = true end
if rpm >= 0 and nreq >= rpm then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + window - now)
end
if tpm >= 0 and ntok > 0 and tsum + tokens > tpm then
  local excess, freed = tsum + tokens - tpm, 0
  local w = window
  local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', KEYS[3], entries[i]) or '0')
    if freed >= excess then w = math.max(0, tonumber(entries[i + 1]) + window - now); break end
  end
  wait = math.max(wait, w)
end
local provider = 0
if now < blocked_until then
  provider = 1
  wait = math.max(wait, blocked_until - now)
end
if unknown or wait >= 0 or ARGV[8] == '0' then
  local shown = ''
  if unknown then shown = '-1' elseif wait >= 0 then shown = tostring(wait) end
  return {0, shown, flying, nreq, tostring(tsum), provider}
end
local id = ARGV[1]
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZADD', KEYS[2], now, id)
redis.call('HSET', KEYS[3], id, tokens)
redis.call('INCRBY', KEYS[4], tokens)
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[6]), id)
for i = 1, 5 do redis.call('EXPIRE', KEYS[i], math.ceil(window + tonumber(ARGV[6]))) end
return {1, '', flying + 1, nreq + 1, tostring(tsum + tokens), provider}
"""

# KEYS as admit. ARGV: ticket, actual tokens ('' unknown).
_RELEASE = """
redis.call('ZREM', KEYS[5], ARGV[1])
if ARGV[2] ~= '' then
  local old = redis.call('HGET', KEYS[3], ARGV[1])
  if old then
    redis.call('INCRBY', KEYS[4], tonumber(ARGV[2]) - tonumber(old))
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  end
end
return 1
"""

# KEYS as admit. ARGV: blocked (1/0), reset seconds. The block only ever moves later.
_PROVIDER = """
if ARGV[1] == '0' then redis.call('HDEL', KEYS[6], 'until'); return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local til = now + tonumber(ARGV[2])
if til > tonumber(redis.call('HGET', KEYS[6], 'until') or '0') then
  redis.call('HSET', KEYS[6], 'until', tostring(til))
  redis.call('EXPIRE', KEYS[6], math.ceil(tonumber(ARGV[2])) + 1)
end
return 1
"""


@dataclass(slots=True)
class FleetTicket(Ticket):
    """A ticket admitted by Redis (`local` False) or by the in-process fallback."""

    tid: str = ""
    local: bool = False
    local_ticket: Ticket | None = None


@dataclass(slots=True)
class _Seen:
    in_flight: int = 0
    requests: int = 0
    tokens: float = 0.0
    provider_blocked: bool = False


class RedisLoadStore:
    """Rate windows, in-flight leases and provider headroom per deployment, in Redis (see the module
    docstring). `lease_s`: how long an in-flight slot of a worker that died stays taken."""

    def __init__(self, link: RedisLink | str, *, lease_s: float = 600.0, window_s: float = WINDOW_S) -> None:
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self.lease_s = lease_s
        self.window_s = window_s
        self.local = LoadTracker()
        """The in-process fallback used while Redis is unavailable."""
        self._seen: dict[str, _Seen] = {}
        self._blocked: dict[str, bool] = {}
        self._lock = threading.Lock()

    def _keys(self, name: str) -> list[str]:
        tag = self.link.tag("load", name)
        return [f"{tag}:{part}" for part in ("req", "tok", "toks", "tsum", "fly", "prov")]

    def admit(self, target: Target, tokens: int) -> tuple[Ticket | None, float | None]:
        """Take room for one attempt at `target` (see `LoadTracker.admit`), fleet-wide."""
        d = target.deployment
        tid = uuid.uuid4().hex
        args = [
            tid,
            int(tokens),
            _limit(d.max_in_flight),
            _limit(d.rpm),
            _limit(d.tpm),
            repr(self.lease_s),
            repr(self.window_s),
            1,
        ]
        try:
            result = self.link.run(_ADMIT, self._keys(d.name), args)
        except Unavailable:
            ticket, wait = self.local.admit(target, tokens)
            if ticket is None:
                return None, wait
            return FleetTicket(d.name, None, tid=tid, local=True, local_ticket=ticket), None
        self._remember(d.name, result)
        if int(result[0]) == 1:
            return FleetTicket(d.name, [0.0, float(tokens)], tid=tid), None
        shown = _text(result[1])
        return None, (None if shown == "-1" else max(0.0, float(shown)))

    def _remember(self, name: str, result: list[Any]) -> None:
        with self._lock:
            self._seen[name] = _Seen(int(result[2]), int(result[3]), float(_text(result[4])), bool(result[5]))

    def release(self, ticket: Ticket, tokens: int | None = None) -> None:
        """The attempt ended; `tokens` its actual usage. Idempotent."""
        if ticket.released:
            return
        ticket.released = True
        if not isinstance(ticket, FleetTicket):
            self.local.release(ticket, tokens)
            return
        if ticket.local:
            if ticket.local_ticket is not None:
                self.local.release(ticket.local_ticket, tokens)
            return
        actual = "" if tokens is None else int(tokens)
        # when Redis is unavailable the lease ends by itself after lease_s; the token estimate stands
        with contextlib.suppress(Unavailable):
            self.link.run(_RELEASE, self._keys(ticket.name), [ticket.tid, actual])
        with self._lock:
            seen = self._seen.get(ticket.name)
            if seen is not None:
                seen.in_flight = max(0, seen.in_flight - 1)

    def observe_headers(self, name: str, headers: Mapping[str, str] | None) -> None:
        """Share the provider's word that no requests or tokens are left (and until when). Only a
        change between "none left" and "some left" is sent: most calls add no round trip."""
        self.local.observe_headers(name, headers)
        if not headers:
            return
        from ..providers.base import retry_after_seconds

        requests = _int(
            headers.get("x-ratelimit-remaining-requests")
            or headers.get("anthropic-ratelimit-requests-remaining")
        )
        tokens = _int(
            headers.get("x-ratelimit-remaining-tokens") or headers.get("anthropic-ratelimit-tokens-remaining")
        )
        if requests is None and tokens is None:
            return
        blocked = requests == 0 or tokens == 0
        if not blocked and not self._blocked.get(name, False):
            return
        reset = retry_after_seconds(headers) if blocked else None
        try:
            self.link.run(
                _PROVIDER, self._keys(name), [int(blocked), repr(reset if reset is not None else 1.0)]
            )
        except Unavailable:
            return
        self._blocked[name] = blocked

    def in_flight(self, name: str) -> int:
        """Calls in flight at `name` across the fleet, as of this process's last admission there."""
        seen = self._seen.get(name)
        return seen.in_flight if seen is not None else self.local.in_flight(name)

    def headroom(self, target: Target) -> float:
        """Remaining share of the tightest limit, from this process's last look at the fleet."""
        d = target.deployment
        seen = self._seen.get(d.name)
        if seen is None:
            return self.local.headroom(target)
        shares = [1.0]
        if d.max_in_flight:
            shares.append(1 - seen.in_flight / d.max_in_flight)
        if d.rpm:
            shares.append(1 - seen.requests / d.rpm)
        if d.tpm:
            shares.append(1 - seen.tokens / d.tpm)
        if seen.provider_blocked:
            shares.append(0.0)
        return max(0.0, min(shares))


def _limit(value: int | None) -> int:
    return -1 if value is None else int(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
