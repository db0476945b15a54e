"""OpenAI and every OpenAI-compatible server, through the real `openai` SDK.

One adapter, several dialects (OpenAI, DeepSeek, vLLM, Ollama, llama.cpp). A dialect is a row of
data: how the server reports usage (PROVIDERS.md section 1), which max-tokens argument it takes, and
what its finish reasons mean. Unknown finish reasons normalise to "unknown", never to "stop".
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx2
import openai
from openai import AsyncStream, Stream
from openai._streaming import ServerSentEvent
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage

from .. import errors as E
from ..response import FastChunk, RoutedChatCompletion
from ..usage import FinishReason, Usage, reported_usage
from ._watchdog import Bound, bound_for, stalled
from .base import (
    MALFORMED,
    AsyncChunkStream,
    ChunkStream,
    Completed,
    SDKAdapter,
    malformed,
    redact_sdk_error,
    request_for,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from ..catalog import Deployment, ProviderSpec
    from ..policy import Target
    from ..request import ChatRequest

__all__ = ["DIALECTS", "Dialect", "OpenAICompatAdapter", "decode_usage"]

_RAW = {"X-Stainless-Raw-Response": "true"}
# Non-streaming answers are sent for with the SDK's streamed raw response: the call returns with the
# headers, so the body's read can be bounded (see `_watchdog`), then `parse()` reads it.
_RAW_HEADERS = {"X-Stainless-Raw-Response": "stream"}

OPENAI_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one OpenAI-compatible server differs from OpenAI."""

    name: str
    usage: Literal["openai", "deepseek", "llamacpp"] = "openai"
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    finish_reasons: Mapping[str, FinishReason] = field(default_factory=lambda: dict(OPENAI_FINISH))
    needs_key: bool = True


DIALECTS: Mapping[str, Dialect] = {
    "openai": Dialect("openai", "openai", "max_completion_tokens"),
    "deepseek": Dialect(
        "deepseek",
        "deepseek",
        "max_tokens",
        # The server ran out of resources mid-answer: the text is cut, like a length stop.
        {**OPENAI_FINISH, "insufficient_system_resource": "length"},
    ),
    "vllm": Dialect("vllm", "openai", "max_tokens", {**OPENAI_FINISH, "abort": "unknown"}, needs_key=False),
    "ollama": Dialect("ollama", "openai", "max_tokens", needs_key=False),
    "llamacpp": Dialect("llamacpp", "llamacpp", "max_tokens", needs_key=False),
}


_T = TypeVar("_T")


