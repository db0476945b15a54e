"""Protocol-independent pieces of a request: the parsed job, the generated result, the outcome.

A wire module (``_chat`` for OpenAI-compatible chat completions; an Anthropic Messages module can
be added beside it) parses a request body into a :class:`Job`, the emulator runs it through
:func:`generate` (plus faults, caching and billing), and the wire renders the :class:`Result` into
an :class:`Outcome`: the bytes to send, or an instruction to time out, reset or cut the stream.
Transports (in-process and socket) only ever see outcomes, so no logic is written twice.

Adding a format (as ``_anthropic`` does for ``POST /anthropic/v1/messages``): write a module with a
class implementing :class:`Wire` (``parse`` the body into a :class:`Job` with messages in OpenAI
form, ``render`` a :class:`Result` in the new format and its own usage fields, ``render_error``,
``fault_error``, ``cache_rule``, ``default_reasoning``), and map the provider name to an instance in
``Emulator.__init__`` (``self._wires``). A wire whose parsing depends on request headers also
implements :class:`HeaderWire`. Faults, generation, token counting, caching, billing and both
transports are reused as they are. A prompt cached by explicit breakpoints (Anthropic
``cache_control``) comes with its own token layout: the wire sets ``Job.prompt`` to an
:class:`ExplicitPrompt` and the emulator counts and caches it with ``_cache.BreakpointCache``.

Output accounting: the answer is a list of *units*, one per output token, each tagged with the
field it belongs to (visible reasoning, content, or a tool call's name / arguments). Token limits
and truncation faults cut that list; the reported counts are then ``count_text`` of the exact texts
returned (plus hidden reasoning tokens), so they equal what ``llmroute.tokens`` computes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from llmroute.tokens import Encoder, Segment

from . import _generate as gen
from ._faults import Fault
from ._types import Reply

__all__ = [
    "ApiError",
    "CacheRule",
    "ExplicitPrompt",
    "HeaderWire",
    "Job",
    "Outcome",
    "Result",
    "Wire",
    "default_reply",
    "generate",
]

REASONING = 0
CONTENT = 1
# tool call i: name units have kind 2 + 2 * i, argument units 3 + 2 * i

_EFFORT: dict[str, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "minimal": (0.02, 0.08),
    "low": (0.05, 0.15),
    "medium": (0.10, 0.40),
    "high": (0.30, 0.80),
    "xhigh": (0.50, 1.00),
}
_CUTS: dict[str, str | None] = {
    "content_filter": "content_filter",
    "silent_stop": "stop",
    "stream_cut": None,
    "stream_error": None,
}
_WEATHER = re.compile(r"\bweather\b", re.IGNORECASE)


@dataclass(slots=True)
class ExplicitPrompt:
    """A prompt cached at explicit breakpoints (Anthropic ``cache_control``), in cache order.

    ``blocks`` are ``(key, segments)`` in prefix order (tools, system, messages): ``key`` is the
    block's identity for the cache (its content, plus whatever else a change of invalidates from
    there on), ``segments`` its cost in tokens (text to tokenise or fixed overhead counts).
    ``breakpoints`` maps a block index to the TTL label (``"5m"``/``"1h"``) of the breakpoint on
    it. ``tail`` tokens follow the last block and are never cached (reply priming). ``text`` is the
    prompt's text, which seeds the answer and carries ``[[emulator:tokens=N]]``.
    """

    blocks: list[tuple[str, list[Segment]]]
    breakpoints: dict[int, str]
    min_tokens: int
    tail: int = 0
    text: str = ""


@dataclass(slots=True)
class Job:
    """A parsed, validated request, in terms every wire format shares."""

    provider: str
    model: str
    stream: bool
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    forced_tool: str | None = None  # a tool name when tool_choice forces one
    tools_disabled: bool = False  # tool_choice == "none"
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    include_usage: bool = False
    reasoning: Literal["hidden", "visible", False] | None = None  # per-request override
    effort: str | None = None
    cache_extra: tuple[Any, ...] = ()  # e.g. prompt_cache_key and response schema: part of the cache key
    prompt: ExplicitPrompt | None = None  # set by wires whose caching is explicit (Anthropic)


@dataclass(slots=True)
class Result:
    """The answer after limits and faults, with its token counts."""

    units: list[tuple[int, str]]
    reasoning: str | None
    content: str | None
    tool_calls: list[dict[str, Any]]
    hidden_reasoning: int
    finish_reason: str | None  # None: the stream was cut before a finish_reason
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those written with a one-hour TTL
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    response_id: str = ""
    created: int = 0
    model: str = ""
    usage_on_cut: bool = False  # a cut stream still sends its usage chunk (``stream_cut(final_chunk=True)``)
    stop_sequence: str | None = None  # the stop sequence that ended the answer, if one did
    stream_error: str | None = None  # ``Fault.stream_error``: the error type sent instead of the rest


@dataclass(slots=True)
class Outcome:
    """What a transport must do with one request.

    ``action``: ``"respond"`` (send ``status``/``headers`` and ``body``, or the SSE ``events``),
    ``"timeout"`` (in-process: raise ``ReadTimeout``; socket: wait ``wait`` seconds, then send
    the response), ``"reset"`` (close without a response). ``cut``: end the stream abruptly after
    the events. ``wait`` is also the latency before the first byte; ``event_delays[i]`` the pause
    before event ``i``.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    events: list[bytes] | None = None
    action: Literal["respond", "timeout", "reset"] = "respond"
    cut: bool = False
    wait: float = 0.0
    event_delays: list[float] | None = None


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answer in the provider's format (``param``/``code`` as OpenAI names them)."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CacheRule:
    """How a provider caches prompt prefixes: ``"block"`` (whole blocks of ``block`` tokens, from
    ``min_tokens``), ``"slot"`` (llama.cpp: common prefix with the previous request), ``"breakpoint"``
    (Anthropic: only at the request's explicit breakpoints, see ``Job.prompt``) or ``"none"``."""

    kind: Literal["block", "slot", "breakpoint", "none"]
    block: int = 1
    min_tokens: int = 0


