"""The adapter interface: pure conversion around one I/O call.

An adapter serves one deployment. It builds its SDK clients once (sync and async, lazily, with
`max_retries=0`: the engine retries, not the SDK), converts a `ChatRequest` into the provider's call,
makes the call, and converts the answer into OpenAI types plus a normalised `Usage` and finish reason.
SDK errors are mapped into llmroute's error tree in one place per adapter, always chained (`from e`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ..errors import redact, request_for
from ..usage import FinishReason, Usage

if TYPE_CHECKING:
    from ..catalog import Deployment, ProviderSpec
    from ..errors import MalformedResponse
    from ..policy import Target
    from ..request import ChatRequest
    from ..truncation import Verdict

_log = logging.getLogger("llmroute")

__all__ = [
    "Adapter",
    "AsyncChunkStream",
    "ChunkStream",
    "SDKAdapter",
    "Completed",
    "MALFORMED",
    "client_settings",
    "malformed",
    "redact_sdk_error",
    "request_for",
    "retry_after_seconds",
]


@dataclass(slots=True)
class Completed:
    """A decoded non-streaming answer."""

    completion: ChatCompletion
    usage: Usage
    finish_reason: FinishReason
    served_model: str | None
    request_id: str | None
    headers: Mapping[str, str]
    http_response: httpx2.Response | None = None
    """The provider's HTTP response (headers, status), for `with_raw_response`."""
    verdict: Verdict | None = None
    """The truncation detector's verdict, once the router has judged the answer."""

    def __post_init__(self) -> None:
        # The SDKs build answers without validating them: a provider's `"model": [null]` arrives as
        # a list. The name is a label of the row; anything but a non-empty string is no name.
        if not isinstance(self.served_model, str) or not self.served_model:
            self.served_model = None


class ChunkStream(ABC):
    """An open stream of OpenAI chunks from one attempt (sync)."""

    request_id: str | None = None
    headers: Mapping[str, str] = {}
    response: httpx2.Response | None = None
    """The provider's streaming HTTP response."""
    usage: Usage | None = None
    """The provider's usage report, once its usage chunk has arrived."""
    finish_reason: FinishReason | None = None
    """The normalised finish reason, when the adapter knows it better than the chunks' raw value."""

    @abstractmethod
    def __iter__(self) -> Iterator[ChatCompletionChunk]: ...

    @abstractmethod
    def close(self) -> None: ...


class AsyncChunkStream(ABC):
    """An open stream of OpenAI chunks from one attempt (async)."""

    request_id: str | None = None
    headers: Mapping[str, str] = {}
    response: httpx2.Response | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class Adapter(ABC):
    """Talks to one deployment through its provider's official SDK."""

    @abstractmethod
    def complete(self, request: ChatRequest, target: Target) -> Completed: ...

    @abstractmethod
    async def acomplete(self, request: ChatRequest, target: Target) -> Completed: ...

    @abstractmethod
    def stream(self, request: ChatRequest, target: Target) -> ChunkStream: ...

    @abstractmethod
    async def astream(self, request: ChatRequest, target: Target) -> AsyncChunkStream: ...

    def check(self, request: ChatRequest) -> None:  # noqa: B027  # most dialects accept everything
        """Raise `InvalidRequest` for what this provider cannot do. The router asks every ranked
        target before any call and drops the ones that refuse, so a fallback is never the surprise."""

    @abstractmethod
    def map_error(self, error: BaseException, target: Target) -> Exception:
        """The llmroute error for an SDK or transport error (returned, not raised)."""

    def close(self) -> None:  # noqa: B027  # adapters without resources need nothing
        """Release the SDK clients this adapter created (not injected ones)."""

    async def aclose(self) -> None:  # noqa: B027
        """Async counterpart of `close`."""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(value: str) -> float | None:
    """OpenAI's reset durations: `12ms`, `1.5s`, `6m0s`, `1h2m3s`."""
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _date_seconds(value: str, now: float | None) -> float | None:
    """Seconds until an HTTP date or an RFC 3339 timestamp."""
    when: dt.datetime | None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SDKAdapter(Adapter):
    """An adapter over one provider SDK: its sync and async clients are built once, lazily, from
    the deployment (`client_settings`), or injected (`Deployment.client` / `async_client`); `close`
    and `aclose` release only the ones built here. Subclasses name the two client classes."""

    sync_class: ClassVar[type[Any]]
    async_class: ClassVar[type[Any]]

    def __init__(self, deployment: Deployment, provider: ProviderSpec) -> None:
        self.deployment = deployment
        self.provider = provider
        self._sync: Any = deployment.client
        self._async: Any = deployment.async_client
        self._owned: list[Any] = []
        self._secrets: tuple[str, ...] = ()

    def _settings(self) -> dict[str, Any]:
        settings, self._secrets = client_settings(self.deployment, self.provider)
        return settings

    def sync_client(self) -> Any:
        if self._sync is None:
            self._sync = self.sync_class(http_client=self.deployment.http_client, **self._settings())
            self._owned.append(self._sync)
        return self._sync

    def async_client(self) -> Any:
        if self._async is None:
            self._async = self.async_class(http_client=self.deployment.async_http_client, **self._settings())
            self._owned.append(self._async)
        return self._async

    def close(self) -> None:
        for client in self._owned:
            if isinstance(client, self.sync_class):
                client.close()

    async def aclose(self) -> None:
        for client in self._owned:
            if isinstance(client, self.async_class):
                await client.close()
        self.close()


