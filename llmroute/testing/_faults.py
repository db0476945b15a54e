"""Faults the emulator can inject, and the schedule that decides which request gets one."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultKind", "FaultSchedule"]

FaultKind = Literal[
    "rate_limit",
    "quota",
    "server_error",
    "overloaded",
    "auth",
    "payment",
    "bad_request",
    "timeout",
    "connection_reset",
    "stream_cut",
    "stream_error",
    "content_filter",
    "silent_stop",
]

_STATUS: dict[str, int] = {
    "rate_limit": 429,
    "quota": 429,
    "server_error": 500,
    "overloaded": 503,
    "auth": 401,
    "payment": 402,
    "bad_request": 400,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure. Build it with the class methods, e.g. ``Fault.rate_limit(2.0)``.

    Error faults (``rate_limit``, ``quota``, ``server_error``, ``overloaded``, ``auth``,
    ``payment``, ``bad_request``) answer with that HTTP status in the provider's error format and
    bill nothing. ``timeout`` and ``connection_reset`` send no response. ``stream_cut`` and
    ``stream_error`` apply to streaming requests only. ``content_filter`` and ``silent_stop`` answer
    (and bill) a cut reply.
    """

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: bool = False
    retry_after_date: bool = False
    delay: float = 0.0
    after_tokens: int = 0
    final_chunk: bool = False
    message: str | None = None

    @classmethod
    def rate_limit(
        cls, retry_after: float | None = 1.0, retry_after_ms: bool = False, retry_after_date: bool = False
    ) -> Fault:
        """429 ``rate_limit_exceeded`` with ``retry-after`` (seconds), or ``retry-after-ms`` when
        ``retry_after_ms``, or an HTTP-date ``retry-after`` when ``retry_after_date``; plus
        ``x-ratelimit-remaining-requests: 0`` and ``x-ratelimit-reset-requests``."""
        return cls("rate_limit", 429, retry_after, retry_after_ms, retry_after_date)

    @classmethod
    def quota(cls) -> Fault:
        """429 ``insufficient_quota``: no retry-after; retrying does not help."""
        return cls("quota", 429)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx server error (500, 502, 503 or 504)."""
        if not 500 <= status <= 599:
            raise ValueError(f"server_error status must be 5xx, got {status}")
        return cls("server_error", status)

    @classmethod
    def overloaded(cls, status: int = 503, retry_after: float | None = None) -> Fault:
        """The provider is overloaded: DeepSeek-style 503. The Anthropic endpoint always answers its
        own 529 ``overloaded_error``, whatever ``status``."""
        return cls("overloaded", status, retry_after)

    @classmethod
    def auth(cls) -> Fault:
        """401: the API key was rejected."""
        return cls("auth", 401)

    @classmethod
    def payment(cls) -> Fault:
        """402: DeepSeek's "Insufficient Balance"."""
        return cls("payment", 402)

    @classmethod
    def bad_request(cls, message: str = "Invalid request.") -> Fault:
        """400 ``invalid_request_error`` with ``message``."""
        return cls("bad_request", 400, message=message)

    @classmethod
    def timeout(cls, delay: float = 30.0) -> Fault:
        """No answer in time. In-process: ``httpx2.ReadTimeout`` at once (no sleeping). Socket
        server: waits ``delay`` seconds (so the client's timeout fires first), then answers 504."""
        return cls("timeout", delay=delay)

    @classmethod
    def connection_reset(cls) -> Fault:
        """The connection closes without a response (``httpx2.RemoteProtocolError``)."""
        return cls("connection_reset")

    @classmethod
    def stream_cut(cls, after_tokens: int = 5, final_chunk: bool = False) -> Fault:
        """Streaming only: send ``after_tokens`` visible output tokens, then (if ``final_chunk``)
        the usage chunk when ``include_usage`` was asked, never a ``finish_reason`` nor ``[DONE]``,
        and end the body abruptly."""
        return cls("stream_cut", after_tokens=after_tokens, final_chunk=final_chunk)

    @classmethod
    def stream_error(cls, after_tokens: int = 5, error_type: str = "overloaded_error") -> Fault:
        """Streaming only: send ``after_tokens`` visible output tokens, then an error in the middle of
        the stream. The Anthropic endpoint sends an ``event: error`` of ``error_type`` (which the
        ``anthropic`` SDK raises as a plain ``APIStatusError`` with status 200) and ends the body;
        OpenAI-compatible endpoints, which have no such event, cut the stream like ``stream_cut``.
        Bills like a cut stream: the input and the output sent."""
        return cls("stream_error", after_tokens=after_tokens, message=error_type)

    @classmethod
    def content_filter(cls, after_tokens: int = 5) -> Fault:
        """The answer stops after ``after_tokens`` tokens with ``finish_reason="content_filter"``."""
        return cls("content_filter", after_tokens=after_tokens)

    @classmethod
    def silent_stop(cls, after_tokens: int = 5) -> Fault:
        """The answer stops mid-sentence after ``after_tokens`` tokens with ``finish_reason="stop"``."""
        return cls("silent_stop", after_tokens=after_tokens)

    @property
    def is_error(self) -> bool:
        """Whether the fault answers with an HTTP error status."""
        return self.kind in _STATUS

    def applies_to(self, stream: bool) -> bool:
        """Whether this fault can happen to a request (``stream_cut``/``stream_error`` need a stream)."""
        return stream or self.kind not in ("stream_cut", "stream_error")

    def headers(self, now: float | None = None) -> list[tuple[str, str]]:
        """Retry and rate-limit headers of an error fault (OpenAI's names)."""
        out: list[tuple[str, str]] = []
        if self.retry_after is not None:
            if self.retry_after_ms:
                out.append(("retry-after-ms", _num(self.retry_after * 1000)))
            elif self.retry_after_date:
                when = (time.time() if now is None else now) + self.retry_after
                out.append(("retry-after", email.utils.formatdate(when, usegmt=True)))
            else:
                out.append(("retry-after", _num(self.retry_after)))
        if self.kind == "rate_limit":
            reset = self.retry_after if self.retry_after is not None else 1.0
            out += [
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", f"{_num(reset * 1000)}ms"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "30000"),
                ("x-ratelimit-reset-tokens", "0s"),
            ]
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(slots=True)
class _Rule:
    faults: tuple[Fault, ...]
    provider: str | None
    model: str | None
    stream: bool | None
    remaining: int = 0
    rate: float = 0.0
    rng: random.Random | None = None

    def matches(self, provider: str, model: str, stream: bool) -> bool:
        return (
            (self.provider is None or self.provider == provider)
            and (self.model is None or self.model == model)
            and (self.stream is None or self.stream == stream)
        )


