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

import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anthropic
import httpx2
import pydantic
from anthropic._constants import ANTHROPIC_API_VERSION, MODEL_NONSTREAMING_TOKENS
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice as CompletionChoice
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails

from .. import errors as E
from ..errors import InvalidRequest
from ..response import RoutedChatCompletion
from ..usage import FinishReason, Usage
from .base import (
    Adapter,
    AsyncChunkStream,
    ChunkStream,
    Completed,
    client_settings,
    redact_sdk_error,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from ..catalog import Deployment, ProviderSpec
    from ..policy import Target
    from ..request import ChatRequest

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "FINISH",
    "AnthropicAdapter",
    "decode_usage",
    "default_max_tokens",
    "map_anthropic_error",
]

FINISH: Mapping[str, tuple[str, FinishReason]] = {
    "end_turn": ("stop", "stop"),
    "stop_sequence": ("stop", "stop"),
    "max_tokens": ("length", "length"),
    "tool_use": ("tool_calls", "tool_calls"),
    "refusal": ("content_filter", "content_filter"),
    # The answer was cut because the context window filled up: a truncation like max_tokens.
    "model_context_window_exceeded": ("length", "length"),
    # A long server-tool turn was paused; the answer so far is incomplete: flagged as truncated.
    "pause_turn": ("length", "length"),
}
"""Anthropic `stop_reason` -> (the completion's OpenAI `finish_reason`, the normalised one). A value
not listed stays raw in the completion and normalises to "unknown" (never to "stop")."""

DEFAULT_MAX_TOKENS = 16_384
"""`max_tokens` when the caller gives none: the model's catalog `max_output`, capped at this. Anthropic
requires the argument, charges its output-token rate limit against it up front, and the SDK refuses
non-streaming calls that may run past 10 minutes (above 21,333 tokens)."""

SAMPLING_REMOVED = "2026-10-21"
"""From this API version (the `anthropic` 2.x default) `temperature`, `top_p` and `top_k` are rejected."""

JSON_TOOL = "json_response"
"""The forced tool's name for `response_format` json_object (json_schema uses the schema's name)."""

_MAX_BREAKPOINTS = 4
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+/-]+);base64,(?P<data>.*)$", re.DOTALL)
_UNSAFE_ID = re.compile(r"[^a-zA-Z0-9_-]")
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Chat Completions arguments with no Anthropic counterpart whose effect the caller would miss.
_REJECTED = {
    "audio": "Anthropic models do not produce audio",
    "functions": "the deprecated functions API is not translated; use tools=",
    "function_call": "the deprecated functions API is not translated; use tool_choice=",
    "web_search_options": "not translated; Anthropic's web search is a server tool (pass it via extra_body)",
    "moderation": "Anthropic has no moderated completions; the policy would not be applied",
}


_M = TypeVar("_M", bound=pydantic.BaseModel)
_construct = pydantic.BaseModel.model_construct.__func__  # type: ignore[attr-defined]


def _make(cls: type[_M], **values: Any) -> _M:
    """An `openai` model from values that are already built, without validation: pydantic's plain
    `model_construct`, ten times faster than the SDK's recursive `construct` (this runs per chunk)."""
    return cast(_M, _construct(cls, **values))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _d(value: Any) -> dict[str, Any]:
    """A part, tool or call as a plain dict (pydantic objects from earlier answers are accepted)."""
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        dumped = dump(mode="json", exclude_none=True)
        if isinstance(dumped, dict):
            return dumped
    return dict(value) if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ------------------------------------------------------------------------------------ encoding


@dataclass(slots=True)
class _Encoded:
    """The `messages.create` keyword arguments, and what decoding needs to know about them."""

    params: dict[str, Any]
    json_tool: str | None = None


@dataclass(slots=True)
class _Turn:
    role: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def _cache_control(where: str, part: Mapping[str, Any]) -> dict[str, Any] | None:
    """A part's `cache_control`, or OpenAI's `prompt_cache_breakpoint` translated to one."""
    control = part.get("cache_control")
    if control is not None:
        control = _d(control)
        if control.get("type") != "ephemeral" or control.get("ttl", "5m") not in ("5m", "1h"):
            raise InvalidRequest(
                f"{where}.cache_control",
                "expected {'type': 'ephemeral'} with an optional ttl of '5m' or '1h'",
            )
        return control
    breakpoint_ = part.get("prompt_cache_breakpoint")
    if breakpoint_ is not None:
        # OpenAI's TTL is a minimum lifetime (30m, 12h): only Anthropic's 1h TTL meets it.
        ttl = _d(breakpoint_).get("ttl")
        return {"type": "ephemeral", "ttl": "1h"} if ttl else {"type": "ephemeral"}
    return None


