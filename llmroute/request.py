"""`ChatRequest`: the OpenAI Chat Completions arguments, validated before anything is sent.

The OpenAI arguments are the request language. Every argument `openai`'s
`chat.completions.create` accepts is accepted here (the list is read from the installed SDK, so a
newer SDK's arguments pass through); the ones llmroute depends on are checked for type and range, and
a bad one raises `InvalidRequest` naming it. Nothing reaches the network before this passes.

Everything that will be sent (messages, body arguments, `extra_body`, `extra_query`) goes through one
JSON-safety walk (`json_value`) that names the path of the first value the SDK could not send: text
that is not valid Unicode (lone surrogates), NaN and infinities, non-string keys, sets, arbitrary
objects, integers beyond 64 bits, nesting deeper than 100 levels (or a value containing itself).
The SDK's `omit` / `NOT_GIVEN` mean "not given" for every argument.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pydantic
from pydantic_core import PydanticSerializationError

from .errors import InvalidRequest
from .hinting import RouteHints

__all__ = ["ChatRequest", "json_value", "known_arguments", "not_given"]

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


def not_given(value: Any) -> bool:
    """Whether `value` is the SDK's `omit` / `NOT_GIVEN` (any `Omit` or `NotGiven` instance)."""
    return isinstance(value, _sentinels())


MAX_DEPTH = 100
"""Deepest nesting of lists and dicts accepted in a request (deeper is refused, as is a cycle)."""


def _shown(value: Any, limit: int = 40) -> str:
    """A short, ASCII-only rendering of a caller's value for an error message."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{_shown(key)}]"


def _text(path: str, value: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidRequest(
                path,
                f"text that is not valid Unicode ({_shown(value[e.start])} at position {e.start}, "
                "a lone surrogate) cannot be sent",
            ) from None


class _Unsendable(Exception):
    """Raised inside the walk at the first value that cannot be sent; each level adds its key or
    index on the way out, so paths are only built for the one error (the walk stays cheap)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.inner: list[str | int] = []


