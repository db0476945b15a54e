"""Routed streams: iterators of `ChatCompletionChunk` that settle the ledger when they end.

A stream's attempt counts as successful once its first content chunk has arrived, so failures before that
(429, 5xx, a connection reset) fall back to the next target invisibly. After that, a stream that
breaks, or ends without any chunk carrying a `finish_reason`, raises `StreamInterrupted` with the
partial text: never a silent end. Either way its attempt is a ledger row; when the provider never
sent usage, llmroute counts the tokens itself and flags the row `usage.estimated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard

import httpx2
from openai.types.chat import ChatCompletionChunk

from .errors import MalformedResponse, ProviderError, ProviderTimeout, StreamInterrupted, StreamStalled
from .providers.base import request_for
from .usage import FinishReason, Usage

if TYPE_CHECKING:
    from .money.ledger import LedgerRow
    from .policy import Decision
    from .providers.base import AsyncChunkStream, ChunkStream
    from .request import ChatRequest
    from .response import RouteInfo
    from .routing.core import RouterCore
    from .routing.engine import Call

__all__ = ["AsyncRoutedStream", "RoutedStream"]


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


class _Settle:
    """Accumulates what a stream delivered and writes its ledger row once, at the end."""

    def __init__(
        self,
        core: RouterCore,
        call_id: str,
        request: ChatRequest,
        decision: Decision,
        rows: list[LedgerRow],
        call: Call,
        started: float,
    ) -> None:
        self.core, self.call_id, self.request, self.decision = core, call_id, request, decision
        self.rows, self.call, self.started = rows, call, started
        self.ttft: float | None = None
        self.text: list[str] = []
        self.tool_args: list[str] = []
        self.reasoning: list[str] = []
        self.finish: FinishReason | None = None
        self.raw_finish: str | None = None
        self.served_model: str | None = None
        self.response_id: str | None = None
        self.route: RouteInfo | None = None

    def see(self, chunk: ChatCompletionChunk) -> None:
        # The SDK builds chunks without validating them: any field may hold any JSON value. What
        # the row counts is read as text only when it is text (what the caller gets is untouched).
        if _text(chunk.model):
            self.served_model = chunk.model
        if _text(chunk.id):
            self.response_id = chunk.id
        for choice in chunk.choices:
            delta = choice.delta
            content = getattr(delta, "content", None)
            if _text(content):
                self.text.append(content)
            extra = getattr(delta, "__pydantic_extra__", None)
            if extra:  # DeepSeek's reasoning_content, Anthropic thinking (as the adapter names it),
                # Ollama's and newer vLLM's reasoning
                reasoning = extra.get("reasoning_content", extra.get("reasoning"))
                if _text(reasoning):
                    self.reasoning.append(reasoning)
            calls = getattr(delta, "tool_calls", None)
            if isinstance(calls, list):
                for call in calls:
                    function = getattr(call, "function", None)
                    for part in (getattr(function, "name", None), getattr(function, "arguments", None)):
                        if _text(part):
                            self.tool_args.append(part)
            finish = choice.finish_reason
            if finish is not None:
                self.raw_finish = finish if isinstance(finish, str) else "unknown"

    def estimate(self) -> Usage:
        from . import tokens

        model = self.call.target.api_name
        encoding = self.call.target.model.tokenizer
        prompt = tokens.count_messages(
            self.request.messages, model, tools=self.request.body.get("tools"), encoding=encoding
        )
        output = tokens.count_text("".join(self.text) + "".join(self.tool_args), model, encoding=encoding)
        # Reasoning is billed as output: a cut reasoning model's stream is mostly reasoning.
        reasoning = (
            tokens.count_text("".join(self.reasoning), model, encoding=encoding) if self.reasoning else 0
        )
        return Usage(prompt.tokens, output + reasoning, reasoning_tokens=reasoning, estimated=True)

    def finish_row(
        self, chunks: ChunkStream | AsyncChunkStream, error: ProviderError | None, closed_early: bool
    ) -> None:
        """Write the attempt's ledger row once: the provider's usage if it sent it (else counted and
        flagged), the finish reason the adapter normalised (else the dialect table's)."""
        if self.route is not None:
            return
        from .providers.openai_compat import DIALECTS, normalise_finish
        from .truncation import judge

        usage = chunks.usage
        dialect = DIALECTS.get(self.call.target.dialect)
        if chunks.finish_reason is not None:
            self.finish = chunks.finish_reason
        elif self.raw_finish is not None and dialect is not None:
            self.finish = normalise_finish(self.raw_finish, dialect)
        elif self.raw_finish is not None:
            self.finish = "unknown"
        cut = error is not None or closed_early or self.raw_finish is None
        if usage is None:
            usage = self.estimate()
        verdict = judge(
            self.request,
            "".join(self.text),
            self.finish,
            self.raw_finish,
            stream_cut=cut,
            tool_calls=bool(self.tool_args),
            output_tokens=usage.output_tokens,
        )
        row = self.core.row(
            self.call_id,
            self.call,
            self.request,
            usage=usage,
            outcome="cut" if cut else ("truncated" if verdict.truncated else "ok"),
            started=self.started,
            ttft_s=self.ttft,
            finish=self.finish,
            error=error,
            served_model=self.served_model,
            decision=self.decision,
        )
        self.rows.append(row)
        self.route = self.core.route_info(
            self.call_id,
            self.request,
            self.decision,
            self.rows,
            usage,
            self.finish,
            self.served_model,
            verdict.truncated,
            verdict,
        )

    def failed_before_content(
        self,
        head: list[ChatCompletionChunk],
        chunks: ChunkStream | AsyncChunkStream,
        cause: ProviderError | None,
    ) -> ProviderError:
        """The stream broke or ended before any content reached the caller: record the attempt
        (the provider may have billed its input) and return the error, so the engine can move on."""
        for chunk in head:
            self.see(chunk)
        # An unreadable answer is reported as such (nothing reached the caller to be "interrupted").
        error = cause if isinstance(cause, MalformedResponse) else self.interrupted(cause)
        self.finish_row(chunks, error, closed_early=False)
        self.route = None  # not the call's outcome: the engine decides what happens next
        return error

    def interrupted(self, cause: ProviderError | None) -> StreamInterrupted:
        target = self.call.target
        reason = str(cause) if cause is not None else "the stream ended without a finish_reason"
        kind = StreamStalled if isinstance(cause, ProviderTimeout) else StreamInterrupted
        error = kind(
            f"stream interrupted after {len(''.join(self.text))} characters: {reason}",
            request=cause.request if cause is not None else request_for(target),
            provider=target.provider.name,
            deployment=target.deployment.name,
            model=target.model.id,
        )
        error.partial_text = "".join(self.text)
        return error


class _Response:
    """The streaming attempt's HTTP response; closing it closes the routed stream (so the SDK's
    stream helpers, which close `stream.response`, still settle the ledger row)."""

    def __init__(self, response: httpx2.Response, stream: RoutedStream | AsyncRoutedStream) -> None:
        self._response = response
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def close(self) -> None:
        if isinstance(self._stream, RoutedStream):
            self._stream.close()
        else:
            self._response.close()

    async def aclose(self) -> None:
        if isinstance(self._stream, AsyncRoutedStream):
            await self._stream.close()
        else:
            await self._response.aclose()


class _Base:
    _settle: _Settle
    _chunks: Any

    @property
    def response(self) -> Any:
        """The HTTP response of the attempt that is streaming (headers, status) — an
        `httpx2.Response` proxy whose `close()` closes this stream."""
        response = self._chunks.response
        if response is None:
            return None
        assert isinstance(self, RoutedStream | AsyncRoutedStream)
        return _Response(response, self)

    @property
    def route(self) -> RouteInfo:
        """How the call was routed; available once the stream has ended."""
        if self._settle.route is None:
            raise AttributeError("route is known once the stream has been consumed or closed")
        return self._settle.route


def _run(
    settle: _Settle, chunks: ChunkStream, it: Iterator[ChatCompletionChunk], head: list[ChatCompletionChunk]
) -> Iterator[ChatCompletionChunk]:
    # A function, not a method: the generator must not keep its stream alive, so that a stream
    # the caller drops is collected (and settled by its finalizer) at once.
    for chunk in head:
        settle.see(chunk)
        yield chunk
    try:
        for chunk in it:
            settle.see(chunk)
            yield chunk
    except ProviderError as e:
        settle.finish_row(chunks, e, closed_early=False)
        raise settle.interrupted(e) from e
    settle.finish_row(chunks, None, closed_early=False)
    if settle.raw_finish is None:
        raise settle.interrupted(None)


async def _arun(
    settle: _Settle,
    chunks: AsyncChunkStream,
    it: AsyncIterator[ChatCompletionChunk],
    head: list[ChatCompletionChunk],
) -> AsyncIterator[ChatCompletionChunk]:
    for chunk in head:
        settle.see(chunk)
        yield chunk
    try:
        async for chunk in it:
            settle.see(chunk)
            yield chunk
    except ProviderError as e:
        settle.finish_row(chunks, e, closed_early=False)
        raise settle.interrupted(e) from e
    settle.finish_row(chunks, None, closed_early=False)
    if settle.raw_finish is None:
        raise settle.interrupted(None)


def _abandoned(settle: _Settle, chunks: ChunkStream, pid: int) -> None:
    """A sync stream collected (or its router closed) before it ended: close the response (which
    frees its connection) and write the attempt's row, settling its slot and reservation. Not in a
    forked child collecting its copy of the parent's stream: the parent records its own."""
    if settle.route is not None or os.getpid() != pid:
        return
    with contextlib.suppress(Exception):  # a finaliser must not raise; the row below matters more
        chunks.close()
    settle.finish_row(chunks, None, closed_early=True)


_CLOSING: set[asyncio.Task[None]] = set()


def _aabandoned(settle: _Settle, chunks: AsyncChunkStream, loop: asyncio.AbstractEventLoop, pid: int) -> None:
    """An async stream collected before it ended: write its row now, and close its response on its
    event loop (a finaliser cannot await; it may run on any thread). Not in a forked child."""
    if settle.route is not None or os.getpid() != pid:
        return
    settle.finish_row(chunks, None, closed_early=True)

    def close() -> None:
        task = loop.create_task(chunks.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: its transports went with it
            loop.call_soon_threadsafe(close)


class RoutedStream(_Base):
    """A sync stream of `ChatCompletionChunk`, usable like the SDK's `Stream`.

    A stream dropped before its end (neither exhausted nor closed) is closed and recorded when it is
    garbage-collected, or when its router closes: its row, in-flight slot and budget reservation
    never leak."""

    def __init__(
        self,
        settle: _Settle,
        chunks: ChunkStream,
        rest: Iterator[ChatCompletionChunk],
        head: list[ChatCompletionChunk],
    ) -> None:
        self._settle = settle
        self._chunks = chunks
        self._iterator = _run(settle, chunks, rest, head)
        self._finalizer = weakref.finalize(self, _abandoned, settle, chunks, os.getpid())
        self._finalizer.atexit = False

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        # Itself, not its generator: `for chunk in router.chat.completions.create(...)` keeps no
        # other reference to the stream, which would be collected (and closed) while being read.
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._iterator)

    def close(self) -> None:
        """Stop reading; the attempt is recorded with what had arrived."""
        if self._settle.route is None:
            self._chunks.close()
            self._settle.finish_row(self._chunks, None, closed_early=True)

    def __enter__(self) -> RoutedStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncRoutedStream(_Base):
    """An async stream of `ChatCompletionChunk`, usable like the SDK's `AsyncStream` (dropped
    before its end, it is recorded when collected or when its router closes, as `RoutedStream`)."""

    def __init__(
        self,
        settle: _Settle,
        chunks: AsyncChunkStream,
        rest: AsyncIterator[ChatCompletionChunk],
        head: list[ChatCompletionChunk],
    ) -> None:
        self._settle = settle
        self._chunks = chunks
        self._iterator = _arun(settle, chunks, rest, head)
        self._finalizer = weakref.finalize(
            self, _aabandoned, settle, chunks, asyncio.get_running_loop(), os.getpid()
        )
        self._finalizer.atexit = False

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self  # itself, not its generator: see `RoutedStream.__iter__`

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._iterator.__anext__()

    async def close(self) -> None:
        if self._settle.route is None:
            await self._chunks.aclose()
            self._settle.finish_row(self._chunks, None, closed_early=True)

    async def __aenter__(self) -> AsyncRoutedStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