def _text_block(where: str, part: Mapping[str, Any]) -> dict[str, Any] | None:
    text = part.get("text")
    if not text:
        return None  # the API rejects empty text blocks
    block: dict[str, Any] = {"type": "text", "text": text}
    control = _cache_control(where, part)
    if control is not None:
        block["cache_control"] = control
    return block


def _image_block(where: str, part: Mapping[str, Any]) -> dict[str, Any]:
    image = _d(part.get("image_url"))
    url = str(image.get("url", ""))
    match = _DATA_URL.match(url)
    if match is not None:
        media_type = match.group("type").lower()
        if media_type not in _IMAGE_TYPES:
            raise InvalidRequest(
                f"{where}.image_url.url",
                f"Anthropic accepts {', '.join(sorted(_IMAGE_TYPES))} images, got {media_type}",
            )
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": match.group("data")}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise InvalidRequest(f"{where}.image_url.url", "expected a base64 data URL or an http(s) URL")
    block: dict[str, Any] = {"type": "image", "source": source}
    control = _cache_control(where, part)
    if control is not None:
        block["cache_control"] = control
    return block


def _file_block(where: str, part: Mapping[str, Any]) -> dict[str, Any]:
    file = _d(part.get("file"))
    match = _DATA_URL.match(str(file.get("file_data", "")))
    if match is None or match.group("type").lower() != "application/pdf":
        raise InvalidRequest(
            f"{where}.file", "only PDF files given inline as file_data (a base64 data URL) are translated"
        )
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": match.group("data")},
    }
    control = _cache_control(where, part)
    if control is not None:
        block["cache_control"] = control
    return block


