"""Anthropic's Messages API: ``POST /anthropic/v1/messages``, as JSON or as server-sent events.

What the endpoint checks and answers, after the real API (PROVIDERS.md sections 1-4 and 6):

- Headers: ``anthropic-version`` is required: ``2023-06-01``, or ``2026-10-21`` (what the
  ``anthropic`` 2.x SDKs send), which rejects ``temperature``, ``top_p`` and ``top_k`` with a 400.
  The key may come as ``x-api-key`` or ``Authorization: Bearer`` (2.x SDKs send the latter).
- Requests: ``model`` and ``max_tokens`` are required; roles are ``user``/``assistant`` only
  (``system`` is a top-level parameter); consecutive same-role turns are merged; text blocks must
  be non-empty; every ``tool_use`` needs a ``tool_result`` in the next (user) turn, before any other
  block of it, and every ``tool_result`` a ``tool_use`` in the turn before; unknown top-level
  parameters are rejected ("Extra inputs are not permitted").
- Prompt caching: ``cache_control`` on tools, system blocks and message blocks (or a top-level
  ``cache_control``, which marks the last block), at most 4 breakpoints, 1h ones before 5m ones;
  prefixes are cached in the order tools -> system -> messages (a change invalidates its level and
  every later one; ``tool_choice`` and ``thinking`` changes invalidate the messages), only at
  breakpoints, from a per-model minimum length (:func:`cache_min_tokens`, or
  ``Emulator.configure(cache_min_tokens=)``); entries live 5 minutes or 1 hour after their last use,
  as their breakpoint says (``ModelConfig.cache_ttl`` does not apply); see ``_cache``.
- Usage: ``input_tokens`` EXCLUDES cache reads and writes (``cache_read_input_tokens``,
  ``cache_creation_input_tokens`` with its ``cache_creation`` 5m/1h split); thinking tokens count
  as output (``output_tokens_details.thinking_tokens``). The :class:`Bill` keeps the total input.
- Stop reasons: ``end_turn``, ``stop_sequence`` (with ``stop_sequence``), ``max_tokens``,
  ``tool_use``, ``refusal`` (the ``content_filter`` fault), and whatever a reply function's
  ``Reply.finish_reason`` names (``pause_turn``, ``model_context_window_exceeded``, anything else).
- Thinking: ``thinking: {"type": "enabled" | "adaptive"}`` gives visible ``thinking`` blocks with a
  signature; forcing a tool (``tool_choice`` any/tool) with thinking on is a 400, as at the real API.
- Streaming: ``message_start`` (input and cache usage, ``output_tokens`` 1), per block
  ``content_block_start`` / ``*_delta`` / ``content_block_stop`` (a ``ping`` after the first
  start), then ``message_delta`` (stop reason, CUMULATIVE usage) and ``message_stop``. A
  ``stream_cut`` fault ends the body after what was sent; a ``stream_error`` fault sends
  ``event: error`` (e.g. ``overloaded_error``) and ends the body.
- Errors: ``{"type": "error", "error": {"type": ..., "message": ...}}``; 429 ``rate_limit_error``
  with ``retry-after`` and ``anthropic-ratelimit-requests-*`` headers; 529 ``overloaded_error``;
  402 ``billing_error``; the ``quota`` fault is Anthropic's 400 "credit balance is too low";
  504 ``timeout_error``; the request id comes in ``request-id``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any, Literal

from ._anthropic_request import VERSIONS, AnthropicRequests, _dumps, cache_min_tokens
from ._engine import (
    CONTENT,
    REASONING,
    ApiError,
    CacheRule,
    Job,
    Outcome,
    Result,
)
from ._faults import Fault

__all__ = ["VERSIONS", "AnthropicWire", "cache_min_tokens"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
_GROUPS = (2, 3, 2, 4)  # tokens per streamed delta, cycled
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_KNOWN_TYPES = frozenset(_ERROR_TYPES.values())
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


class AnthropicWire(AnthropicRequests):
    """``POST /anthropic/v1/messages`` (also reached as ``/anthropic/v1/v1/messages``, which is what
    the ``anthropic`` SDK requests from a base URL that already ends in ``/v1``)."""

    endpoints = frozenset({"messages", "v1/messages"})

    # -------------------------------------------------------------- provider facts

    def cache_rule(self, provider: str) -> CacheRule:
        return CacheRule("breakpoint", 1, 1024)

    def default_reasoning(self, provider: str, model: str) -> Literal["hidden", "visible", False]:
        return False  # Claude thinks only when the request enables thinking

    def reported_cached(self, provider: str, cached: int) -> int:
        return cached

    # -------------------------------------------------------------- requests

    # -------------------------------------------------------------- answers

    def render(self, provider: str, job: Job, result: Result, latency: tuple[float, float]) -> Outcome:
        ttft, per_token = latency
        message_id = "msg_01" + result.response_id[-22:]
        if not job.stream:
            body = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": result.model,
                "content": _content(result),
                "stop_reason": _stop_reason(result),
                "stop_sequence": result.stop_sequence,
                "stop_details": _stop_details(result),
                "usage": _usage(result),
            }
            wait = ttft + per_token * result.completion_tokens
            return Outcome(200, [("content-type", _JSON)], _dumps(body).encode(), wait=wait)
        return self._render_stream(job, result, message_id, ttft, per_token)

    def _render_stream(self, job: Job, r: Result, message_id: str, ttft: float, per_token: float) -> Outcome:
        usage = _usage(r)
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"}
        start_usage["output_tokens"] = 1 if r.completion_tokens else 0
        start: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": r.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        events = [_event("message_start", {"type": "message_start", "message": start})]
        delays = [ttft]
        calls = {2 + 2 * i: (i, c) for i, c in enumerate(r.tool_calls)}
        index = -1
        open_kind: int | None = None

        def close() -> None:
            if open_kind == REASONING:
                delta = {"type": "signature_delta", "signature": _signature(r)}
                events.append(
                    _event(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
                )
                delays.append(0.0)
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
            delays.append(0.0)

        units = r.units
        i, g, n = 0, 0, len(units)
        while i < n:
            kind = units[i][0]
            j = i + 1
            size = _GROUPS[g % len(_GROUPS)] if kind not in calls else n
            while j < n and j - i < size and units[j][0] == kind:
                j += 1
            piece = "".join(u[1] for u in units[i:j])
            block_kind = kind - 1 if kind >= 2 and kind % 2 == 1 else kind  # args belong to their name
            if block_kind != open_kind:
                if open_kind is not None:
                    close()
                index += 1
                open_kind = block_kind
                if kind == REASONING:
                    block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
                elif kind == CONTENT:
                    block = {"type": "text", "text": ""}
                else:
                    _, call = calls[block_kind]
                    block = {
                        "type": "tool_use",
                        "id": _tool_id(call["id"]),
                        "name": call["function"]["name"],
                        "input": {},
                    }
                events.append(
                    _event(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": block},
                    )
                )
                delays.append(0.0)
                if index == 0:
                    events.append(_event("ping", {"type": "ping"}))
                    delays.append(0.0)
            if kind == REASONING:
                delta: dict[str, Any] = {"type": "thinking_delta", "thinking": piece}
            elif kind == CONTENT:
                delta = {"type": "text_delta", "text": piece}
            elif kind in calls:
                i, g = j, g + 1  # the name came whole in content_block_start
                continue
            else:
                delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(
                _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
            delays.append(per_token * (j - i))
            i, g = j, g + 1
        headers = [("content-type", _SSE), ("cache-control", "no-cache")]
        if r.finish_reason is None:
            if r.stream_error is None:
                return Outcome(200, headers, events=events, cut=True, event_delays=delays)
            message = "Overloaded" if r.stream_error == "overloaded_error" else "Internal server error"
            error = {"type": "error", "error": {"type": r.stream_error, "message": message}}
            events.append(_event("error", error))
            delays.append(0.0)
            return Outcome(200, headers, events=events, event_delays=delays)
        if open_kind is not None:
            close()
        delta = {
            "stop_reason": _stop_reason(r),
            "stop_sequence": r.stop_sequence,
            "stop_details": _stop_details(r),
        }
        final_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
        events.append(
            _event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage})
        )
        events.append(_event("message_stop", {"type": "message_stop"}))
        delays += [0.0, 0.0]
        return Outcome(200, headers, events=events, event_delays=delays)

    # -------------------------------------------------------------- errors

    def render_error(self, provider: str, error: ApiError) -> Outcome:
        kind = error.type if error.type in _KNOWN_TYPES else None
        if kind is None:
            kind = _ERROR_TYPES.get(error.status) or (
                "api_error" if error.status >= 500 else "invalid_request_error"
            )
        body = _dumps({"type": "error", "error": {"type": kind, "message": error.message}}).encode()
        return Outcome(error.status, [("content-type", _JSON), *error.headers], body)

    def fault_error(self, provider: str, fault: Fault, model: str) -> ApiError:
        retry = tuple((k, v) for k, v in fault.headers() if k in ("retry-after", "retry-after-ms"))
        kind = fault.kind
        if kind == "rate_limit":
            wait = fault.retry_after if fault.retry_after is not None else 1.0
            reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
            limits = (
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                (
                    "anthropic-ratelimit-requests-reset",
                    reset.isoformat(timespec="seconds").replace("+00:00", "Z"),
                ),
            )
            message = (
                "This request would exceed your organization's rate limit of 50 requests per minute "
                f"(org: emulator, model: {model}). For details, refer to: "
                "https://docs.claude.com/en/api/rate-limits."
            )
            return ApiError(429, message, "rate_limit_error", headers=retry + limits)
        if kind == "quota":
            message = (
                "Your credit balance is too low to access the Anthropic API. "
                "Please go to Plans & Billing to upgrade or purchase credits."
            )
            return ApiError(400, message, "invalid_request_error", headers=retry)
        if kind == "auth":
            return ApiError(401, "invalid x-api-key", "authentication_error")
        if kind == "payment":
            message = "Your account has a billing issue. Please visit Plans & Billing to resolve it."
            return ApiError(402, message, "billing_error", headers=retry)
        if kind == "bad_request":
            return ApiError(400, fault.message or "Invalid request.", "invalid_request_error", headers=retry)
        if kind == "overloaded":
            return ApiError(529, "Overloaded", "overloaded_error", headers=retry)
        status = fault.status or 500
        if status == 504:
            return ApiError(504, "Request timed out.", "timeout_error", headers=retry)
        return ApiError(status, "Internal server error", "api_error", headers=retry)


# ---------------------------------------------------------------- helpers


def _tool_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_").removeprefix("toolu_")


def _signature(r: Result) -> str:
    digest = hashlib.blake2b(f"{r.response_id}\x00{r.reasoning}".encode(), digest_size=48).digest()
    return base64.b64encode(digest).decode()


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}  # cut mid-arguments (max_tokens): the API returns what it could parse
    return value if isinstance(value, dict) else {}


def _content(r: Result) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if r.reasoning:
        blocks.append({"type": "thinking", "thinking": r.reasoning, "signature": _signature(r)})
    if r.content:
        blocks.append({"type": "text", "text": r.content})
    for call in r.tool_calls:
        fn = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": _tool_id(call["id"]),
                "name": fn["name"],
                "input": _arguments(fn["arguments"]),
            }
        )
    return blocks


def _stop_reason(r: Result) -> str | None:
    finish = r.finish_reason
    if finish is None:
        return None
    if finish == "stop" and r.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(finish, finish)  # Anthropic's own values (pause_turn, ...) pass through


def _stop_details(r: Result) -> dict[str, Any] | None:
    if _stop_reason(r) != "refusal":
        return None
    return {"type": "refusal", "category": None, "explanation": None}


def _usage(r: Result) -> dict[str, Any]:
    read, written, written_1h = r.cached_tokens, r.cache_write_tokens, r.cache_write_1h_tokens
    usage: dict[str, Any] = {
        "input_tokens": r.prompt_tokens - read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - written_1h,
            "ephemeral_1h_input_tokens": written_1h,
        },
        "output_tokens": r.completion_tokens,
        "service_tier": "standard",
    }
    if r.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": r.reasoning_tokens}
    return usage
