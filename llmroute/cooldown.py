"""Per-deployment cooldowns: stop calling a target that is failing, for a while.

A target cools down
- immediately on a 429 for the period the provider asked (`Retry-After`), or `rate_limit_s`;
- for `auth_s` (long) on authentication, permission, payment and quota failures;
- after `failures` consecutive failures, or when the failure rate over the last `window_s` seconds
  exceeds `failure_rate` (with at least `min_samples` attempts), for `base_s`, doubling for each
  cooldown in a row up to `max_s`.
When a cooldown ends the target is half-open: the next attempt is a probe; success closes it, failure
cools it again (for longer). A new cooldown never shortens an existing one: deadlines only move later.

State lives in a `CooldownStore`; `MemoryStore` keeps it in this process. A shared store (Redis,
SQLite) can implement the same four methods to make cooldowns hold across processes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import (
    AuthenticationFailed,
    PaymentRequired,
    PermissionDenied,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)

__all__ = ["CooldownState", "CooldownStore", "Cooldowns", "MemoryStore"]


@dataclass(slots=True)
class CooldownState:
    """What is known of one target's recent failures."""

    until: float = 0.0
    consecutive: int = 0
    streak: int = 0
    """Cooldowns in a row without a success in between (sets the backoff)."""
    reason: str = ""
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=256))


class CooldownStore(Protocol):
    """Where cooldown state lives. Implementations must be safe under concurrent use."""

    def get(self, name: str) -> CooldownState | None: ...

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState: ...


class MemoryStore:
    """In-process cooldown state, guarded by a lock."""

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


class Cooldowns:
    """Decides when a target cools down and whether it is available now."""

    def __init__(
        self,
        store: CooldownStore | None = None,
        *,
        failures: int = 3,
        failure_rate: float = 0.5,
        window_s: float = 60.0,
        min_samples: int = 10,
        base_s: float = 5.0,
        max_s: float = 300.0,
        rate_limit_s: float = 5.0,
        auth_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or not 0 < failure_rate <= 1 or window_s <= 0 or base_s < 0 or max_s < base_s:
            raise ValueError("invalid cooldown settings")
        self.store: CooldownStore = store if store is not None else MemoryStore()
        self.failures = failures
        self.failure_rate = failure_rate
        self.window_s = window_s
        self.min_samples = min_samples
        self.base_s = base_s
        self.max_s = max_s
        self.rate_limit_s = rate_limit_s
        self.auth_s = auth_s
        self.clock = clock

    def cooling_until(self, name: str) -> float | None:
        """The monotonic deadline of `name`'s cooldown, or None if it may be called now."""
        state = self.store.get(name)
        if state is None or state.until <= self.clock():
            return None
        return state.until

    def describe(self, name: str) -> str:
        state = self.store.get(name)
        until = self.cooling_until(name)
        if state is None or until is None:
            return "available"
        return f"cooling down for {until - self.clock():.1f}s more ({state.reason})"

    def observe(self, name: str, error: ProviderError | None) -> None:
        """Record one attempt's outcome at `name`."""
        now = self.clock()
        if error is None:
            self.store.update(name, lambda s: _success(s, now))
            return
        self.store.update(name, lambda s: self._failure(s, error, now))

    def _failure(self, state: CooldownState, error: ProviderError, now: float) -> None:
        state.recent.append((now, False))
        state.consecutive += 1
        reason = type(error).__name__
        if isinstance(error, QuotaExhausted | AuthenticationFailed | PermissionDenied | PaymentRequired):
            self._extend(state, now + self.auth_s, reason)
        elif isinstance(error, RateLimited):
            wait = error.retry_after if error.retry_after is not None else self.rate_limit_s
            self._extend(state, now + wait, f"{reason}, provider asked {wait:g}s")
        elif state.consecutive >= self.failures or self._rate_exceeded(state, now):
            period = min(self.max_s, self.base_s * 2.0 ** min(state.streak, 32))
            self._extend(state, now + period, f"{state.consecutive} failures in a row, last {reason}")

    def _rate_exceeded(self, state: CooldownState, now: float) -> bool:
        recent = [ok for t, ok in state.recent if now - t <= self.window_s]
        if len(recent) < self.min_samples:
            return False
        return recent.count(False) / len(recent) > self.failure_rate

    @staticmethod
    def _extend(state: CooldownState, until: float, reason: str) -> None:
        if until > state.until:  # deadlines only ever move later
            state.until = until
            state.reason = reason
            state.streak += 1


def _success(state: CooldownState, now: float) -> None:
    state.recent.append((now, True))
    state.consecutive = 0
    state.streak = 0