class FaultSchedule:
    """Decides which request gets which fault.

    Scripted faults (:meth:`inject`) go first, in the order they were added: the next ``times``
    matching requests get the fault. Otherwise each rate rule (:meth:`add_rate`) draws from its
    own seeded generator, so a run is reproducible. A ``stream_cut`` (or ``stream_error``) never hits
    a non-streaming request: a scripted one waits for a streaming request; a rate rule picks among
    the faults that apply. Thread-safe.
    """

    def __init__(self) -> None:
        self._scripted: list[_Rule] = []
        self._rates: list[_Rule] = []
        self._lock = threading.Lock()

    def inject(
        self,
        fault: Fault,
        provider: str | None = None,
        model: str | None = None,
        times: int = 1,
        stream: bool | None = None,
    ) -> None:
        """The next ``times`` requests matching provider/model/stream (``None`` = any) get ``fault``."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._scripted.append(_Rule((fault,), provider, model, stream, remaining=times))

    def add_rate(
        self,
        rate: float,
        faults: list[Fault] | tuple[Fault, ...],
        provider: str | None = None,
        model: str | None = None,
        stream: bool | None = None,
        seed: int = 0,
    ) -> None:
        """A share ``rate`` (0..1) of matching requests get one of ``faults``, chosen at random."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not faults:
            raise ValueError("faults must not be empty")
        with self._lock:
            rule = _Rule(tuple(faults), provider, model, stream, rate=rate, rng=random.Random(seed))
            self._rates.append(rule)

    def clear(self) -> None:
        """Remove every scripted and rate fault."""
        with self._lock:
            self._scripted.clear()
            self._rates.clear()

    def __bool__(self) -> bool:
        return bool(self._scripted or self._rates)

    def pick(self, provider: str, model: str, stream: bool) -> Fault | None:
        """The fault for this request, if any (consumes a scripted fault)."""
        if not self._scripted and not self._rates:
            return None
        with self._lock:
            for i, rule in enumerate(self._scripted):
                fault = rule.faults[0]
                if rule.matches(provider, model, stream) and fault.applies_to(stream):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self._scripted[i]
                    return fault
            for rule in self._rates:
                if not rule.matches(provider, model, stream):
                    continue
                assert rule.rng is not None
                if rule.rng.random() >= rule.rate:
                    continue
                usable = [f for f in rule.faults if f.applies_to(stream)]
                if usable:
                    return rule.rng.choice(usable)
        return None