def _content_blocks(where: str, role: str, content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, raw in enumerate(content):
        part = _d(raw)
        at = f"{where}[{j}]"
        kind = part.get("type")
        if kind == "text":
            block = _text_block(at, part)
        elif kind == "refusal" and role == "assistant":
            block = _text_block(at, {**part, "text": part.get("refusal")})
        elif kind == "image_url":
            block = _image_block(at, part)
        elif kind == "file" and role == "user":
            block = _file_block(at, part)
        else:
            raise InvalidRequest(
                f"{at}.type", f"{kind!r} parts in {role} messages are not supported by Anthropic"
            )
        if block is not None:
            blocks.append(block)
    return blocks


def _tool_id(value: Any) -> str:
    """A tool call id as Anthropic accepts it (letters, digits, `_`, `-`); the same id maps the same way."""
    return _UNSAFE_ID.sub("_", str(value)) or "_"


def _arguments(where: str, raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as e:
        raise InvalidRequest(
            where, f"is not valid JSON ({e}); Anthropic needs the arguments as an object"
        ) from e
    if not isinstance(value, dict):
        raise InvalidRequest(where, f"must be a JSON object for Anthropic, got {type(value).__name__}")
    return value


def _assistant_blocks(where: str, message: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for raw in message.get("thinking_blocks") or ():
        thinking = _d(raw)
        # Only signed blocks can go back; unsigned reasoning (another provider's) is dropped.
        if thinking.get("type") == "redacted_thinking" or thinking.get("signature"):
            blocks.append(thinking)
    blocks += _content_blocks(f"{where}.content", "assistant", message.get("content"))
    for j, raw in enumerate(message.get("tool_calls") or ()):
        call = _d(raw)
        if call.get("type", "function") != "function":
            raise InvalidRequest(f"{where}.tool_calls[{j}].type", "only function tool calls are translated")
        function = _d(call.get("function"))
        blocks.append(
            {
                "type": "tool_use",
                "id": _tool_id(call.get("id")),
                "name": function.get("name"),
                "input": _arguments(f"{where}.tool_calls[{j}].function.arguments", function.get("arguments")),
            }
        )
    return blocks


def _tool_result(where: str, message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(message.get("tool_call_id"))}
    if isinstance(content, str):
        block["content"] = content
    else:
        block["content"] = _content_blocks(f"{where}.content", "user", content)
    return block


def _messages(request: ChatRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, Anthropic messages) for the request's OpenAI messages."""
    system: list[dict[str, Any]] = []
    turns: list[_Turn] = []
    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _content_blocks(f"{where}.content", "user", message.get("content"))
            target_role = "system"
        elif role == "user":
            blocks = _content_blocks(f"{where}.content", "user", message.get("content"))
            target_role = "user"
        elif role == "assistant":
            if message.get("function_call") is not None:
                raise InvalidRequest(
                    f"{where}.function_call", "the deprecated functions API is not translated"
                )
            blocks = _assistant_blocks(where, message)
            target_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(where, message)]
            target_role = "user"
        else:
            raise InvalidRequest(f"{where}.role", f"{role!r} messages are not translated for Anthropic")
        control = message.get("cache_control")
        if control is not None and blocks:  # a message-level breakpoint marks its last block
            blocks[-1]["cache_control"] = _cache_control(where, {"cache_control": control})
        if target_role == "system":
            for block in blocks:
                if block["type"] != "text":
                    raise InvalidRequest(
                        f"{where}.content", "system messages may only contain text for Anthropic"
                    )
            system += blocks
        elif not blocks:
            continue  # an empty message: Anthropic rejects empty content
        elif turns and turns[-1].role == target_role:
            turns[-1].blocks += blocks
        else:
            turns.append(_Turn(target_role, blocks))
    out: list[dict[str, Any]] = []
    for turn in turns:
        blocks = turn.blocks
        if turn.role == "user":  # tool results must come first in their user turn
            blocks = [b for b in blocks if b["type"] == "tool_result"] + [
                b for b in blocks if b["type"] != "tool_result"
            ]
        out.append({"role": turn.role, "content": blocks})
    return system, out


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    tools = []
    for i, raw in enumerate(body.get("tools") or ()):
        tool = _d(raw)
        if tool.get("type") != "function":
            raise InvalidRequest(f"tools[{i}].type", "only function tools are translated for Anthropic")
        function = _d(tool.get("function"))
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        converted: dict[str, Any] = {"name": function["name"], "input_schema": schema}
        if function.get("description"):
            converted["description"] = function["description"]
        control = _cache_control(f"tools[{i}]", tool)
        if control is not None:
            converted["cache_control"] = control
        tools.append(converted)
    return tools


def _tool_choice(body: Mapping[str, Any], has_tools: bool) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None:
        converted: dict[str, Any] | None = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        if not has_tools:
            raise InvalidRequest("tool_choice", "'required' needs tools")
        converted = {"type": "any"}
    else:
        named = _d(choice)
        if named.get("type") != "function":
            raise InvalidRequest(
                "tool_choice", f"{named.get('type')!r} tool choices are not translated for Anthropic"
            )
        converted = {"type": "tool", "name": _d(named.get("function")).get("name")}
    if body.get("parallel_tool_calls") is False and has_tools:
        converted = converted or {"type": "auto"}
        if converted["type"] != "none":
            converted["disable_parallel_tool_use"] = True
    return converted


def _json_tool(fmt: Mapping[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The tool whose forced call carries a `response_format` answer."""
    if fmt.get("type") == "json_schema":
        spec = _d(fmt.get("json_schema"))
        name = str(spec.get("name") or JSON_TOOL)
        schema = spec.get("schema") or {"type": "object"}
        description = (
            spec.get("description") or f"Give the final answer as a JSON object matching the {name} schema."
        )
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise InvalidRequest(
                "response_format.json_schema.schema",
                "Anthropic needs an object schema (type: object) at the root",
            )
    else:
        name, schema = JSON_TOOL, {"type": "object"}
        description = "Give the final answer as a JSON object."
    if any(tool["name"] == name for tool in tools):
        raise InvalidRequest("response_format.json_schema.name", f"{name!r} is also the name of a tool")
    return {"name": name, "description": description, "input_schema": dict(schema)}


def _count_breakpoints(
    tools: list[dict[str, Any]], system: list[dict[str, Any]], messages: list[dict[str, Any]], extra: Any
) -> None:
    """At most 4 `cache_control` breakpoints, and no 1h one after a 5m one (tools, system, messages)."""
    ttls = [t["cache_control"].get("ttl", "5m") for t in tools if t.get("cache_control")]
    ttls += [b["cache_control"].get("ttl", "5m") for b in system if b.get("cache_control")]
    for message in messages:
        ttls += [b["cache_control"].get("ttl", "5m") for b in message["content"] if b.get("cache_control")]
        ttls += [
            inner["cache_control"].get("ttl", "5m")
            for b in message["content"]
            if b["type"] == "tool_result" and isinstance(b.get("content"), list)
            for inner in b["content"]
            if inner.get("cache_control")
        ]
    automatic = extra.get("cache_control") if isinstance(extra, Mapping) else None
    if automatic is not None:
        ttls.append(_d(automatic).get("ttl", "5m"))
    if len(ttls) > _MAX_BREAKPOINTS:
        raise InvalidRequest(
            "cache_control",
            f"Anthropic allows at most {_MAX_BREAKPOINTS} cache breakpoints, found {len(ttls)}",
        )
    if "1h" in ttls and "5m" in ttls[: len(ttls) - ttls[::-1].index("1h")]:
        raise InvalidRequest(
            "cache_control", "a 1h breakpoint may not follow a 5m one (order: tools, system, messages)"
        )


def default_max_tokens(target: Target, stream: bool) -> int:
    """`max_tokens` for a call that gave none: the model's `max_output` capped at `DEFAULT_MAX_TOKENS`,
    and for non-streaming calls at what the SDK allows without streaming for that model."""
    limit = min(target.model.max_output or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS)
    if not stream:
        limit = min(limit, MODEL_NONSTREAMING_TOKENS.get(target.api_name, limit))
    return limit


# ------------------------------------------------------------------------------------ decoding


def decode_usage(usage: Any) -> Usage:
    """Anthropic usage (input EXCLUDES cache reads and writes) as `Usage` (input is the TOTAL)."""
    if usage is None:
        return Usage()
    read = _int(getattr(usage, "cache_read_input_tokens", 0))
    written = _int(getattr(usage, "cache_creation_input_tokens", 0))
    creation = getattr(usage, "cache_creation", None)
    written_1h = _int(getattr(creation, "ephemeral_1h_input_tokens", 0)) if creation is not None else 0
    if creation is not None and not written:
        written = written_1h + _int(getattr(creation, "ephemeral_5m_input_tokens", 0))
    details = getattr(usage, "output_tokens_details", None)
    thinking = _int(getattr(details, "thinking_tokens", 0)) if details is not None else 0
    return Usage(
        _int(getattr(usage, "input_tokens", 0)) + read + written,
        _int(getattr(usage, "output_tokens", 0)),
        cache_read_tokens=read,
        cache_write_tokens=written,
        cache_write_1h_tokens=min(written_1h, written),
        reasoning_tokens=thinking,
    )


def _openai_usage(usage: Usage) -> CompletionUsage:
    """OpenAI's usage: `prompt_tokens` is the TOTAL input, `cached_tokens` the cache reads."""
    return _make(
        CompletionUsage,
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=_make(
            PromptTokensDetails,
            cached_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        completion_tokens_details=_make(CompletionTokensDetails, reasoning_tokens=usage.reasoning_tokens),
    )


def _finish(stop_reason: str | None, only_json_tool: bool) -> tuple[str | None, FinishReason]:
    """(the completion's finish_reason, the normalised one)."""
    if stop_reason is None:
        return None, "unknown"
    if stop_reason == "tool_use" and only_json_tool:
        return "stop", "stop"  # the forced response_format tool: a finished JSON answer
    return FINISH.get(stop_reason, (stop_reason, "unknown"))


# ------------------------------------------------------------------------------------ adapter


class AnthropicAdapter(Adapter):
    """Serves one Anthropic deployment through `anthropic.Anthropic` / `anthropic.AsyncAnthropic`."""

    def __init__(self, deployment: Deployment, provider: ProviderSpec) -> None:
        self.deployment = deployment
        self.provider = provider
        self._sync: anthropic.Anthropic | None = deployment.client
        self._async: anthropic.AsyncAnthropic | None = deployment.async_client
        self._owned: list[Any] = []
        self._secrets: tuple[str, ...] = ()

    # -- clients -------------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        settings, self._secrets = client_settings(self.deployment, self.provider)
        return settings

    def sync_client(self) -> anthropic.Anthropic:
        if self._sync is None:
            client = anthropic.Anthropic(http_client=self.deployment.http_client, **self._settings())
            self._owned.append(client)
            self._sync = client
        return self._sync

    def async_client(self) -> anthropic.AsyncAnthropic:
        if self._async is None:
            client = anthropic.AsyncAnthropic(
                http_client=self.deployment.async_http_client, **self._settings()
            )
            self._owned.append(client)
            self._async = client
        return self._async

    def close(self) -> None:
        for client in self._owned:
            if isinstance(client, anthropic.Anthropic):
                client.close()

    async def aclose(self) -> None:
        for client in self._owned:
            if isinstance(client, anthropic.AsyncAnthropic):
                await client.close()
        self.close()

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

    def complete(self, request: ChatRequest, target: Target) -> Completed:
        encoded = self.encode(request, target, stream=False)
        client: Any = self.sync_client()
        try:
            raw = client.messages.with_raw_response.create(**encoded.params)
            message = raw.parse()
        except ValueError as e:  # the SDK refuses long non-streaming calls before sending them
            raise InvalidRequest("max_tokens", str(e)) from e
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        return self.decode(message, raw.http_response, encoded.json_tool)

    async def acomplete(self, request: ChatRequest, target: Target) -> Completed:
        encoded = self.encode(request, target, stream=False)
        client: Any = self.async_client()
        try:
            raw = await client.messages.with_raw_response.create(**encoded.params)
            message = await raw.parse()
        except ValueError as e:
            raise InvalidRequest("max_tokens", str(e)) from e
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        return self.decode(message, raw.http_response, encoded.json_tool)

    def stream(self, request: ChatRequest, target: Target) -> ChunkStream:
        encoded = self.encode(request, target, stream=True)
        client: Any = self.sync_client()
        try:
            raw = client.messages.with_raw_response.create(**encoded.params)
            events = raw.parse()
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        translate = _Translate(target, encoded.json_tool, hide_usage=not request.include_usage)
        return _Chunks(self, target, events, raw.http_response, translate)

    async def astream(self, request: ChatRequest, target: Target) -> AsyncChunkStream:
        encoded = self.encode(request, target, stream=True)
        client: Any = self.async_client()
        try:
            raw = await client.messages.with_raw_response.create(**encoded.params)
            events = await raw.parse()
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            raise self.map_error(e, target) from e
        translate = _Translate(target, encoded.json_tool, hide_usage=not request.include_usage)
        return _AsyncChunks(self, target, events, raw.http_response, translate)

    # -- errors --------------------------------------------------------------------------------

    def map_error(self, error: BaseException, target: Target) -> Exception:
        return map_anthropic_error(error, target, self._secrets)


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


# ------------------------------------------------------------------------------------ streams


class _Translate:
    """Anthropic stream events -> OpenAI chunks, and the usage they report (pure, no I/O)."""

    def __init__(self, target: Target, json_tool: str | None, hide_usage: bool) -> None:
        self.target = target
        self.json_tool = json_tool
        self.hide_usage = hide_usage
        self.id = ""
        self.model = target.api_name
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.final = False  # message_delta arrived: usage is complete
        self.finish: FinishReason | None = None
        self._fields: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._json_answer = False

    def chunk(self, finish: str | None = None, **delta: Any) -> ChatCompletionChunk:
        choice = _make(
            Choice, index=0, delta=_make(ChoiceDelta, **delta), finish_reason=finish, logprobs=None
        )
        return _make(
            ChatCompletionChunk,
            id=self.id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[choice],
        )

    def tool_chunk(self, number: int, arguments: str, **call: Any) -> ChatCompletionChunk:
        function = _make(ChoiceDeltaToolCallFunction, **call.pop("function", {}), arguments=arguments)
        return self.chunk(tool_calls=[_make(ChoiceDeltaToolCall, index=number, function=function, **call)])

    def _update_usage(self, usage: Any) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation",
            "output_tokens_details",
        ):
            value = getattr(usage, name, None)
            if value is not None:  # message_delta counts are cumulative: they replace, never add
                self._fields[name] = value
        self.usage = decode_usage(_Fields(self._fields))

    def feed(self, event: Any) -> list[ChatCompletionChunk]:
        kind = event.type
        if kind == "message_start":
            message = event.message
            self.id, self.model = message.id, message.model or self.model
            self._update_usage(message.usage)
            return [self.chunk(role="assistant", content="")]
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "message_delta":
            self._update_usage(event.usage)
            self.final = True
            only_json = self._json_answer and self._tools == 0
            raw, self.finish = _finish(event.delta.stop_reason, only_json)
            return [self.chunk(raw or "unknown")]
        if kind == "message_stop" and not self.hide_usage and self.usage is not None:
            return [
                _make(
                    ChatCompletionChunk,
                    id=self.id,
                    object="chat.completion.chunk",
                    created=self.created,
                    model=self.model,
                    choices=[],
                    usage=_openai_usage(self.usage),
                )
            ]
        return []  # content_block_stop, message_stop, ping, unknown events

    def _start(self, index: int, block: Any) -> list[ChatCompletionChunk]:
        kind = block.type
        if kind == "tool_use" and block.name == self.json_tool:
            self._blocks[index] = _Block("answer", name=block.name)
            self._json_answer = True
            return []
        if kind == "tool_use":
            number = self._tools
            self._tools += 1
            self._blocks[index] = _Block("tool", number, block.name)
            return [self.tool_chunk(number, "", id=block.id, type="function", function={"name": block.name})]
        state = self._blocks[index] = _Block(kind)
        text = getattr(block, "text", None) or getattr(block, "thinking", None)
        if text:
            state.pieces.append(text)
            return [self.chunk(content=text) if kind == "text" else self.chunk(reasoning_content=text)]
        return []

    def _delta(self, index: int, delta: Any) -> list[ChatCompletionChunk]:
        state = self._blocks.get(index) or _Block("")
        if delta.type == "text_delta":
            state.pieces.append(delta.text)
            return [self.chunk(content=delta.text)]
        if delta.type == "thinking_delta":
            state.pieces.append(delta.thinking)
            return [self.chunk(reasoning_content=delta.thinking)]
        if delta.type == "input_json_delta" and delta.partial_json:
            state.pieces.append(delta.partial_json)
            if state.kind == "answer":
                return [self.chunk(content=delta.partial_json)]
            return [self.tool_chunk(state.number, delta.partial_json)]
        return []  # signature and citation deltas have no Chat Completions counterpart

    def partial_usage(self) -> Usage | None:
        """Usage of a stream that broke before `message_delta`: the input as reported at
        `message_start`, the output counted from what arrived (flagged estimated)."""
        if self.final or self.usage is None:
            return self.usage
        from ..tokens import encoder_for

        count = encoder_for(self.target.api_name, self.target.model.tokenizer).count
        output = thinking = 0
        for state in self._blocks.values():
            tokens = count(state.name) + count("".join(state.pieces))
            output += tokens
            thinking += tokens if state.kind == "thinking" else 0
        u = self.usage
        return Usage(
            u.input_tokens,
            output,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.cache_write_1h_tokens,
            thinking,
            estimated=True,
        )


@dataclass(slots=True)
class _Block:
    """A content block of a stream: its kind, tool-call index, tool name and the text that arrived."""

    kind: str
    number: int = -1
    name: str = ""
    pieces: list[str] = field(default_factory=list)


class _Fields:
    """Attribute access over the accumulated usage fields (for `decode_usage`)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


class _Chunks(ChunkStream):
    def __init__(
        self,
        adapter: AnthropicAdapter,
        target: Target,
        events: Any,
        response: httpx2.Response,
        translate: _Translate,
    ) -> None:
        self._adapter, self._target, self._events, self._translate = adapter, target, events, translate
        self.response = response
        self.headers = response.headers
        self.request_id = response.headers.get("request-id")
        self.finish_reason: FinishReason | None = None
        """The normalised finish reason, once `message_delta` arrived."""

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        translate = self._translate
        try:
            for event in self._events:
                chunks = translate.feed(event)
                self.usage, self.finish_reason = translate.usage, translate.finish
                yield from chunks
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            self.usage = translate.partial_usage()
            raise self._adapter.map_error(e, self._target) from e

    def close(self) -> None:
        self.usage = self._translate.partial_usage()
        self._events.close()


class _AsyncChunks(AsyncChunkStream):
    def __init__(
        self,
        adapter: AnthropicAdapter,
        target: Target,
        events: Any,
        response: httpx2.Response,
        translate: _Translate,
    ) -> None:
        self._adapter, self._target, self._events, self._translate = adapter, target, events, translate
        self.response = response
        self.headers = response.headers
        self.request_id = response.headers.get("request-id")
        self.finish_reason: FinishReason | None = None

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        translate = self._translate
        try:
            async for event in self._events:
                chunks = translate.feed(event)
                self.usage, self.finish_reason = translate.usage, translate.finish
                for chunk in chunks:
                    yield chunk
        except (anthropic.AnthropicError, httpx2.HTTPError) as e:
            self.usage = translate.partial_usage()
            raise self._adapter.map_error(e, self._target) from e

    async def aclose(self) -> None:
        self.usage = self._translate.partial_usage()
        await self._events.close()
