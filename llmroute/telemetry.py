"""OpenTelemetry spans and metrics for every routed call and every attempt (GenAI conventions).

One INTERNAL span per routed call (`route {model}`: the routing decision, the deployments tried, the
call's cost and truncation verdict) with one CLIENT span per attempt (`chat {model}`: the GenAI
client inference span), plus the GenAI client metrics and a cost counter. See docs/observability.md.

Conventions followed: the OpenTelemetry GenAI semantic conventions (status Development), pinned at
`SEMCONV_VERSION`: span, attribute and metric names of semantic-conventions v1.40.0 (the last
release carrying GenAI before it moved to its own repository), with the cache-write attribute spelled
`gen_ai.usage.cache_write.input_tokens` as in that repository's v0.1.0 registry. The pre-1.37
`gen_ai.system` attribute is not emitted.

Cost: nothing is imported from OpenTelemetry here. A call checks whether `opentelemetry` has been
imported at all (one dict lookup) and, if so, whether a real (SDK) tracer or meter provider is set;
without one, every hook returns at once. `configure()` gives explicit providers instead of the
global ones.

Other instrumentations: llmroute's OpenAI adapter posts to `/chat/completions` through the client's
`post`, not `chat.completions.create`, so the OpenAI SDK instrumentors
(`opentelemetry-instrumentation-openai-v2`, OpenLLMetry's) never see llmroute's calls; while a routed
call runs, the context carries `suppress_language_model_instrumentation`, which OpenLLMetry's
instrumentors (Anthropic's included) honour. No prompt or answer text is recorded unless
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is true (or `configure(capture_content=True)`);
API keys and headers never are.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from weakref import WeakValueDictionary

if TYPE_CHECKING:
    from .money.ledger import LedgerRow
    from .policy import Decision, Target
    from .request import ChatRequest

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "COST_METRIC",
    "DURATION_BUCKETS",
    "SEMCONV_VERSION",
    "SUPPRESS_KEY",
    "TOKEN_BUCKETS",
    "Telemetry",
    "configure",
]

SEMCONV_VERSION = "1.40.0"
"""The GenAI semantic conventions version followed (see the module docstring for the one rename)."""
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
SUPPRESS_KEY = "suppress_language_model_instrumentation"
"""The context key OpenLLMetry's LLM instrumentors check before creating their own spans."""
COST_METRIC = "llmroute.client.cost"

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""`gen_ai.client.token.usage` bucket boundaries the conventions advise."""
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""`gen_ai.client.operation.duration` (and time-to-first-chunk) bucket boundaries the conventions advise."""

PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "deepseek": "deepseek",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
}
"""llmroute provider names whose `gen_ai.provider.name` differs or is listed by the conventions; any
other provider (vllm, ollama, a custom one) is reported under its own catalog name."""

_TRUE = frozenset({"1", "true", "yes", "on", "span_only", "span_and_event"})

T = TypeVar("T")
_log = logging.getLogger("llmroute.telemetry")
_UNKNOWN: Any = object()


class _Call:
    """One routed call's span while it runs (and, for a stream, until the stream settles)."""

    __slots__ = ("__weakref__", "call_id", "pending", "rows", "settle", "span", "stream")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.call_id: str | None = None
        self.rows: list[LedgerRow] = []
        self.pending: tuple[Any, int] | None = None
        """The last answered attempt's span, ended when the call ends (to add the response id and,
        if captured, the answer), with the end time it had."""
        self.stream = False
        self.settle: Any = None
        """A stream's accumulator (`llmroute.stream._Settle`): its response id and text at the end."""


_CURRENT: ContextVar[_Call | None] = ContextVar("llmroute_telemetry_call", default=None)


