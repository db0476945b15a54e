"""Live observations per target: recent failures and latency, for policies to read.

Latency is an exponentially weighted moving average with a half-life counted in observations:
after `half_life` new observations an old one weighs half as much. Streams report raw time to first
token (never TTFT divided by tokens); non-streaming calls report full latency.

State lives behind `HealthStore` (`get` and `observe`); `MemoryHealthStore` keeps it in this process,
and a shared store makes every process's policies see the whole fleet's observations
(`llmroute.fleet.health.RedisHealthStore`, what `Router(state=...)` uses).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Health", "HealthStore", "MemoryHealthStore", "TargetHealth"]


@dataclass(slots=True)
class TargetHealth:
    """What has been observed of one target."""

    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    latency_s: float | None = None
    ttft_s: float | None = None
    last_error: str | None = None


class HealthStore(Protocol):
    """Where observations live. Implementations must be safe under concurrent use.

    - `get(name)`: a snapshot of what is known of `name`, or None if nothing was observed.
    - `observe(name, ...)`: count one attempt; a success moves the latency averages towards
      `latency_s` / `ttft_s` by `alpha` (the first one sets them).
    """

    def get(self, name: str) -> TargetHealth | None: ...

    def observe(
        self,
        name: str,
        *,
        ok: bool,
        latency_s: float,
        ttft_s: float | None,
        error: str | None,
        alpha: float,
    ) -> None: ...


class MemoryHealthStore:
    """Observations in this process."""

    def __init__(self) -> None:
        self._targets: dict[str, TargetHealth] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TargetHealth | None:
        with self._lock:
            state = self._targets.get(name)
            return None if state is None else dataclasses.replace(state)

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
        with self._lock:
            state = self._targets.setdefault(name, TargetHealth())
            if ok:
                state.successes += 1
                state.consecutive_failures = 0
                state.latency_s = _ewma(state.latency_s, latency_s, alpha)
                if ttft_s is not None:
                    state.ttft_s = _ewma(state.ttft_s, ttft_s, alpha)
            else:
                state.failures += 1
                state.consecutive_failures += 1
                state.last_error = error


class Health:
    """Per-target observations, updated after every attempt. Thread-safe. `store`: where they live
    (default: this process)."""

    def __init__(self, half_life: float = 10.0, store: HealthStore | None = None) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self._alpha = 1.0 - math.pow(0.5, 1.0 / half_life)
        self.store: HealthStore = store if store is not None else MemoryHealthStore()

    def get(self, name: str) -> TargetHealth:
        """A copy of what is known of `name` (zeros if never seen)."""
        state = self.store.get(name)
        return TargetHealth() if state is None else state

    def observe(
        self, name: str, *, ok: bool, latency_s: float, ttft_s: float | None = None, error: str | None = None
    ) -> None:
        self.store.observe(name, ok=ok, latency_s=latency_s, ttft_s=ttft_s, error=error, alpha=self._alpha)


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else old + alpha * (new - old)
