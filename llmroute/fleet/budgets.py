"""Budgets shared by every process of a fleet, on Redis (`RedisBudgets`).

The same `Budgets` API and semantics at the limit (see `llmroute.money.budget`), with the figures in Redis:
- `reserve` is one Lua script: it drops reservations whose worker died (older than
  `reservation_ttl`), rolls rolling windows, checks `spent + reserved + estimate <= limit` for every
  matching hard budget and reserves on all of them, in one atomic step. Two processes can never both
  take the last room: with exact estimates a fleet never overspends, and it overspends by at most the
  sum of (actual - estimate) over calls admitted under the limit, as in one process.
- In fleet mode the reservation is taken by the admission script of `llmroute.fleet.limits` (`ask`,
  `adopt`), in the same round trip as the rate limits, and keyed by its attempt when the attempt
  starts (`bind`).
- `settle` is idempotent, keyed by the reservation id (the attempt's `(call_id, attempt)`): a second
  settle, a release after a settle, or the ledger row of an attempt already settled is a no-op. It is
  deferred: sent with the next round trip (`RedisLink.defer`); until then the reservation keeps
  holding the estimate, so the overspend bound is unchanged, and this process's reads send it first.
- Calendar periods are part of the key (`...:s:<budget>:<period start>`): a new period is a new key,
  nothing is ever reset, so no reset can race a charge. Amounts are integers of 10^-12 currency units
  (INCRBY), never floats, so spend does not drift.
- When Redis is unavailable (see `RedisLink`) budgets are enforced in this process against the last
  spend read from Redis plus what this process spent since; what it settles meanwhile is kept and
  replayed to Redis (idempotently) when Redis answers again. During an outage each process can spend
  the room that was left, so the bound above holds only while Redis is reachable.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..hinting import RouteHints
from ..money.budget import (
    Budget,
    BudgetAlert,
    Budgets,
    BudgetStatus,
    CallFacts,
    OverBudget,
    Reservation,
    Scope,
    _amount,
    _State,
    period_start,
)
from ._link import Op, RedisLink, Unavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..money.ledger import LedgerRow
    from ..request import ChatRequest
    from ..target import Target
    from ..usage import Cost

__all__ = ["RedisBudgets"]

UNIT = Decimal("1e-12")
"""Redis keeps amounts as integers of this many currency units."""
_ZERO = Decimal(0)
_RETAIN = {"day": 3 * 86400, "week": 9 * 86400, "month": 33 * 86400}

# Common prelude: expire reservations of dead workers, then roll rolling windows of the budgets given.
# KEYS: 1 reservations hash, 2 deadlines zset, then per budget: spent, reserved, events (3 keys).
# ARGV: 1 now, then per budget (from index `first`): window seconds (0: not rolling) at a fixed stride.
_PRELUDE = """
local now = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 200)
for _, id in ipairs(dead) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    local amt, rest = string.match(v, '^(%-?%d+)|(.*)$')
    for k in string.gmatch(rest, '[^|]+') do redis.call('DECRBY', k, amt) end
    redis.call('HDEL', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
local function roll(spent, events, window)
  if window > 0 then
    local old = redis.call('ZRANGEBYSCORE', events, '-inf', now - window)
    for _, m in ipairs(old) do
      redis.call('DECRBY', spent, string.match(m, '|(%-?%d+)$'))
    end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', events, '-inf', now - window) end
  end
end
"""

# ARGV: now, ttl, id, amount, n, then per budget: hard, limit, window.
# Returns {1, spent_1, reserved_1, ...} (after reserving) or {0, index, spent, reserved} (refused).
_RESERVE = (
    _PRELUDE
    + """
local ttl, rid, amount, n = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {1}
for i = 0, n - 1 do
  local spent, reserved, events = KEYS[3 + 3 * i], KEYS[4 + 3 * i], KEYS[5 + 3 * i]
  roll(spent, events, tonumber(ARGV[8 + 3 * i]))
  local s = redis.call('GET', spent) or '0'
  local r = redis.call('GET', reserved) or '0'
  if ARGV[6 + 3 * i] == '1' and tonumber(s) + tonumber(r) + amount > tonumber(ARGV[7 + 3 * i]) then
    return {0, i, s, r}
  end
  out[#out + 1] = s
  out[#out + 1] = r
end
if amount ~= 0 and n > 0 then
  local names = {}
  for i = 0, n - 1 do
    redis.call('INCRBY', KEYS[4 + 3 * i], ARGV[4])
    out[3 + 2 * i] = redis.call('GET', KEYS[4 + 3 * i])
    names[#names + 1] = KEYS[4 + 3 * i]
  end
  redis.call('HSET', KEYS[1], rid, ARGV[4] .. '|' .. table.concat(names, '|'))
  redis.call('ZADD', KEYS[2], now + ttl, rid)
end
return out
"""
)

# KEYS: reservations, deadlines, done marker (of the id), then per budget: spent, reserved, events.
# ARGV: now, id, actual ('' releases), n, marker ttl, hold ('' none), then per budget: window, retain
# seconds. The hold (a reservation's own id) is dropped in any case; the charge is made once per id.
# Returns {0} when already settled or released, else {1, spent_before_1, spent_after_1, ...}.
_SETTLE = (
    _PRELUDE
    + """
local rid, actual, n, hold = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[6]
local v = redis.call('HGET', KEYS[1], hold)
if v then
  local amt, rest = string.match(v, '^(%-?%d+)|(.*)$')
  for k in string.gmatch(rest, '[^|]+') do redis.call('DECRBY', k, amt) end
  redis.call('HDEL', KEYS[1], hold)
  redis.call('ZREM', KEYS[2], hold)
end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5]) then return {0} end
local out = {1}
if actual == '' then return out end
for i = 0, n - 1 do
  local spent, events = KEYS[4 + 3 * i], KEYS[6 + 3 * i]
  local window, retain = tonumber(ARGV[7 + 2 * i]), tonumber(ARGV[8 + 2 * i])
  roll(spent, events, window)
  out[#out + 1] = redis.call('GET', spent) or '0'
  redis.call('INCRBY', spent, actual)
  out[#out + 1] = redis.call('GET', spent)
  if window > 0 then
    redis.call('ZADD', events, now, rid .. '|' .. actual)
    redis.call('EXPIRE', events, retain)
  end
  if retain > 0 then redis.call('EXPIRE', spent, retain) end
end
return out
"""
)

# KEYS/ARGV as the prelude, then ARGV[2] = n, per budget: window. Returns {spent_1, reserved_1, ...}.
_PEEK = (
    _PRELUDE
    + """
local out = {}
for i = 0, tonumber(ARGV[2]) - 1 do
  roll(KEYS[3 + 3 * i], KEYS[5 + 3 * i], tonumber(ARGV[3 + i]))
  out[#out + 1] = redis.call('GET', KEYS[3 + 3 * i]) or '0'
  out[#out + 1] = redis.call('GET', KEYS[4 + 3 * i]) or '0'
end
return out
"""
)


def to_units(value: Decimal, *, up: bool = False) -> int:
    """Currency -> integer units of 10^-12 (estimates round up, so a reservation never holds less)."""
    return int((value / UNIT).to_integral_value(ROUND_CEILING if up else ROUND_HALF_EVEN))


def from_units(units: int | str | bytes) -> Decimal:
    return (Decimal(int(units)) * UNIT).normalize()


class FleetReservation(Reservation):
    """A reservation held in Redis (`rid`), or in this process while Redis was unavailable."""

    __slots__ = ("hold", "local", "rid", "units")

    def __init__(
        self,
        owner: Budgets,
        states: tuple[_State, ...],
        amount: Decimal,
        key: Any,
        created: float,
        rid: str,
        local: bool,
        hold: str = "",
    ) -> None:
        super().__init__(owner, states, amount, key, created)
        self.rid = rid
        """The attempt's id: a settle counts once per id, across the fleet."""
        self.hold = hold
        """The id of the amount held in Redis (unique to this reservation)."""
        self.local = local
        self.units = to_units(amount, up=True)


@dataclass(slots=True)
class BudgetAsk:
    """What the admission script needs to reserve one attempt's estimate (`RedisBudgets.ask`)."""

    matched: tuple[_State, ...]
    amount: Decimal
    units: int
    estimate: Decimal | None
    now: float
    keys: list[str]
    args: list[Any]


@dataclass(slots=True)
class _Pending:
    """Spend settled while Redis was unavailable, replayed when it is back."""

    rid: str
    states: tuple[_State, ...]
    units: int
    when: float


@dataclass(slots=True)
class _Take:
    """One `reserve`: what the script is sent, and what the reservation will hold."""

    matched: tuple[_State, ...]
    amount: Decimal
    units: int
    key: Any
    rid: str
    now: float
    estimate: Decimal | None
    hold: str
    keys: list[str]
    args: list[Any]

    def here(self) -> tuple[tuple[_State, ...], Decimal, int, Any, str, float, Decimal | None]:
        """The arguments of `_reserve_here` (Redis unavailable)."""
        return self.matched, self.amount, self.units, self.key, self.rid, self.now, self.estimate


def _rid(key: Any) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]}:{key[1]}"
    return uuid.uuid4().hex if key is None else str(key)


class RedisBudgets(Budgets):
    """`Budgets` whose spend and reservations live in Redis, shared by every process using the same
    server and `prefix`. Build it like `Budgets`, with a `RedisLink` (or a URL) first:

    ```python
    budgets = RedisBudgets("redis://127.0.0.1:6379/0", [Budget("50", period="month")])
    ```
    Budgets are identified by name: give every process the same budgets.
    """

    def __init__(
        self,
        link: RedisLink | str,
        budgets: Iterable[Budget] = (),
        *,
        unpriced: Literal["allow", "refuse"] = "allow",
        reservation_ttl: float = 900.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        super().__init__(
            budgets, unpriced=unpriced, reservation_ttl=reservation_ttl, clock=clock or time.time
        )
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self._tag = self.link.tag("budgets")
        self._mirror: dict[tuple[str, str], int] = {}  # (budget, period) -> fleet spend last read
        self._local_spent: dict[tuple[str, str], int] = {}  # spent here while Redis was down
        self._local_reserved: dict[str, int] = {}
        self._pending: list[_Pending] = []
        self._replay_lock = threading.Lock()
        self.link.on_recovery(self.reconcile)

    @classmethod
    def from_budgets(cls, link: RedisLink | str, budgets: Budgets) -> RedisBudgets:
        """The same budgets and settings as an in-process `Budgets`, shared through Redis."""
        return cls(
            link,
            budgets.budgets,
            unpriced=budgets._unpriced,
            reservation_ttl=budgets._ttl,
            clock=budgets._clock,
        )

    # -- keys -------------------------------------------------------------------------------------

    def _period(self, budget: Budget, now: float) -> str:
        period = budget.period
        if isinstance(period, str):
            return str(int(period_start(now, period)))
        return "rolling" if period is not None else "all"

    def _keys(self, states: Iterable[_State], now: float) -> list[str]:
        keys = [f"{self._tag}:resv", f"{self._tag}:deadlines"]
        for state in states:
            name = state.budget.name
            keys += [
                f"{self._tag}:s:{name}:{self._period(state.budget, now)}",
                f"{self._tag}:r:{name}",
                f"{self._tag}:e:{name}",
            ]
        return keys

    @staticmethod
    def _window(budget: Budget) -> float:
        return float(budget.period) if isinstance(budget.period, int | float) else 0.0

    @staticmethod
    def _retain(budget: Budget) -> int:
        period = budget.period
        if isinstance(period, str):
            return _RETAIN[period]
        if isinstance(period, int | float):
            return int(period) + 60
        return 0

    # -- reserve, settle, release -------------------------------------------------------------------

    def reserve(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        estimated_cost: Decimal | None = _ZERO,
        *,
        key: Any = None,
    ) -> Reservation:
        take = self._take(hints, target, estimated_cost, key)
        try:
            result = self.link.run(_RESERVE, take.keys, take.args)
        except Unavailable:
            return self._reserve_here(*take.here())
        return self._taken(take, result)

    async def areserve(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        estimated_cost: Decimal | None = _ZERO,
        *,
        key: Any = None,
    ) -> Reservation:
        """`reserve` on the event loop: the round trip goes through `redis.asyncio`."""
        take = self._take(hints, target, estimated_cost, key)
        try:
            result = await self.link.arun(_RESERVE, take.keys, take.args)
        except Unavailable:
            return self._reserve_here(*take.here())
        return self._taken(take, result)

    def _take(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None,
        estimated_cost: Decimal | None,
        key: Any,
    ) -> _Take:
        """What the reserve script is sent (raises `OverBudget` for a refused unpriced call)."""
        route = RouteHints.coerce(hints)
        facts = CallFacts.of(target)
        amount = _ZERO if estimated_cost is None else estimated_cost
        now = self._clock()
        matched = tuple(s for s in self._states if s.budget.scope.matches(route, facts))
        if estimated_cost is None and self._unpriced == "refuse":
            for state in matched:
                if state.budget.hard:
                    raise OverBudget(state.budget, state.spent, state.reserved, None)
        if estimated_cost is None:
            with self._lock:
                for state in matched:
                    state.unpriced += 1
        units = to_units(amount, up=True)
        hold = uuid.uuid4().hex
        args: list[Any] = [repr(now), repr(self._ttl), hold, units, len(matched)]
        for state in matched:
            budget = state.budget
            args += [int(budget.hard), to_units(budget.limit), repr(self._window(budget))]
        return _Take(
            matched, amount, units, key, _rid(key), now, estimated_cost, hold, self._keys(matched, now), args
        )

    def _taken(self, take: _Take, result: Any) -> Reservation:
        """The reservation the reserve script took, or its refusal raised as `OverBudget`."""
        if int(result[0]) == 0:
            state = take.matched[int(result[1])]
            raise OverBudget(state.budget, from_units(result[2]), from_units(result[3]), take.estimate)
        reservation = FleetReservation(
            self, take.matched, take.amount, take.key, take.now, take.rid, local=False, hold=take.hold
        )
        with self._lock:
            for i, state in enumerate(take.matched):
                self._seen(state, take.now, int(result[1 + 2 * i]), int(result[2 + 2 * i]))
            if take.key is not None:
                self._by_key[take.key] = reservation
        return reservation

    # -- reserving with the admission (fleet mode: one round trip) -----------------------------------

    def ask(self, request: ChatRequest, target: Target) -> BudgetAsk:
        """The keys and arguments under which the admission script reserves `request`'s estimated
        cost on `target` (what `reserve_for` would reserve). Raises `OverBudget` for an unpriced
        call when unpriced calls are refused."""
        from ..money.estimate import estimate_cost

        estimate = estimate_cost(request, target).cost
        facts = CallFacts.of(target)
        matched = tuple(s for s in self._states if s.budget.scope.matches(request.hints, facts))
        if estimate is None:
            if self._unpriced == "refuse":
                for state in matched:
                    if state.budget.hard:
                        raise OverBudget(state.budget, state.spent, state.reserved, None)
            with self._lock:
                for state in matched:
                    state.unpriced += 1
        amount = _ZERO if estimate is None else estimate
        units = to_units(amount, up=True)
        now = self._clock()
        args: list[Any] = [repr(now), repr(self._ttl), units, len(matched)]
        for state in matched:
            budget = state.budget
            args += [int(budget.hard), to_units(budget.limit), repr(self._window(budget))]
        keys = self._keys(matched, now) if matched else []
        return BudgetAsk(matched, amount, units, estimate, now, keys, args)

    def adopt(self, ask: BudgetAsk, rid: str, figures: Sequence[Any]) -> FleetReservation:
        """The reservation the admission script took (`figures`: spent, reserved per budget)."""
        reservation = FleetReservation(
            self, ask.matched, ask.amount, None, ask.now, rid, local=False, hold=rid
        )
        with self._lock:
            for i, state in enumerate(ask.matched):
                self._seen(state, ask.now, int(figures[2 * i]), int(figures[2 * i + 1]))
        return reservation

    def refused(self, ask: BudgetAsk, figures: Sequence[Any]) -> OverBudget:
        """The refusal the admission script returned (`figures`: budget index, spent, reserved)."""
        state = ask.matched[int(figures[0])]
        return OverBudget(state.budget, from_units(figures[1]), from_units(figures[2]), ask.estimate)

    def hold_here(self, ask: BudgetAsk, rid: str) -> Reservation:
        """Reserve in this process (Redis unavailable). Raises `OverBudget`."""
        return self._reserve_here(ask.matched, ask.amount, ask.units, None, rid, ask.now, ask.estimate)

    def bind(self, reservation: Reservation, key: Any) -> Reservation:
        """Key a reservation by its attempt, `(call_id, attempt)`: that attempt's ledger row settles it."""
        with self._lock:
            reservation.key = key
            if not reservation.done:
                self._by_key[key] = reservation
        return reservation

    def _seen(self, state: _State, now: float, spent: int, reserved: int) -> None:
        """Remember the fleet's figures (under the lock): the fallback starts from them."""
        self._mirror[(state.budget.name, self._period(state.budget, now))] = spent
        state.spent = from_units(spent)
        state.reserved = from_units(reserved)

    def _reserve_here(
        self,
        matched: tuple[_State, ...],
        amount: Decimal,
        units: int,
        key: Any,
        rid: str,
        now: float,
        estimate: Decimal | None,
    ) -> Reservation:
        with self._lock:
            for state in matched:
                budget = state.budget
                spent = self._spent_here(budget, now)
                reserved = self._local_reserved.get(budget.name, 0)
                if budget.hard and spent + reserved + units > to_units(budget.limit):
                    raise OverBudget(budget, from_units(spent), from_units(reserved), estimate)
            for state in matched:
                name = state.budget.name
                self._local_reserved[name] = self._local_reserved.get(name, 0) + units
            reservation = FleetReservation(self, matched, amount, key, now, rid, local=True)
            self._open[id(reservation)] = reservation
            if key is not None:
                self._by_key[key] = reservation
        return reservation

    def _spent_here(self, budget: Budget, now: float) -> int:
        period = (budget.name, self._period(budget, now))
        return self._mirror.get(period, 0) + self._local_spent.get(period, 0)

    def settle(self, reservation: Reservation, actual: Decimal | Cost | LedgerRow | None) -> None:
        """Charge the actual cost and drop the reservation. Idempotent across the fleet."""
        if not isinstance(reservation, FleetReservation):
            raise TypeError("not a reservation of this RedisBudgets")
        amount = _amount(actual)
        self._finish(reservation, None if amount is None else to_units(amount))

    def release(self, reservation: Reservation) -> None:
        if not isinstance(reservation, FleetReservation):
            raise TypeError("not a reservation of this RedisBudgets")
        self._finish(reservation, None, release=True)

    def _finish(self, reservation: FleetReservation, units: int | None, *, release: bool = False) -> None:
        with self._lock:
            if reservation.done:
                return
            reservation.done = True
            if reservation.key is not None and self._by_key.get(reservation.key) is reservation:
                del self._by_key[reservation.key]
            if reservation.local:
                self._open.pop(id(reservation), None)
                for state in reservation._states:
                    name = state.budget.name
                    self._local_reserved[name] = self._local_reserved.get(name, 0) - reservation.units
        if not reservation._states:
            return  # no budget matched: nothing held, nothing to charge
        # released, or unpriced: nothing to charge, but the reservation is over
        actual = "" if release or units is None else str(units)
        if reservation.local and not actual:
            return  # held in this process only, and released above
        self._defer_settle(reservation.rid, reservation._states, actual, self._clock(), reservation.hold)

    def _defer_settle(
        self, rid: str, states: tuple[_State, ...], actual: str, now: float, hold: str = ""
    ) -> None:
        """Settle with the next round trip (the reservation holds the estimate until then); what
        cannot be sent is kept and replayed when Redis is back."""

        def failed() -> None:
            if actual:
                self._keep(rid, states, int(actual), now)

        keys, args = self._settle_op(rid, states, actual, now, hold)
        self.link.defer(
            Op(_SETTLE, keys, args, lambda result: self._settled(states, actual, now, result), failed)
        )

    def _keep(self, rid: str, states: tuple[_State, ...], units: int, now: float) -> None:
        with self._lock:
            self._pending.append(_Pending(rid, states, units, now))
            for state in states:
                period = (state.budget.name, self._period(state.budget, now))
                self._local_spent[period] = self._local_spent.get(period, 0) + units

    def _settle_op(
        self, rid: str, states: tuple[_State, ...], actual: str, now: float, hold: str = ""
    ) -> tuple[list[str], list[Any]]:
        keys = self._keys(states, now)
        keys.insert(2, f"{self._tag}:done:{rid}")
        args: list[Any] = [repr(now), rid, actual, len(states), max(int(self._ttl * 2), 3600), hold]
        for state in states:
            args += [repr(self._window(state.budget)), self._retain(state.budget)]
        return keys, args

    def _send_settle(self, rid: str, states: tuple[_State, ...], actual: str, now: float) -> None:
        keys, args = self._settle_op(rid, states, actual, now)
        self._settled(states, actual, now, self.link.run(_SETTLE, keys, args))

    def _settled(self, states: tuple[_State, ...], actual: str, now: float, result: Any) -> None:
        if int(result[0]) == 0 or not actual:
            return
        alerts: list[BudgetAlert] = []
        with self._lock:
            for i, state in enumerate(states):
                before, after = int(result[1 + 2 * i]), int(result[2 + 2 * i])
                self._mirror[(state.budget.name, self._period(state.budget, now))] = after
                state.spent = from_units(after)
                self._crossed(state, from_units(before), from_units(after), alerts)
        self._alert(alerts)

    @staticmethod
    def _crossed(state: _State, before: Decimal, after: Decimal, alerts: list[BudgetAlert]) -> None:
        """Soft alerts fire in the one process whose charge crossed the threshold."""
        budget = state.budget
        if budget.soft_at is not None and before < budget.soft_at * budget.limit <= after:
            alerts.append(BudgetAlert(budget, "soft", after, budget.limit, state.start))
        if not budget.hard and before < budget.limit <= after:
            alerts.append(BudgetAlert(budget, "limit", after, budget.limit, state.start))

    def observe(self, row: LedgerRow) -> None:
        """Charge one recorded attempt: it settles the reservation with its `(call_id, attempt)` key,
        or, with none open here, is charged once to the fleet under that key."""
        key = (row.call_id, row.attempt)
        with self._lock:
            reservation = self._by_key.pop(key, None)
        if isinstance(reservation, FleetReservation):
            reservation.settle(row)
            return
        amount = _amount(row)
        facts = CallFacts.of(row)
        states = tuple(s for s in self._states if s.budget.scope.matches(row.hints, facts))
        if amount is None or not states:
            return
        self._defer_settle(_rid(key), states, str(to_units(amount)), row.timestamp)

    def reconcile(self) -> int:
        """Replay spend settled while Redis was unavailable (each once: settles are idempotent).
        Returns the number replayed; runs by itself when Redis answers again."""
        with self._replay_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            done = 0
            try:
                for i, item in enumerate(pending):
                    try:
                        self._send_settle(item.rid, item.states, str(item.units), item.when)
                    except Unavailable:
                        with self._lock:
                            self._pending[:0] = pending[i:]
                        raise
                    done += 1
            finally:
                with self._lock:
                    replayed = pending[:done]
                    for item in replayed:
                        for state in item.states:
                            period = (state.budget.name, self._period(state.budget, item.when))
                            self._local_spent[period] = self._local_spent.get(period, 0) - item.units
            return done

    @property
    def pending(self) -> int:
        """Settlements waiting for Redis to come back (a replay running on another thread counts
        until it ends)."""
        self.link.flush()
        with self._replay_lock:
            return len(self._pending)

    # -- reads -------------------------------------------------------------------------------------

    def _figures(self, states: list[_State]) -> list[tuple[Decimal, Decimal]]:
        """(spent, reserved) per budget: the fleet's, or the local view while Redis is unavailable."""
        self.link.flush()  # this process's own settles first
        with self._replay_lock:  # and a replay after an outage, if one is running on another thread
            pass
        now = self._clock()
        try:
            result = self.link.run(_PEEK, *self._peek(states, now))
        except Unavailable:
            return self._figures_here(states, now)
        return self._peeked(states, now, result)

    async def _afigures(self, states: list[_State]) -> list[tuple[Decimal, Decimal]]:
        await self.link.aflush()
        while self._replay_lock.locked():  # a replay running on the flusher thread
            await asyncio.sleep(0.0005)
        now = self._clock()
        try:
            result = await self.link.arun(_PEEK, *self._peek(states, now))
        except Unavailable:
            return self._figures_here(states, now)
        return self._peeked(states, now, result)

    def _peek(self, states: list[_State], now: float) -> tuple[list[str], list[Any]]:
        args: list[Any] = [repr(now), len(states), *(repr(self._window(s.budget)) for s in states)]
        return self._keys(states, now), args

    def _figures_here(self, states: list[_State], now: float) -> list[tuple[Decimal, Decimal]]:
        with self._lock:
            return [
                (
                    from_units(self._spent_here(s.budget, now)),
                    from_units(self._local_reserved.get(s.budget.name, 0)),
                )
                for s in states
            ]

    def _peeked(self, states: list[_State], now: float, result: Any) -> list[tuple[Decimal, Decimal]]:
        with self._lock:
            for i, state in enumerate(states):
                self._seen(state, now, int(result[2 * i]), int(result[2 * i + 1]))
        return [(from_units(result[2 * i]), from_units(result[2 * i + 1])) for i in range(len(states))]

    def _rooms(self, states: list[_State]) -> list[tuple[_State, Decimal, Decimal, Decimal]]:
        return _rooms(states, self._figures(states))

    async def _arooms(self, states: list[_State]) -> list[tuple[_State, Decimal, Decimal, Decimal]]:
        return _rooms(states, await self._afigures(states))

    def _exactly(self, scope: str | Scope) -> list[_State]:
        wanted = Scope.parse(scope)
        return [s for s in self._states if s.budget.scope == wanted]

    def remaining(self, scope: str | Scope) -> Decimal | None:
        return min((room for *_, room in self._rooms(self._exactly(scope))), default=None)

    def limit(self, scope: str | Scope) -> Decimal | None:
        rooms = self._rooms(self._exactly(scope))
        return min(rooms, key=lambda r: r[3])[0].budget.limit if rooms else None

    def spent(self, scope: str | Scope) -> Decimal | None:
        rooms = self._rooms(self._exactly(scope))
        return min(rooms, key=lambda r: r[3])[1] if rooms else None

    def headroom(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        *,
        hard_only: bool = True,
    ) -> Decimal | None:
        route = RouteHints.coerce(hints)
        facts = CallFacts.of(target)
        states = [
            s
            for s in self._states
            if (s.budget.hard or not hard_only) and s.budget.scope.matches(route, facts)
        ]
        return min((room for *_, room in self._rooms(states)), default=None)

    def status(self) -> list[BudgetStatus]:
        return self._status(self._rooms(list(self._states)))

    async def astatus(self) -> list[BudgetStatus]:
        """`status` on the event loop (the read goes through `redis.asyncio`)."""
        return self._status(await self._arooms(list(self._states)))

    async def aspent(self, scope: str | Scope) -> Decimal | None:
        """`spent` on the event loop."""
        rooms = await self._arooms(self._exactly(scope))
        return min(rooms, key=lambda r: r[3])[1] if rooms else None

    async def aremaining(self, scope: str | Scope) -> Decimal | None:
        """`remaining` on the event loop."""
        return min((room for *_, room in await self._arooms(self._exactly(scope))), default=None)

    def _status(self, rooms: list[tuple[_State, Decimal, Decimal, Decimal]]) -> list[BudgetStatus]:
        now = self._clock()
        return [
            BudgetStatus(
                s.budget,
                spent,
                reserved,
                room,
                s.unpriced,
                period_start(now, s.budget.period) if isinstance(s.budget.period, str) else None,
            )
            for s, spent, reserved, room in rooms
        ]


def _rooms(
    states: list[_State], figures: list[tuple[Decimal, Decimal]]
) -> list[tuple[_State, Decimal, Decimal, Decimal]]:
    return [
        (s, spent, reserved, max(s.budget.limit - spent - reserved, _ZERO))
        for s, (spent, reserved) in zip(states, figures, strict=True)
    ]
