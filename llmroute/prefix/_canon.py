"""Canonical serialisation, the stable part of a request, its fingerprint, and located segments.

Everything here is pure and shared by the layout helper, the linter and the cache-aware policies.

- `canonical(value)`: the same data with every dict's keys sorted (recursively), so the SDK's
  serialiser (which keeps insertion order) emits the same bytes whatever order the caller built it in.
- `stable_part(messages, tools)`: what a provider sees first and a caller normally keeps fixed: the
  tools and the leading run of `system` / `developer` messages (where `PromptLayout` puts its
  instructions and documents).
- `fingerprint(...)`: a short stable hash (16 hex digits, BLAKE2b) of the stable part *as it is sent*
  (tools in the order given, keys in the order given): two requests share a fingerprint exactly when
  their stable parts are byte-identical, which is what a provider's prefix cache needs.
- `located_segments(...)`: `llmroute.tokens.prompt_segments`, each segment tagged with where it came
  from (`tools`, `messages[2].content`...), to say where the common prefix of two prompts ends.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..tokens import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    NAME_OVERHEAD,
    REPLY_PRIMING,
    TOOLS_OVERHEAD,
    Segment,
    prompt_segments,
)

if TYPE_CHECKING:
    from ..request import ChatRequest

__all__ = [
    "STABLE_ROLES",
    "Located",
    "StablePart",
    "as_request_parts",
    "canonical",
    "canonical_json",
    "dumps",
    "fingerprint",
    "located_segments",
    "normalize_text",
    "stable_part",
    "tool_name",
]

STABLE_ROLES = frozenset({"system", "developer"})
"""Roles of the leading messages that count as the stable part of a request."""
FINGERPRINT_DIGITS = 16


def dumps(value: Any) -> str:
    """JSON as the SDKs send it: keys in insertion order, no spaces (`(",", ":")` separators)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and fixed separators: equal data always gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, type):
        return dump(mode="json", exclude_none=True)
    return value


def canonical(value: Any) -> Any:
    """`value` with every mapping rebuilt with its keys sorted (recursively), tuples as lists and
    pydantic objects as plain data. Lists keep their order (it may carry meaning)."""
    value = _plain(value)
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


_CRLF = re.compile(r"\r\n?")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Whitespace normalised where it cannot change meaning: `\\r\\n` and `\\r` become `\\n`, spaces
    and tabs at line ends go, runs of blank lines become one blank line, and the text is stripped at
    both ends. Indentation inside the text is kept (code, YAML, Markdown)."""
    text = _CRLF.sub("\n", text)
    text = _TRAILING.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def tool_name(tool: Any) -> str:
    """A tool's name: `function.name` for function tools, `custom.name` or `name` otherwise."""
    tool = _plain(tool)
    if not isinstance(tool, Mapping):
        return ""
    for key in ("function", "custom"):
        inner = tool.get(key)
        if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
            return str(inner["name"])
    name = tool.get("name")
    return name if isinstance(name, str) else ""


def as_request_parts(
    request: ChatRequest | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, dict[str, Any], str | None]:
    """`(messages, tools, other body arguments, model)` of a `ChatRequest`, a dict of `create()`
    arguments (or a recorded JSON body), or a bare list of messages (with `tools` given apart)."""
    from ..request import ChatRequest

    if isinstance(request, ChatRequest):
        body = dict(request.body)
        found = body.pop("tools", None)
        return list(request.messages), _tool_list(tools if tools is not None else found), body, request.model
    if isinstance(request, Mapping):
        data = request.get("body") if isinstance(request.get("body"), Mapping) else request
        assert isinstance(data, Mapping)
        if not isinstance(data.get("messages"), list):
            raise ValueError("a request needs a 'messages' list")
        body = {k: v for k, v in data.items() if k not in ("messages", "tools", "model")}
        model = data.get("model")
        found = data.get("tools")
        return (
            [_message_dict(m) for m in data["messages"]],
            _tool_list(tools if tools is not None else found),
            body,
            model if isinstance(model, str) else None,
        )
    if isinstance(request, Sequence) and not isinstance(request, str | bytes):
        return [_message_dict(m) for m in request], _tool_list(tools), {}, None
    raise TypeError(
        f"expected a ChatRequest, a dict of create() arguments or a list of messages, got {request!r}"
    )


def _message_dict(message: Any) -> dict[str, Any]:
    message = _plain(message)
    if not isinstance(message, Mapping):
        raise ValueError(f"a message must be a dict, got {type(message).__name__}")
    return dict(message)