class _KeepAliveStream(Stream[_T]):
    """The SDK's `Stream`, reading an HTTP/1.1 body to its end before acting on `data: [DONE]`.

    The SDK stops at `[DONE]` and closes the response with the chunked body's last bytes unread, so
    httpcore drops the connection and every stream opens a new one (a TLS handshake each against a
    real provider). Servers end the body right after `[DONE]`, so reading on costs nothing; the
    async SDK already does it (`drain_response_async`), and openai-python 1.x did it here too.
    """

    def _iter_events(self) -> Iterator[ServerSentEvent]:
        events = super()._iter_events()
        for sse in events:
            if sse.data.startswith("[DONE]") and self.response.http_version == "HTTP/1.1":
                for _ in events:  # the rest of the body: normally only the chunked terminator
                    pass
            yield sse


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def decode_usage(usage: Any, carrier: Any, dialect: Dialect) -> Usage:
    """Normalise a usage object (and, for llama.cpp, the `timings` beside it) into `Usage`."""
    if usage is None and dialect.usage != "llamacpp":
        return Usage()
    output = _int(getattr(usage, "completion_tokens", 0))
    completion_details = getattr(usage, "completion_tokens_details", None)
    reasoning = _int(getattr(completion_details, "reasoning_tokens", 0)) if completion_details else 0
    if dialect.usage == "deepseek":
        hit = _int(getattr(usage, "prompt_cache_hit_tokens", 0))
        miss = getattr(usage, "prompt_cache_miss_tokens", None)
        total = hit + _int(miss) if miss is not None else _int(getattr(usage, "prompt_tokens", 0))
        return reported_usage(total, output, cache_read_tokens=hit, reasoning_tokens=reasoning)
    if dialect.usage == "llamacpp":
        timings = getattr(carrier, "timings", None)
        if isinstance(timings, Mapping):
            cached, new = _int(timings.get("cache_n")), _int(timings.get("prompt_n"))
            output = output or _int(timings.get("predicted_n"))
            return reported_usage(cached + new, output, cache_read_tokens=cached)
        return reported_usage(_int(getattr(usage, "prompt_tokens", 0)), output)
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    cached = _int(getattr(prompt_details, "cached_tokens", 0)) if prompt_details else 0
    written = _int(getattr(prompt_details, "cache_write_tokens", 0)) if prompt_details else 0
    return reported_usage(
        _int(getattr(usage, "prompt_tokens", 0)),
        output,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def normalise_finish(value: object, dialect: Dialect) -> FinishReason | None:
    if value is None:
        return None
    if not isinstance(value, str):  # the SDK does not validate answers: `"finish_reason": []`
        return "unknown"
    return dialect.finish_reasons.get(value, "unknown")


class OpenAICompatAdapter(SDKAdapter):
    """Serves one deployment of an OpenAI-compatible dialect through `openai.OpenAI`."""

    sync_class = openai.OpenAI
    async_class = openai.AsyncOpenAI

    def __init__(self, deployment: Deployment, provider: ProviderSpec) -> None:
        super().__init__(deployment, provider)
        self.dialect = DIALECTS[deployment.dialect or provider.dialect]

    def _settings(self) -> dict[str, Any]:
        settings = super()._settings()
        if settings["api_key"] is None:
            settings["api_key"] = "no-key"  # self-hosted servers take any key; the SDK insists on one
        return settings

    # -- encode / decode (pure) ----------------------------------------------------------------

    def encode(
        self, request: ChatRequest, target: Target, stream: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The JSON body and the SDK request options for this request on this target."""
        body: dict[str, Any] = {"model": target.api_name, "messages": request.messages, **request.body}
        limit = request.max_output_tokens
        if limit is not None:
            body.pop("max_tokens", None)
            body.pop("max_completion_tokens", None)
            body[self.dialect.max_tokens_param] = limit
        if stream:
            body["stream"] = True
            # Always ask for usage: the ledger needs it. The stream hides the extra chunk if the
            # caller did not ask for it.
            body["stream_options"] = {**(request.body.get("stream_options") or {}), "include_usage": True}
        options: dict[str, Any] = {
            "headers": {**(_RAW if stream else _RAW_HEADERS), **(request.extra_headers or {})}
        }
        if request.extra_query:
            options["params"] = dict(request.extra_query)
        if request.extra_body:
            options["extra_json"] = dict(request.extra_body)
        if request.timeout is not None:
            options["timeout"] = request.timeout
        return body, options

    def decode(
        self,
        completion: RoutedChatCompletion,
        headers: Mapping[str, str],
        response: httpx2.Response | None = None,
    ) -> Completed:
        finishes = [normalise_finish(choice.finish_reason, self.dialect) for choice in completion.choices]
        # With n > 1, the worst finish of any choice speaks for the response.
        worst = [f for f in finishes if f is not None and f != "stop"]
        finish: FinishReason = worst[0] if worst else (finishes[0] if finishes and finishes[0] else "unknown")
        return Completed(
            completion=completion,
            usage=decode_usage(completion.usage, completion, self.dialect),
            finish_reason=finish,
            served_model=completion.model or None,
            request_id=headers.get("x-request-id"),
            headers=headers,
            http_response=response,
        )

    # -- I/O -----------------------------------------------------------------------------------

    def post_args(self, request: ChatRequest, target: Target, stream_cls: Any = None) -> dict[str, Any]:
        """Arguments for the SDK client's `post("/chat/completions", ...)`: the body, the options
        with the raw-response header (for the provider's headers), and the stream class if streaming."""
        body, options = self.encode(request, target, stream=stream_cls is not None)
        args: dict[str, Any] = {"body": body, "cast_to": RoutedChatCompletion, "options": options}
        if stream_cls is not None:
            args.update(stream=True, stream_cls=stream_cls)
        return args

    def _bound(self, raw: Any, request: ChatRequest, started: float) -> Bound | None:
        return bound_for(raw.http_response, request.timeout, self.deployment.timeout, started)

    def _failed(self, error: BaseException, target: Target, bound: Bound | None, response: Any) -> Exception:
        if bound is not None and bound.expired:
            return stalled(bound, target, response)
        mapped = self.map_error(error, target)
        if bound is not None and isinstance(mapped, E.ProviderTimeout):  # the SDK's read timeout came
            return stalled(bound, target, response)  # first: the same stall after the headers
        return mapped

    def complete(self, request: ChatRequest, target: Target) -> Completed:
        started = time.monotonic()
        try:
            raw = self.sync_client().post("/chat/completions", **self.post_args(request, target))
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        try:
            completion = raw.parse()
            check_completion(completion, target, raw.http_response)
        except (openai.OpenAIError, httpx2.HTTPError, *MALFORMED) as e:
            raw.http_response.close()
            raise self._failed(e, target, bound, raw.http_response) from e
        finally:
            if bound is not None:
                bound.finish()
        return self.decode(completion, raw.headers, raw.http_response)

    async def acomplete(self, request: ChatRequest, target: Target) -> Completed:
        started = time.monotonic()
        try:
            raw = await self.async_client().post("/chat/completions", **self.post_args(request, target))
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        try:
            completion = await raw.parse()
            check_completion(completion, target, raw.http_response)
        except (openai.OpenAIError, httpx2.HTTPError, *MALFORMED) as e:
            await raw.http_response.aclose()
            raise self._failed(e, target, bound, raw.http_response) from e
        finally:
            if bound is not None:
                bound.finish()
        return self.decode(completion, raw.headers, raw.http_response)

    def stream(self, request: ChatRequest, target: Target) -> ChunkStream:
        args = self.post_args(request, target, _KeepAliveStream[FastChunk])
        started = time.monotonic()
        try:
            raw = self.sync_client().post("/chat/completions", **args)
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        return _Chunks(self, target, raw.parse(), raw.headers, not request.include_usage, bound)

    async def astream(self, request: ChatRequest, target: Target) -> AsyncChunkStream:
        args = self.post_args(request, target, AsyncStream[FastChunk])
        started = time.monotonic()
        try:
            raw = await self.async_client().post("/chat/completions", **args)
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        return _AsyncChunks(self, target, raw.parse(), raw.headers, not request.include_usage, bound)

    # -- errors --------------------------------------------------------------------------------

    def map_error(self, error: BaseException, target: Target) -> Exception:
        return map_openai_error(error, target, self._secrets)


def check_completion(completion: Any, target: Target, response: httpx2.Response | None) -> None:
    """Raise `MalformedResponse` unless `completion` has the shape every caller relies on."""
    choices = getattr(completion, "choices", None)
    if (
        not isinstance(choices, list)
        or not choices
        or not all(isinstance(getattr(c, "message", None), ChatCompletionMessage) for c in choices)
    ):
        raise E.MalformedResponse(
            "the provider's answer has no valid `choices`",
            request=request_for(target, response),
            response=response,
            provider=target.provider.name,
            deployment=target.deployment.name,
            model=target.model.id,
        )


def map_openai_error(error: BaseException, target: Target, secrets: tuple[str, ...]) -> Exception:
    """The one place `openai` SDK and `httpx2` errors become llmroute errors."""
    if isinstance(error, E.ProviderError):
        return error  # already ours (a malformed answer found after parsing)
    facts: dict[str, Any] = {
        "provider": target.provider.name,
        "deployment": target.deployment.name,
        "model": target.model.id,
    }
    redact_sdk_error(error, secrets)
    if isinstance(error, openai.APIStatusError):
        response = error.response
        body = error.body
        cls = E.status_error_class(response.status_code, body)
        retryable = E.default_retryability(cls)
        should = response.headers.get("x-should-retry")
        if should == "true" and retryable is not E.Retryability.FATAL:
            retryable = E.Retryability.RETRY
        elif should == "false" and retryable is E.Retryability.RETRY:
            retryable = E.Retryability.NEXT_TARGET
        return cls(
            E.redact(error.message, secrets),
            request=response.request,
            response=response,
            body=body,
            retryable=retryable,
            retry_after=retry_after_seconds(response.headers),
            request_id=response.headers.get("x-request-id") or response.headers.get("request-id"),
            **facts,
        )
    if isinstance(error, openai.APITimeoutError):
        return E.ProviderTimeout(E.redact(error.message, secrets), request=error.request, **facts)
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f"{error.message} ({type(cause).__name__}: {cause})" if cause else error.message
        return E.ProviderConnectionError(E.redact(detail, secrets), request=error.request, **facts)
    if isinstance(error, openai.APIError):  # e.g. an error event in the middle of a stream
        return E.ProviderError(
            E.redact(error.message, secrets), request=error.request, body=error.body, **facts
        )
    if isinstance(error, httpx2.TimeoutException):
        return E.ProviderTimeout(E.redact(str(error), secrets), request=error.request, **facts)
    if isinstance(error, httpx2.RequestError):
        return E.ProviderConnectionError(E.redact(str(error), secrets), request=error.request, **facts)
    if isinstance(error, MALFORMED):
        return malformed(error, target, secrets)
    if isinstance(error, Exception):
        return error
    raise error


def progressed(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk is content progress (see `_watchdog`): usage, or a choice with content,
    reasoning, tool calls, a refusal or a finish reason — not an empty keep-alive delta."""
    if chunk.usage is not None:
        return True
    for choice in chunk.choices:
        delta = choice.delta
        if (
            delta.content
            or delta.tool_calls
            or choice.finish_reason is not None
            or delta.refusal
            or delta.__pydantic_extra__
        ):
            return True
    return False


class _Chunks(ChunkStream):
    def __init__(
        self,
        adapter: OpenAICompatAdapter,
        target: Target,
        stream: Stream[ChatCompletionChunk],
        headers: Mapping[str, str],
        hide_usage: bool,
        bound: Bound | None = None,
    ) -> None:
        self._adapter, self._target, self._stream = adapter, target, stream
        self.headers = headers
        self.response = stream.response
        self.request_id = headers.get("x-request-id")
        self._hide_usage = hide_usage
        self._bound = bound

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        dialect = self._adapter.dialect
        bound = self._bound
        try:
            for chunk in self._stream:
                if chunk.usage is not None or dialect.usage == "llamacpp":
                    usage = decode_usage(chunk.usage, chunk, dialect)
                    if usage.total_tokens:
                        self.usage = usage
                    if self._hide_usage and not chunk.choices:
                        continue
                if bound is None:
                    yield chunk
                else:
                    bound.hold(progressed(chunk))
                    yield chunk
                    bound.resume()
        except (openai.OpenAIError, httpx2.HTTPError, *MALFORMED) as e:
            raise self._adapter._failed(e, self._target, bound, self.response) from e
        finally:
            if bound is not None:
                bound.finish()
        if bound is not None and bound.expired:  # the shut socket read as the body's end
            raise stalled(bound, self._target, self.response)

    def close(self) -> None:
        if self._bound is not None:
            self._bound.finish()
        self._stream.close()


class _AsyncChunks(AsyncChunkStream):
    def __init__(
        self,
        adapter: OpenAICompatAdapter,
        target: Target,
        stream: AsyncStream[ChatCompletionChunk],
        headers: Mapping[str, str],
        hide_usage: bool,
        bound: Bound | None = None,
    ) -> None:
        self._adapter, self._target, self._stream = adapter, target, stream
        self.headers = headers
        self.response = stream.response
        self.request_id = headers.get("x-request-id")
        self._hide_usage = hide_usage
        self._bound = bound

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        dialect = self._adapter.dialect
        bound = self._bound
        try:
            async for chunk in self._stream:
                if chunk.usage is not None or dialect.usage == "llamacpp":
                    usage = decode_usage(chunk.usage, chunk, dialect)
                    if usage.total_tokens:
                        self.usage = usage
                    if self._hide_usage and not chunk.choices:
                        continue
                if bound is None:
                    yield chunk
                else:
                    bound.hold(progressed(chunk))
                    yield chunk
                    bound.resume()
        except (openai.OpenAIError, httpx2.HTTPError, *MALFORMED) as e:
            raise self._adapter._failed(e, self._target, bound, self.response) from e
        finally:
            if bound is not None:
                bound.finish()
        if bound is not None and bound.expired:
            raise stalled(bound, self._target, self.response)

    async def aclose(self) -> None:
        if self._bound is not None:
            self._bound.finish()
        await self._stream.close()
