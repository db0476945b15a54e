"""`ChatRequest`: the OpenAI Chat Completions arguments, validated before anything is sent.

The OpenAI arguments are the request language. Every argument `openai`'s
`chat.completions.create` accepts is accepted here (the list is read from the installed SDK, so a
newer SDK's arguments pass through); the ones llmroute depends on are checked for type and range, and
a bad one raises `InvalidRequest` naming it. Nothing reaches the network before this passes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .errors import InvalidRequest
from .hinting import RouteHints

__all__ = ["ChatRequest", "known_arguments"]

# Arguments that are not part of the JSON body.
TRANSPORT_ARGS = ("extra_headers", "extra_query", "extra_body", "timeout")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


@cache
def known_arguments() -> frozenset[str]:
    """Every keyword the installed `openai` SDK's `chat.completions.create` accepts."""
    from openai.resources.chat.completions import Completions

    return frozenset(inspect.signature(Completions.create).parameters) - {"self"}


@cache
def _sentinels() -> tuple[type, ...]:
    from openai import NotGiven, Omit

    return (NotGiven, Omit)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(name, f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or not (low <= value <= high):
        raise InvalidRequest(name, f"must be between {low:g} and {high:g}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if value is None:
        return
    if not _is_int(value) or value < 1:
        raise InvalidRequest(name, f"expected a positive integer, got {value!r}")


def _as_dict(where: str, value: Any) -> dict[str, Any]:
    """A message or part as a plain dict (pydantic models from earlier responses are accepted)."""
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        dumped = dump(mode="json", exclude_none=True)
        if isinstance(dumped, dict):
            return dumped
    if isinstance(value, Mapping):
        return dict(value)
    raise InvalidRequest(where, f"expected a dict, got {type(value).__name__}")


def _check_content(where: str, role: str, content: Any) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, Sequence) or isinstance(content, bytes | bytearray):
        raise InvalidRequest(
            where, f"expected a string or a list of content parts, got {type(content).__name__}"
        )
    for j, raw in enumerate(content):
        part = _as_dict(f"{where}[{j}]", raw)
        kind = part.get("type")
        if kind not in PART_TYPES:
            raise InvalidRequest(f"{where}[{j}].type", f"expected one of {sorted(PART_TYPES)}, got {kind!r}")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{where}[{j}].text", "a text part needs a string 'text'")
        if kind == "image_url":
            if role not in ("user", "system", "developer"):
                raise InvalidRequest(f"{where}[{j}]", f"image parts are not allowed in {role} messages")
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else None
            if not isinstance(url, str) or not url:
                raise InvalidRequest(f"{where}[{j}].image_url.url", "an image part needs a non-empty url")


def _check_message(i: int, raw: Any) -> dict[str, Any]:
    where = f"messages[{i}]"
    message = _as_dict(where, raw)
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequest(f"{where}.role", f"expected one of {sorted(ROLES)}, got {role!r}")
    content = message.get("content")
    if role == "assistant":
        if "content" not in message and not message.get("tool_calls") and not message.get("function_call"):
            raise InvalidRequest(f"{where}.content", "an assistant message needs content or tool_calls")
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if not isinstance(tool_calls, list):
                raise InvalidRequest(f"{where}.tool_calls", "expected a list")
            for j, call in enumerate(tool_calls):
                call_dict = _as_dict(f"{where}.tool_calls[{j}]", call)
                function = call_dict.get("function")
                if not isinstance(call_dict.get("id"), str) or not isinstance(function, Mapping):
                    raise InvalidRequest(f"{where}.tool_calls[{j}]", "needs an 'id' and a 'function'")
                if not isinstance(function.get("name"), str):
                    raise InvalidRequest(f"{where}.tool_calls[{j}].function.name", "expected a string")
                if not isinstance(function.get("arguments", ""), str):
                    raise InvalidRequest(
                        f"{where}.tool_calls[{j}].function.arguments", "expected a JSON string"
                    )
    elif "content" not in message:
        raise InvalidRequest(f"{where}.content", f"a {role} message needs 'content'")
    elif content is None and role != "function":
        raise InvalidRequest(f"{where}.content", f"a {role} message's content may not be None")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequest(f"{where}.tool_call_id", "a tool message needs the string 'tool_call_id'")
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest(f"{where}.name", "expected a string")
    _check_content(f"{where}.content", role, content)
    return message


def _check_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        raise InvalidRequest("tools", f"expected a list of tools, got {type(tools).__name__}")
    for i, raw in enumerate(tools):
        tool = _as_dict(f"tools[{i}]", raw)
        kind = tool.get("type")
        if kind == "function":
            function = tool.get("function")
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise InvalidRequest(f"tools[{i}].function.name", "a function tool needs a string name")
        elif kind != "custom":
            raise InvalidRequest(f"tools[{i}].type", f"expected 'function' or 'custom', got {kind!r}")


@dataclass(slots=True)
class ChatRequest:
    """A validated Chat Completions call plus its route hints.

    `body` holds the JSON body arguments as the caller gave them (minus `model`, `messages` and
    `stream`); `messages` are plain dicts. Adapters encode from this.
    """

    model: str
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    stream: bool = False
    hints: RouteHints = field(default_factory=RouteHints)
    extra_headers: Mapping[str, str] | None = None
    extra_query: Mapping[str, object] | None = None
    extra_body: Mapping[str, object] | None = None
    timeout: Any = None

    @property
    def max_output_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens")
        if value is None:
            value = self.body.get("max_tokens")
        return value if isinstance(value, int) else None

    @property
    def include_usage(self) -> bool:
        """Whether the caller asked for the usage chunk at the end of a stream."""
        options = self.body.get("stream_options")
        return bool(isinstance(options, Mapping) and options.get("include_usage"))

    def needs(self) -> frozenset[str]:
        """Capabilities a target must have to serve this request."""
        needs: set[str] = set()
        if self.stream:
            needs.add("streaming")
        if self.body.get("tools") or self.body.get("functions"):
            needs.add("tools")
        effort = self.body.get("reasoning_effort")
        if effort is not None and effort != "none":
            needs.add("reasoning")
        fmt = self.body.get("response_format")
        if isinstance(fmt, Mapping):
            if fmt.get("type") == "json_schema":
                needs.add("json_schema")
            elif fmt.get("type") == "json_object":
                needs.add("json")
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list) and any(
                isinstance(p, Mapping) and p.get("type") == "image_url" for p in content
            ):
                needs.add("vision")
                break
        return frozenset(needs)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], hints: RouteHints) -> ChatRequest:
        """Validate `create(**kwargs)` arguments. Raises `InvalidRequest` naming the bad argument."""
        known = known_arguments()
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise InvalidRequest(
                unknown[0],
                "unexpected keyword argument for chat.completions.create; see the OpenAI API reference",
            )
        if "model" not in kwargs:
            raise InvalidRequest("model", "missing required argument")
        if "messages" not in kwargs:
            raise InvalidRequest("messages", "missing required argument")
        model = kwargs["model"]
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model", f"expected a non-empty string, got {model!r}")
        raw_messages = kwargs["messages"]
        if isinstance(raw_messages, str | bytes | Mapping) or not isinstance(raw_messages, Sequence):
            if isinstance(raw_messages, str | bytes | Mapping) or not isinstance(raw_messages, Iterable):
                raise InvalidRequest(
                    "messages", f"expected a list of messages, got {type(raw_messages).__name__}"
                )
            raw_messages = list(raw_messages)  # any other iterable, as the SDK accepts
        if not raw_messages:
            raise InvalidRequest("messages", "must contain at least one message")
        messages = [_check_message(i, m) for i, m in enumerate(raw_messages)]

        body: dict[str, Any] = {}
        transport: dict[str, Any] = {}
        sentinels = _sentinels()
        for key, value in kwargs.items():
            if key in ("model", "messages", "stream") or value is None or isinstance(value, sentinels):
                continue  # None and the SDK's NOT_GIVEN / omit all mean "not given"
            if key in TRANSPORT_ARGS:
                transport[key] = value
            else:
                body[key] = value
        stream = kwargs.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise InvalidRequest("stream", f"expected a bool, got {type(stream).__name__}")
        _validate_body(body, stream)
        for key in ("extra_headers", "extra_query", "extra_body"):
            value = transport.get(key)
            if value is not None and not isinstance(value, Mapping):
                raise InvalidRequest(key, f"expected a dict, got {type(value).__name__}")
        for name, header in (transport.get("extra_headers") or {}).items():
            if not isinstance(name, str) or not name or not isinstance(header, (str, *sentinels)):
                raise InvalidRequest("extra_headers", f"header {name!r}: names and values must be strings")
        timeout = transport.get("timeout")
        if timeout is not None and not hasattr(timeout, "read"):
            _number("timeout", timeout, 0.0, math.inf)
        return cls(
            model=model,
            messages=messages,
            body=body,
            stream=stream,
            hints=hints,
            extra_headers=transport.get("extra_headers"),
            extra_query=transport.get("extra_query"),
            extra_body=transport.get("extra_body"),
            timeout=timeout,
        )