def _tool_list(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        raise ValueError("'tools' must be a list")
    return [dict(_plain(t)) for t in tools]


# ---------------------------------------------------------------- the stable part and its fingerprint


@dataclass(frozen=True, slots=True)
class StablePart:
    """The stable part of one request: its fingerprint and how many leading messages it covers."""

    fingerprint: str
    messages: int
    tools: int

    @property
    def empty(self) -> bool:
        return self.messages == 0 and self.tools == 0


def _leading(messages: Sequence[Mapping[str, Any]]) -> int:
    n = 0
    for message in messages:
        if message.get("role") not in STABLE_ROLES:
            break
        n += 1
    return n


def _strip_control(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != "cache_control"}


def fingerprint(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    response_format: Any = None,
) -> str:
    """The fingerprint of `tools` + `messages` (+ `response_format`, part of OpenAI's cache key): 16
    hex digits of BLAKE2b over the prompt they render to (`llmroute.tokens.prompt_segments`), so a
    different tool order or different text gives a different fingerprint, while the form of a text
    (a string or one text part) and `cache_control` marks, which do not change the prompt, do not."""
    plain_tools = [_strip_control(_plain(t)) for t in tools or ()]
    plain_messages = [_strip_control(_plain(m)) for m in messages]
    h = hashlib.blake2b(digest_size=FINGERPRINT_DIGITS // 2)
    update = h.update
    for seg in prompt_segments(plain_messages, plain_tools or None)[:-1]:  # without the reply priming
        update(b"\x1f%d" % seg if isinstance(seg, int) else b"\x1e" + seg.encode())
    if response_format is not None:
        update(b"\x1d" + dumps(_plain(response_format)).encode())
    return h.hexdigest()


class _Memo:
    """Fingerprints of stable parts, keyed on the identity of the objects they are made of.

    A prompt built by `PromptLayout` (or any code that keeps its system prompt in one string) hands
    the router the same tool objects and the same system strings on every call: the fingerprint is
    then a dict lookup instead of a hash over kilobytes. Entries hold the objects, so ids stay unique.
    Only messages made of a role and a content are memoised; tool dicts and content parts are
    assumed not to be edited in place between calls (build new ones instead).
    """

    def __init__(self, size: int = 1024) -> None:
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], StablePart]] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, messages: Sequence[Mapping[str, Any]], tools: Any, body: Mapping[str, Any]) -> StablePart:
        n = _leading(messages)
        fmt = body.get("response_format")
        head = messages[:n]
        if not all(len(m) == 2 and isinstance(m.get("content"), str | list) for m in head):
            return StablePart(fingerprint(head, tools, fmt), n, len(tools or ()))
        refs: list[Any] = [*(tools or ()), fmt]
        for m in head:
            content = m["content"]
            refs.append(content)
            if isinstance(content, list):
                refs.extend(content)
        key = (n, len(refs), *[id(r) for r in refs], *[m.get("role") for m in head])
        found = self._entries.get(key)
        if found is not None and all(a is b for a, b in zip(found[0], refs, strict=True)):
            return found[1]
        part = StablePart(fingerprint(head, tools, fmt), n, len(tools or ()))
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = (tuple(refs), part)
        return part


_memo = _Memo()


def stable_part(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    body: Mapping[str, Any] | None = None,
) -> StablePart:
    """The stable part of a request: tools + leading system/developer messages (+ the response
    format), with its fingerprint. Memoised on object identity (see `_Memo`)."""
    return _memo.get(messages, tools or None, body or {})


# ---------------------------------------------------------------- located segments


@dataclass(frozen=True, slots=True)
class Located:
    """One segment of a rendered prompt and where it came from."""

    where: str
    segment: Segment
    message: int | None = None
    """The message index (None for tools and the reply priming)."""


def _message_located(i: int, message: Mapping[str, Any]) -> Iterator[Located]:
    """Mirrors `llmroute.tokens._message_segments`, field for field."""
    at = f"messages[{i}]"
    yield Located(at, MESSAGE_OVERHEAD, i)
    role = message.get("role")
    if isinstance(role, str):
        yield Located(f"{at}.role", role, i)
    name = message.get("name")
    if isinstance(name, str):
        yield Located(f"{at}.name", NAME_OVERHEAD, i)
        yield Located(f"{at}.name", name, i)
    content = message.get("content")
    if isinstance(content, str):
        yield Located(f"{at}.content", content, i)
    elif isinstance(content, Sequence):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            where = f"{at}.content[{j}]"
            if kind == "text" and isinstance(part.get("text"), str):
                yield Located(where, part["text"], i)
            elif kind == "image_url":
                yield Located(where, IMAGE_TOKENS, i)
            else:
                yield Located(where, dumps(part), i)
    elif content is not None:
        yield Located(f"{at}.content", dumps(content), i)
    calls = message.get("tool_calls")
    if isinstance(calls, Sequence):
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, Mapping) else None
            where = f"{at}.tool_calls[{j}]"
            if isinstance(fn, Mapping):
                yield Located(f"{where}.function.name", str(fn.get("name") or ""), i)
                args = fn.get("arguments")
                yield Located(
                    f"{where}.function.arguments", args if isinstance(args, str) else dumps(args), i
                )
            else:
                yield Located(where, dumps(call), i)
    for key in sorted(message):
        if key in ("role", "name", "content", "tool_calls"):
            continue
        value = message[key]
        if isinstance(value, str):
            yield Located(f"{at}.{key}", value, i)
        elif value is not None:
            yield Located(f"{at}.{key}", dumps(value), i)


def located_segments(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> list[Located]:
    """`llmroute.tokens.prompt_segments(messages, tools)`, each segment with its location."""
    out: list[Located] = []
    if tools:
        out.append(Located("tools", TOOLS_OVERHEAD))
        out.append(Located("tools", dumps(list(tools))))
    for i, message in enumerate(messages):
        out.extend(_message_located(i, message))
    out.append(Located("reply priming", REPLY_PRIMING))
    return out
