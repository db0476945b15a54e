"""Per-deployment circuit breaking on evidence, and provider-asked pauses.

Two separate things keep calls away from a deployment for a while:

**The breaker** (resilience4j / Polly "advanced" style, per deployment, shared by every caller):
- Each finished attempt is one sample: a success, or a *health failure* (5xx, overloaded, connection
  reset, timeout, malformed answer, broken stream, 404, 409). Concurrent callers' outcomes are samples
  in one window, never a "streak". Errors that say nothing about the deployment's health (400, 413,
  422, a context window, a rejected or truncated answer) and 429s (a request to wait, below) are not
  samples.
- The breaker opens when, over the last `window_s` seconds (30 s), at least `min_samples` (20)
  samples were taken and the share of failures is at least `failure_rate` (50 %).
- It stays open `base_s` (5 s), doubling each time it reopens without a success in between, up to
  `max_s` (60 s). Then it is half-open: at most `probes` (3) attempts at a time may go through; a
  success closes it (and empties the window), a health failure reopens it for the next period.
- Authentication, permission, payment and quota failures (401, 402, 403, 429 `insufficient_quota`)
  are evidence by themselves: one opens the breaker for `auth_s` (300 s).

**Pauses** (a 429 is a request to wait, not a failure): a 429 pauses the deployment for the
`Retry-After` the provider gave (never more than `MAX_WAIT_S`, 60 s: longer, absurd or unparseable
values are capped or ignored where headers are parsed, `llmroute.providers.base.retry_after_seconds`),
or `rate_limit_s` (1 s) when it gave none. Callers wait out a pause (within their deadline) or go to
another target; a pause is never a reason to fail a call while its deadline allows waiting.

Neither makes a call fail by itself: the engine skips a closed-off deployment while another candidate
can take the call, waits for a pause that fits the call's deadline, and when every candidate's breaker
is open it does not trust the marks (Envoy's panic threshold) and sends the call as a probe. See
docs/errors.md.

State lives behind `CooldownStore` (`get` and an atomic `update`); `MemoryStore` keeps it in this
process, and a shared store (Redis, SQLite) can implement the same two methods.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..errors import (
    AuthenticationFailed,
    Conflict,
    MalformedResponse,
    ModelNotFound,
    PaymentRequired,
    PermissionDenied,
    ProviderConnectionError,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
    StreamInterrupted,
)

__all__ = ["MAX_WAIT_S", "Blocked", "CooldownState", "CooldownStore", "Cooldowns", "MemoryStore"]

MAX_WAIT_S = 60.0
"""The longest wait a provider can impose through `Retry-After` or rate-limit reset headers."""


@dataclass(slots=True)
class CooldownState:
    """What is known of one deployment's recent health. Mutated only inside `CooldownStore.update`."""

    until: float = 0.0
    """While the breaker is open, the monotonic time it becomes half-open (0: never opened)."""
    tripped: bool = False
    """The breaker is open or half-open (closed once a success comes back)."""
    streak: int = 0
    """Openings in a row without a success in between (sets the open period)."""
    reason: str = ""
    opened: float = 0.0
    """When the breaker last opened: an attempt that started before is no probe."""
    probes: list[float] = field(default_factory=list)
    """Start times of half-open probes in flight."""
    paused_until: float = 0.0
    """A provider asked callers to wait until this monotonic time (429 Retry-After)."""
    pause_reason: str = ""
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=512))
    """(time, ok) samples, oldest first."""


@dataclass(frozen=True, slots=True)
class Blocked:
    """Why a deployment may not be called right now, and for how long."""

    kind: Literal["open", "paused"]
    """`open`: the breaker holds it out (our inference); `paused`: the provider asked to wait."""
    seconds: float
    """Until it reopens (0 for a half-open breaker whose probes are all in flight)."""
    reason: str

    def describe(self) -> str:
        what = "circuit open" if self.kind == "open" else "rate limited"
        return f"{what}, reopens in {self.seconds:.1f}s ({self.reason})"


