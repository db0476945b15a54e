"""Anthropic's Messages wire format <-> OpenAI Chat Completions: the pure encoding and decoding the
Anthropic adapter (`llmroute.providers.anthropic`) and its stream translation use. No I/O here."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pydantic
from anthropic._constants import MODEL_NONSTREAMING_TOKENS
from openai.types.completion_usage import CompletionTokensDetails, CompletionUsage, PromptTokensDetails

from ..errors import InvalidRequest
from ..usage import FinishReason, Usage, reported_usage

if TYPE_CHECKING:
    from ..policy import Target
    from ..request import ChatRequest

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
    return reported_usage(
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
    if not isinstance(stop_reason, str):  # the SDK does not validate answers: `"stop_reason": []`
        return None, "unknown"
    if stop_reason == "tool_use" and only_json_tool:
        return "stop", "stop"  # the forced response_format tool: a finished JSON answer
    return FINISH.get(stop_reason, (stop_reason, "unknown"))
