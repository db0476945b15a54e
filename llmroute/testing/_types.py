"""Value types of the emulator: replies, per-model settings, the bill and the request log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["Bill", "BillLine", "ModelConfig", "Reply", "ReplyContext", "ReplyFn", "RequestRecord"]

ReasoningMode = Literal["hidden", "visible"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the emulated model answers; returned by a function given to ``Emulator.set_reply``.

    ``tool_calls`` use OpenAI's format ``{"id", "type": "function", "function": {"name",
    "arguments"}}`` (``id`` may be omitted: one is generated). ``reasoning`` is shown as text by
    dialects with visible reasoning (DeepSeek ``reasoning_content``, Ollama ``reasoning``) and only
    counted by models whose reasoning is hidden (OpenAI o-series / gpt-5). ``finish_reason=None``
    lets the emulator compute it: ``"tool_calls"`` with tool calls, ``"length"`` when the token
    limit cut the answer, else ``"stop"``.
    """

    text: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What a reply function sees: the provider, the requested model and the parsed request."""

    provider: str
    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    stream: bool


ReplyFn = Callable[[ReplyContext], Reply | None]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Per-model behaviour; ``None`` fields take the provider's default (see ``Emulator.configure``).

    - ``reasoning``: ``"hidden"`` (tokens billed, never shown: OpenAI o1/o3/o4/gpt-5 by default),
      ``"visible"`` (DeepSeek reasoner/pro, Ollama think/r1/qwq models), or ``False`` for none.
    - ``cache_min_tokens``: shortest prompt whose prefix is cached (OpenAI: 1024).
    - ``cache_ttl``: seconds a cached prefix lives after its last use (``None``: forever).
    - ``served_model``: the model name echoed in responses (e.g. a dated snapshot name).
    """

    reasoning: ReasoningMode | Literal[False] | None = None
    cache_min_tokens: int | None = None
    cache_ttl: float | None = None
    served_model: str | None = None


@dataclass(frozen=True, slots=True)
class BillLine:
    """Billed tokens. ``input_tokens`` is the TOTAL input, cached reads included; ``output_tokens``
    includes reasoning. Lines add up with ``+``."""

    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: BillLine) -> BillLine:
        if not isinstance(other, BillLine):
            return NotImplemented
        return BillLine(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


ZERO = BillLine()


class Bill:
    """What the emulated providers would charge, per ``(provider, model)``.

    Every answered request bills its input and output (including ``length``, ``content_filter``
    and silent truncations); a cut stream bills its input and the output sent before the cut;
    errors, timeouts and resets bill nothing. Thread-safe.
    """

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], BillLine] = {}
        self._lock = threading.Lock()

    def add(self, provider: str, model: str, line: BillLine) -> None:
        """Add ``line`` to the bill of ``(provider, model)``."""
        key = (provider, model)
        with self._lock:
            self._lines[key] = self._lines.get(key, ZERO) + line

    def lines(self) -> dict[tuple[str, str], BillLine]:
        """A copy of the bill: ``(provider, model) -> BillLine``."""
        with self._lock:
            return dict(self._lines)

    def total(self) -> BillLine:
        """The sum of all lines."""
        total = ZERO
        for line in self.lines().values():
            total = total + line
        return total

    def reset(self) -> None:
        """Forget everything billed so far."""
        with self._lock:
            self._lines.clear()

    def __repr__(self) -> str:
        return f"Bill({self.lines()!r})"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the emulator received.

    ``status`` is ``None`` when no HTTP response was sent (timeout or reset faults); ``fault`` is
    the injected fault's kind or ``None``; ``billed`` is what this request added to the bill.
    The API key is never kept: ``authorized`` only says whether an ``Authorization`` header came.
    """

    time: float
    provider: str
    model: str
    stream: bool
    status: int | None
    fault: str | None
    body: dict[str, Any]
    billed: BillLine
    request_id: str
    path: str
    authorized: bool
    finish_reason: str | None = None
