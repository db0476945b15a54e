"""Cooldown and circuit-breaker state shared by a fleet, on Redis (`RedisCooldownStore`).

A `CooldownStore` (`llmroute.routing.cooldown`): `Cooldowns(store=RedisCooldownStore(link))`, or
`Router(state=URL)`, which gives the router's `Cooldowns` this store when it keeps its state in
memory. One worker's evidence protects the others: the failures any process sees count in one window
per deployment, and a breaker one process opens (or a provider's pause it hears) keeps every process
away.

`update` is atomic across the fleet: the `Cooldowns` logic changes the last state this process saw
and a Lua compare-and-set writes it back (one round trip); when another process wrote meanwhile, the
change is applied again to the newer state. Times are
kept as wall-clock seconds in Redis and turned into each process's monotonic clock when read, so keep
the machines' clocks in sync (NTP). Reads (`get`) cost one round trip, and are reused for `cache_s`
(0.2 s). Each deployment's state is one
key, `{<prefix>:cooldown:<deployment>}` (one cluster slot), expiring an hour after its last update.

When Redis is unavailable the store serves an in-process `MemoryStore` until it answers again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..routing.cooldown import CooldownState, MemoryStore
from ._link import RedisLink, Unavailable

__all__ = ["RedisCooldownStore"]

TTL_S = 3600


def _shift(value: Any, offset: float) -> Any:
    """A time (or a (time, ...) sample) moved by `offset`; 0 means "never" and stays 0."""
    if isinstance(value, float):
        return value + offset if value else value
    if isinstance(value, tuple | list) and value and isinstance(value[0], float):
        return [value[0] + offset, *value[1:]]
    return value


def _is_time(name: str, value: Any) -> bool:
    return isinstance(value, float) and (name == "until" or name.endswith("_until"))


def encode(state: CooldownState, offset: float) -> str:
    """The state as JSON, with monotonic times made wall-clock (`offset` = wall - monotonic)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if _is_time(f.name, value):
            value = _shift(value, offset)
        elif isinstance(value, deque | list):
            value = [_shift(item, offset) for item in value]
        out[f.name] = value
    return json.dumps(out, separators=(",", ":"))


def decode(raw: str | bytes, offset: float) -> CooldownState:
    state = CooldownState()
    data = json.loads(raw)
    for f in dataclasses.fields(state):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(state, f.name)
        if isinstance(default, deque):
            default.extend(
                tuple(_shift(item, -offset)) if isinstance(item, list) else _shift(item, -offset)
                for item in value
            )
            continue
        if isinstance(default, list):
            value = [_shift(item, -offset) for item in value]
        elif _is_time(f.name, default):
            value = _shift(float(value), -offset)
        setattr(state, f.name, value)
    return state


# Compare-and-set: write ARGV[2] if the key still holds ARGV[1] ('' = absent). {1} or {0, current}.
_CAS = """
local current = redis.call('GET', KEYS[1])
if (current or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return {1}
end
return {0, current or ''}
"""


class RedisCooldownStore:
    """Breaker and pause state per deployment in Redis (see the module docstring).

    `cache_s`: how long a state read from Redis is reused by `get` in this process (what another
    process changed is seen at most this late; this process's own updates are seen at once)."""

    def __init__(
        self, link: RedisLink | str, *, cache_s: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self.local = MemoryStore()
        """The in-process fallback used while Redis is unavailable."""
        self.cache_s = cache_s
        self._clock = clock
        self._seen: dict[str, tuple[float, str, CooldownState | None]] = {}

    def _key(self, name: str) -> str:
        return self.link.tag("cooldown", name)

    def _offset(self) -> float:
        return time.time() - self._clock()

    def _remember(self, name: str, raw: str, state: CooldownState | None) -> None:
        self._seen[name] = (time.monotonic(), raw, state)

    def get(self, name: str) -> CooldownState | None:
        seen = self._seen.get(name)
        if seen is not None and time.monotonic() - seen[0] < self.cache_s:
            return seen[2]
        try:
            raw = self.link.call(lambda client: client.get(self._key(name)))
        except Unavailable:
            return self.local.get(name)
        text = "" if raw is None else _text(raw)
        state = decode(text, self._offset()) if text else None
        self._remember(name, text, state)
        return state

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState:
        """Apply `change` atomically across the fleet: compare-and-set on the last value seen here
        (one round trip when nobody else wrote meanwhile), re-applied to the newer value otherwise."""
        key = self._key(name)
        offset = self._offset()
        seen = self._seen.get(name)
        expected = seen[1] if seen is not None else None
        try:
            if expected is None:
                raw = self.link.call(lambda client: client.get(key))
                expected = "" if raw is None else _text(raw)
            for _ in range(100):
                state = decode(expected, offset) if expected else CooldownState()
                change(state)
                new = encode(state, offset)
                result = self.link.run(_CAS, [key], [expected, new, TTL_S])
                if int(result[0]) == 1:
                    self._remember(name, new, state)
                    return state
                expected = _text(result[1])
        except Unavailable:
            return self.local.update(name, change)
        raise RuntimeError(f"cooldown state of {name!r}: too many concurrent writers")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
