"""Token usage, prices and costs: one shape for every provider.

Providers disagree about what "input tokens" means (PROVIDERS.md section 1): OpenAI's `prompt_tokens`
includes cached tokens, Anthropic's `input_tokens` excludes cache reads and writes. `Usage` always
holds the TOTAL input, with cache reads and writes as parts of it, so the arithmetic below is written
once and adapters do the mapping.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = ["MAX_TOKENS", "Cost", "FinishReason", "Price", "Usage", "reported_usage"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call", "unknown"]
"""Normalised stop reason. Unknown provider values map to "unknown", never to "stop"."""

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one attempt consumed, normalised across providers.

    `input_tokens` is the total prompt, cached and uncached; `cache_read_tokens` and
    `cache_write_tokens` are parts of it. `output_tokens` includes `reasoning_tokens`.
    `estimated` is True when the provider never reported usage (a cut stream) and llmroute counted.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """Of `cache_write_tokens`, those written with a one-hour TTL (Anthropic); the rest are 5-minute."""
    reasoning_tokens: int = 0
    estimated: bool = False
    raw: str | None = None
    """The provider's numbers as it sent them (JSON), when they were impossible and llmroute corrected
    them (`reported_usage`); None when they were used as sent. A row with `raw` set is *suspect*."""

    @property
    def suspect(self) -> bool:
        """Whether the provider's numbers were impossible and were corrected (see `raw`)."""
        return self.raw is not None

    @property
    def consistent(self) -> bool:
        """Whether every count is non-negative and the parts fit in their wholes (cache reads and
        writes within the input, one-hour writes within the writes, reasoning within the output)."""
        writes = self.cache_write_tokens
        return (
            self.cache_read_tokens >= 0
            and 0 <= self.cache_write_1h_tokens <= writes
            and self.cache_read_tokens + writes <= self.input_tokens
            and 0 <= self.reasoning_tokens <= self.output_tokens
        )

    def sanitized(self) -> Usage:
        """This usage if `consistent`, else a corrected copy (negative counts to 0, parts clamped to
        their wholes) flagged with the original numbers in `raw`. No upper bound: sums are allowed to
        be large (see `reported_usage` for what one attempt may claim)."""
        if self.consistent:
            return self
        return _corrected(
            {
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens,
                "cache_write_1h_tokens": self.cache_write_1h_tokens,
                "reasoning_tokens": self.reasoning_tokens,
            },
            self.estimated,
            bound=None,
            raw=self.raw,
        )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the full input rate."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )


MAX_TOKENS = 10_000_000
"""The most tokens of one kind one attempt may claim (five times the largest context window listed
today). A provider number above it is clamped to it and the usage flagged (`Usage.raw`), so no single
answer can cost an astronomical amount."""

_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def _count(value: Any, bound: int | None) -> tuple[int, bool]:
    """(a plausible token count for `value`, whether it had to be corrected)."""
    if type(value) is int:
        if value < 0:
            return 0, True
        if bound is not None and value > bound:
            return bound, True
        return value, False
    if value is None:
        return 0, False  # not reported: the caller estimates when nothing at all was
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and not isinstance(value, bool)
    ):
        count, _ = _count(int(value), bound)
        return count, True
    return 0, True  # a string, a bool, NaN, an object: not a count


def _corrected(values: dict[str, Any], estimated: bool, bound: int | None, raw: str | None) -> Usage:
    fixed: dict[str, int] = {}
    suspect = False
    for name in _FIELDS:
        fixed[name], bad = _count(values.get(name), bound)
        suspect = suspect or bad
    total_in, output = fixed["input_tokens"], fixed["output_tokens"]
    writes = min(fixed["cache_write_tokens"], total_in)
    reads = min(fixed["cache_read_tokens"], total_in - writes)
    writes_1h = min(fixed["cache_write_1h_tokens"], writes)
    reasoning = min(fixed["reasoning_tokens"], output)
    if (writes, reads, writes_1h, reasoning) != (
        fixed["cache_write_tokens"],
        fixed["cache_read_tokens"],
        fixed["cache_write_1h_tokens"],
        fixed["reasoning_tokens"],
    ):
        suspect = True
    if suspect and raw is None:
        raw = json.dumps({k: _plain(v) for k, v in values.items() if v is not None}, sort_keys=True)
    return Usage(total_in, output, reads, writes, writes_1h, reasoning, estimated, raw if suspect else None)


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return repr(value)[:100]


