"""Cooldown and circuit-breaker state shared by a fleet, on Redis (`RedisCooldownStore`).

A `CooldownStore` (`llmroute.routing.cooldown`): `Cooldowns(store=RedisCooldownStore(link))`, or
`Router(state=URL)`, which gives the router's `Cooldowns` this store when it keeps its state in
memory. One worker's evidence protects the others: the failures any process sees count in one window
per deployment, and a breaker one process opens (or a provider's pause it hears) keeps every process
away.

Per deployment Redis keeps the marks (open until, half-open probes, pause: a small JSON value,
`{<prefix>}:cooldown:<name>`) and the outcome samples (a list, `...:samples`, the last 512).
- A call that answered adds a success sample: a write sent with the next round trip (`RedisLink.defer`),
  no read, no compare-and-set.
- Any other change (a failure, judged against the whole fleet's window; a 429 pause; a breaker
  opening or closing; a half-open probe taken) reads the marks and samples and writes the marks back
  with a compare-and-set, applied again to the newer state when another process wrote meanwhile. The
  sync router does it at once (the evidence is shared before the call returns); on an event loop the
  flusher thread does it, and this process sees the change at once.
- Reads (`get`) are served from the marks this process last saw: every admission script returns the
  target's marks, and marks older than `cache_s` (0.2 s) are refreshed by the flusher thread while
  they are served. Only the first look at a deployment reads Redis on the caller's thread.
Times are kept as wall-clock seconds in Redis and turned into each process's monotonic clock when
read, so keep the machines' clocks in sync (NTP). Keys expire an hour after their last update.

When Redis is unavailable the store serves an in-process `MemoryStore` until it answers again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..routing.cooldown import CooldownState, MemoryStore
from ._link import Op, RedisLink, Unavailable

__all__ = ["RedisCooldownStore"]

TTL_S = 3600
SAMPLES = 512
"""Outcome samples kept per deployment (the in-process window keeps as many)."""


def _shift(value: Any, offset: float) -> Any:
    """A time (or a (time, ...) sample) moved by `offset`; 0 means "never" and stays 0."""
    if isinstance(value, float):
        return value + offset if value else value
    if isinstance(value, tuple | list) and value and isinstance(value[0], float):
        return [value[0] + offset, *value[1:]]
    return value


def _is_time(name: str, value: Any) -> bool:
    return isinstance(value, float) and (name in ("until", "opened") or name.endswith("_until"))


def encode(state: CooldownState, offset: float, *, marks_only: bool = False) -> str:
    """The state as JSON, with monotonic times made wall-clock (`offset` = wall - monotonic);
    `marks_only`: without the samples (`recent`), which Redis keeps in a list of their own."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        if marks_only and f.name == "recent":
            continue
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


# KEYS: marks, samples. Returns {marks ('' none), sample, ...}.
_READ = """
return {redis.call('GET', KEYS[1]) or '', unpack(redis.call('LRANGE', KEYS[2], 0, -1))}
"""

_MARKS = """
return redis.call('GET', KEYS[1]) or ''
"""