class Wire(Protocol):
    """A request/response format (OpenAI chat completions; later Anthropic messages)."""

    endpoints: frozenset[str]

    def cache_rule(self, provider: str) -> CacheRule:
        """The provider's prompt-cache rule."""
        ...

    def default_reasoning(self, provider: str, model: str) -> Literal["hidden", "visible", False]:
        """Whether ``model`` reasons by default, and whether its reasoning is shown."""
        ...

    def parse(self, provider: str, raw: bytes) -> Job | ApiError:
        """Parse and validate a request body."""
        ...

    def reported_cached(self, provider: str, cached: int) -> int:
        """The cached tokens the provider reports (and so bills) for ``cached`` reused tokens."""
        ...

    def render(self, provider: str, job: Job, result: Result, latency: tuple[float, float]) -> Outcome:
        """The successful (or truncated) answer; ``latency`` is ``(ttft, per_token)`` seconds."""
        ...

    def render_error(self, provider: str, error: ApiError) -> Outcome:
        """An error answer."""
        ...

    def fault_error(self, provider: str, fault: Fault, model: str) -> ApiError:
        """The error an error fault answers with."""
        ...


@runtime_checkable
class HeaderWire(Protocol):
    """A wire that needs the request headers to parse (Anthropic: ``anthropic-version``)."""

    def parse_request(self, provider: str, headers: Mapping[str, str], raw: bytes) -> Job | ApiError:
        """Parse and validate a request (header names lower-case)."""
        ...


def tool_name(tool: Any) -> str:
    """The function name of an OpenAI tool definition."""
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return "tool"


def _tool_schema(tool: Any) -> Any:
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict):
            return fn.get("parameters")
        return tool.get("parameters") or tool.get("input_schema")
    return None


def _last_user_text(messages: list[dict[str, Any]]) -> str | None:
    """Text of the last message if it is the user's (a tool result last means: answer in text)."""
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return None


def _call_id(rng: random.Random) -> str:
    return "call_" + "".join(
        rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", k=24)
    )


def default_reply(job: Job, enc: Encoder, rng: random.Random, prompt_text: str) -> Reply:
    """The emulator's own answer when no reply function decided (see the package docs)."""
    tools = job.tools or []
    chosen: Any = None
    if tools and not job.tools_disabled:
        if job.forced_tool is not None:
            chosen = next((t for t in tools if tool_name(t) == job.forced_tool), tools[0])
        else:
            last = _last_user_text(job.messages)
            if last is not None and _WEATHER.search(last):
                chosen = tools[0]
    if chosen is not None:
        args = gen.schema_value(_tool_schema(chosen) or {"type": "object", "properties": {}})
        call = {
            "id": _call_id(rng),
            "type": "function",
            "function": {"name": tool_name(chosen), "arguments": gen.json_dumps(args)},
        }
        return Reply(tool_calls=[call])
    if job.json_mode or job.json_schema is not None:
        return Reply(text=gen.json_dumps(gen.json_reply(rng, enc, job.json_schema)))
    match = gen.DIRECTIVE.search(prompt_text)
    n = int(match.group(1)) if match else rng.randint(20, 80)
    return Reply(text=gen.text(rng, enc, n))


