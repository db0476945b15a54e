"""Token usage, prices and costs: one shape for every provider.

Providers disagree about what "input tokens" means (PROVIDERS.md section 1): OpenAI's `prompt_tokens`
includes cached tokens, Anthropic's `input_tokens` excludes cache reads and writes. `Usage` always
holds the TOTAL input, with cache reads and writes as parts of it, so the arithmetic below is written
once and adapters do the mapping.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

__all__ = ["Cost", "FinishReason", "Price", "Usage"]

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
        """Price one attempt's usage exactly."""
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
