"""The `chat.completions` surface of the routers, as the OpenAI SDK shapes it.

`create`, `parse` (structured outputs into a pydantic model), `stream` (the SDK's streaming helper
with its events and `get_final_completion()`), and `with_raw_response` (the provider's headers, then
`.parse()`). `parse` and `stream` reuse the `openai` SDK's own helpers for schemas, parsing and stream
events, so they behave exactly as the SDK documents them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import httpx2
from openai import omit

from ._sdkclient import call_defaults
from .errors import InvalidRequest, LLMRouteError
from .request import not_given
from .response import RoutedChatCompletion

if TYPE_CHECKING:
    from .parsed import RoutedParsedChatCompletion
    from .stream import AsyncRoutedStream, RoutedStream

__all__ = ["AsyncChat", "AsyncCompletions", "Chat", "Completions", "RawResponse"]

T = TypeVar("T")


class _Creates(Protocol):
    """What the sync resources need of a router: one entry point for a call's keyword arguments."""

    def _create(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | RoutedStream: ...


class _ACreates(Protocol):
    """What the async resources need of a router."""

    async def _create(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | AsyncRoutedStream: ...


def _given(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments actually given: the SDK's `omit` / `NOT_GIVEN` (and any `Omit` / `NotGiven`
    instance) mean "not given", for every argument, as they do in the SDK."""
    return {k: v for k, v in kwargs.items() if not not_given(v)}


def _converted(argument: str, convert: Any, value: Any) -> Any:
    """The SDK helper `convert` applied to the caller's `value`; its complaint, whatever its type,
    becomes an `InvalidRequest` naming the argument (the SDK raises TypeError, ValueError or
    pydantic's errors here, before any call)."""
    try:
        return convert(value)
    except LLMRouteError:
        raise
    except Exception as e:
        raise InvalidRequest(argument, f"{type(e).__name__}: {e}") from e


def _with_helper_header(kwargs: dict[str, Any], helper: str) -> None:
    headers = kwargs.get("extra_headers")
    if headers is None:
        headers = {}
    if isinstance(headers, Mapping):  # anything else is named by the request's validation
        kwargs["extra_headers"] = {"X-Stainless-Helper-Method": helper, **headers}


def _parse_arguments(kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Turn a pydantic `response_format` into the JSON-schema format and validate the tools, the
    way the SDK's own `parse()` does. Returns (response_format as given, input tools)."""
    from openai.lib._parsing import type_to_response_format_param, validate_input_tools

    if kwargs.get("stream"):
        raise InvalidRequest(
            "stream", "parse() does not stream; use stream() for a streamed structured output"
        )
    response_format = kwargs.get("response_format", omit)
    tools = _converted("tools", validate_input_tools, kwargs.get("tools", omit))
    if response_format is not omit:
        kwargs["response_format"] = _converted(
            "response_format", type_to_response_format_param, response_format
        )
    if tools is not omit:
        kwargs["tools"] = tools
    _with_helper_header(kwargs, "chat.completions.parse")
    return response_format, tools


def _parsed(
    completion: RoutedChatCompletion, response_format: Any, tools: Any
) -> RoutedParsedChatCompletion[Any]:
    from openai.lib._parsing import parse_chat_completion

    from .parsed import RoutedParsedChatCompletion

    parsed = parse_chat_completion(
        response_format=response_format, chat_completion=completion, input_tools=tools
    )
    return RoutedParsedChatCompletion.wrap(parsed, completion)


def _materialize(tools: Any) -> Any:
    return list(tools) if tools is not omit else omit


def _stream_request(create: Any, kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    from openai.lib._parsing import type_to_response_format_param

    materialize_input_tools: Any
    try:
        from openai.lib._parsing._completions import materialize_input_tools
    except ImportError:  # openai 3.3 and earlier have no materialize_input_tools
        materialize_input_tools = _materialize

    if "stream" in kwargs:
        raise InvalidRequest("stream", "stream() always streams; it takes no stream= argument")
    response_format = kwargs.pop("response_format", omit)
    tools = _converted("tools", materialize_input_tools, kwargs.pop("tools", omit))
    if tools is not omit:
        kwargs["tools"] = tools
    if response_format is not omit:
        kwargs["response_format"] = _converted(
            "response_format", type_to_response_format_param, response_format
        )
    _with_helper_header(kwargs, "chat.completions.stream")
    return partial(create, stream=True, **kwargs), response_format, tools


class RawResponse(Generic[T]):
    """What `with_raw_response.create(...)` returns: the provider's HTTP response, and `.parse()` for
    the typed object (like the SDK's `LegacyAPIResponse`). For a stream, `.parse()` is the stream."""

    def __init__(self, parsed: T, http_response: httpx2.Response | None) -> None:
        self._parsed = parsed
        self.http_response = http_response

    def parse(self) -> T:
        return self._parsed

    @property
    def headers(self) -> httpx2.Headers:
        return self.http_response.headers if self.http_response is not None else httpx2.Headers()

    @property
    def status_code(self) -> int:
        return self.http_response.status_code if self.http_response is not None else 200

    @property
    def request_id(self) -> str | None:
        headers: Mapping[str, str] = self.headers
        return headers.get("x-request-id") or headers.get("request-id")

    @property
    def url(self) -> httpx2.URL | None:
        return self.http_response.url if self.http_response is not None else None

    @property
    def elapsed(self) -> dt.timedelta:
        return self.http_response.elapsed if self.http_response is not None else dt.timedelta(0)


def _raw(result: Any) -> RawResponse[Any]:
    response = getattr(result, "_http_response", None)
    if response is None:
        response = getattr(result, "response", None)
    return RawResponse(result, response)


class Completions:
    """`router.chat.completions`."""

    def __init__(self, router: _Creates) -> None:
        self._router = router

    def create(self, **kwargs: Any) -> Any:
        """`openai`'s `chat.completions.create(...)` arguments, plus `route=` hints.

        Returns a `RoutedChatCompletion` (an `openai` `ChatCompletion`), or with `stream=True` a
        `RoutedStream` of `ChatCompletionChunk`.
        """
        return self._router._create(call_defaults(self._router, _given(kwargs)))

    def parse(self, **kwargs: Any) -> Any:
        """Structured output: `response_format=` a pydantic model (or a JSON schema format); returns
        a `ParsedChatCompletion` whose `choices[0].message.parsed` is an instance of the model.
        Raises `openai.LengthFinishReasonError` / `ContentFilterFinishReasonError` as the SDK does."""
        kwargs = _given(kwargs)
        response_format, tools = _parse_arguments(kwargs)
        completion = self._router._create(call_defaults(self._router, kwargs))
        assert isinstance(completion, RoutedChatCompletion)
        return _parsed(completion, response_format, tools)

    def stream(self, **kwargs: Any) -> Any:
        """The SDK's streaming helper: a context manager yielding `content.delta`, `content.done`,
        tool-call argument events..., with `get_final_completion()`."""
        from openai.lib.streaming.chat import ChatCompletionStreamManager

        request, response_format, tools = _stream_request(self.create, _given(kwargs))
        return ChatCompletionStreamManager(request, response_format=response_format, input_tools=tools)

    @property
    def with_raw_response(self) -> _RawCompletions:
        return _RawCompletions(self)

    @property
    def with_streaming_response(self) -> _StreamingCompletions:
        """`with client.chat.completions.with_streaming_response.create(...) as response:` — the
        response (`.headers`, `.parse()`) is there inside the block; a stream is closed at its end."""
        return _StreamingCompletions(self)


class _RawCompletions:
    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    def create(self, **kwargs: Any) -> RawResponse[Any]:
        return _raw(self._completions.create(**kwargs))

    def parse(self, **kwargs: Any) -> RawResponse[Any]:
        return _raw(self._completions.parse(**kwargs))


class _Streamed:
    """The context manager `with_streaming_response.create(...)` returns."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._raw: RawResponse[Any] | None = None

    def __enter__(self) -> RawResponse[Any]:
        self._raw = _raw(self._call())
        return self._raw

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._raw.parse() if self._raw is not None else None, "close", None)
        if callable(close):
            close()

    async def __aenter__(self) -> RawResponse[Any]:
        self._raw = _raw(await self._call())
        return self._raw

    async def __aexit__(self, *exc: object) -> None:
        parsed = self._raw.parse() if self._raw is not None else None
        close = getattr(parsed, "aclose", None) or getattr(parsed, "close", None)
        if callable(close):
            result = close()
            if hasattr(result, "__await__"):
                await result


class _StreamingCompletions:
    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    def create(self, **kwargs: Any) -> _Streamed:
        return _Streamed(partial(self._completions.create, **kwargs))

    def parse(self, **kwargs: Any) -> _Streamed:
        return _Streamed(partial(self._completions.parse, **kwargs))


class _AsyncStreamingCompletions:
    def __init__(self, completions: AsyncCompletions) -> None:
        self._completions = completions

    def create(self, **kwargs: Any) -> _Streamed:
        return _Streamed(partial(self._completions.create, **kwargs))

    def parse(self, **kwargs: Any) -> _Streamed:
        return _Streamed(partial(self._completions.parse, **kwargs))


class Chat:
    """`router.chat`."""

    def __init__(self, router: _Creates) -> None:
        self.completions = Completions(router)


class AsyncCompletions:
    """`async_router.chat.completions`."""

    def __init__(self, router: _ACreates) -> None:
        self._router = router

    async def create(self, **kwargs: Any) -> Any:
        """Async `chat.completions.create(...)`; see `Completions.create`."""
        return await self._router._create(call_defaults(self._router, _given(kwargs)))

    async def parse(self, **kwargs: Any) -> Any:
        """Async structured output; see `Completions.parse`."""
        kwargs = _given(kwargs)
        response_format, tools = _parse_arguments(kwargs)
        completion = await self._router._create(call_defaults(self._router, kwargs))
        assert isinstance(completion, RoutedChatCompletion)
        return _parsed(completion, response_format, tools)

    def stream(self, **kwargs: Any) -> Any:
        """The SDK's async streaming helper; see `Completions.stream`."""
        from openai.lib.streaming.chat import AsyncChatCompletionStreamManager

        request, response_format, tools = _stream_request(self.create, _given(kwargs))
        return AsyncChatCompletionStreamManager(request(), response_format=response_format, input_tools=tools)

    @property
    def with_raw_response(self) -> _AsyncRawCompletions:
        return _AsyncRawCompletions(self)

    @property
    def with_streaming_response(self) -> _AsyncStreamingCompletions:
        """`async with ...with_streaming_response.create(...) as response:`; see the sync one."""
        return _AsyncStreamingCompletions(self)


class _AsyncRawCompletions:
    def __init__(self, completions: AsyncCompletions) -> None:
        self._completions = completions

    async def create(self, **kwargs: Any) -> RawResponse[Any]:
        return _raw(await self._completions.create(**kwargs))

    async def parse(self, **kwargs: Any) -> RawResponse[Any]:
        return _raw(await self._completions.parse(**kwargs))


class AsyncChat:
    """`async_router.chat`."""

    def __init__(self, router: _ACreates) -> None:
        self.completions = AsyncCompletions(router)
