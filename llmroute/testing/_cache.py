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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

__all__ = ["BlockCache", "PrefixCache", "SlotCache"]

MAX_ENTRIES = 262_144
"""Blocks kept per cache before the least recently used are dropped."""


class PrefixCache:
    """Interface: ``min_tokens`` and ``lookup_store``."""

    min_tokens = 0

    def lookup_store(self, key: Hashable, seq: Sequence[int], ttl: float | None) -> int:
        """Cached tokens for ``seq`` under ``key``; then remember ``seq`` for later requests."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything."""
        raise NotImplementedError


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