def _unicode(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Unsendable(
            f"text that is not valid Unicode ({_shown(value[e.start])} at position {e.start}, "
            "a lone surrogate) cannot be sent"
        ) from None


_PLAIN = (type(None), bool)


def _walk(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _unicode(value)
        return value
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise _Unsendable(f"nested more than {MAX_DEPTH} levels deep (or contains itself)")
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise _Unsendable(f"keys must be strings, got {type(key).__name__} {_shown(key)}")
            try:
                if not key.isascii():
                    _unicode(key)
                leaf = type(item)
                if leaf is str:  # the common leaves are checked here, without a call
                    if not item.isascii():
                        _unicode(item)
                    continue
                if leaf in _PLAIN or (leaf is int and item.bit_length() <= 64):
                    continue
                checked = _walk(item, depth + 1)
            except _Unsendable as e:
                e.inner.append(key)
                raise
            if checked is not item:
                if out is None:
                    out = dict(value)
                out[key] = checked
        return value if out is None else out
    if kind is list:
        if depth >= MAX_DEPTH:
            raise _Unsendable(f"nested more than {MAX_DEPTH} levels deep (or contains itself)")
        items: list[Any] | None = None
        for i, item in enumerate(value):
            try:
                leaf = type(item)
                if leaf is str:
                    if not item.isascii():
                        _unicode(item)
                    continue
                checked = _walk(item, depth + 1)
            except _Unsendable as e:
                e.inner.append(i)
                raise
            if checked is not item:
                if items is None:
                    items = list(value)
                items[i] = checked
        return value if items is None else items
    if kind is int:
        if value.bit_length() > 64:
            raise _Unsendable("an integer beyond 64 bits")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Unsendable(f"{value!r} is not a JSON number")
        return value
    if kind in _PLAIN:
        return value
    return _walk_other(value, depth)


def _walk_other(value: Any, depth: int) -> Any:
    """Subclasses of the plain types, tuples, other mappings, pydantic models, datetimes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int | float):  # str and int subclasses (enums), float subclasses
        plain: Any = (
            str(value) if isinstance(value, str) else float(value) if isinstance(value, float) else int(value)
        )
        return _walk(plain, depth)
    if isinstance(value, Mapping | list | tuple):
        return _walk(dict(value) if isinstance(value, Mapping) else list(value), depth)
    if isinstance(value, pydantic.BaseModel):
        try:
            dumped = value.model_dump(mode="json", exclude_unset=True, by_alias=True)
        except (ValueError, TypeError, PydanticSerializationError) as e:
            raise _Unsendable(f"{type(value).__name__} cannot be serialised: {e}") from None
        return _walk(dumped, depth)
    if isinstance(value, dt.datetime):
        return value.isoformat()  # what the SDK sends for a datetime
    raise _Unsendable(f"not a JSON value (got {type(value).__name__})")


def json_value(path: str, value: Any) -> Any:
    """`value` as the SDK will send it as JSON, or `InvalidRequest` naming `path` and the first value
    inside it that cannot be sent (`tools[2].function.parameters.type`). Returns `value` itself when
    it is plain JSON already; tuples, other mappings, pydantic models and datetimes come back as the
    lists, dicts and strings the SDK would have sent for them."""
    try:
        return _walk(value, 0)
    except _Unsendable as e:
        for step in reversed(e.inner):
            path = f"{path}[{step}]" if isinstance(step, int) else _key_path(path, step)
        raise InvalidRequest(path, e.reason) from None


# RFC 9110 field names; values of visible ASCII with inner spaces or tabs (what h11 and httpx send).
_HEADER_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?)?")


def _check_headers(headers: Mapping[Any, Any]) -> None:
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidRequest("extra_headers", f"{_shown(name)} is not a valid header name")
        where = f"extra_headers[{_shown(name)}]"
        if not_given(value):
            continue  # the SDK's way to remove a header
        if not isinstance(value, str):
            raise InvalidRequest(where, f"header values must be strings, got {type(value).__name__}")
        if not _HEADER_VALUE.fullmatch(value):
            raise InvalidRequest(
                where, "header values are visible ASCII, with no control characters or outer spaces"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(name, f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(name, f"must be between {low:g} and {high:g}, got {value!r}")
    if (isinstance(value, int) and value.bit_length() > 64) or not (low <= value <= high):
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
    if isinstance(value, pydantic.BaseModel):
        try:
            dumped = value.model_dump(mode="json", exclude_none=True)
        except (ValueError, TypeError, PydanticSerializationError) as e:
            raise InvalidRequest(where, f"{type(value).__name__} cannot be serialised: {e}") from None
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
        if not isinstance(kind, str) or kind not in PART_TYPES:
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
    if not isinstance(role, str) or role not in ROLES:
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
        # None and the SDK's NOT_GIVEN / omit all mean "not given", for every argument.
        kwargs = {k: v for k, v in kwargs.items() if not not_given(v)}
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
            raise InvalidRequest("model", f"expected a non-empty string, got {_shown(model)}")
        _text("model", model)
        raw_messages = kwargs["messages"]
        if isinstance(raw_messages, str | bytes | Mapping) or not isinstance(raw_messages, Sequence):
            if isinstance(raw_messages, str | bytes | Mapping) or not isinstance(raw_messages, Iterable):
                raise InvalidRequest(
                    "messages", f"expected a list of messages, got {type(raw_messages).__name__}"
                )
            raw_messages = list(raw_messages)  # any other iterable, as the SDK accepts
        if not raw_messages:
            raise InvalidRequest("messages", "must contain at least one message")
        messages = [
            _check_message(i, json_value(f"messages[{i}]", _as_dict(f"messages[{i}]", m)))
            for i, m in enumerate(raw_messages)
        ]

        body: dict[str, Any] = {}
        transport: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in ("model", "messages", "stream") or value is None:
                continue
            if key in TRANSPORT_ARGS:
                transport[key] = value
            else:
                if key == "response_format" and isinstance(value, type):
                    raise InvalidRequest(
                        "response_format",
                        "a pydantic class is accepted by chat.completions.parse(), not create()",
                    )
                body[key] = json_value(key, value)
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
            if key == "extra_headers" and value is not None:
                _check_headers(value)
            elif value is not None:
                transport[key] = json_value(key, value)
        timeout = transport.get("timeout")
        if timeout is not None:
            _check_timeout(timeout)
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


_STRING_ARGS = (
    "user",
    "prompt_cache_key",
    "safety_identifier",
    "prompt_cache_retention",
    "reasoning_effort",
    "service_tier",
    "verbosity",
)
"""Arguments the API types as strings; llmroute reads some of them (cache keys, reasoning)."""


_SHAPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "logprobs": (bool, "a bool"),
    "parallel_tool_calls": (bool, "a bool"),
    "store": (bool, "a bool"),
    "modalities": (list, "a list"),
    "functions": (list, "a list"),
    "audio": (dict, "a dict"),
    "prediction": (dict, "a dict"),
    "web_search_options": (dict, "a dict"),
    "moderation": (dict, "a dict"),
    "prompt_cache_options": (dict, "a dict"),
}
"""The container types of other arguments the API types strictly (after the JSON walk, tuples are
lists and mappings dicts), so no adapter meets a `False` where it iterates."""


def _check_timeout(timeout: Any) -> None:
    """Seconds, or an `httpx.Timeout`-like object whose parts are seconds or None."""
    if not hasattr(timeout, "read"):
        _number("timeout", timeout, 0.0, math.inf)
        return
    for part in ("connect", "read", "write", "pool"):
        value = getattr(timeout, part, None)
        if value is not None:
            _number(f"timeout.{part}", value, 0.0, math.inf)


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
    for key in _STRING_ARGS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(key, f"expected a string, got {type(value).__name__}")
    for key, (shape, expected) in _SHAPES.items():
        value = body.get(key)
        if value is not None and not isinstance(value, shape):
            raise InvalidRequest(key, f"expected {expected}, got {type(value).__name__}")
    modalities = body.get("modalities")
    if modalities is not None and not all(isinstance(m, str) for m in modalities):
        raise InvalidRequest("modalities", "expected a list of strings")
    call = body.get("function_call")
    if call is not None and not isinstance(call, str | Mapping):
        raise InvalidRequest("function_call", f"expected a string or a dict, got {type(call).__name__}")
