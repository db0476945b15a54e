"""Load balancing across deployments of one model, and client-side rate limits.

Policies rank models; deployments of the same model form a group, and a `Balancer` orders each group
(weighted random, least in flight, lowest latency, most headroom). Before each attempt the router asks
the `LoadTracker` to admit it: a deployment at its configured limits (`max_in_flight`, `rpm`, `tpm` on
the `Deployment`) or whose provider said it has no requests or tokens left (`x-ratelimit-remaining-*`,
`anthropic-ratelimit-*`) is passed over for another deployment of the same model with room; when none
has room the call waits — the engine yields a sleep, so the async router never blocks its loop and the
sync one never spins — up to `queue_timeout`, then moves on to the next model.

Token limits are charged with an estimate before the call (prompt + requested output) and settled
with the actual usage after it. State lives in memory behind `LoadTracker`; a shared implementation can
make limits hold across processes.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..target import Target
    from .health import Health

__all__ = [
    "Balancer",
    "LeastBusy",
    "LoadStore",
    "LoadTracker",
    "LowestLatency",
    "MostHeadroom",
    "Ticket",
    "WeightedRandom",
]

WINDOW_S = 60.0
"""Requests and tokens per minute are counted over a sliding 60-second window."""


@dataclass(slots=True)
class _State:
    in_flight: int = 0
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[list[float]] = field(default_factory=deque)  # [time, tokens] pairs, settled in place
    token_sum: float = 0.0
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    provider_reset_at: float = 0.0


@dataclass(slots=True)
class Ticket:
    """An admitted attempt; give it back with `LoadTracker.release`."""

    name: str
    entry: list[float] | None
    released: bool = False


class LoadStore(Protocol):
    """Where load state lives. `LoadTracker` keeps it in this process; a shared implementation
    (Redis, SQLite) of these methods makes client-side limits hold across processes — pass it as
    `Router(load=...)`. The balancers read it through the same methods."""

    def admit(self, target: Target, tokens: int) -> tuple[Ticket | None, float | None]: ...

    def release(self, ticket: Ticket, tokens: int | None = None) -> None: ...

    def observe_headers(self, name: str, headers: Mapping[str, str] | None) -> None: ...

    def in_flight(self, name: str) -> int: ...

    def headroom(self, target: Target) -> float: ...


class LoadTracker:
    """In-flight counts, sliding rate windows and provider-reported headroom per deployment (the
    in-memory `LoadStore`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def _state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State()
        return state

    def _expire(self, state: _State, now: float) -> None:
        horizon = now - WINDOW_S
        while state.requests and state.requests[0] <= horizon:
            state.requests.popleft()
        while state.tokens and state.tokens[0][0] <= horizon:
            state.token_sum -= state.tokens.popleft()[1]

    def admit(self, target: Target, tokens: int) -> tuple[Ticket | None, float | None]:
        """Try to start an attempt at `target` that will use about `tokens` tokens.

        Returns `(ticket, None)` when admitted; otherwise `(None, wait)`, where `wait` is the seconds
        until a rate window frees room, or None when only a finishing call can free it.
        """
        deployment = target.deployment
        now = self.clock()
        with self._lock:
            state = self._state(deployment.name)
            self._expire(state, now)
            waits: list[float | None] = []
            if deployment.max_in_flight is not None and state.in_flight >= deployment.max_in_flight:
                waits.append(None)
            if deployment.rpm is not None and len(state.requests) >= deployment.rpm:
                waits.append(state.requests[0] + WINDOW_S - now)
            if deployment.tpm is not None and state.tokens and state.token_sum + tokens > deployment.tpm:
                waits.append(self._token_wait(state, tokens, deployment.tpm, now))
            if now < state.provider_reset_at and (
                state.remaining_requests == 0 or state.remaining_tokens == 0
            ):
                waits.append(state.provider_reset_at - now)
            if waits:
                known = [w for w in waits if w is not None]
                return None, (max(known) if len(known) == len(waits) else None)
            state.in_flight += 1
            state.requests.append(now)
            entry = [now, float(tokens)]
            state.tokens.append(entry)
            state.token_sum += tokens
            return Ticket(deployment.name, entry), None

    @staticmethod
    def _token_wait(state: _State, tokens: int, limit: int, now: float) -> float:
        excess = state.token_sum + tokens - limit
        freed = 0.0
        for stamp, used in state.tokens:
            freed += used
            if freed >= excess:
                return max(0.0, stamp + WINDOW_S - now)
        return WINDOW_S

    def release(self, ticket: Ticket, tokens: int | None = None) -> None:
        """The attempt ended; `tokens` is its actual usage (settles the token window). Idempotent."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            state = self._state(ticket.name)
            state.in_flight = max(0, state.in_flight - 1)
            if tokens is not None and ticket.entry is not None:
                state.token_sum += tokens - ticket.entry[1]
                ticket.entry[1] = float(tokens)

    def observe_headers(self, name: str, headers: Mapping[str, str] | None) -> None:
        """Update headroom from the provider's rate-limit headers."""
        if not headers:
            return
        from ..providers.base import retry_after_seconds

        requests, tokens = provider_remaining(headers)
        if requests is None and tokens is None:
            return
        reset = retry_after_seconds(headers) if (requests == 0 or tokens == 0) else None
        with self._lock:
            state = self._state(name)
            state.remaining_requests, state.remaining_tokens = requests, tokens
            if reset is not None:
                state.provider_reset_at = max(state.provider_reset_at, self.clock() + reset)

    def in_flight(self, name: str) -> int:
        state = self._states.get(name)
        return state.in_flight if state is not None else 0

    def headroom(self, target: Target) -> float:
        """Remaining share of the tightest known limit, 0..1 (1 when nothing limits it)."""
        deployment = target.deployment
        state = self._states.get(deployment.name)
        if state is None:
            return 1.0
        now = self.clock()
        with self._lock:
            self._expire(state, now)
            shares = [1.0]
            if deployment.max_in_flight:
                shares.append(1 - state.in_flight / deployment.max_in_flight)
            if deployment.rpm:
                shares.append(1 - len(state.requests) / deployment.rpm)
            if deployment.tpm:
                shares.append(1 - state.token_sum / deployment.tpm)
            if state.remaining_requests == 0 or state.remaining_tokens == 0:
                shares.append(0.0 if now < state.provider_reset_at else 1.0)
        return max(0.0, min(shares))


def provider_remaining(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(requests, tokens) the provider says are left, from OpenAI's (`x-ratelimit-remaining-*`) or
    Anthropic's (`anthropic-ratelimit-*-remaining`) headers; None where it does not say."""
    requests = _int(
        headers.get("x-ratelimit-remaining-requests") or headers.get("anthropic-ratelimit-requests-remaining")
    )
    tokens = _int(
        headers.get("x-ratelimit-remaining-tokens") or headers.get("anthropic-ratelimit-tokens-remaining")
    )
    return requests, tokens


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class Balancer(ABC):
    """Orders the deployments of one model. Subclass it like a policy: one pure method."""

    @abstractmethod
    def order(self, group: Sequence[Target], load: LoadStore, health: Health) -> list[Target]:
        """The group's targets in the order they should be tried."""

    @property
    def name(self) -> str:
        return type(self).__name__


class WeightedRandom(Balancer):
    """Random order, each deployment drawn in proportion to its `weight` (LiteLLM's simple-shuffle)."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def order(self, group: Sequence[Target], load: LoadStore, health: Health) -> list[Target]:
        pool = [t for t in group if t.deployment.weight > 0]
        ordered: list[Target] = []
        with self._lock:
            while pool:
                total = sum(t.deployment.weight for t in pool)
                pick = self._random.uniform(0, total)
                for i, target in enumerate(pool):
                    pick -= target.deployment.weight
                    if pick <= 0 or i == len(pool) - 1:
                        ordered.append(pool.pop(i))
                        break
        return ordered + [t for t in group if t.deployment.weight <= 0]


class LeastBusy(Balancer):
    """Fewest calls in flight first (ties: higher weight, then configured order)."""

    def order(self, group: Sequence[Target], load: LoadStore, health: Health) -> list[Target]:
        return sorted(group, key=lambda t: (load.in_flight(t.deployment.name), -t.deployment.weight))


class LowestLatency(Balancer):
    """Lowest observed latency first: raw time to first token for streams, full latency otherwise
    (an EWMA with the half-life set on `Health`). Unmeasured deployments go first so they get
    measured, and `explore` of the calls (deterministically spread) try a slower one, so a deployment
    that recovers wins its traffic back."""

    def __init__(self, explore: float = 0.1, stream: bool = False) -> None:
        if not 0 <= explore < 1:
            raise ValueError("explore must be in [0, 1)")
        self.explore = explore
        self.stream = stream
        self._calls = 0

    def order(self, group: Sequence[Target], load: LoadStore, health: Health) -> list[Target]:
        def latency(target: Target) -> float:
            seen = health.get(target.name)
            value = seen.ttft_s if self.stream and seen.ttft_s is not None else seen.latency_s
            return -1.0 if value is None else value

        ordered = sorted(group, key=latency)
        self._calls += 1
        if len(ordered) > 1 and self.explore and _spread(self._calls) < self.explore:
            ordered.insert(0, ordered.pop(1 + self._calls % (len(ordered) - 1)))
        return ordered


class MostHeadroom(Balancer):
    """Most remaining room under the tightest limit first (configured rpm/tpm/in-flight limits and
    the provider's rate-limit headers)."""

    def order(self, group: Sequence[Target], load: LoadStore, health: Health) -> list[Target]:
        return sorted(group, key=lambda t: -load.headroom(t))


def _spread(n: int) -> float:
    """A deterministic, well-spread number in [0, 1) for call number `n`."""
    return int.from_bytes(hashlib.blake2b(n.to_bytes(8, "little"), digest_size=4).digest(), "little") / 2**32