def _validate_body(body: dict[str, Any], stream: bool) -> None:
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise InvalidRequest("max_tokens", "give max_tokens or max_completion_tokens, not both")
    _positive_int("max_tokens", body.get("max_tokens"))
    _positive_int("max_completion_tokens", body.get("max_completion_tokens"))
    _positive_int("n", body.get("n"))
    _number("temperature", body.get("temperature"), 0.0, 2.0)
    _number("top_p", body.get("top_p"), 0.0, 1.0)
    _number("presence_penalty", body.get("presence_penalty"), -2.0, 2.0)
    _number("frequency_penalty", body.get("frequency_penalty"), -2.0, 2.0)
    top_logprobs = body.get("top_logprobs")
    if top_logprobs is not None and (not _is_int(top_logprobs) or not 0 <= top_logprobs <= 20):
        raise InvalidRequest("top_logprobs", f"expected an integer from 0 to 20, got {top_logprobs!r}")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise InvalidRequest("seed", f"expected an integer, got {seed!r}")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            pass
        elif isinstance(stop, Sequence) and all(isinstance(s, str) for s in stop):
            if len(stop) > 4:
                raise InvalidRequest("stop", f"at most 4 stop sequences, got {len(stop)}")
        else:
            raise InvalidRequest("stop", "expected a string or a list of up to 4 strings")
    _check_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                raise InvalidRequest(
                    "tool_choice", f"expected 'auto', 'none', 'required' or a dict, got {choice!r}"
                )
        elif not isinstance(choice, Mapping):
            raise InvalidRequest("tool_choice", f"expected a string or a dict, got {type(choice).__name__}")
        if choice != "none" and not body.get("tools") and not isinstance(choice, str):
            raise InvalidRequest("tool_choice", "names a tool but no tools were given")
    fmt = body.get("response_format")
    if fmt is not None:
        if isinstance(fmt, type):
            raise InvalidRequest(
                "response_format", "a pydantic class is accepted by chat.completions.parse(), not create()"
            )
        if not isinstance(fmt, Mapping) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise InvalidRequest(
                "response_format", "expected {'type': 'text' | 'json_object' | 'json_schema', ...}"
            )
        if fmt.get("type") == "json_schema" and not isinstance(fmt.get("json_schema"), Mapping):
            raise InvalidRequest(
                "response_format.json_schema", "a json_schema response format needs 'json_schema'"
            )
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise InvalidRequest("stream_options", "only allowed with stream=True")
        if not isinstance(options, Mapping):
            raise InvalidRequest("stream_options", "expected a dict")
    for key in ("metadata", "logit_bias"):
        value = body.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise InvalidRequest(key, f"expected a dict, got {type(value).__name__}")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequest("user", f"expected a string, got {type(user).__name__}")
