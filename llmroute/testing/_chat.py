"""The OpenAI-compatible ``/chat/completions`` wire and its dialects.

One wire serves ``openai``, ``deepseek``, ``vllm``, ``ollama`` and ``llamacpp``; a :class:`Dialect`
row holds what differs between them (PROVIDERS.md sections 1-3): usage fields, where visible
reasoning goes, the prefix-cache rule, which models reason by default, small framing quirks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ._engine import CONTENT, REASONING, ApiError, CacheRule, Job, Outcome, Result
from ._faults import Fault

__all__ = ["DIALECTS", "ChatWire", "Dialect"]

Mode = Literal["hidden", "visible", False]
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")
_GROUPS = (2, 3, 2, 4)  # tokens per streamed delta, cycled
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


def _never(model: str) -> Mode:
    return False


def _openai_reasoning(model: str) -> Mode:
    return "hidden" if _OPENAI_REASONING.match(model.rsplit("/", 1)[-1].lower()) else False


def _deepseek_reasoning(model: str) -> Mode:
    m = model.lower()
    return "visible" if "reasoner" in m or m.endswith("-pro") or "think" in m or "r1" in m else False


def _ollama_reasoning(model: str) -> Mode:
    m = model.lower()
    return "visible" if any(k in m for k in ("think", "r1", "qwq")) else False


@dataclass(frozen=True, slots=True)
class Dialect:
    """What one OpenAI-compatible provider does differently."""

    name: str
    cache: CacheRule
    reasoning: Callable[[str], Mode]
    reasoning_field: str = "reasoning_content"
    fingerprint: str | None = None
    keepalive: bool = False
    refusal_field: bool = False


DIALECTS: dict[str, Dialect] = {
    "openai": Dialect(
        "openai",
        CacheRule("block", 128, 1024),
        _openai_reasoning,
        fingerprint="fp_emu0openai",
        refusal_field=True,
    ),
    "deepseek": Dialect(
        "deepseek",
        CacheRule("block", 64, 64),
        _deepseek_reasoning,
        fingerprint="fp_emu_prod0820",
        keepalive=True,
    ),
    "vllm": Dialect("vllm", CacheRule("block", 16, 16), _never),
    "ollama": Dialect("ollama", CacheRule("none"), _ollama_reasoning, "reasoning", fingerprint="fp_ollama"),
    "llamacpp": Dialect("llamacpp", CacheRule("slot"), _never, fingerprint="b6000-emulator"),
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _missing(param: str) -> ApiError:
    return ApiError(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _invalid_type(param: str, expected: str, got: Any) -> ApiError:
    kind = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer"}
    got_s = "null" if got is None else kind.get(type(got), type(got).__name__)
    message = f"Invalid type for '{param}': expected {expected}, but got {got_s} instead."
    return ApiError(400, message, param=param, code="invalid_type")


def _mentions_json(messages: list[dict[str, Any]]) -> bool:
    return "json" in _dumps([m.get("content") for m in messages]).lower()


class ChatWire:
    """``POST /{provider}/v1/chat/completions`` for every dialect in :data:`DIALECTS`."""

    endpoints = frozenset({"chat/completions"})

    def __init__(self, vllm_prompt_details: bool = False) -> None:
        self.vllm_prompt_details = vllm_prompt_details

    # -------------------------------------------------------------- provider facts

    def cache_rule(self, provider: str) -> CacheRule:
        return DIALECTS[provider].cache

    def default_reasoning(self, provider: str, model: str) -> Mode:
        return DIALECTS[provider].reasoning(model)

    def reported_cached(self, provider: str, cached: int) -> int:
        if provider == "vllm" and not self.vllm_prompt_details:
            return 0
        return cached

    # -------------------------------------------------------------- requests

    def parse(self, provider: str, raw: bytes) -> Job | ApiError:
        """Validate like the real API (missing/empty ``messages``, roles, limits, tools...)."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return ApiError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            )
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return ApiError(400, "you must provide a model parameter")
        messages = body.get("messages")
        if messages is None:
            return _missing("messages")
        if not isinstance(messages, list):
            return _invalid_type("messages", "an array", messages)
        if not messages:
            message = (
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead."
            )
            return ApiError(400, message, param="messages", code="empty_array")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                return _invalid_type(f"messages[{i}]", "an object", msg)
            role = msg.get("role")
            if role is None:
                return _missing(f"messages[{i}].role")
            if role not in _ROLES:
                supported = "', '".join(_ROLES[:-1])
                message = f"Invalid value: '{role}'. Supported values are: '{supported}', and '{_ROLES[-1]}'."
                return ApiError(400, message, param=f"messages[{i}].role", code="invalid_value")
        n = body.get("n")
        if n not in (None, 1):
            return ApiError(400, "The emulator supports only n=1.", param="n", code="unsupported_value")
        job = Job(provider, model, body.get("stream") is True, body, messages)
        opts = body.get("stream_options")
        job.include_usage = job.stream and isinstance(opts, dict) and opts.get("include_usage") is True
        for key in ("max_completion_tokens", "max_tokens"):
            limit = body.get(key)
            if limit is None:
                continue
            if not isinstance(limit, int) or isinstance(limit, bool):
                return _invalid_type(key, "an integer", limit)
            if limit < 1:
                message = (
                    f"Invalid '{key}': integer below minimum value. "
                    f"Expected a value >= 1, but got {limit} instead."
                )
                return ApiError(400, message, param=key, code="integer_below_min_value")
            job.max_tokens = limit
            break
        stop = body.get("stop")
        if isinstance(stop, str):
            job.stop = [stop]
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            job.stop = list(stop)
        elif stop is not None:
            return _invalid_type("stop", "a string or an array of strings", stop)
        err = self._parse_tools(job, body)
        if err is not None:
            return err
        fmt = body.get("response_format")
        if isinstance(fmt, dict):
            if fmt.get("type") == "json_object":
                if provider in ("openai", "deepseek") and not _mentions_json(messages):
                    message = (
                        "'messages' must contain the word 'json' in some form, "
                        "to use 'response_format' of type 'json_object'."
                    )
                    return ApiError(400, message, param="messages")
                job.json_mode = True
            elif fmt.get("type") == "json_schema":
                spec = fmt.get("json_schema")
                schema = spec.get("schema") if isinstance(spec, dict) else None
                job.json_schema = schema if isinstance(schema, dict) else {}
        thinking = body.get("thinking")
        if provider == "deepseek" and isinstance(thinking, dict):
            job.reasoning = "visible" if thinking.get("type") == "enabled" else False
        effort = body.get("reasoning_effort")
        job.effort = effort if isinstance(effort, str) else None
        cache_key = body.get("prompt_cache_key")
        if cache_key is not None and not isinstance(cache_key, str):
            return _invalid_type("prompt_cache_key", "a string", cache_key)
        job.cache_extra = (cache_key, _dumps(fmt) if fmt is not None else None)
        return job

    def _parse_tools(self, job: Job, body: dict[str, Any]) -> ApiError | None:
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                return _invalid_type("tools", "an array", tools)
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict):
                    return _invalid_type(f"tools[{i}]", "an object", tool)
                fn = tool.get("function")
                if not isinstance(fn, dict):
                    return _missing(f"tools[{i}].function")
                if not isinstance(fn.get("name"), str):
                    return _missing(f"tools[{i}].function.name")
            job.tools = tools or None
        choice = body.get("tool_choice")
        if choice is None or choice == "auto":
            return None
        if choice == "none":
            job.tools_disabled = True
            return None
        if not job.tools:
            message = (
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
            )
            return ApiError(400, message, param="tool_choice")
        if choice == "required":
            fn = job.tools[0]["function"]
            job.forced_tool = str(fn["name"])
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            job.forced_tool = str(choice["function"].get("name", ""))
        else:
            return ApiError(400, f"Invalid value for 'tool_choice': {_dumps(choice)}.", param="tool_choice")
        return None

    # -------------------------------------------------------------- responses

    def _usage(self, provider: str, job: Job, r: Result) -> tuple[dict[str, Any], dict[str, Any]]:
        """(usage, extra top-level fields) in the dialect's shape."""
        prompt, cached, completion = r.prompt_tokens, r.cached_tokens, r.completion_tokens
        total = prompt + completion
        if provider == "openai":
            usage: dict[str, Any] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": r.reasoning_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            }
            return usage, {}
        if provider == "deepseek":
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": total,
                "prompt_tokens_details": {"cached_tokens": cached},
                "prompt_cache_hit_tokens": cached,
                "prompt_cache_miss_tokens": prompt - cached,
            }
            if r.reasoning_tokens:
                usage["completion_tokens_details"] = {"reasoning_tokens": r.reasoning_tokens}
            return usage, {}
        if provider == "vllm":
            details = {"cached_tokens": cached} if self.vllm_prompt_details else None
            usage = {
                "prompt_tokens": prompt,
                "total_tokens": total,
                "completion_tokens": completion,
                "prompt_tokens_details": details,
            }
            return usage, {}
        if provider == "llamacpp":
            new = prompt - cached
            usage = {"completion_tokens": completion, "prompt_tokens": new, "total_tokens": new + completion}
            prompt_ms, predicted_ms = round(new * 0.25 + 0.5, 3), round(completion * 8.0 + 0.5, 3)
            timings = {
                "cache_n": cached,
                "prompt_n": new,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": round(prompt_ms / max(new, 1), 3),
                "prompt_per_second": round(1000.0 * new / prompt_ms, 3),
                "predicted_n": completion,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": round(predicted_ms / max(completion, 1), 3),
                "predicted_per_second": round(1000.0 * completion / predicted_ms, 3),
            }
            return usage, {"timings": timings}
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}, {}

    def _message(self, d: Dialect, r: Result) -> dict[str, Any]:
        # content is null beside tool calls without text, else a string (possibly empty)
        content = (r.content or None) if r.tool_calls else (r.content or "")
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if r.reasoning is not None:
            msg[d.reasoning_field] = r.reasoning
        if r.tool_calls:
            msg["tool_calls"] = r.tool_calls
        if d.refusal_field:
            msg["refusal"] = None
            msg["annotations"] = []
        return msg

    def render(self, provider: str, job: Job, result: Result, latency: tuple[float, float]) -> Outcome:
        d = DIALECTS[provider]
        usage, extra = self._usage(provider, job, result)
        ttft, per_token = latency
        if not job.stream:
            body = {
                "id": result.response_id,
                "object": "chat.completion",
                "created": result.created,
                "model": result.model,
                "choices": [
                    {
                        "index": 0,
                        "message": self._message(d, result),
                        "logprobs": None,
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": usage,
                "system_fingerprint": d.fingerprint,
                **extra,
            }
            wait = ttft + per_token * result.completion_tokens
            return Outcome(200, [("content-type", _JSON)], _dumps(body).encode(), wait=wait)
        return self._render_stream(d, job, result, usage, extra, ttft, per_token)

    def _render_stream(
        self,
        d: Dialect,
        job: Job,
        r: Result,
        usage: dict[str, Any],
        extra: dict[str, Any],
        ttft: float,
        per_token: float,
    ) -> Outcome:
        usage_null = ',"usage":null' if job.include_usage else ""
        head = (
            f'data: {{"id":"{r.response_id}","object":"chat.completion.chunk","created":{r.created},'
            f'"model":{_dumps(r.model)},"system_fingerprint":{_dumps(d.fingerprint)},'
            '"choices":[{"index":0,"delta":'
        )
        tail = ',"logprobs":null,"finish_reason":null}]' + usage_null + "}\n\n"
        events: list[bytes] = []
        delays: list[float] = []
        if d.keepalive:
            events.append(b": keep-alive\n\n")
            delays.append(0.0)
        first: dict[str, Any] = {"role": "assistant", "content": ""}
        if d.refusal_field:
            first["refusal"] = None
        events.append((head + _dumps(first) + tail).encode())
        delays.append(ttft)
        calls = {2 + 2 * i: (i, c) for i, c in enumerate(r.tool_calls)}
        units = r.units
        i, g, n = 0, 0, len(units)
        while i < n:
            kind = units[i][0]
            size = n if kind in calls else _GROUPS[g % len(_GROUPS)]
            j = i + 1
            while j < n and j - i < size and units[j][0] == kind:
                j += 1
            piece = "".join(u[1] for u in units[i:j])
            delta: dict[str, Any]
            if kind == CONTENT:
                delta = {"content": piece}
            elif kind == REASONING:
                delta = {d.reasoning_field: piece}
            elif kind in calls:
                idx, call = calls[kind]
                fn = {"name": piece, "arguments": ""}
                delta = {"tool_calls": [{"index": idx, "id": call["id"], "type": "function", "function": fn}]}
            else:
                delta = {"tool_calls": [{"index": (kind - 3) // 2, "function": {"arguments": piece}}]}
            events.append((head + _dumps(delta) + tail).encode())
            delays.append(per_token * (j - i))
            i, g = j, g + 1
        if r.finish_reason is not None:
            final = {
                "id": r.response_id,
                "object": "chat.completion.chunk",
                "created": r.created,
                "model": r.model,
                "system_fingerprint": d.fingerprint,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": r.finish_reason}],
                **({"usage": None} if job.include_usage else {}),
                **extra,
            }
            events.append(f"data: {_dumps(final)}\n\n".encode())
            delays.append(0.0)
        if job.include_usage and (r.finish_reason is not None or r.usage_on_cut):
            last = {
                "id": r.response_id,
                "object": "chat.completion.chunk",
                "created": r.created,
                "model": r.model,
                "system_fingerprint": d.fingerprint,
                "choices": [],
                "usage": usage,
            }
            events.append(f"data: {_dumps(last)}\n\n".encode())
            delays.append(0.0)
        cut = r.finish_reason is None
        if not cut:
            events.append(b"data: [DONE]\n\n")
            delays.append(0.0)
        headers = [("content-type", _SSE), ("cache-control", "no-cache")]
        return Outcome(200, headers, events=events, cut=cut, event_delays=delays)

    # -------------------------------------------------------------- errors

    def render_error(self, provider: str, error: ApiError) -> Outcome:
        inner: dict[str, Any]
        if provider == "llamacpp":
            inner = {"code": error.status, "message": error.message, "type": error.type}
        else:
            inner = {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
        body = _dumps({"error": inner}).encode()
        return Outcome(error.status, [("content-type", _JSON), *error.headers], body)

    def fault_error(self, provider: str, fault: Fault, model: str) -> ApiError:
        headers = tuple(fault.headers())
        kind, status = fault.kind, fault.status or 500
        if kind == "rate_limit":
            wait = fault.retry_after if fault.retry_after is not None else 1.0
            message = (
                f"Rate limit reached for {model} in organization org-emulator on requests per min (RPM): "
                f"Limit 500, Used 500, Requested 1. Please try again in {wait:g}s."
            )
            return ApiError(429, message, "requests", None, "rate_limit_exceeded", headers)
        if kind == "quota":
            message = "You exceeded your current quota, please check your plan and billing details."
            return ApiError(429, message, "insufficient_quota", None, "insufficient_quota", headers)
        if kind == "auth":
            return self.auth_error(provider)
        if kind == "payment":
            return ApiError(
                402, "Insufficient Balance", "unknown_error", None, "invalid_request_error", headers
            )
        if kind == "bad_request":
            return ApiError(400, fault.message or "Invalid request.", headers=headers)
        if kind == "overloaded":
            message = (
                "Service is too busy. Please retry later."
                if provider == "deepseek"
                else "The server is overloaded."
            )
            return ApiError(status, message, "server_error", None, "overloaded", headers)
        messages = {
            502: "Bad gateway.",
            503: "The server is overloaded or not ready yet.",
            504: "Gateway timeout.",
        }
        message = messages.get(
            status, "The server had an error while processing your request. Sorry about that!"
        )
        return ApiError(status, message, "server_error", None, None, headers)

    def auth_error(self, provider: str) -> ApiError:
        """401 in the provider's words (the key itself is never echoed)."""
        if provider == "deepseek":
            message = "Authentication Fails, Your api key is invalid"
            return ApiError(401, message, "authentication_error", None, "invalid_request_error")
        message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
        return ApiError(401, message, "invalid_request_error", None, "invalid_api_key")