def reported_usage(
    input_tokens: Any,
    output_tokens: Any,
    cache_read_tokens: Any = 0,
    cache_write_tokens: Any = 0,
    cache_write_1h_tokens: Any = 0,
    reasoning_tokens: Any = 0,
    *,
    estimated: bool = False,
) -> Usage:
    """`Usage` from the numbers a provider sent (adapters call this; the values are already mapped
    to llmroute's meaning: `input_tokens` is the TOTAL input).

    What a provider cannot mean is corrected, and the usage flagged with the numbers as sent in
    `Usage.raw`: a negative count, or one that is not an integer, counts 0; a count above
    `MAX_TOKENS` is clamped to it; cache reads and writes are clamped to the input, one-hour writes
    to the writes, reasoning to the output. A missing (None) count is 0 and not a violation (the
    router counts the tokens itself when a provider reports none at all). So every cost computed from
    it is non-negative and bounded.
    """
    counts = (
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cache_write_1h_tokens,
        reasoning_tokens,
    )
    if all(type(v) is int and 0 <= v <= MAX_TOKENS for v in counts):  # the common case, quickly
        usage = Usage(*counts, estimated=estimated)
        if usage.consistent:
            return usage
    return _corrected(dict(zip(_FIELDS, counts, strict=True)), estimated, MAX_TOKENS, None)


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one attempt, broken down; `total` is exactly the sum of the parts."""

    uncached_input: Decimal = _ZERO
    cache_read: Decimal = _ZERO
    cache_write: Decimal = _ZERO
    output: Decimal = _ZERO
    currency: str = "USD"

    @property
    def total(self) -> Decimal:
        return self.uncached_input + self.cache_read + self.cache_write + self.output

    def __add__(self, other: Cost) -> Cost:
        if other.currency != self.currency:
            raise ValueError(f"cannot add {other.currency} to {self.currency}")
        return Cost(
            self.uncached_input + other.uncached_input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.output + other.output,
            self.currency,
        )


def _rate(value: Decimal | None, fallback: Decimal) -> Decimal:
    return fallback if value is None else value


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices per million tokens, with where and when they were read.

    A missing cache rate means the provider lists no discount (or fee): those tokens are billed at the
    input rate. A missing `reasoning` rate means reasoning tokens are billed as output.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    long_context_threshold: int | None = None
    long_context_input: Decimal | None = None
    long_context_output: Decimal | None = None
    currency: str = "USD"
    source: str = ""
    as_of: dt.date | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "input",
            "output",
            "cache_read",
            "cache_write_5m",
            "cache_write_1h",
            "reasoning",
            "long_context_input",
            "long_context_output",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Decimal):
                raise TypeError(f"price {name} must be a Decimal, got {type(value).__name__}")
            if not value.is_finite() or value < 0:
                raise ValueError(f"price {name} must be a finite non-negative number, got {value}")

    def cost(self, usage: Usage) -> Cost:
        """Price one attempt's usage exactly. Usage that is not `consistent` (a negative count, cache
        reads beyond the input...) is priced as `Usage.sanitized()` would correct it: a cost is
        never negative."""
        if not usage.consistent:
            usage = usage.sanitized()
        input_rate, output_rate = self.input, self.output
        threshold = self.long_context_threshold
        if threshold is not None and usage.input_tokens > threshold:
            input_rate = _rate(self.long_context_input, input_rate)
            output_rate = _rate(self.long_context_output, output_rate)
        writes_1h = usage.cache_write_1h_tokens
        writes_5m = usage.cache_write_tokens - writes_1h
        reasoning_rate = self.reasoning
        if reasoning_rate is None or reasoning_rate == output_rate:
            output = usage.output_tokens * output_rate
        else:
            visible = usage.output_tokens - usage.reasoning_tokens
            output = visible * output_rate + usage.reasoning_tokens * reasoning_rate
        return Cost(
            uncached_input=usage.uncached_input_tokens * input_rate / _MILLION,
            cache_read=usage.cache_read_tokens * _rate(self.cache_read, input_rate) / _MILLION,
            cache_write=(
                writes_5m * _rate(self.cache_write_5m, input_rate)
                + writes_1h * _rate(self.cache_write_1h, input_rate)
            )
            / _MILLION,
            output=output / _MILLION,
            currency=self.currency,
        )