# Compare-and-set of the marks, with the samples the change added ('a') or all of them ('r': the
# change cleared the window). KEYS: marks, samples. ARGV: expected marks ('' absent), new marks, ttl,
# mode, samples... Returns 1, or 0 when another process wrote the marks meanwhile.
_CAS = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
if ARGV[4] == 'r' then redis.call('DEL', KEYS[2]) end
if #ARGV > 4 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 5))
  redis.call('LTRIM', KEYS[2], -SAMPLES, -1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
end
return 1
""".replace("SAMPLES", str(SAMPLES))

# A success sample: appended, no read. KEYS: samples. ARGV: ttl, sample.
_SAMPLE = """
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -SAMPLES, -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
""".replace("SAMPLES", str(SAMPLES))


def _marks(state: CooldownState) -> tuple[Any, ...]:
    return tuple(getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "recent")


def _appended(before: Sequence[Any], after: Sequence[Any]) -> list[Any] | None:
    """The samples `after` added at the end of `before` (which may have lost some at its start), or
    None when `after` is not such an extension (the window was cleared)."""
    old, new = list(before), list(after)
    for added in (0, 1, 2):
        kept = len(new) - added
        if 0 <= kept <= len(old) and new[:kept] == old[len(old) - kept :]:
            return new[kept:]
    return None


@dataclass(slots=True)
class _Cached:
    at: float  # monotonic time of the read
    raw: str  # the marks as Redis holds them
    state: CooldownState | None


class RedisCooldownStore:
    """Breaker and pause state per deployment in Redis (see the module docstring).

    `cache_s`: how long marks read from Redis are trusted before a refresh is asked for (what another
    process changed is seen at most about this late; this process's own updates are seen at once)."""

    def __init__(
        self, link: RedisLink | str, *, cache_s: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.link = link if isinstance(link, RedisLink) else RedisLink(link)
        self.local = MemoryStore()
        """The in-process fallback used while Redis is unavailable."""
        self.cache_s = cache_s
        self._clock = clock
        self._seen: dict[str, _Cached] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def marks_key(self, name: str) -> str:
        return self.link.tag("cooldown", name)

    def _keys(self, name: str) -> list[str]:
        key = self.marks_key(name)
        return [key, key + ":samples"]

    def _offset(self) -> float:
        return time.time() - self._clock()

    def saw_marks(self, name: str, raw: Any) -> None:
        """The marks of `name` as a round trip just read them (the admission script returns them)."""
        text = _text(raw)
        seen = self._seen.get(name)
        if seen is not None and seen.raw == text:
            seen.at = time.monotonic()
            return
        state = decode(text, self._offset()) if text else None
        self._seen[name] = _Cached(time.monotonic(), text, state)

    def _refresh(self, name: str) -> None:
        try:
            self.saw_marks(name, self.link.run(_MARKS, self._keys(name)[:1], []))
        finally:
            with self._lock:
                self._refreshing.discard(name)

    def get(self, name: str) -> CooldownState | None:
        """Never a round trip of its own once `name` was seen: the marks come with each admission
        at `name`, and stale ones are refreshed by the flusher thread while they are served. The
        first look at `name` reads Redis (on an event loop: in the background; local state until
        then)."""
        seen = self._seen.get(name)
        if seen is not None:
            if time.monotonic() - seen.at >= self.cache_s:
                self._refresh_later(name)
            return seen.state
        if _on_event_loop():
            self._refresh_later(name)
            return self.local.get(name)
        try:
            self._refresh(name)
        except Unavailable:
            return self.local.get(name)
        seen = self._seen.get(name)
        return seen.state if seen is not None else None

    def _refresh_later(self, name: str) -> None:
        with self._lock:
            if name in self._refreshing:
                return
            self._refreshing.add(name)
        self.link.background(lambda: self._refresh(name))

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState:
        """Apply `change` atomically across the fleet. A change that only adds a success sample (the
        common case: a call answered) is sent with the next round trip. Any other (a failure sample,
        which is judged against the fleet's window, or a change of the marks) is a read and a
        compare-and-set on the fleet's state: at once, or on an event loop by the flusher thread —
        this process sees it at once either way."""
        if not self.link.available:
            self.link.fallbacks += 1
            return self.local.update(name, change)
        seen = self._seen.get(name)
        offset = self._offset()
        before = seen.state if seen is not None and seen.state is not None else CooldownState()
        after = dataclasses.replace(
            before, probes=list(before.probes), recent=deque(before.recent, maxlen=before.recent.maxlen)
        )
        change(after)
        added = _appended(before.recent, after.recent)
        if (
            seen is not None
            and _marks(before) == _marks(after)
            and added is not None
            and all(ok for _, ok in added)
        ):
            # the samples live in Redis; the cached state keeps the marks only
            for when, _ in added:
                self.link.defer(Op(_SAMPLE, self._keys(name)[1:], [TTL_S, _sample(when + offset, True)]))
            return after
        if _on_event_loop():
            raw = seen.raw if seen is not None else ""
            self._seen[name] = _Cached(time.monotonic(), raw, after)
            self.link.background(lambda: self._transact(name, change))
            return after
        try:
            return self._transact(name, change)
        except Unavailable:
            return self.local.update(name, change)

    def _transact(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState:
        """Read the fleet's marks and samples, apply `change`, compare-and-set (again on a conflict)."""
        keys = self._keys(name)
        for _ in range(100):
            offset = self._offset()
            result = self.link.run(_READ, keys, [])
            raw = _text(result[0])
            state = decode(raw, offset) if raw else CooldownState()
            for item in result[1:]:
                when, ok = _text(item).split("|")
                state.recent.append((float(when) - offset, ok == "1"))
            before = list(state.recent)
            change(state)
            added = _appended(before, state.recent)
            mode, samples = ("a", added) if added is not None else ("r", list(state.recent))
            new = encode(state, offset, marks_only=True)
            args = [raw, new, TTL_S, mode, *(_sample(when + offset, ok) for when, ok in samples)]
            if int(self.link.run(_CAS, keys, args)) == 1:
                self._seen[name] = _Cached(time.monotonic(), new, state)
                return state
        raise RuntimeError(f"cooldown state of {name!r}: too many concurrent writers")


def _sample(when: float, ok: bool) -> str:
    return f"{when!r}|{int(ok)}"


def _on_event_loop() -> bool:
    return asyncio._get_running_loop() is not None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
