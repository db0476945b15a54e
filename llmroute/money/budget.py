"""Budgets: spending limits on any scope, checked before each attempt and settled after it.

```python
budgets = Budgets([
    Budget("50", period="month"),                                  # global, hard
    Budget("5", scope="task:code_review", period="day", soft_at=0.8, on_soft=page_me),
    Budget("200", scope="provider:openai", period=7 * 86400),      # a rolling 7-day window
    Budget("1", scope="user:alice", hard=False),                   # lifetime, warn only
])
budgets.watch(router.ledger)   # spend recorded by any router on that ledger counts
with budgets.reserve(hints, target, estimated_cost) as reservation:
    ...  # the attempt
    reservation.settle(row.cost)
```

Scopes: `global`; a hint value `task:X`, `tag:X`, `user:X`, `budget:X` (the `budget=` hint names a
budget), `extra:KEY=VALUE` (a key of `hints.extra`); a `model:X` (catalog id or API name),
`provider:X` or `deployment:X`. A call is charged to every budget whose scope it matches.

Periods: `"day"`, `"week"` (ISO, from Monday) and `"month"` are calendar periods in UTC, and spend
resets when a new one starts; a number (or `timedelta`) is a rolling window of that many seconds;
`None` is a lifetime limit.

Semantics at the limit (hard budgets), exactly:
- `reserve` refuses a call, raising `OverBudget` (a `llmroute.errors.BudgetExceeded`), when
  `spent + reserved + estimate > limit` for any matching hard budget, where `spent` is the settled
  spend of the current period and `reserved` the estimates of calls admitted and still in flight.
  A call that brings the total exactly to the limit is admitted. All matching budgets are checked and
  reserved under one lock, all or nothing.
- `settle` replaces the call's reservation by its actual cost. Spend never decreases: a negative
  amount counts 0, and a row whose usage the provider reported impossibly (`Usage.suspect`: clamped
  and flagged) is charged at least the reservation's estimate, so it cannot give a budget room.
  Actual costs can differ from estimates, so spend can end above a limit, by at most the sum of
  (actual - estimate) over the calls admitted while it was under it: with exact estimates, never.
  Once `spent` is at or past a limit, every call with a positive estimate is refused; a zero
  estimate is refused only when `spent` is past the limit.
- `release` (or leaving the `with` block without settling) drops a reservation that billed nothing.
  Settling or releasing twice is a no-op. A reservation neither settled nor released within
  `reservation_ttl` seconds (an abandoned stream) is dropped and counted in `expired`.
- Unpriced calls (estimate `None`): admitted and counted in `unpriced` by default
  (`unpriced="allow"`), or refused by any hard budget they match (`unpriced="refuse"`).

Soft limits: when a period's spend first reaches `soft_at * limit`, `on_soft(alert)` is called once
(for a budget with `hard=False`, again when spend reaches the limit), outside the lock, on the thread
that recorded the spend; without a callback the alert is logged as a warning on `llmroute.money.budget`.

Thread- and asyncio-safe: one lock held for microseconds, never across an await.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from ..errors import BudgetExceeded, ConfigurationError
from ..hinting import RouteHints
from ..usage import Cost

if TYPE_CHECKING:
    from ..request import ChatRequest
    from ..target import Target
    from .ledger import Ledger, LedgerRow

__all__ = [
    "Budget",
    "BudgetAlert",
    "BudgetStatus",
    "Budgets",
    "CallFacts",
    "OverBudget",
    "Reservation",
    "Scope",
    "SpendView",
]

log = logging.getLogger("llmroute.money.budget")

Period = Literal["day", "week", "month"] | float | int | dt.timedelta | None
ScopeKind = Literal["global", "task", "tag", "user", "budget", "extra", "model", "provider", "deployment"]
_KINDS: frozenset[str] = frozenset(
    {"global", "task", "tag", "user", "budget", "extra", "model", "provider", "deployment"}
)
_ZERO = Decimal(0)


class SpendView(Protocol):
    """What a budget-aware policy reads: the room left under a scope's limits (None: no limit)."""

    def remaining(self, scope: str) -> Decimal | None: ...

    def limit(self, scope: str) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class CallFacts:
    """Where a call goes, for scopes on models, providers and deployments."""

    model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    api_name: str | None = None

    @classmethod
    def of(cls, value: Target | LedgerRow | CallFacts | Mapping[str, str] | None) -> CallFacts:
        """From a policy `Target`, a `LedgerRow`, a mapping of these names, or None."""
        if value is None:
            return _NO_FACTS
        if isinstance(value, CallFacts):
            return value
        if isinstance(value, Mapping):
            return cls(
                value.get("model"), value.get("provider"), value.get("deployment"), value.get("api_name")
            )
        model = getattr(value, "model", None)
        if isinstance(model, str):  # a LedgerRow
            return cls(model, getattr(value, "provider", None), getattr(value, "deployment", None))
        deployment = getattr(value, "deployment", None)
        provider = getattr(value, "provider", None)
        return cls(  # a Target
            getattr(model, "id", None),
            getattr(provider, "name", None),
            getattr(deployment, "name", None),
            getattr(value, "api_name", None),
        )