def generate(
    job: Job,
    reply: Reply,
    *,
    enc: Encoder,
    rng: random.Random,
    reasoning: Literal["hidden", "visible", False],
    fault: Fault | None,
) -> Result:
    """Apply reasoning, stop sequences, the token limit and truncation faults to ``reply``."""
    count = enc.count
    content = reply.text or ""
    finish = reply.finish_reason
    stopped: str | None = None
    if job.stop and content:
        hits = [(i, s) for i, s in ((content.find(s), s) for s in job.stop if s) if i >= 0]
        if hits:
            at, stopped = min(hits)
            content = content[:at]

    calls = []
    for call in reply.tool_calls or []:
        fn = call.get("function") or {}
        args = fn.get("arguments", "")
        calls.append(
            (
                str(call.get("id") or _call_id(rng)),
                str(fn.get("name", "")),
                args if isinstance(args, str) else gen.json_dumps(args),
            )
        )

    visible_reasoning = ""
    hidden = 0
    if reasoning == "visible":
        visible_reasoning = reply.reasoning or gen.text(rng, enc, rng.randint(20, 60))
    elif reasoning == "hidden":
        if reply.reasoning:
            hidden = count(reply.reasoning)
        else:
            low, high = _EFFORT.get(job.effort or "medium", _EFFORT["medium"])
            answer = count(content) + sum(count(n) + count(a) for _, n, a in calls)
            hidden = round(max(answer, 8) * rng.uniform(low, high)) if high > 0 else 0

    units: list[tuple[int, str]] = []
    if visible_reasoning:
        units += [(REASONING, piece) for piece in enc.split(visible_reasoning)]
    if content:
        units += [(CONTENT, piece) for piece in enc.split(content)]
    for i, (_, name, args) in enumerate(calls):
        units += [(2 + 2 * i, piece) for piece in enc.split(name)]
        units += [(3 + 2 * i, piece) for piece in enc.split(args)]

    limit = job.max_tokens
    if limit is not None and hidden + len(units) > limit:
        hidden = min(hidden, limit)
        units = units[: limit - hidden]
        finish, stopped = "length", None
    elif stopped is not None:
        finish = "stop"
    stream_error: str | None = None
    if fault is not None and fault.kind in _CUTS:
        units = units[: fault.after_tokens]
        finish, stopped = _CUTS[fault.kind], None
        if fault.kind == "stream_error":
            stream_error = fault.message or "overloaded_error"
    elif finish is None:
        finish = "tool_calls" if calls else "stop"

    texts: dict[int, list[str]] = {}
    for kind, piece in units:
        texts.setdefault(kind, []).append(piece)
    reasoning_text = "".join(texts[REASONING]) if REASONING in texts else None
    content_text = "".join(texts[CONTENT]) if CONTENT in texts else None
    tool_calls: list[dict[str, Any]] = []
    for i, (call_id, _, _) in enumerate(calls):
        if 2 + 2 * i not in texts:
            break
        name = "".join(texts[2 + 2 * i])
        args = "".join(texts.get(3 + 2 * i, ()))
        tool_calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": args}})

    shown_reasoning = count(reasoning_text) if reasoning_text else 0
    completion = hidden + shown_reasoning + (count(content_text) if content_text else 0)
    for call in tool_calls:
        completion += count(call["function"]["name"]) + count(call["function"]["arguments"])
    return Result(
        units=units,
        reasoning=reasoning_text,
        content=content_text,
        tool_calls=tool_calls,
        hidden_reasoning=hidden,
        finish_reason=finish,
        completion_tokens=completion,
        reasoning_tokens=hidden + shown_reasoning,
        stop_sequence=stopped,
        stream_error=stream_error,
    )


SDK_ADDS_V1 = frozenset({"anthropic"})
"""Providers whose SDK appends ``/v1/...`` to its base URL itself (the ``anthropic`` SDK does)."""


class Handler(Protocol):
    """What a transport needs of the emulator: `Emulator` implements it. The transports (in-process
    and socket) depend on this, not on `Emulator`, so the emulator can build them."""

    simulate_latency: bool

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Outcome: ...
