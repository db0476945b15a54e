"""Client-side rate and concurrency limits shared by a fleet, on Redis (`RedisLoadStore`).

A `LoadStore` (see `llmroute.routing.balance`): `Router(load=RedisLoadStore(link))`, or `Router(state=URL)`.
Per deployment (keys `{<prefix>}:load:<deployment>:...`, in the fleet's one cluster slot):
- requests per minute: a sliding 60-second window of admitted attempts (a sorted set);
- tokens per minute: the same window of token estimates, settled to actual usage on release;
- in flight: a sorted set of leases; a lease of a worker that died ends after `lease_s`;
- the provider's word: `x-ratelimit-remaining-*: 0` (and Anthropic's) with its reset time, so when one
  worker learns the account is out of requests every worker waits.
Admission is one Lua script (one round trip) on the Redis server's clock, so the window is the same
for every machine. In fleet mode (`admit_call`) the same script also reserves the call's budget
(`RedisBudgets`) and returns the target's breaker marks (`RedisCooldownStore`): room is taken under
every limit and budget, or under none. `release` is deferred: it goes with the next round trip
(`RedisLink.defer`). Limits are counted per deployment name, so every process must configure the
same `rpm` / `tpm` / `max_in_flight` for it.

When Redis is unavailable the store admits against an in-process `LoadTracker` (each process then
enforces the whole limit on its own) and goes back to Redis when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..money.budget import OverBudget
from ..routing.balance import WINDOW_S, LoadTracker, Ticket, provider_remaining
from ..routing.engine import Io
from ._link import Op, RedisLink, Unavailable

if TYPE_CHECKING:
    from ..money.budget import Reservation
    from ..request import ChatRequest
    from ..target import Target
    from .budgets import BudgetAsk, RedisBudgets
    from .cooldowns import RedisCooldownStore

__all__ = ["RedisLoadStore"]

# The admission script: one round trip before each attempt. It reads the target's breaker marks,
# checks the deployment's rate windows, in-flight leases and the provider's word, then every hard
# budget the call falls in, and takes room under all of them, or under none.
# KEYS: 1 breaker marks, 2-7 load (requests zset, token zset, token amounts hash, token sum, leases
#   zset, provider hash), then (with n > 0 budgets) 8 reservations hash, 9 deadlines zset, and per
#   budget: spent, reserved, events.
# ARGV: 1 ticket (also the reservation id), 2 tokens, 3 max_in_flight, 4 rpm, 5 tpm (-1: none),
#   6 lease seconds, 7 window seconds, 8 now (the caller's clock, for budgets), 9 reservation ttl,
#   10 estimate (integer units), 11 n, then per budget: hard (1/0), limit, window (0: not rolling).
# Returns {status, marks, wait ('' none, '-1' unknown), in_flight, requests, tokens, provider_blocked,
#   ...}: status 1 admitted (then spent_i, reserved_i per budget), 0 no room, 2 over budget i (then
#   i, spent, reserved).
_ADMIT = """
local marks = redis.call('GET', KEYS[1]) or ''
local t = redis.call('TIME')
local lnow = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[7])
local horizon = lnow - window
local tokens, mif, rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
local ntok, tsum = 0, 0
if tpm >= 0 then  -- the token window is kept only for a deployment with a tpm limit
  local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', horizon)
  for _, id in ipairs(old) do
    local v = redis.call('HGET', KEYS[4], id)
    if v then redis.call('DECRBY', KEYS[5], v); redis.call('HDEL', KEYS[4], id) end
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', horizon) end
  ntok = redis.call('ZCARD', KEYS[3])
  tsum = tonumber(redis.call('GET', KEYS[5]) or '0')
end
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', lnow)
local flying = redis.call('ZCARD', KEYS[6])
local nreq = redis.call('ZCARD', KEYS[2])
local blocked_until = tonumber(redis.call('HGET', KEYS[7], 'until') or '0')
local wait, unknown = -1, false
if mif >= 0 and flying >= mif then unknown = true end
if rpm >= 0 and nreq >= rpm then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(first[2]) + window - lnow)
end
if tpm >= 0 and ntok > 0 and tsum + tokens > tpm then
  local excess, freed = tsum + tokens - tpm, 0
  local w = window
  local entries = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', KEYS[4], entries[i]) or '0')
    if freed >= excess then w = math.max(0, tonumber(entries[i + 1]) + window - lnow); break end
  end
  wait = math.max(wait, w)
