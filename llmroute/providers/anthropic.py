"""Anthropic's Messages API behind the OpenAI Chat Completions surface, through the real `anthropic` SDK.

A full translation (PROVIDERS.md sections 1-4 and 6; every argument in docs/anthropic.md):

- Requests: `system`/`developer` messages become the top-level `system` (text blocks); consecutive
  same-role turns are merged; text, image (data URL -> base64 source, http(s) URL -> url source) and
  PDF file parts become blocks; assistant `tool_calls` become `tool_use` blocks and `tool` messages
  `tool_result` blocks in the following user turn (first in it, as the API requires); `tools` and
  `tool_choice` (auto, none, required -> any, a named function -> tool) are translated;
  `response_format` json_object / json_schema becomes a forced tool whose input is returned as the
  message content. Arguments Anthropic cannot honour are rejected with `InvalidRequest` before any
  call (`check`).
- Responses: text blocks -> `content`, `tool_use` -> `tool_calls` (JSON-string arguments), thinking
  -> `reasoning_content` (plus `thinking_blocks` with their signatures, for sending back); stop
  reasons mapped explicitly (`FINISH`), unknown ones kept raw in the completion and normalised to
  "unknown"; usage: `prompt_tokens` = input + cache reads + cache writes.
- Streams: Anthropic events -> `ChatCompletionChunk`s with stable tool-call indexes; `message_delta`
  usage is cumulative; a mid-stream `error` event becomes the matching llmroute error.
- Errors: mapped in ONE function, `map_anthropic_error`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2
from anthropic._constants import ANTHROPIC_API_VERSION, MODEL_NONSTREAMING_TOKENS
from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion import Choice as CompletionChoice
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)

from .. import errors as E
from ..errors import InvalidRequest
from ..response import RoutedChatCompletion
from ._watchdog import Bound, DeadlineTimeout, bound_for, stalled
from .base import (
    MALFORMED,
    AsyncChunkStream,
    ChunkStream,
    Completed,
    SDKAdapter,
    malformed,
    redact_sdk_error,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from ..policy import Target
    from ..request import ChatRequest

from ._anthropic_stream import _AsyncChunks, _Chunks, _Translate
from ._anthropic_wire import (
    _ERROR_STATUS,
    _REJECTED,
    DEFAULT_MAX_TOKENS,
    FINISH,
    SAMPLING_REMOVED,
    _count_breakpoints,
    _dumps,
    _Encoded,
    _finish,
    _int,
    _json_tool,
    _make,
    _messages,
    _openai_usage,
    _tool_choice,
    _tools,
    decode_usage,
    default_max_tokens,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINISH",
    "AnthropicAdapter",
    "decode_usage",
    "default_max_tokens",
    "map_anthropic_error",
]


# ------------------------------------------------------------------------------------ adapter


class AnthropicAdapter(SDKAdapter):
    """Serves one Anthropic deployment through `anthropic.Anthropic` / `anthropic.AsyncAnthropic`."""

    sync_class = anthropic.Anthropic
    async_class = anthropic.AsyncAnthropic

    # -- encode / decode (pure) ----------------------------------------------------------------

    def api_version(self, request: ChatRequest) -> str:
        """The `anthropic-version` a call will send: the request's or deployment's header, else the SDK's."""
        for headers in (request.extra_headers, self.deployment.headers):
            for name, value in (headers or {}).items():
                if name.lower() == "anthropic-version":
                    return str(value)
        return ANTHROPIC_API_VERSION

    def check(self, request: ChatRequest) -> None:
        """Reject, before any call, what Anthropic cannot do (raises `InvalidRequest`)."""
        body = request.body
        for name, why in _REJECTED.items():
            if body.get(name) is not None:
                raise InvalidRequest(name, why)
        if _int(body.get("n", 1)) > 1:
            raise InvalidRequest("n", "Anthropic returns one choice per call; make n separate calls")
        if body.get("logprobs") or body.get("top_logprobs"):
            name = "logprobs" if body.get("logprobs") else "top_logprobs"
            raise InvalidRequest(name, "Anthropic does not return log probabilities")
        for name in ("presence_penalty", "frequency_penalty"):
            if body.get(name):
                raise InvalidRequest(name, "Anthropic has no repetition penalties (0 is accepted as a no-op)")
        if body.get("logit_bias"):
            raise InvalidRequest("logit_bias", "Anthropic does not accept token biases")
        modalities = body.get("modalities")
        if modalities is not None and any(m != "text" for m in modalities):
            raise InvalidRequest("modalities", "Anthropic models answer in text only")
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            raise InvalidRequest(
                "temperature", f"Anthropic accepts 0 to 1 (OpenAI's 0-2 is not rescaled), got {temperature!r}"
            )

    def encode(self, request: ChatRequest, target: Target, stream: bool) -> _Encoded:
        """The `messages.create` keyword arguments for this request on this target."""
        self.check(request)
        body = request.body
        system, messages = _messages(request)
        tools = _tools(body)
        choice = _tool_choice(body, bool(tools))
        json_tool: str | None = None
        fmt = body.get("response_format")
        if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
            tool = _json_tool(fmt, tools)
            json_tool = tool["name"]
            if choice is not None and choice["type"] == "tool":
                pass  # the caller forced one of their own tools: it wins
            elif tools and (choice is None or choice["type"] in ("auto", "any")):
                choice = {**(choice or {}), "type": "any"}  # their tools, or the answer tool
            else:
                choice = {**(choice or {}), "type": "tool", "name": json_tool}
            tools.append(tool)
        _count_breakpoints(tools, system, messages, request.extra_body)
        params: dict[str, Any] = {
            "model": target.api_name,
            "max_tokens": request.max_output_tokens or default_max_tokens(target, stream),
            "messages": messages,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = tools
        if choice is not None and tools:
            params["tool_choice"] = choice
        stop = body.get("stop")
        if stop:
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        user = body.get("user") or body.get("safety_identifier")
        if user:
            params["metadata"] = {"user_id": str(user)}
        if stream:
            params["stream"] = True
        extra: dict[str, Any] = {}
        if self.api_version(request) < SAMPLING_REMOVED:  # older API versions still take sampling
            extra.update({k: body[k] for k in ("temperature", "top_p") if body.get(k) is not None})
        extra.update(request.extra_body or {})
        if extra:
            params["extra_body"] = extra
        if request.extra_headers:
            params["extra_headers"] = dict(request.extra_headers)
        if request.extra_query:
            params["extra_query"] = dict(request.extra_query)
        if request.timeout is not None:
            params["timeout"] = request.timeout
        return _Encoded(params, json_tool)

    def decode(self, message: Any, response: httpx2.Response, json_tool: str | None) -> Completed:
        """An Anthropic `Message` (and the HTTP response it came in) as a `RoutedChatCompletion`."""
        text: list[str] = []
        thinking: list[str] = []
        thinking_blocks: list[dict[str, Any]] = []
        calls: list[ChatCompletionMessageFunctionToolCall] = []
        answer: str | None = None
        for block in message.content:
            kind = block.type
            if kind == "text":
                text.append(block.text)
            elif kind == "thinking":
                thinking.append(block.thinking)
                thinking_blocks.append(
                    {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
                )
            elif kind == "redacted_thinking":
                thinking_blocks.append({"type": "redacted_thinking", "data": block.data})
            elif kind == "tool_use" and block.name == json_tool:
                answer = _dumps(block.input)
            elif kind == "tool_use":
                function = _make(Function, name=block.name, arguments=_dumps(block.input))
                calls.append(
                    _make(
                        ChatCompletionMessageFunctionToolCall, id=block.id, type="function", function=function
                    )
                )
        raw_finish, finish = _finish(message.stop_reason, answer is not None and not calls)
        usage = decode_usage(message.usage)
        content = answer if answer is not None else ("".join(text) or (None if calls else ""))
        details = getattr(message, "stop_details", None)
        fields: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": getattr(details, "explanation", None) if message.stop_reason == "refusal" else None,
            "annotations": [],
        }
        if calls:
            fields["tool_calls"] = calls
        if thinking_blocks:  # extra fields, as DeepSeek's reasoning_content
            fields["reasoning_content"] = "".join(thinking)
            fields["thinking_blocks"] = thinking_blocks
        choice = _make(
            CompletionChoice,
            index=0,
            message=_make(ChatCompletionMessage, **fields),
            finish_reason=raw_finish,
            logprobs=None,
        )
        completion = _make(
            RoutedChatCompletion,
            id=message.id,
            object="chat.completion",
            created=int(time.time()),
            model=message.model,
            choices=[choice],
            usage=_openai_usage(usage),
        )
        return Completed(
            completion=completion,
            usage=usage,
            finish_reason=finish,
            served_model=message.model or None,
            request_id=response.headers.get("request-id"),
            headers=response.headers,
            http_response=response,
        )

    # -- I/O -----------------------------------------------------------------------------------

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
        encoded = self.encode(request, target, stream=False)
        client: Any = self.sync_client()
        started = time.monotonic()
        try:  # the headers only (the SDK's streamed raw response), so the body's read is bounded
            _refuse_long(client, request, encoded.params, target)
            raw = client.messages.create(**_headers_only(encoded.params))
        except ValueError as e:  # the SDK refuses long non-streaming calls before sending them
            raise InvalidRequest("max_tokens", str(e)) from e
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        try:
            return self.decode(raw.parse(), raw.http_response, encoded.json_tool)
        except (anthropic.AnthropicError, httpx2.HTTPError, *MALFORMED) as e:
            raw.http_response.close()
            raise self._failed(e, target, bound, raw.http_response) from e
        finally:
            if bound is not None:
                bound.finish()

    async def acomplete(self, request: ChatRequest, target: Target) -> Completed:
        encoded = self.encode(request, target, stream=False)
        client: Any = self.async_client()
        started = time.monotonic()
        try:  # the headers only (the SDK's streamed raw response), so the body's read is bounded
            _refuse_long(client, request, encoded.params, target)
            raw = await client.messages.create(**_headers_only(encoded.params))
        except ValueError as e:  # the SDK refuses long non-streaming calls before sending them
            raise InvalidRequest("max_tokens", str(e)) from e
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        bound = self._bound(raw, request, started)
        try:
            return self.decode(await raw.parse(), raw.http_response, encoded.json_tool)
        except (anthropic.AnthropicError, httpx2.HTTPError, *MALFORMED) as e:
            await raw.http_response.aclose()
            raise self._failed(e, target, bound, raw.http_response) from e
        finally:
            if bound is not None:
                bound.finish()

    def stream(self, request: ChatRequest, target: Target) -> ChunkStream:
        encoded = self.encode(request, target, stream=True)
        client: Any = self.sync_client()
        started = time.monotonic()
        try:
            raw = client.messages.with_raw_response.create(**encoded.params)
            events = raw.parse()
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        translate = _Translate(target, encoded.json_tool, hide_usage=not request.include_usage)
        bound = self._bound(raw, request, started)
        return _Chunks(self, target, events, raw.http_response, translate, bound)

    async def astream(self, request: ChatRequest, target: Target) -> AsyncChunkStream:
        encoded = self.encode(request, target, stream=True)
        client: Any = self.async_client()
        started = time.monotonic()
        try:
            raw = await client.messages.with_raw_response.create(**encoded.params)
            events = await raw.parse()
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        translate = _Translate(target, encoded.json_tool, hide_usage=not request.include_usage)
        bound = self._bound(raw, request, started)
        return _AsyncChunks(self, target, events, raw.http_response, translate, bound)

    # -- errors --------------------------------------------------------------------------------

    def map_error(self, error: BaseException, target: Target) -> Exception:
        return map_anthropic_error(error, target, self._secrets)


def _refuse_long(client: Any, request: ChatRequest, params: dict[str, Any], target: Target) -> None:
    """The SDK's refusal of a non-streaming call that may run over 10 minutes (a `ValueError`) is
    skipped when a timeout is passed; a call whose only timeout is the rest of its deadline
    (`DeadlineTimeout` without a window) gave none, so the refusal applies as without a router."""
    timeout = request.timeout
    check = getattr(client, "_calculate_nonstreaming_timeout", None)
    if isinstance(timeout, DeadlineTimeout) and timeout.window is None and check is not None:
        check(params["max_tokens"], MODEL_NONSTREAMING_TOKENS.get(target.api_name))


def _headers_only(params: dict[str, Any]) -> dict[str, Any]:
    """`messages.create` arguments asking the SDK for its raw response as soon as the headers are
    in (`with_streaming_response`'s mode); `parse()` then reads and decodes the body."""
    headers = {**(params.get("extra_headers") or {}), "X-Stainless-Raw-Response": "stream"}
    return {**params, "extra_headers": headers}


def map_anthropic_error(error: BaseException, target: Target, secrets: tuple[str, ...]) -> Exception:
    """The one place `anthropic` SDK and `httpx2` errors become llmroute errors.

    The class follows the HTTP status (PROVIDERS.md section 4: 413 `RequestTooLargeError`, 529
    `OverloadedError`, 402 billing...), except for an `error` event inside a stream, which the SDK
    raises as a plain `APIStatusError` with the stream's status 200: there the error's `type`
    (`overloaded_error`, ...) decides. A 400 about the credit balance is a `PaymentRequired`.
    """
    facts: dict[str, Any] = {
        "provider": target.provider.name,
        "deployment": target.deployment.name,
        "model": target.model.id,
    }
    if isinstance(error, E.ProviderError):
        return error  # already ours
    if isinstance(error, MALFORMED):
        return malformed(error, target, secrets)
    redact_sdk_error(error, secrets)  # it is chained as the cause: scrub it too
    if isinstance(error, anthropic.APIStatusError):
        response = error.response
        inner = error.body.get("error") if isinstance(error.body, dict) else None
        body = inner if isinstance(inner, dict) else error.body
        kind = body.get("type") if isinstance(body, dict) else None
        text = body.get("message") if isinstance(body, dict) else None
        status = response.status_code
        if status < 400:  # an error event in the middle of a 200 stream
            status = _ERROR_STATUS.get(str(kind), 500)
        cls = E.status_error_class(status, body)
        if kind == "overloaded_error":
            cls = E.Overloaded
        elif kind == "billing_error" or (status == 400 and "credit balance" in str(text).lower()):
            cls = E.PaymentRequired
        retryable = E.default_retryability(cls)
        should = response.headers.get("x-should-retry")
        if should == "true" and retryable is not E.Retryability.FATAL:
            retryable = E.Retryability.RETRY
        elif should == "false" and retryable is E.Retryability.RETRY:
            retryable = E.Retryability.NEXT_TARGET
        message = f"{kind}: {text}" if kind and text else error.message
        return cls(
            message,
            request=response.request,
            response=response,
            body=body,
            retryable=retryable,
            retry_after=retry_after_seconds(response.headers),
            request_id=response.headers.get("request-id") or response.headers.get("x-request-id"),
            **facts,
        )
    if isinstance(error, anthropic.APITimeoutError):
        return E.ProviderTimeout(error.message, request=error.request, **facts)
    if isinstance(error, anthropic.APIConnectionError):
        cause = error.__cause__
        detail = f"{error.message} ({type(cause).__name__}: {cause})" if cause else error.message
        return E.ProviderConnectionError(E.redact(detail, secrets), request=error.request, **facts)
    if isinstance(error, anthropic.APIError):  # e.g. a response that is not a valid Message
        return E.ProviderError(error.message, request=error.request, body=error.body, **facts)
    if isinstance(error, httpx2.TimeoutException):
        return E.ProviderTimeout(E.redact(str(error), secrets), request=error.request, **facts)
    if isinstance(error, httpx2.RequestError):
        return E.ProviderConnectionError(E.redact(str(error), secrets), request=error.request, **facts)
    if isinstance(error, Exception):
        return error
    raise error
