"""The adapter interface: pure conversion around one I/O call.

An adapter serves one deployment. It builds its SDK clients once (sync and async, lazily, with
`max_retries=0`: the engine retries, not the SDK), converts a `ChatRequest` into the provider's call,
makes the call, and converts the answer into OpenAI types plus a normalised `Usage` and finish reason.
SDK errors are mapped into llmroute's error tree in one place per adapter, always chained (`from e`).
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ..usage import FinishReason, Usage

if TYPE_CHECKING:
    from ..policy import Target
    from ..request import ChatRequest

__all__ = ["Adapter", "ChunkStream", "AsyncChunkStream", "Completed", "retry_after_seconds"]


@dataclass(slots=True)
class Completed:
    """A decoded non-streaming answer."""

    completion: ChatCompletion
    usage: Usage
    finish_reason: FinishReason
    served_model: str | None
    request_id: str | None
    headers: Mapping[str, str]


class ChunkStream(ABC):
    """An open stream of OpenAI chunks from one attempt (sync)."""

    request_id: str | None = None
    headers: Mapping[str, str] = {}
    usage: Usage | None = None
    """The provider's usage report, once its usage chunk has arrived."""

    @abstractmethod
    def __iter__(self) -> Iterator[ChatCompletionChunk]: ...

    @abstractmethod
    def close(self) -> None: ...


class AsyncChunkStream(ABC):
    """An open stream of OpenAI chunks from one attempt (async)."""

    request_id: str | None = None
    headers: Mapping[str, str] = {}
    usage: Usage | None = None

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

    @abstractmethod
    def map_error(self, error: BaseException, target: Target) -> Exception:
        """The llmroute error for an SDK or transport error (returned, not raised)."""

    def close(self) -> None:  # noqa: B027  # adapters without resources need nothing
        """Release the SDK clients this adapter created (not injected ones)."""

    async def aclose(self) -> None:  # noqa: B027
        """Async counterpart of `close`."""


def retry_after_seconds(headers: Mapping[str, str] | Any, now: float | None = None) -> float | None:
    """The wait a provider asked for: `retry-after-ms`, else `retry-after` (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