class CooldownStore(Protocol):
    """Where breaker and pause state lives. Implementations must be safe under concurrent use.

    - `get(name)`: a snapshot of `name`'s state, or None if nothing was recorded (read-only use).
    - `update(name, change)`: apply `change` to `name`'s state atomically (creating it first),
      return the state after. Every write goes through here, so a shared store only has to make this
      one operation atomic (a lock, a Redis transaction, an SQLite `BEGIN IMMEDIATE`).
    """

    def get(self, name: str) -> CooldownState | None: ...

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState: ...


class MemoryStore:
    """In-process state, guarded by a lock."""

    def __init__(self) -> None:
        self._states: dict[str, CooldownState] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> CooldownState | None:
        return self._states.get(name)

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState:
        with self._lock:
            state = self._states.get(name)
            if state is None:
                state = self._states[name] = CooldownState()
            change(state)
            return state


_LONG = (QuotaExhausted, AuthenticationFailed, PermissionDenied, PaymentRequired)
_HEALTH = (
    ServerError,
    ProviderConnectionError,
    MalformedResponse,
    StreamInterrupted,
    ModelNotFound,
    Conflict,
)


class Cooldowns:
    """The circuit breaker and pauses of every deployment (see the module docstring for the rules).

    Defaults: `failure_rate=0.5`, `window_s=30`, `min_samples=20`, `base_s=5`, `max_s=60`,
    `probes=3`, `auth_s=300`, `rate_limit_s=1`.
    """

    def __init__(
        self,
        store: CooldownStore | None = None,
        *,
        failure_rate: float = 0.5,
        window_s: float = 30.0,
        min_samples: int = 20,
        base_s: float = 5.0,
        max_s: float = 60.0,
        probes: int = 3,
        rate_limit_s: float = 1.0,
        auth_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < failure_rate <= 1 or window_s <= 0 or min_samples < 1 or probes < 1:
            raise ValueError(
                "invalid breaker settings: need 0 < failure_rate <= 1, window_s > 0, "
                "min_samples >= 1, probes >= 1"
            )
        if base_s < 0 or max_s < base_s or rate_limit_s < 0 or auth_s < 0:
            raise ValueError("invalid breaker settings: need 0 <= base_s <= max_s and non-negative periods")
        self.store: CooldownStore = store if store is not None else MemoryStore()
        self.failure_rate = failure_rate
        self.window_s = window_s
        self.min_samples = min_samples
        self.base_s = base_s
        self.max_s = max_s
        self.probes = probes
        self.rate_limit_s = rate_limit_s
        self.auth_s = auth_s
        self.clock = clock

    # -- reading --------------------------------------------------------------------------------

    def blocked(self, name: str) -> Blocked | None:
        """Why `name` may not be called now (without taking a probe slot), or None."""
        state = self.store.get(name)
        if state is None:
            return None
        return self._blocked(state, self.clock())

    def _blocked(self, state: CooldownState, now: float) -> Blocked | None:
        if state.paused_until > now:
            return Blocked("paused", state.paused_until - now, state.pause_reason)
        if not state.tripped:
            return None
        if state.until > now:
            return Blocked("open", state.until - now, state.reason)
        live = [t for t in state.probes if now - t < self.max_s]  # a lost probe frees its slot
        if len(live) >= self.probes:
            return Blocked("open", 0.0, f"half-open, {len(live)} probes in flight; {state.reason}")
        return None

    def cooling_until(self, name: str) -> float | None:
        """The monotonic time `name` reopens (breaker open or paused), or None if it may be called."""
        state = self.store.get(name)
        if state is None:
            return None
        now = self.clock()
        blocked = self._blocked(state, now)
        return None if blocked is None else now + blocked.seconds

    def describe(self, name: str) -> str:
        blocked = self.blocked(name)
        return "available" if blocked is None else blocked.describe()

    # -- admitting an attempt -------------------------------------------------------------------

    def acquire(self, name: str, force: bool = False) -> Blocked | None:
        """Ask to send one attempt to `name` now. None: go (a half-open breaker counts it as a
        probe). Otherwise why not. `force` (every candidate of the call is open: the marks are not
        trusted) lets the attempt through a breaker as a probe; it never overrides a pause."""
        now = self.clock()
        state = self.store.get(name)
        if state is None or (not state.tripped and state.paused_until <= now):
            return None  # the common path: no lock
        verdict: list[Blocked | None] = [None]

        def take(s: CooldownState) -> None:
            blocked = self._blocked(s, now)
            if blocked is not None and not (force and blocked.kind == "open"):
                verdict[0] = blocked
                return
            if s.tripped:
                s.probes = [t for t in s.probes if now - t < self.max_s]
                s.probes.append(now)

        self.store.update(name, take)
        return verdict[0]

    # -- recording outcomes ---------------------------------------------------------------------

    def observe(self, name: str, error: ProviderError | None, latency_s: float = 0.0) -> None:
        """Record one attempt's outcome at `name`; it took `latency_s`. An attempt that started
        before the breaker opened is a sample, never a probe: its answer does not close (or
        reopen) a half-open breaker."""
        now = self.clock()
        started = now - max(latency_s, 0.0)
        if error is None:
            self.store.update(name, lambda s: self._success(s, now, started))
        elif isinstance(error, _LONG):
            self.store.update(
                name, lambda s: self._open(s, now, self.auth_s, type(error).__name__, long=True)
            )
        elif isinstance(error, RateLimited):
            wait = error.retry_after if error.retry_after is not None else self.rate_limit_s
            wait = min(max(wait, 0.0), MAX_WAIT_S)
            asked = "provider asked" if error.retry_after is not None else "no Retry-After, default"
            self.store.update(name, lambda s: _pause(s, now + wait, f"429, {asked} {wait:g}s"))
        elif isinstance(error, _HEALTH):
            self.store.update(name, lambda s: self._failure(s, now, type(error).__name__, started))

    def _failure(self, state: CooldownState, now: float, reason: str, started: float) -> None:
        state.recent.append((now, False))
        if state.tripped:
            if started >= state.opened and (state.until <= now or state.probes):  # a probe failed
                self._open(state, now, self._period(state), f"probe failed ({reason})")
            return
        horizon = now - self.window_s
        while state.recent and state.recent[0][0] < horizon:
            state.recent.popleft()
        total = len(state.recent)
        if total < self.min_samples:
            return
        failed = sum(1 for _, ok in state.recent if not ok)
        if failed / total >= self.failure_rate:
            self._open(
                state,
                now,
                self._period(state),
                f"{failed} of {total} attempts failed in {self.window_s:g}s, last {reason}",
            )

    @staticmethod
    def _success(state: CooldownState, now: float, started: float) -> None:
        if state.tripped and started >= state.opened and (state.until <= now or state.probes):
            # a probe went out (half-open, or forced) and it answers again: close, and forget the
            # failures that opened it
            state.tripped = False
            state.until = 0.0
            state.streak = 0
            state.probes = []
            state.recent.clear()
        state.recent.append((now, True))  # while still open (an attempt started before), just a sample

    def _period(self, state: CooldownState) -> float:
        return min(self.max_s, self.base_s * 2.0 ** min(state.streak, 32))

    @staticmethod
    def _open(state: CooldownState, now: float, period: float, reason: str, long: bool = False) -> None:
        until = now + period
        if state.tripped and state.until > until:
            return  # an opening never shortens the current one
        state.tripped = True
        state.until = until
        state.opened = now
        state.reason = reason
        state.probes = []
        if not long:
            state.streak += 1


def _pause(state: CooldownState, until: float, reason: str) -> None:
    if until > state.paused_until:  # pauses only ever move later
        state.paused_until = until
        state.pause_reason = reason