class Telemetry:
    """The hooks the router calls. Each returns at once when no tracer or meter provider is set."""

    def __init__(self) -> None:
        self._tracer: Any = None
        self._instruments: tuple[Any, Any, Any, Any] | None = None
        self._tracer_provider: Any = None
        self._meter_provider: Any = None
        self._capture: bool | None = None
        self._servers: dict[str, tuple[str | None, int | None]] = {}
        self._streams: WeakValueDictionary[str, _Call] = WeakValueDictionary()
        self._otel: Any = None

    # -- configuration -----------------------------------------------------------------------------

    def configure(
        self, *, tracer_provider: Any = None, meter_provider: Any = None, capture_content: bool | None = None
    ) -> None:
        """Use these providers instead of the global ones (None: the global one); `capture_content`
        overrides the environment variable (None: read `CAPTURE_CONTENT_ENV`)."""
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._capture = capture_content
        self._tracer = None
        self._instruments = None

    @property
    def capture_content(self) -> bool:
        if self._capture is not None:
            return self._capture
        return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _TRUE

    def tracer(self) -> Any:
        """The tracer, or None while no real tracer provider is configured."""
        tracer = self._tracer
        if tracer is not None:
            return tracer
        module = sys.modules.get("opentelemetry.trace")
        if module is None:
            return None
        provider = self._tracer_provider
        if provider is None:
            # The global provider, read where `set_tracer_provider` puts it (None: not set, the API
            # would hand out its no-op proxy); the public getter if that ever moves.
            provider = getattr(module, "_TRACER_PROVIDER", _UNKNOWN)
            if provider is None:
                return None
            if provider is _UNKNOWN:
                provider = module.get_tracer_provider()
            if type(provider).__module__.startswith("opentelemetry.trace"):
                return None  # the API's proxy or no-op provider: nothing is recorded
        self._tracer = provider.get_tracer("llmroute", _version(), schema_url=SCHEMA_URL)
        return self._tracer

    def instruments(self) -> tuple[Any, Any, Any, Any] | None:
        """(token usage, duration, time to first chunk, cost), or None without a real meter provider."""
        instruments = self._instruments
        if instruments is not None:
            return instruments
        module = sys.modules.get("opentelemetry.metrics._internal")
        if module is None:
            return None
        provider = self._meter_provider
        if provider is None:
            provider = getattr(module, "_METER_PROVIDER", _UNKNOWN)
            if provider is None:
                return None
            if provider is _UNKNOWN:
                provider = module.get_meter_provider()
            if type(provider).__module__.startswith("opentelemetry.metrics"):
                return None
        meter = provider.get_meter("llmroute", _version(), schema_url=SCHEMA_URL)
        self._instruments = (
            meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
            ),
            meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            ),
            meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time to receive the first chunk of a streamed answer.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            ),
            meter.create_counter(
                COST_METRIC,
                unit="USD",
                description="Cost of the attempts at catalog prices (unpriced models add nothing).",
            ),
        )
        return self._instruments

    # -- the call ------------------------------------------------------------------------------------

    def call(self, route: Callable[[dict[str, Any]], T], kwargs: dict[str, Any]) -> T:
        """Run one routed call (`route(kwargs)`) under its call span."""
        if "opentelemetry.context" not in sys.modules:
            return route(kwargs)
        started = self._start()
        if started is None:
            return route(kwargs)
        state, tokens = started
        try:
            result = route(kwargs)
        except BaseException as e:
            self._failed(state, e)
            raise
        finally:
            self._detach(tokens)
        self._returned(state, result)
        return result

    async def acall(self, route: Callable[[dict[str, Any]], Awaitable[T]], kwargs: dict[str, Any]) -> T:
        """`call` for the async router."""
        if "opentelemetry.context" not in sys.modules:
            return await route(kwargs)
        started = self._start()
        if started is None:
            return await route(kwargs)
        state, tokens = started
        try:
            result = await route(kwargs)
        except BaseException as e:
            self._failed(state, e)
            raise
        finally:
            self._detach(tokens)
        self._returned(state, result)
        return result

    def _start(self) -> tuple[_Call | None, tuple[Any, Any]] | None:
        tracer = self.tracer()
        if tracer is None and self.instruments() is None:
            return None
        from opentelemetry import context, trace

        ctx = context.set_value(SUPPRESS_KEY, True)
        state = None
        if tracer is not None:
            span = tracer.start_span("route", kind=trace.SpanKind.INTERNAL)
            state = _Call(span)
            ctx = trace.set_span_in_context(span, ctx)
        return state, (context.attach(ctx), _CURRENT.set(state))

    def _detach(self, tokens: tuple[Any, Any]) -> None:
        from opentelemetry import context

        _CURRENT.reset(tokens[1])
        context.detach(tokens[0])

    def decided(self, request: ChatRequest, decision: Decision) -> None:
        """The policy's decision for the current call (from `RouterCore.prepare`)."""
        state = _CURRENT.get()
        if state is None:
            return
        try:
            self._decided(state, request, decision)
        except Exception:  # telemetry never fails a call
            _log.debug("llmroute telemetry: recording the decision failed", exc_info=True)

    def _decided(self, state: _Call, request: ChatRequest, decision: Decision) -> None:
        span = state.span
        span.update_name(f"route {request.model}")
        steps = []
        for step in decision.steps:
            kept = ", ".join(name for name, _ in step.kept)
            text = f"{step.policy}: kept [{kept}]"
            if step.dropped:
                dropped = "; ".join(f"{r.deployment} ({r.reason})" for r in step.dropped)
                text += f", dropped [{dropped}]"
            steps.append(text)
        span.set_attributes(
            {
                "llmroute.request.model": request.model,
                "llmroute.stream": request.stream,
                "llmroute.candidates": [t.name for t in decision.targets],
                "llmroute.policy.steps": steps,
            }
        )

    def _returned(self, state: _Call | None, result: Any) -> None:
        if state is None:
            return
        try:
            self._answered(state, result)
        except Exception:  # telemetry never fails a call
            _log.debug("llmroute telemetry: ending a call span failed", exc_info=True)

    def _answered(self, state: _Call, result: Any) -> None:
        route = getattr(result, "_route", None)
        if route is None:  # a stream: its call ends with its last attempt's row
            settle = getattr(result, "_settle", None)
            if settle is not None and settle.route is None:
                state.stream = True
                state.settle = settle
                state.call_id = settle.call_id
                self._streams[settle.call_id] = state
                result._llmroute_telemetry = state  # keeps the entry alive while the stream is
                return
            route = settle.route if settle is not None else None
        self._end_pending(state, result)
        self._end_call(state, route)

    def _failed(self, state: _Call | None, error: BaseException) -> None:
        if state is None:
            return
        try:
            self._failed_call(state, error)
        except Exception:  # telemetry never fails a call
            _log.debug("llmroute telemetry: ending a call span failed", exc_info=True)

    def _failed_call(self, state: _Call, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        self._end_pending(state, None)
        span = state.span
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._call_attributes(state)
        span.end()

    def _call_attributes(self, state: _Call) -> None:
        rows = state.rows
        if not rows:
            return
        tried: list[str] = []
        for row in rows:
            if not tried or tried[-1] != row.deployment:
                tried.append(row.deployment)
        last = rows[-1]
        attributes: dict[str, Any] = {
            "llmroute.call_id": last.call_id,
            "llmroute.deployment": last.deployment,
            "llmroute.provider": last.provider,
            "llmroute.model": last.model,
            "llmroute.attempts": len(rows),
            "llmroute.deployments_tried": tried,
            "llmroute.fallbacks": len(tried) - 1,
            "llmroute.outcome": last.outcome,
        }
        costs = [row.cost for row in rows]
        priced = [c for c in costs if c is not None]
        if priced:
            total = sum((c.total for c in priced[1:]), priced[0].total)
            attributes["llmroute.cost"] = float(total)
            attributes["llmroute.cost.exact"] = str(total)
            attributes["llmroute.cost.currency"] = priced[0].currency
        attributes["llmroute.priced"] = len(priced) == len(costs)
        state.span.set_attributes(attributes)

    def _end_call(self, state: _Call, route: Any) -> None:
        self._call_attributes(state)
        span = state.span
        if route is not None:
            attributes: dict[str, Any] = {"llmroute.truncated": bool(route.truncated)}
            if route.verdict is not None:
                attributes["llmroute.truncation.kind"] = route.verdict.kind
            span.set_attributes(attributes)
        span.end()

    def _end_pending(self, state: _Call, result: Any) -> None:
        pending = state.pending
        if pending is None:
            return
        state.pending = None
        span, end = pending
        if result is not None:
            response_id = getattr(result, "id", None)
            if response_id:
                span.set_attribute("gen_ai.response.id", response_id)
            if self.capture_content:
                span.set_attribute("gen_ai.output.messages", _output_messages(result))
        span.end(end_time=end)

    # -- attempts ------------------------------------------------------------------------------------

    def attempt_done(self, row: LedgerRow, target: Target, request: ChatRequest) -> None:
        """One attempt's ledger row (from `RouterCore.row`, which sees every attempt exactly once)."""
        if "opentelemetry.trace" not in sys.modules:
            return
        instruments = self.instruments()
        tracer = self.tracer()
        if tracer is None and instruments is None:
            return
        try:
            self._attempt(tracer, instruments, row, target, request)
        except Exception:  # telemetry never fails a call
            _log.debug("llmroute telemetry: recording an attempt failed", exc_info=True)

    def _attempt(
        self, tracer: Any, instruments: Any, row: LedgerRow, target: Target, request: ChatRequest
    ) -> None:
        provider = PROVIDER_NAMES.get(target.provider.name, target.provider.name)
        address, port = self._server(target)
        common: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": target.api_name,
        }
        if address is not None:
            common["server.address"] = address
        if port is not None:
            common["server.port"] = port
        if row.served_model:
            common["gen_ai.response.model"] = row.served_model
        if instruments is not None:
            self._record(instruments, row, common)
        if tracer is not None:
            self._span(tracer, row, target, request, common)

    def _record(self, instruments: tuple[Any, Any, Any, Any], row: LedgerRow, common: dict[str, Any]) -> None:
        tokens, duration, first_chunk, cost = instruments
        attributes = dict(common)
        if row.error is not None:
            attributes["error.type"] = row.error
        duration.record(row.latency_s, attributes)
        if row.ttft_s is not None:
            first_chunk.record(row.ttft_s, attributes)
        usage = row.usage
        if usage.total_tokens:
            tokens.record(usage.input_tokens, {**common, "gen_ai.token.type": "input"})
            tokens.record(usage.output_tokens, {**common, "gen_ai.token.type": "output"})
        spent = row.cost
        if spent is not None and spent.total:
            cost.add(
                float(spent.total),
                {
                    "gen_ai.provider.name": common["gen_ai.provider.name"],
                    "gen_ai.request.model": common["gen_ai.request.model"],
                    "llmroute.deployment": row.deployment,
                    "llmroute.cost.currency": spent.currency,
                },
            )

    def _span(
        self, tracer: Any, row: LedgerRow, target: Target, request: ChatRequest, common: dict[str, Any]
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import Status, StatusCode

        state = _CURRENT.get()
        if state is None or (state.call_id is not None and state.call_id != row.call_id):
            state = self._streams.get(row.call_id)  # a stream settling after its call returned
        elif state.call_id is None:
            state.call_id = row.call_id
        end = time.time_ns()
        start = end - int(row.latency_s * 1e9)
        # an attempt outside any call (a Shadow's background attempt) is a root span of its own
        context = trace.set_span_in_context(state.span) if state is not None else Context()
        span = tracer.start_span(
            f"chat {target.api_name}",
            context=context,
            kind=trace.SpanKind.CLIENT,
            start_time=start,
            attributes=common,
        )
        usage = row.usage
        attributes: dict[str, Any] = {
            "llmroute.deployment": row.deployment,
            "llmroute.attempt": row.attempt,
            "llmroute.outcome": row.outcome,
        }
        if usage.total_tokens:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens  # cached tokens included
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
            if usage.cache_read_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens:
                attributes["gen_ai.usage.cache_write.input_tokens"] = usage.cache_write_tokens
            if usage.reasoning_tokens:
                attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if usage.estimated:
                attributes["llmroute.usage.estimated"] = True
        if row.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [row.finish_reason]
        if row.ttft_s is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = row.ttft_s
        cost = row.cost
        if cost is not None:
            attributes["llmroute.cost"] = float(cost.total)
            attributes["llmroute.cost.exact"] = str(cost.total)
            attributes["llmroute.cost.currency"] = cost.currency
        max_tokens = request.max_output_tokens
        if max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        body = request.body
        for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[f"gen_ai.request.{key}"] = float(value)
        seed = body.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            attributes["gen_ai.request.seed"] = seed
        placement = cache_placement(target, request)
        if placement:
            attributes["llmroute.cache.hints"] = placement
        if row.request_id:
            attributes["llmroute.request_id"] = row.request_id
        for key, value in row.labels.items():
            attributes[f"llmroute.label.{key}"] = value
        if self.capture_content:
            attributes["gen_ai.input.messages"] = _input_messages(request.messages)
        if row.error is not None:
            attributes["error.type"] = row.error
            if row.status_code is not None:
                attributes["http.response.status_code"] = row.status_code
            span.set_status(Status(StatusCode.ERROR, row.error))
        span.set_attributes(attributes)
        if state is None:
            span.end(end_time=end)
            return
        state.rows.append(row)
        if state.stream:
            settle = state.settle
            if settle is not None and settle.response_id:
                span.set_attribute("gen_ai.response.id", settle.response_id)
            if settle is not None and self.capture_content:
                span.set_attribute("gen_ai.output.messages", _streamed_output(settle))
            span.end(end_time=end)
            if self._streams.pop(row.call_id, None) is not None:
                self._end_call(state, _StreamEnd(row))
            return
        if state.pending is not None:
            pending, pending_end = state.pending
            state.pending = None
            pending.end(end_time=pending_end)
        if row.error is None:
            state.pending = (span, end)  # ended when the call returns, with the response id
        else:
            span.end(end_time=end)

    def _server(self, target: Target) -> tuple[str | None, int | None]:
        key = target.deployment.name
        server = self._servers.get(key)
        if server is None:
            url = urlsplit(target.deployment.base_url or target.provider.base_url or "")
            port = url.port
            if port is None and url.scheme in ("http", "https"):
                port = 443 if url.scheme == "https" else 80
            server = (url.hostname, port)
            self._servers[key] = server
        return server


class _StreamEnd:
    """What a settled stream's call span reports (its route is built after the row)."""

    def __init__(self, row: LedgerRow) -> None:
        self.truncated = row.outcome in ("truncated", "cut")
        self.verdict = None
        self.kind = row.outcome


def cache_placement(target: Target, request: ChatRequest) -> list[str]:
    """Where the prompt-cache hints sit in the request the attempt sent: `cache_control` marks
    (`tools[i]`, `messages[i]`, `top-level`) for Anthropic, `prompt_cache_key` for OpenAI. Only
    computed when tracing."""
    # The hints are recomputed from the caller's request (deterministic; `RouterCore.hinted`).
    from .prefix.layout import cache_hints

    try:
        sent = cache_hints(request, target)
    except Exception:  # a hint we cannot recompute is no reason to lose the span
        return []
    places: list[str] = []
    if target.dialect == "anthropic":
        for i, tool in enumerate(sent.body.get("tools") or ()):
            if isinstance(tool, Mapping) and "cache_control" in tool:
                places.append(f"tools[{i}]")
        for i, message in enumerate(sent.messages):
            if _marked(message):
                places.append(f"messages[{i}]")
        extra = sent.body.get("extra_body")
        if isinstance(extra, Mapping) and "cache_control" in extra:
            places.append("top-level")
    elif sent.body.get("prompt_cache_key"):
        places.append("prompt_cache_key")
    return places


def _marked(message: Any) -> bool:
    if not isinstance(message, Mapping):
        return False
    if "cache_control" in message:
        return True
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, Mapping) and "cache_control" in part for part in content
    )


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", "")})
            elif isinstance(part, Mapping):
                parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _input_messages(messages: Sequence[Any]) -> str:
    """The conventions' `gen_ai.input.messages` shape (role and parts), as a JSON string."""
    out = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        parts = _parts(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {} if isinstance(call, Mapping) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id") if isinstance(call, Mapping) else None,
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        if message.get("role") == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "result": message.get("content"),
                }
            ]
        out.append({"role": message.get("role"), "parts": parts})
    return json.dumps(out, ensure_ascii=False, default=str)


