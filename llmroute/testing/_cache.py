"""Prefix caches with each provider's rules (PROVIDERS.md section 2).

A prompt is rendered to a token sequence (tools, then messages; see ``llmroute.tokens.
prompt_segments``). A cache stores the prefixes it has seen as *chained block hashes*: the hash of
block ``i`` covers block ``i`` and the hash of block ``i - 1``, so a lookup walks the new prompt's
blocks once (O(blocks), not O(history)) and stops at the first block never seen after the same
prefix.

Rules, in one place:

- The final token of a prompt is never cached: cached tokens <= prompt tokens - 1.
- ``BlockCache(block, min_tokens)``: cached = longest seen prefix, in whole blocks, and 0 when that
  is under ``min_tokens``. OpenAI: 128-token increments from 1,024 (per model, e.g. 2,048);
  DeepSeek: 64-token units from 64; vLLM: 16-token blocks. Prompts shorter than ``min_tokens``
  are neither looked up nor stored (they could never yield a hit).
- ``SlotCache``: llama.cpp's single slot per model: cached = common prefix with the previous
  request (any length).
- Entries expire ``ttl`` seconds after their last use (``None``: never); a hit refreshes them.
- ``BreakpointCache`` (Anthropic, explicit ``cache_control``): a prompt is a list of blocks (tools,
  system, messages, in that order: a change invalidates its block and everything after it) and
  prefixes are written only at the request's breakpoints, each with its TTL (5m or 1h). A lookup
  walks back from each breakpoint at most ``LOOKBACK`` blocks for a prefix written before: the
  longest hit is read; the tokens from there to the last breakpoint are written (those up to the
  last 1h breakpoint at the 1h TTL, the rest at 5m); the rest of the prompt is plain input.
  Breakpoints whose prefix is shorter than ``min_tokens`` are silently not cached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence

__all__ = ["BlockCache", "BreakpointCache", "PrefixCache", "SlotCache"]

MAX_ENTRIES = 262_144
"""Blocks kept per cache before the least recently used are dropped."""
LOOKBACK = 20
"""Blocks a breakpoint looks back for an earlier cache entry (Anthropic)."""
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class PrefixCache(ABC):
    """Interface: ``min_tokens`` and ``lookup_store``."""

    min_tokens = 0

    @abstractmethod
    def lookup_store(self, key: Hashable, seq: Sequence[int], ttl: float | None) -> int:
        """Cached tokens for ``seq`` under ``key``; then remember ``seq`` for later requests."""

    @abstractmethod
    def clear(self) -> None:
        """Forget everything."""


class BlockCache(PrefixCache):
    """Whole-block prefix matches with a minimum length (OpenAI, DeepSeek, vLLM)."""

    def __init__(self, block: int, min_tokens: int, clock: Callable[[], float]) -> None:
        self.block = block
        self.min_tokens = min_tokens
        self._clock = clock
        self._seen: dict[int, float] = {}

    def lookup_store(self, key: Hashable, seq: Sequence[int], ttl: float | None) -> int:
        n = len(seq)
        if n < max(self.min_tokens, 1):
            return 0
        now = self._clock()
        seen = self._seen
        block = self.block
        usable = (n - 1) // block  # blocks that lie within the first n - 1 tokens
        h = hash(key)
        hits = 0
        hashes: list[int] = []
        missed = False
        for i in range(n // block):
            h = hash((h, tuple(seq[i * block : (i + 1) * block])))
            hashes.append(h)
            if missed or i >= usable:
                continue
            last = seen.get(h)
            if last is not None and (ttl is None or now - last <= ttl):
                hits += 1
            else:
                missed = True
        for h in hashes:
            seen.pop(h, None)  # re-insert: dict order is the LRU order
            seen[h] = now
        if len(seen) > MAX_ENTRIES:
            for old in list(seen)[: len(seen) - MAX_ENTRIES]:
                del seen[old]
        cached = hits * block
        return cached if cached >= self.min_tokens else 0

    def clear(self) -> None:
        self._seen.clear()


class SlotCache(PrefixCache):
    """llama.cpp: one slot per key; cached = common prefix with the previous request."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._slots: dict[Hashable, tuple[tuple[int, ...], float]] = {}

    def lookup_store(self, key: Hashable, seq: Sequence[int], ttl: float | None) -> int:
        now = self._clock()
        current = tuple(seq)
        prev = self._slots.get(key)
        self._slots[key] = (current, now)
        if prev is None or (ttl is not None and now - prev[1] > ttl):
            return 0
        return min(_common_prefix(prev[0], current), len(current) - 1)

    def clear(self) -> None:
        self._slots.clear()


class BreakpointCache(PrefixCache):
    """Anthropic: prefixes written at explicit breakpoints, each with its own TTL."""

    def __init__(self, min_tokens: int, clock: Callable[[], float]) -> None:
        self.min_tokens = min_tokens
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, float]] = {}  # prefix -> (last use, ttl seconds)

    def lookup_store(self, key: Hashable, seq: Sequence[int], ttl: float | None) -> int:
        raise TypeError("BreakpointCache caches at breakpoints: use lookup_write")

    def lookup_write(
        self, prefixes: Sequence[Hashable], ends: Sequence[int], breakpoints: Mapping[int, str]
    ) -> tuple[int, int, int]:
        """``(read, written, written_1h)`` tokens for a prompt whose block ``i`` ends at token
        ``ends[i]`` and whose prefix through block ``i`` is identified by ``prefixes[i]``;
        ``breakpoints`` maps block indexes to TTL labels. Then remembers what was written."""
        now = self._clock()
        entries = self._entries
        marks = sorted(breakpoints)
        read, hit = 0, None
        for mark in marks:
            for i in range(mark, max(mark - LOOKBACK, -1), -1):
                entry = entries.get(prefixes[i])
                if entry is not None and now - entry[0] <= entry[1]:
                    if ends[i] > read:
                        read, hit = ends[i], prefixes[i]
                    break
        if hit is not None:
            entries[hit] = (now, entries[hit][1])  # a hit refreshes the entry's TTL
        written = written_1h = 0
        for mark in marks:
            end = ends[mark]
            if end < self.min_tokens or end <= read:
                continue
            ttl = TTL_SECONDS.get(breakpoints[mark], TTL_SECONDS["5m"])
            old = entries.pop(prefixes[mark], None)
            if old is not None and now - old[0] <= old[1]:
                ttl = max(ttl, old[1])
            entries[prefixes[mark]] = (now, ttl)
            written = end - read
            if breakpoints[mark] == "1h":
                written_1h = written
        if len(entries) > MAX_ENTRIES:
            for old_key in list(entries)[: len(entries) - MAX_ENTRIES]:
                del entries[old_key]
        return read, written, written_1h

    def clear(self) -> None:
        self._entries.clear()


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    i, step = 0, 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i