end
local provider = 0
if lnow < blocked_until then
  provider = 1
  wait = math.max(wait, blocked_until - lnow)
end
if unknown or wait >= 0 then
  local shown = '-1'
  if not unknown then shown = tostring(wait) end
  return {0, marks, shown, flying, nreq, tostring(tsum), provider}
end
local now, ttl, amount, n = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local out = {1, marks, '', flying + 1, nreq + 1, tostring(tsum + tokens), provider}
if n > 0 then
  local dead = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', now, 'LIMIT', 0, 200)
  for _, id in ipairs(dead) do
    local v = redis.call('HGET', KEYS[8], id)
    if v then
      local amt, rest = string.match(v, '^(%-?%d+)|(.*)$')
      for k in string.gmatch(rest, '[^|]+') do redis.call('DECRBY', k, amt) end
      redis.call('HDEL', KEYS[8], id)
    end
    redis.call('ZREM', KEYS[9], id)
  end
  for i = 0, n - 1 do
    local spent, events, win = KEYS[10 + 3 * i], KEYS[12 + 3 * i], tonumber(ARGV[14 + 3 * i])
    if win > 0 then
      local gone = redis.call('ZRANGEBYSCORE', events, '-inf', now - win)
      for _, m in ipairs(gone) do redis.call('DECRBY', spent, string.match(m, '|(%-?%d+)$')) end
      if #gone > 0 then redis.call('ZREMRANGEBYSCORE', events, '-inf', now - win) end
    end
    local s = redis.call('GET', spent) or '0'
    local r = redis.call('GET', KEYS[11 + 3 * i]) or '0'
    if ARGV[12 + 3 * i] == '1' and tonumber(s) + tonumber(r) + amount > tonumber(ARGV[13 + 3 * i]) then
      return {2, marks, '', flying, nreq, tostring(tsum), provider, i, s, r}
    end
    out[#out + 1] = s
    out[#out + 1] = r
  end
end
local id = ARGV[1]
local keep = math.ceil(window + tonumber(ARGV[6]))
redis.call('ZADD', KEYS[2], lnow, id)
redis.call('ZADD', KEYS[6], lnow + tonumber(ARGV[6]), id)
redis.call('EXPIRE', KEYS[2], keep)
redis.call('EXPIRE', KEYS[6], keep)
if tpm >= 0 and tokens > 0 then  -- no tpm limit: no tokens to count (nor for the release to correct)
  redis.call('ZADD', KEYS[3], lnow, id)
  redis.call('HSET', KEYS[4], id, tokens)
  redis.call('INCRBY', KEYS[5], tokens)
  for i = 3, 5 do redis.call('EXPIRE', KEYS[i], keep) end
end
if amount ~= 0 and n > 0 then
  local names = {}
  for i = 0, n - 1 do
    redis.call('INCRBY', KEYS[11 + 3 * i], ARGV[10])
    out[9 + 2 * i] = redis.call('GET', KEYS[11 + 3 * i])
    names[#names + 1] = KEYS[11 + 3 * i]
  end
  redis.call('HSET', KEYS[8], id, ARGV[10] .. '|' .. table.concat(names, '|'))
  redis.call('ZADD', KEYS[9], now + ttl, id)
end
return out
"""

# KEYS: the six load keys. ARGV: ticket, actual tokens ('' unknown).
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

# KEYS: the six load keys. ARGV: blocked (1/0), reset seconds. The block only ever moves later.
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
    """A ticket admitted by Redis (`local` False) or by the in-process fallback. In fleet mode it
    also carries the budget reservation taken in the same round trip (`claim`)."""

    tid: str = ""
    local: bool = False
    local_ticket: Ticket | None = None
    reservation: Reservation | None = None
    refusal: OverBudget | None = None
    store: RedisLoadStore | None = None

    def claim(self, key: Any) -> Reservation | None:
        """The budget reservation taken with this admission, now keyed by its attempt (the
        attempt's ledger row settles it); raises `OverBudget` if the budgets refused the call."""
        if self.refusal is not None:
            raise self.refusal
        budgets = self.store.budgets if self.store is not None else None
        if self.reservation is None or budgets is None:
            return None
        return budgets.bind(self.reservation, key)


@dataclass(slots=True)
class _Seen:
    in_flight: int = 0
    requests: int = 0
    tokens: float = 0.0
    provider_blocked: bool = False


class RedisLoadStore:
    """Rate windows, in-flight leases and provider headroom per deployment, in Redis (see the module
    docstring). `lease_s`: how long an in-flight slot of a worker that died stays taken.

    `budgets` (`RedisBudgets`) and `breakers` (`RedisCooldownStore`) on the same link, set by
    `Router(state=...)`, make `admit_call` reserve the call's budget and read the target's breaker
    marks in the admission's round trip."""

    def __init__(self, link: RedisLink | str, *, lease_s: float = 600.0, window_s: float = WINDOW_S) -> None:
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self.lease_s = lease_s
        self.window_s = window_s
        self.local = LoadTracker()
        """The in-process fallback used while Redis is unavailable."""
        self.budgets: RedisBudgets | None = None
        self.breakers: RedisCooldownStore | None = None
        self._seen: dict[str, _Seen] = {}
        self._blocked: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._unsent: list[tuple[list[str], list[Any]]] = []  # releases Redis missed (`_release`)
        self.link.on_recovery(self._resend)

    def _keys(self, name: str) -> list[str]:
        tag = self.link.tag("load", name)
        return [f"{tag}:{part}" for part in ("req", "tok", "toks", "tsum", "fly", "prov")]

    def admit(self, target: Target, tokens: int) -> tuple[Ticket | None, float | None]:
        """Take room for one attempt at `target` (see `LoadTracker.admit`), fleet-wide."""
        ask = self._ask(target, tokens, None)
        try:
            result = self.link.run(_ADMIT, ask.keys, ask.args)
        except Unavailable:
            return self._here(ask)
        return self._admitted(ask, result)

    def admit_call(self, target: Target, tokens: int, request: ChatRequest) -> Io:
        """`admit`, plus the budget reservation of `request` and a look at `target`'s breaker, in one
        round trip, which the engine's driver performs (`Io`: awaited under `AsyncRouter`)."""
        ask = self._ask(target, tokens, request)

        def run() -> tuple[Ticket | None, float | None]:
            if ask.ticket is not None:
                return ask.ticket, None
            try:
                result = self.link.run(_ADMIT, ask.keys, ask.args)
            except Unavailable:
                return self._here(ask)
            return self._admitted(ask, result)

        async def arun() -> tuple[Ticket | None, float | None]:
            if ask.ticket is not None:
                return ask.ticket, None
            try:
                result = await self.link.arun(_ADMIT, ask.keys, ask.args)
            except Unavailable:
                return self._here(ask)
            return self._admitted(ask, result)

        return Io(run, arun)

    def _ask(self, target: Target, tokens: int, request: ChatRequest | None) -> _Ask:
        d = target.deployment
        tid = uuid.uuid4().hex
        ask = _Ask(target, tokens, tid)
        marks = self.breakers.marks_key(target.name) if self.breakers is not None else self.link.tag("none")
        ask.keys = [marks, *self._keys(d.name)]
        ask.args = [
            tid,
            int(tokens),
            _limit(d.max_in_flight),
            _limit(d.rpm),
            _limit(d.tpm),
            repr(self.lease_s),
            repr(self.window_s),
        ]
        budgets = self.budgets
        if request is None or budgets is None:
            ask.args += [0, 0, 0, 0]
            return ask
        try:
            ask.budget = budgets.ask(request, target)
        except OverBudget as refusal:  # unpriced, and the budgets refuse unpriced calls
            ask.ticket = FleetTicket(d.name, None, True, tid=tid, local=True, refusal=refusal, store=self)
            ask.args += [0, 0, 0, 0]
            return ask
        ask.keys += ask.budget.keys
        ask.args += ask.budget.args
        return ask

    def _admitted(self, ask: _Ask, result: Any) -> tuple[Ticket | None, float | None]:
        name = ask.target.deployment.name
        status = int(result[0])
        if self.breakers is not None:
            self.breakers.saw_marks(ask.target.name, result[1])
        self._remember(name, result)
        if status == 0:
            shown = _text(result[2])
            return None, (None if shown == "-1" else max(0.0, float(shown)))
        ticket = FleetTicket(name, [0.0, float(ask.tokens)], tid=ask.tid, store=self)
        if ask.budget is not None and self.budgets is not None:
            if status == 2:
                ticket.released = True  # nothing was taken
                ticket.refusal = self.budgets.refused(ask.budget, result[7:])
            else:
                ticket.reservation = self.budgets.adopt(ask.budget, ask.tid, result[7:])
        return ticket, None

    def _here(self, ask: _Ask) -> tuple[Ticket | None, float | None]:
        """Admission while Redis is unavailable: this process's limits and budget view."""
        local, wait = self.local.admit(ask.target, ask.tokens)
        if local is None:
            return None, wait
        name = ask.target.deployment.name
        ticket = FleetTicket(name, None, tid=ask.tid, local=True, local_ticket=local, store=self)
        if ask.budget is not None and self.budgets is not None:
            try:
                ticket.reservation = self.budgets.hold_here(ask.budget, ask.tid)
            except OverBudget as refusal:
                self.local.release(local)
                ticket.released = True
                ticket.refusal = refusal
        return ticket, None

    def _remember(self, name: str, result: list[Any]) -> None:
        with self._lock:
            self._seen[name] = _Seen(int(result[3]), int(result[4]), float(_text(result[5])), bool(result[6]))

    def release(self, ticket: Ticket, tokens: int | None = None) -> None:
        """The attempt ended; `tokens` its actual usage. Idempotent. Sent with the next round trip
        (or by the flusher thread within `flush_s`), not on its own."""
        if ticket.released:
            return
        ticket.released = True
        if not isinstance(ticket, FleetTicket):
            self.local.release(ticket, tokens)
            return
        if ticket.reservation is not None and ticket.reservation.key is None:
            ticket.reservation.release()  # admitted, never sent: the budget hold goes with the lease
        if ticket.local:
            if ticket.local_ticket is not None:
                self.local.release(ticket.local_ticket, tokens)
            return
        self._release(self._keys(ticket.name), [ticket.tid, "" if tokens is None else int(tokens)])
        with self._lock:
            seen = self._seen.get(ticket.name)
            if seen is not None:
                seen.in_flight = max(0, seen.in_flight - 1)

    def _release(self, keys: list[str], args: list[Any]) -> None:
        """Send a release with the next round trip. One Redis could not take (down, or the breaker
        open) is kept and sent again when Redis answers: releases are idempotent, and a lease left
        in Redis would hold one of the fleet's `max_in_flight` slots until `lease_s` (10 minutes)."""

        def failed() -> None:
            with self._lock:
                self._unsent.append((keys, args))

        self.link.defer(Op(_RELEASE, keys, args, None, failed))

    def _resend(self) -> None:
        """Redis is back: the releases it missed go with the next round trip."""
        with self._lock:
            unsent, self._unsent = self._unsent, []
        for keys, args in unsent:
            self._release(keys, args)

    def observe_headers(self, name: str, headers: Mapping[str, str] | None) -> None:
        """Share the provider's word that no requests or tokens are left (and until when). Only a
        change between "none left" and "some left" is sent: most calls send nothing. The change is
        written at once (so every worker knows before this call returns), or, on an event loop,
        by the flusher thread."""
        self.local.observe_headers(name, headers)
        if not headers:
            return
        from ..providers.base import retry_after_seconds

        requests, tokens = provider_remaining(headers)
        if requests is None and tokens is None:
            return
        blocked = requests == 0 or tokens == 0
        if not blocked and not self._blocked.get(name, False):
            return
        reset = retry_after_seconds(headers) if blocked else None
        args = [int(blocked), repr(reset if reset is not None else 1.0)]
        self._blocked[name] = blocked
        if _on_event_loop():
            self.link.background(lambda: self.link.run(_PROVIDER, self._keys(name), args))
            return
        with contextlib.suppress(Unavailable):
            self.link.run(_PROVIDER, self._keys(name), args)

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


@dataclass(slots=True)
class _Ask:
    """One admission's script arguments."""

    target: Target
    tokens: int
    tid: str
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    budget: BudgetAsk | None = None
    ticket: FleetTicket | None = None  # decided without Redis


def _on_event_loop() -> bool:
    return asyncio._get_running_loop() is not None


def _limit(value: int | None) -> int:
    return -1 if value is None else int(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