def client_settings(deployment: Deployment, provider: ProviderSpec) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keyword arguments for a provider SDK client of this deployment — key (given, or from its
    environment variable), base URL (given, else the provider's `*_BASE_URL`, else its default),
    `max_retries=0` (the engine retries), headers, timeout — and the secrets to redact."""
    key = deployment.resolve_key(provider)
    base_url = deployment.base_url
    if base_url is None and provider.base_url_env:
        base_url = os.environ.get(provider.base_url_env) or None
    settings: dict[str, Any] = {"api_key": key, "base_url": base_url or provider.base_url, "max_retries": 0}
    if deployment.headers:
        settings["default_headers"] = dict(deployment.headers)
    if deployment.timeout is not None:
        settings["timeout"] = deployment.timeout
    return settings, ((key,) if key else ())


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, secrets) for v in value]
    return value


def redact_sdk_error(error: BaseException, secrets: tuple[str, ...]) -> None:
    """Scrub the keys from an SDK exception in place: its message, args and body. It is chained as
    the cause of the llmroute error, so a traceback would otherwise show what a provider echoed."""
    if not secrets:
        return
    if isinstance(getattr(error, "message", None), str):
        error.message = redact(error.message, secrets)  # type: ignore[attr-defined]
    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
    if hasattr(error, "body"):
        error.body = _redact_value(error.body, secrets)


MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError)
"""What reading an answer that is not a valid response raises (JSON and shape errors)."""


def malformed(error: BaseException, target: Target, secrets: tuple[str, ...]) -> MalformedResponse:
    """The llmroute error for an answer that could not be read."""
    from ..errors import MalformedResponse

    message = redact(f"the provider's answer could not be read: {type(error).__name__}: {error}", secrets)
    return MalformedResponse(
        message[:500],
        request=request_for(target),
        provider=target.provider.name,
        deployment=target.deployment.name,
        model=target.model.id,
    )


def retry_after_seconds(headers: Mapping[str, str] | Any, now: float | None = None) -> float | None:
    """The wait a provider asked for, trusted up to `MAX_WAIT_S` (60 s).

    In order: `retry-after-ms`; `retry-after` (seconds or an HTTP date); else the rate-limit reset
    headers — OpenAI's `x-ratelimit-reset-requests` / `-tokens` (durations like `12ms`, `6m0s`) and
    Anthropic's `anthropic-ratelimit-*-reset` (RFC 3339) — taking the longest, since every exhausted
    limit must reset before a retry can pass.

    This is the one place provider-asked waits enter llmroute: a longer wait (`999999`, a date a year
    out, a 277 h reset) is capped to `MAX_WAIT_S`, a non-finite one (`inf`, `nan`) is ignored, and
    both are logged (warning, logger `llmroute`); unparseable values are ignored as before.
    """
    if headers is None:
        return None
    asked = _asked_seconds(headers, now)
    if asked is None:
        return None
    from ..routing.cooldown import MAX_WAIT_S

    if not math.isfinite(asked):
        _log.warning("ignoring a non-finite provider wait (%s)", _wait_headers(headers))
        return None
    if asked > MAX_WAIT_S:
        _log.warning(
            "capping a provider wait of %.0fs to %.0fs (%s)", asked, MAX_WAIT_S, _wait_headers(headers)
        )
        return MAX_WAIT_S
    return asked


def _wait_headers(headers: Mapping[str, str] | Any) -> str:
    names = ("retry-after", "retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
    return ", ".join(f"{n}: {str(headers.get(n))[:40]}" for n in names if headers.get(n))


def _asked_seconds(headers: Mapping[str, str] | Any, now: float | None) -> float | None:
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            seconds = _date_seconds(value, now)
            if seconds is not None:
                return seconds
    waits: list[float] = []
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if _exhausted(headers, name.replace("reset", "remaining")):
            reset = headers.get(name)
            seconds = _duration(reset) if reset else None
            if seconds is not None:
                waits.append(seconds)
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        if _exhausted(headers, f"anthropic-ratelimit-{kind}-remaining"):
            reset = headers.get(f"anthropic-ratelimit-{kind}-reset")
            seconds = _date_seconds(reset, now) if reset else None
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


def _exhausted(headers: Mapping[str, str] | Any, name: str) -> bool:
    """Whether a `remaining` header says 0 (or is absent: then its reset is all there is to go on)."""
    value = headers.get(name)
    return value is None or value.strip() == "0"