def _output_messages(completion: Any) -> str:
    out = []
    for choice in getattr(completion, "choices", None) or ():
        message = choice.message
        parts = _parts(message.content or "") if message.content else []
        for call in message.tool_calls or ():
            function = getattr(call, "function", None)
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.id,
                    "name": getattr(function, "name", None),
                    "arguments": getattr(function, "arguments", None),
                }
            )
        out.append({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason})
    return json.dumps(out, ensure_ascii=False, default=str)


def _streamed_output(settle: Any) -> str:
    parts: list[dict[str, Any]] = []
    text = "".join(settle.text)
    if text:
        parts.append({"type": "text", "content": text})
    return json.dumps(
        [{"role": "assistant", "parts": parts, "finish_reason": settle.raw_finish}], ensure_ascii=False
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmroute")
    except PackageNotFoundError:
        return "0"


TELEMETRY = Telemetry()
"""The process's telemetry hooks, shared by every router."""


def configure(
    *, tracer_provider: Any = None, meter_provider: Any = None, capture_content: bool | None = None
) -> None:
    """Send llmroute's spans and metrics to these providers instead of the global ones.

    With no arguments, back to the defaults: the global providers
    (`opentelemetry.trace.set_tracer_provider`, `opentelemetry.metrics.set_meter_provider`) and the
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` environment variable.
    """
    TELEMETRY.configure(
        tracer_provider=tracer_provider, meter_provider=meter_provider, capture_content=capture_content
    )
