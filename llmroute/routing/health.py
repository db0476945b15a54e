"""Live observations per target: recent failures and latency, for policies to read.

Latency is an exponentially weighted moving average with a half-life counted in observations:
after `half_life` new observations an old one weighs half as much. Streams report raw time to first
token (never TTFT divided by tokens); non-streaming calls report full latency.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

__all__ = ["Health", "TargetHealth"]


@dataclass(slots=True)
class TargetHealth:
    """What has been observed of one target."""

    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    latency_s: float | None = None
    ttft_s: float | None = None
    last_error: str | None = None


class Health:
    """Per-target observations, updated after every attempt. Thread-safe."""

    def __init__(self, half_life: float = 10.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self._alpha = 1.0 - math.pow(0.5, 1.0 / half_life)
        self._targets: dict[str, TargetHealth] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TargetHealth:
        """A copy of what is known of `name` (zeros if never seen)."""
        with self._lock:
            state = self._targets.get(name)
            return TargetHealth() if state is None else dataclasses.replace(state)

    def observe(
        self, name: str, *, ok: bool, latency_s: float, ttft_s: float | None = None, error: str | None = None
    ) -> None:
        with self._lock:
            state = self._targets.setdefault(name, TargetHealth())
            if ok:
                state.successes += 1
                state.consecutive_failures = 0
                state.latency_s = self._ewma(state.latency_s, latency_s)
                if ttft_s is not None:
                    state.ttft_s = self._ewma(state.ttft_s, ttft_s)
            else:
                state.failures += 1
                state.consecutive_failures += 1
                state.last_error = error

    def _ewma(self, old: float | None, new: float) -> float:
        return new if old is None else old + self._alpha * (new - old)