_NO_FACTS = CallFacts()


@dataclass(frozen=True, slots=True)
class Scope:
    """What a budget covers, parsed from `"global"`, `"task:code_review"`, `"extra:team=payments"`..."""

    kind: ScopeKind
    value: str | None = None

    @classmethod
    def parse(cls, text: str | Scope) -> Scope:
        if isinstance(text, Scope):
            return text
        if text in ("global", "*", ""):
            return cls("global")
        kind, sep, value = text.partition(":")
        if not sep or kind not in _KINDS or kind == "global" or not value:
            raise ConfigurationError(
                f"budget scope {text!r}: expected 'global' or KIND:VALUE with KIND one of "
                f"{sorted(_KINDS - {'global'})}"
            )
        if kind == "extra" and "=" not in value:
            raise ConfigurationError(f"budget scope {text!r}: expected extra:KEY=VALUE")
        return cls(kind, value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "global" if self.kind == "global" else f"{self.kind}:{self.value}"

    def matches(self, hints: RouteHints, facts: CallFacts) -> bool:
        kind, value = self.kind, self.value
        if kind == "global":
            return True
        if kind == "task":
            return hints.task == value
        if kind == "tag":
            return value in hints.tags
        if kind == "user":
            return hints.user == value
        if kind == "budget":
            return hints.budget == value
        if kind == "extra":
            key, _, wanted = (value or "").partition("=")
            return key in hints.extra and str(hints.extra[key]) == wanted
        if kind == "model":
            return value is not None and value in (facts.model, facts.api_name)
        if kind == "provider":
            return facts.provider == value
        return facts.deployment == value


def _decimal(where: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConfigurationError(f"{where}: expected a number, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as e:
        raise ConfigurationError(f"{where}: not a number: {value!r}") from e
    if not number.is_finite() or number < 0:
        raise ConfigurationError(f"{where}: must be a finite non-negative number, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """Passed to `on_soft`: `level` is "soft" (spend reached `soft_at * limit`) or "limit"."""

    budget: Budget
    level: Literal["soft", "limit"]
    spent: Decimal
    limit: Decimal
    period_start: float | None

    def __str__(self) -> str:
        what = "soft limit" if self.level == "soft" else "limit"
        return f"budget {self.budget.name!r}: {what} reached, spent {self.spent} of {self.limit}"


@dataclass(frozen=True, slots=True, init=False)
class Budget:
    """A spending limit (in the price currency, USD by default). See the module docstring."""

    limit: Decimal
    scope: Scope = field(default_factory=lambda: Scope("global"))
    period: Literal["day", "week", "month"] | float | None = None
    hard: bool = True
    soft_at: Decimal | None = Decimal("0.8")
    on_soft: Callable[[BudgetAlert], None] | None = field(default=None, compare=False)
    name: str = ""

    def __init__(
        self,
        limit: Decimal | str | int | float,
        scope: str | Scope = "global",
        period: Period = None,
        *,
        hard: bool = True,
        soft_at: Decimal | str | float | None = Decimal("0.8"),
        on_soft: Callable[[BudgetAlert], None] | None = None,
        name: str | None = None,
    ) -> None:
        s = object.__setattr__
        parsed = Scope.parse(scope)
        s(self, "limit", _decimal("budget limit", limit))
        s(self, "scope", parsed)
        if isinstance(period, dt.timedelta):
            period = period.total_seconds()
        if isinstance(period, bool) or not (
            period is None
            or period in ("day", "week", "month")
            or (isinstance(period, int | float) and period > 0)
        ):
            raise ConfigurationError(
                f"budget period {period!r}: expected 'day', 'week', 'month', seconds > 0 or None"
            )
        s(self, "period", period)
        s(self, "hard", bool(hard))
        share = None if soft_at is None else _decimal("budget soft_at", soft_at)
        if share is not None and share > 1:
            raise ConfigurationError(f"budget soft_at {soft_at!r}: expected a share between 0 and 1")
        s(self, "soft_at", share)
        s(self, "on_soft", on_soft)
        s(self, "name", name or (str(parsed) if period is None else f"{parsed}/{_period_name(period)}"))

    @property
    def rolling(self) -> bool:
        return isinstance(self.period, int | float)


def _period_name(period: Period) -> str:
    if isinstance(period, str):
        return period
    if isinstance(period, int | float):
        return f"{period:g}s"
    return "lifetime"


def period_start(when: float, unit: str) -> float:
    """The start (epoch seconds) of the UTC calendar day, ISO week or month containing `when`."""
    moment = dt.datetime.fromtimestamp(when, dt.UTC)
    day = dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC)
    if unit == "day":
        return day.timestamp()
    if unit == "week":
        return (day - dt.timedelta(days=day.weekday())).timestamp()
    return dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC).timestamp()


class _State:
    """One budget's running figures. Guarded by the owning `Budgets`' lock."""

    __slots__ = ("budget", "events", "limit_fired", "reserved", "soft_fired", "spent", "start", "unpriced")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.spent = _ZERO
        self.reserved = _ZERO
        self.unpriced = 0
        self.start: float | None = None
        self.events: deque[tuple[float, Decimal]] = deque()
        self.soft_fired = False
        self.limit_fired = False

    def roll(self, now: float) -> None:
        """Bring the period up to `now`: a new calendar period starts at zero; a rolling window drops
        spend older than its length."""
        period = self.budget.period
        if period is None:
            return
        if isinstance(period, str):
            start = period_start(now, period)
            if self.start is None or start > self.start:
                if self.start is not None:
                    self.spent, self.unpriced = _ZERO, 0
                    self.soft_fired = self.limit_fired = False
                self.start = start
            return
        horizon = now - float(period)
        events = self.events
        while events and events[0][0] <= horizon:
            self.spent -= events.popleft()[1]
        if not events:
            self.spent = _ZERO  # exact anyway; also resets the alerts once the window is clear
            self.soft_fired = self.limit_fired = False

    def charge(self, amount: Decimal | None, when: float, alerts: list[BudgetAlert]) -> None:
        period = self.budget.period
        if isinstance(period, str):
            self.roll(when)
            if self.start is not None and period_start(when, period) < self.start:
                return  # spend of a period that has ended (a late row): not this period's
        if amount is None:
            self.unpriced += 1
            return
        if isinstance(period, int | float):
            self.events.append((when, amount))
        self.spent += amount
        budget = self.budget
        limit = budget.limit
        if not self.soft_fired and budget.soft_at is not None and self.spent >= budget.soft_at * limit:
            self.soft_fired = True
            alerts.append(BudgetAlert(budget, "soft", self.spent, limit, self.start))
        if not budget.hard and not self.limit_fired and self.spent >= limit:
            self.limit_fired = True
            alerts.append(BudgetAlert(budget, "limit", self.spent, limit, self.start))

    def remaining(self) -> Decimal:
        return max(self.budget.limit - self.spent - self.reserved, _ZERO)


class OverBudget(BudgetExceeded):
    """A call would cross a hard budget. `scope`, `spent` (settled), `limit`, `estimate` as in
    `BudgetExceeded`; also `reserved` (in flight), `budget` and `period_start`."""

    def __init__(self, budget: Budget, spent: Decimal, reserved: Decimal, estimate: Decimal | None) -> None:
        super().__init__(str(budget.scope), spent, budget.limit, estimate)
        self.budget = budget
        self.reserved = reserved
        what = "an unpriced call" if estimate is None else f"estimated {_plain(estimate)}"
        self.args = (
            f"budget {budget.name!r} exceeded: spent {_plain(spent)} + in flight {_plain(reserved)} + "
            f"{what} > limit {_plain(budget.limit)}",
        )


def _plain(value: Decimal) -> str:
    """`0.002915`, `0`, `100`: no exponents, no trailing zeros."""
    return f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A snapshot of one budget."""

    budget: Budget
    spent: Decimal
    reserved: Decimal
    remaining: Decimal
    unpriced: int
    period_start: float | None


class Reservation:
    """An admitted call's estimate, held until `settle(actual)` or `release()`.

    Use as a context manager: leaving the block without settling releases it (the attempt failed
    before anything was billed)."""

    __slots__ = ("_owner", "_states", "amount", "created", "done", "key")

    def __init__(
        self, owner: Budgets, states: tuple[_State, ...], amount: Decimal, key: Any, created: float
    ) -> None:
        self._owner = owner
        self._states = states
        self.amount = amount
        self.key = key
        self.created = created
        self.done = False

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(s.budget.name for s in self._states)

    def settle(self, actual: Decimal | Cost | LedgerRow | None) -> None:
        self._owner.settle(self, actual)

    def release(self) -> None:
        self._owner.release(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.done:
            self.release()


def _amount(actual: Decimal | Cost | LedgerRow | None) -> Decimal | None:
    """What an attempt spent, never negative (spend only grows: a negative or NaN amount counts 0)."""
    if actual is None:
        return None
    if isinstance(actual, Decimal):
        amount = actual
    elif isinstance(actual, Cost):
        amount = actual.total
    else:
        cost = actual.cost
        if cost is None:
            return None if actual.usage.total_tokens else _ZERO  # a failed attempt that billed nothing
        amount = cost.total
    return amount if amount.is_finite() and amount > 0 else _ZERO


def _suspect(actual: Decimal | Cost | LedgerRow | None) -> bool:
    """A row whose usage the provider reported impossibly (`Usage.suspect`): its cost is a guess."""
    usage = getattr(actual, "usage", None)
    return usage is not None and usage.raw is not None


class Budgets:
    """A set of budgets and their running spend. Share one between routers to pool a limit.

    - `unpriced`: "allow" (default) or "refuse" calls whose cost cannot be estimated (see above).
    - `reservation_ttl`: seconds after which a forgotten reservation stops holding room.
    - `clock`: epoch seconds now (tests pass a fake clock; no sleeping needed).
    """

    def __init__(
        self,
        budgets: Iterable[Budget] = (),
        *,
        unpriced: Literal["allow", "refuse"] = "allow",
        reservation_ttl: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if unpriced not in ("allow", "refuse"):
            raise ConfigurationError(f"unpriced={unpriced!r}: expected 'allow' or 'refuse'")
        self._lock = threading.Lock()
        self._states: list[_State] = []
        self._unpriced = unpriced
        self._ttl = reservation_ttl
        self._clock = clock
        self._open: OrderedDict[int, Reservation] = OrderedDict()
        self._by_key: dict[Any, Reservation] = {}
        self._settled_keys: OrderedDict[Any, None] = OrderedDict()
        self._watched: list[Ledger] = []
        self.expired = 0
        """Reservations dropped after `reservation_ttl`."""
        for budget in budgets:
            self.add(budget)

    def add(self, budget: Budget) -> None:
        if not isinstance(budget, Budget):
            raise ConfigurationError(f"expected a Budget, got {type(budget).__name__}")
        with self._lock:
            self._states = [*self._states, _State(budget)]

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return tuple(s.budget for s in self._states)

    # -- before and after an attempt ---------------------------------------------------------------

    def reserve(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        estimated_cost: Decimal | None = _ZERO,
        *,
        key: Any = None,
    ) -> Reservation:
        """Admit a call and hold its estimate, or raise `OverBudget` (see the module docstring).

        `key`: an id of the attempt, `(call_id, attempt)`; the ledger row with that call id and attempt
        number settles this reservation by itself when this object `watch`es the ledger."""
        route = RouteHints.coerce(hints)
        facts = CallFacts.of(target)
        amount = _ZERO if estimated_cost is None else estimated_cost
        now = self._clock()
        with self._lock:
            self._expire(now)
            matched = tuple(s for s in self._states if s.budget.scope.matches(route, facts))
            for state in matched:
                state.roll(now)
            for state in matched:
                budget = state.budget
                if not budget.hard:
                    continue
                if estimated_cost is None and self._unpriced == "refuse":
                    raise OverBudget(budget, state.spent, state.reserved, None)
                if state.spent + state.reserved + amount > budget.limit:
                    raise OverBudget(budget, state.spent, state.reserved, estimated_cost)
            for state in matched:
                state.reserved += amount
            reservation = Reservation(self, matched, amount, key, now)
            self._open[id(reservation)] = reservation
            if key is not None:
                self._by_key[key] = reservation
        return reservation

    def reserve_for(
        self, request: ChatRequest, target: Target, *, key: Any = None, cache_read_share: float = 0.0
    ) -> Reservation:
        """`reserve` with the estimated cost of `request` on `target` (`llmroute.money.estimate`)."""
        from .estimate import estimate_cost

        estimate = estimate_cost(request, target, cache_read_share=cache_read_share).cost
        return self.reserve(request.hints, target, estimate, key=key)

    async def areserve(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        estimated_cost: Decimal | None = _ZERO,
        *,
        key: Any = None,
    ) -> Reservation:
        """`reserve` for the event loop: what `AsyncRouter` calls. In one process it never waits on
        I/O; a store shared by a fleet (`llmroute.fleet.budgets.RedisBudgets`) awaits its round trip."""
        return self.reserve(hints, target, estimated_cost, key=key)

    async def areserve_for(
        self, request: ChatRequest, target: Target, *, key: Any = None, cache_read_share: float = 0.0
    ) -> Reservation:
        """`reserve_for` for the event loop (see `areserve`)."""
        from .estimate import estimate_cost

        estimate = estimate_cost(request, target, cache_read_share=cache_read_share).cost
        return await self.areserve(request.hints, target, estimate, key=key)

    def settle(self, reservation: Reservation, actual: Decimal | Cost | LedgerRow | None) -> None:
        """Replace the reservation by the actual cost (a `Decimal`, a `Cost`, the attempt's
        `LedgerRow`, or None when unpriced). A no-op if already settled or released."""
        amount = _amount(actual)
        if amount is not None and _suspect(actual):
            amount = max(amount, reservation.amount)  # a suspect row never gives room back
        alerts: list[BudgetAlert] = []
        with self._lock:
            if reservation.done:
                return
            self._close(reservation)
            now = self._clock()
            for state in reservation._states:
                state.charge(amount, now, alerts)
            if reservation.key is not None and self._watched:
                self._remember_settled(reservation.key)
        self._alert(alerts)

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation without charging anything. A no-op if already settled or released."""
        with self._lock:
            if not reservation.done:
                self._close(reservation)

    def _close(self, reservation: Reservation) -> None:
        reservation.done = True
        for state in reservation._states:
            state.reserved -= reservation.amount
        self._open.pop(id(reservation), None)
        if reservation.key is not None and self._by_key.get(reservation.key) is reservation:
            del self._by_key[reservation.key]

    def _expire(self, now: float) -> None:
        horizon = now - self._ttl
        while self._open:
            oldest = next(iter(self._open.values()))
            if oldest.created > horizon:
                break
            self._close(oldest)
            self.expired += 1
            log.warning("budget reservation %r expired unsettled after %ss", oldest.key, self._ttl)

    def _remember_settled(self, key: Any) -> None:
        self._settled_keys[key] = None
        while len(self._settled_keys) > 100_000:
            self._settled_keys.popitem(last=False)

    # -- spend recorded elsewhere ------------------------------------------------------------------

    def watch(self, ledger: Ledger) -> None:
        """Count every row recorded on `ledger` (any router using it). A row whose
        `(call_id, attempt)` is the key of an open reservation settles it; a row for an attempt
        already settled here is not counted twice."""
        ledger.subscribe(self.observe)
        self._watched.append(ledger)

    def unwatch(self, ledger: Ledger) -> None:
        ledger.unsubscribe(self.observe)
        self._watched = [x for x in self._watched if x is not ledger]

    def observe(self, row: LedgerRow) -> None:
        """Charge one recorded attempt (the `Ledger.subscribe` listener)."""
        amount = _amount(row)
        key = (row.call_id, row.attempt)
        alerts: list[BudgetAlert] = []
        with self._lock:
            reservation = self._by_key.get(key)
            if reservation is not None and not reservation.done:
                if amount is not None and _suspect(row):
                    amount = max(amount, reservation.amount)  # a suspect row never gives room back
                self._close(reservation)
                now = self._clock()
                for state in reservation._states:
                    state.charge(amount, now, alerts)
            elif key in self._settled_keys:
                del self._settled_keys[key]
            else:
                facts = CallFacts.of(row)
                for state in self._states:
                    if state.budget.scope.matches(row.hints, facts):
                        state.charge(amount, row.timestamp, alerts)
        self._alert(alerts)

    def _alert(self, alerts: list[BudgetAlert]) -> None:
        for alert in alerts:
            callback = alert.budget.on_soft
            if callback is None:
                log.warning("%s", alert)
            else:
                callback(alert)

    # -- the read-only view policies use --------------------------------------------------------------

    def _for_scope(self, scope: str | Scope) -> list[_State]:
        wanted = Scope.parse(scope)
        now = self._clock()
        states = [s for s in self._states if s.budget.scope == wanted]
        for state in states:
            state.roll(now)
        return states

    def remaining(self, scope: str | Scope) -> Decimal | None:
        """Room left under the tightest budget on exactly this scope (limit - spent - in flight,
        never below 0), or None if no budget has this scope."""
        with self._lock:
            states = self._for_scope(scope)
            return min((s.remaining() for s in states), default=None)

    def limit(self, scope: str | Scope) -> Decimal | None:
        """The limit of the tightest budget on this scope (the one with the least room left)."""
        with self._lock:
            states = self._for_scope(scope)
            if not states:
                return None
            return min(states, key=lambda s: s.remaining()).budget.limit

    def spent(self, scope: str | Scope) -> Decimal | None:
        """Settled spend in the current period of the tightest budget on this scope."""
        with self._lock:
            states = self._for_scope(scope)
            if not states:
                return None
            return min(states, key=lambda s: s.remaining()).spent

    def headroom(
        self,
        hints: RouteHints | Mapping[str, Any] | None,
        target: Target | LedgerRow | CallFacts | Mapping[str, str] | None = None,
        *,
        hard_only: bool = True,
    ) -> Decimal | None:
        """The least room left over every budget this call would be charged to (None: no limit)."""
        route = RouteHints.coerce(hints)
        facts = CallFacts.of(target)
        now = self._clock()
        with self._lock:
            rooms = []
            for state in self._states:
                if (state.budget.hard or not hard_only) and state.budget.scope.matches(route, facts):
                    state.roll(now)
                    rooms.append(state.remaining())
            return min(rooms, default=None)

    def status(self) -> list[BudgetStatus]:
        """A snapshot of every budget."""
        now = self._clock()
        with self._lock:
            out = []
            for state in self._states:
                state.roll(now)
                out.append(
                    BudgetStatus(
                        state.budget,
                        state.spent,
                        state.reserved,
                        state.remaining(),
                        state.unpriced,
                        state.start,
                    )
                )
            return out

    async def astatus(self) -> list[BudgetStatus]:
        """`status` for the event loop (see `areserve`)."""
        return self.status()

    async def aspent(self, scope: str | Scope) -> Decimal | None:
        """`spent` for the event loop (see `areserve`)."""
        return self.spent(scope)

    async def aremaining(self, scope: str | Scope) -> Decimal | None:
        """`remaining` for the event loop (see `areserve`)."""
        return self.remaining(scope)

    def _after_fork_in_child(self) -> None:
        """In a forked child (called by the router's reset, `llmroute._fork`): a free lock, and no
        reservations of the parent's calls in flight at the fork (they will never settle here)."""
        from .._fork import reinit_lock

        reinit_lock(self._lock)
        for reservation in list(self._open.values()):
            self._close(reservation)

    @property
    def in_flight(self) -> int:
        """Reservations neither settled nor released."""
        return len(self._open)
