"""OpenTelemetry spans and metrics (llmroute.telemetry) over the emulator, read back with the SDK's
in-memory span exporter and metric reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from conftest import ALL_CANARIES, CANARY_OPENAI, USER, deployments

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import llmroute
from llmroute import telemetry
from llmroute.policies import Shadow
from llmroute.testing import Emulator, Fault

CANARY_ANTHROPIC = "sk-ant-canary-99887766554433221100ffeeddcc"
LONG = "You review pull requests for a payments company. Be precise, kind and brief about style. " * 90


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def routes(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.kind == SpanKind.INTERNAL]

    def attempts(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.kind == SpanKind.CLIENT]

    def points(self, name: str, scope: str = "llmroute") -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scoped in resource.scope_metrics:
                if scoped.scope.name != scope:
                    continue
                for metric in scoped.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def metric_names(self, scope: str) -> set[str]:
        data = self.reader.get_metrics_data()
        return {
            m.name
            for r in (data.resource_metrics if data is not None else ())
            for s in r.scope_metrics
            if s.scope.name == scope
            for m in s.metrics
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    telemetry.configure(tracer_provider=o.tracer_provider, meter_provider=o.meter_provider)
    yield o
    telemetry.configure()


def claude(emu: Emulator) -> llmroute.Deployment:
    return llmroute.Deployment(
        "claude",
        model="claude-sonnet-4.6",
        base_url=emu.base_url("anthropic"),
        api_key=CANARY_ANTHROPIC,
        http_client=emu.http_client(),
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_fallback_yields_a_route_span_with_one_client_span_per_attempt(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    emu.inject(Fault.server_error(500), provider="openai", times=3)  # every retry on gpt fails
    three = llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(3))
    router = make_router(fallbacks=["deepseek-v3.2"], retry=three)
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER, max_tokens=200, temperature=0.5)
    assert reply.route.deployment == "ds"

    (route,) = otel.routes()
    attempts = sorted(otel.attempts(), key=lambda s: s.start_time or 0)
    assert route.name == "route gpt-5.4" and route.parent is None
    assert len(attempts) == 4 == len(reply.route.attempts)
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == route.context.span_id
        assert span.context.trace_id == route.context.trace_id
        assert route.start_time is not None and route.end_time is not None
        assert span.start_time is not None and span.end_time is not None
        assert route.start_time <= span.start_time <= span.end_time <= route.end_time
    failed, answered = attempts[:3], attempts[3]
    openai_host = urlsplit(emu.base_url("openai")).hostname
    for number, span in enumerate(failed, 1):
        a = attrs(span)
        assert span.name == "chat gpt-5.4"
        assert span.status.status_code == StatusCode.ERROR
        assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "openai"
        assert a["error.type"] == reply.route.attempts[number - 1].error
        assert a["http.response.status_code"] == 500
        assert a["server.address"] == openai_host and a["server.port"] == 80
        assert a["llmroute.deployment"] == "gpt" and a["llmroute.attempt"] == number
        assert "gen_ai.usage.input_tokens" not in a
    a = attrs(answered)
    assert answered.name == "chat deepseek-chat" and answered.status.status_code != StatusCode.ERROR
    assert a["gen_ai.provider.name"] == "deepseek"  # the real provider behind the OpenAI-style API
    assert a["gen_ai.request.model"] == "deepseek-chat"
    assert a["gen_ai.response.model"] == reply.model
    assert a["gen_ai.response.id"] == reply.id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert reply.usage is not None
    assert a["gen_ai.usage.input_tokens"] == reply.usage.prompt_tokens == emu.requests[-1].billed.input_tokens
    assert a["gen_ai.usage.output_tokens"] == reply.usage.completion_tokens
    assert a["gen_ai.request.max_tokens"] == 200 and a["gen_ai.request.temperature"] == 0.5
    assert a["llmroute.deployment"] == "ds" and a["llmroute.attempt"] == 4  # numbered across the call
    row_cost = reply.route.attempts[-1].cost
    assert row_cost is not None and a["llmroute.cost.exact"] == str(row_cost.total)
    assert a["llmroute.cost"] == float(row_cost.total) and a["llmroute.cost.currency"] == "USD"
    assert "error.type" not in a

    r = attrs(route)
    assert r["llmroute.request.model"] == "gpt-5.4"
    assert r["llmroute.deployment"] == "ds" and r["llmroute.provider"] == "deepseek"
    assert r["llmroute.deployments_tried"] == ("gpt", "ds") and r["llmroute.fallbacks"] == 1
    assert r["llmroute.attempts"] == 4
    assert reply.route.cost is not None and r["llmroute.cost.exact"] == str(reply.route.cost)
    assert r["llmroute.truncated"] is False and r["llmroute.truncation.kind"] == "complete"
    assert r["llmroute.candidates"][:2] == ("gpt", "ds")
    assert any(step.startswith("Requested: kept [gpt, ds") for step in r["llmroute.policy.steps"])
    assert not any(k.startswith("gen_ai.usage") for k in r)  # tokens are counted once, on attempts

    durations = otel.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 4
    assert sum(p.count for p in durations if p.attributes.get("error.type")) == 3
    assert tuple(durations[0].explicit_bounds) == telemetry.DURATION_BUCKETS
    tokens = {p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")}
    assert tokens["input"].sum == reply.usage.prompt_tokens and tokens["input"].count == 1
    assert tokens["output"].sum == reply.usage.completion_tokens
    assert tokens["input"].attributes["gen_ai.provider.name"] == "deepseek"
    assert tuple(tokens["input"].explicit_bounds) == telemetry.TOKEN_BUCKETS
    (cost,) = otel.points(telemetry.COST_METRIC)
    assert cost.value == pytest.approx(float(reply.route.cost))


def test_failed_call_ends_its_span_with_the_error(make_router: Any, emu: Emulator, otel: Otel) -> None:
    emu.inject(Fault.bad_request("messages[0]: invalid"), provider="openai", times=1)
    router = make_router()
    with pytest.raises(openai.BadRequestError):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    (route,) = otel.routes()
    (attempt,) = otel.attempts()
    assert route.status.status_code == StatusCode.ERROR
    assert attrs(route)["error.type"] == attrs(attempt)["error.type"]
    assert attrs(route)["llmroute.attempts"] == 1
    assert attempt.parent is not None and attempt.parent.span_id == route.context.span_id


def test_anthropic_cache_writes_then_reads_with_input_tokens_including_them(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    router = make_router(deployments=[claude(emu)])
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "First question?"}]
    first = router.chat.completions.create(model="claude-sonnet-4.6", messages=messages)
    messages[-1] = {"role": "user", "content": "Second question?"}
    second = router.chat.completions.create(model="claude-sonnet-4.6", messages=messages)
    spans = sorted(otel.attempts(), key=lambda s: s.start_time or 0)
    assert len(spans) == 2
    for span, reply, billed in zip(spans, (first, second), (r.billed for r in emu.requests), strict=True):
        a = attrs(span)
        assert span.name == "chat claude-sonnet-4-6"
        assert a["gen_ai.provider.name"] == "anthropic"
        assert a["gen_ai.response.id"] == reply.id
        # Anthropic's own input_tokens leaves cache reads and writes out; the conventions count them in
        assert a["gen_ai.usage.input_tokens"] == billed.input_tokens
        assert a["gen_ai.usage.cache_read.input_tokens"] if billed.cached_tokens else True
        assert a.get("gen_ai.usage.cache_read.input_tokens", 0) == billed.cached_tokens
        assert a.get("gen_ai.usage.cache_write.input_tokens", 0) == billed.cache_write_tokens
        uncached = billed.input_tokens - billed.cached_tokens - billed.cache_write_tokens
        assert a["gen_ai.usage.input_tokens"] > uncached
        assert a["llmroute.cache.hints"] == ("messages[0]",)  # llmroute placed the breakpoint
    assert emu.requests[0].billed.cache_write_tokens > 1024 and emu.requests[0].billed.cached_tokens == 0
    assert emu.requests[1].billed.cached_tokens > 1024
    tokens = [
        p for p in otel.points("gen_ai.client.token.usage") if p.attributes["gen_ai.token.type"] == "input"
    ]
    assert sum(p.sum for p in tokens) == sum(r.billed.input_tokens for r in emu.requests)


def test_openai_prompt_cache_key_placement_and_cached_reads(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    router = make_router()
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Hi"}]
    router.chat.completions.create(model="gpt-5.4", messages=messages)
    router.chat.completions.create(model="gpt-5.4", messages=messages)
    spans = sorted(otel.attempts(), key=lambda s: s.start_time or 0)
    for span, record in zip(spans, emu.requests, strict=True):
        a = attrs(span)
        assert a["llmroute.cache.hints"] == ("prompt_cache_key",)
        assert a["gen_ai.usage.input_tokens"] == record.billed.input_tokens
        assert a.get("gen_ai.usage.cache_read.input_tokens", 0) == record.billed.cached_tokens
    assert emu.requests[1].billed.cached_tokens > 0


def test_stream_span_has_time_to_first_chunk_and_ends_with_the_stream(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    emu.inject(Fault.rate_limit(retry_after=0), provider="openai", times=1)
    router = make_router()
    stream = router.chat.completions.create(
        model="gpt-5.4", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert otel.routes() == []  # the call is not over until the stream is
    assert len(otel.attempts()) == 1  # the 429 before it
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (route,) = otel.routes()
    failed, answered = sorted(otel.attempts(), key=lambda s: s.start_time or 0)
    assert answered.parent is not None and answered.parent.span_id == route.context.span_id
    assert failed.parent is not None and failed.parent.span_id == route.context.span_id
    a = attrs(answered)
    ttfc = a["gen_ai.response.time_to_first_chunk"]
    assert answered.start_time is not None and answered.end_time is not None
    assert 0 < ttfc <= (answered.end_time - answered.start_time) / 1e9
    assert ttfc == stream.route.attempts[-1].ttft_s
    assert a["gen_ai.response.id"] == chunks[0].id and {c.id for c in chunks} == {chunks[0].id}
    assert a["gen_ai.usage.output_tokens"] == stream.route.usage.output_tokens > 0
    assert attrs(route)["llmroute.attempts"] == 2 and attrs(route)["llmroute.truncated"] is False
    (first_chunk,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert first_chunk.count == 1 and first_chunk.sum == pytest.approx(ttfc)


def test_stream_closed_early_ends_the_call_as_cut(make_router: Any, otel: Otel) -> None:
    router = make_router()
    stream = router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True)
    next(iter(stream))
    stream.close()
    (route,) = otel.routes()
    assert attrs(route)["llmroute.outcome"] == "cut" and attrs(route)["llmroute.truncated"] is True


async def test_async_router_nests_attempts_under_the_call(
    make_async_router: Any, emu: Emulator, otel: Otel
) -> None:
    emu.inject(Fault.server_error(503), provider="openai", times=4)  # every attempt on gpt fails
    router = make_async_router(fallbacks=["deepseek-v3.2"])
    replies = await asyncio.gather(
        router.chat.completions.create(model="gpt-5.4", messages=USER),
        router.chat.completions.create(model="deepseek-v3.2", messages=USER),
    )
    await router.close()
    routes = {attrs(s)["llmroute.call_id"]: s for s in otel.routes()}
    assert set(routes) == {r.route.call_id for r in replies}
    for reply in replies:
        route = routes[reply.route.call_id]
        children = [
            s for s in otel.attempts() if s.parent is not None and s.parent.span_id == route.context.span_id
        ]
        assert len(children) == len(reply.route.attempts)
        assert attrs(route)["llmroute.deployment"] == "ds"


def test_no_content_unless_opted_in_and_never_a_key(
    make_router: Any, otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_text = "The launch code is swordfish-42."
    messages = [{"role": "user", "content": secret_text}]
    router = make_router()
    reply = router.chat.completions.create(model="gpt-5.4", messages=messages)
    values = json.dumps([attrs(s) for s in otel.finished()], default=str)
    assert "swordfish" not in values and (reply.choices[0].message.content or "")[:20] not in values
    assert not any(canary in values for canary in ALL_CANARIES)

    otel.spans.clear()
    monkeypatch.setenv(telemetry.CAPTURE_CONTENT_ENV, "true")
    reply = router.chat.completions.create(model="gpt-5.4", messages=messages)
    (span,) = otel.attempts()
    sent = json.loads(attrs(span)["gen_ai.input.messages"])
    assert sent == [{"role": "user", "parts": [{"type": "text", "content": secret_text}]}]
    answer = json.loads(attrs(span)["gen_ai.output.messages"])
    assert answer[0]["parts"][0]["content"] == reply.choices[0].message.content
    assert answer[0]["finish_reason"] == "stop"
    otel.spans.clear()
    stream = router.chat.completions.create(model="gpt-5.4", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    (span,) = otel.attempts()
    assert json.loads(attrs(span)["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}
    ]
    values = json.dumps([attrs(s) for s in otel.finished()], default=str)
    assert not any(canary in values for canary in ALL_CANARIES)


def test_routed_calls_suppress_other_llm_instrumentation(emu: Emulator, make_router: Any, otel: Otel) -> None:
    """OpenLLMetry's instrumentors skip their own spans when this context key is set; it is, around
    every HTTP request a routed call makes, and only then."""
    seen: list[object] = []

    def hook(request: Any) -> None:
        seen.append(otel_context.get_value(telemetry.SUPPRESS_KEY))

    client = emu.http_client(event_hooks={"request": [hook]})
    deployment = llmroute.Deployment(
        "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, http_client=client
    )
    router = make_router(deployments=[deployment, claude(emu)])
    router.chat.completions.create(model="gpt-5.4", messages=USER)
    raw = openai.OpenAI(base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, http_client=client)
    raw.chat.completions.create(model="gpt-5.4", messages=USER)  # type: ignore[arg-type]
    assert seen == [True, None]


def test_without_a_provider_nothing_is_recorded(make_router: Any) -> None:
    telemetry.configure()
    from opentelemetry import trace

    if not type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.trace"):
        pytest.skip("a global tracer provider is set in this process")
    router = make_router()
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.route.deployment == "gpt"
    assert telemetry.TELEMETRY.tracer() is None


def test_openai_v2_instrumentor_adds_no_duplicate_spans_or_tokens(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    instrumentor = instrumentation.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        scope = "opentelemetry.instrumentation.openai_v2"
        raw = openai.OpenAI(
            base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, http_client=emu.http_client()
        )
        raw.chat.completions.create(model="gpt-5.4", messages=USER)  # type: ignore[arg-type]
        theirs = [
            s for s in otel.finished() if s.instrumentation_scope and s.instrumentation_scope.name == scope
        ]
        assert len(theirs) == 1 and theirs[0].kind == SpanKind.CLIENT  # the instrumentor is active
        their_tokens = sum(p.sum for p in otel.points("gen_ai.client.token.usage", scope))
        assert their_tokens > 0
        otel.spans.clear()

        emu.inject(Fault.server_error(500), provider="openai", times=3)
        router = make_router(fallbacks=["deepseek-v3.2"])
        reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
        stream = router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert stream.response.headers.get("x-request-id") is not None  # raw responses still work

        clients = [s for s in otel.finished() if s.kind == SpanKind.CLIENT]
        assert {s.instrumentation_scope.name for s in clients if s.instrumentation_scope} == {"llmroute"}
        assert len(clients) == len(reply.route.attempts) + len(stream.route.attempts)
        assert sum(p.sum for p in otel.points("gen_ai.client.token.usage", scope)) == their_tokens
        ours = otel.points("gen_ai.client.token.usage")
        assert reply.usage is not None
        assert sum(p.sum for p in ours if p.attributes["gen_ai.token.type"] == "input") == (
            reply.usage.prompt_tokens + stream.route.usage.input_tokens
        )
        assert "gen_ai.client.operation.duration" in otel.metric_names(scope)  # from the raw call only
    finally:
        instrumentor.uninstrument()


def test_openllmetry_anthropic_instrumentor_stays_quiet_under_routed_calls(
    make_router: Any, emu: Emulator, otel: Otel
) -> None:
    """OpenLLMetry's Anthropic instrumentor wraps `messages.create`, which llmroute's Anthropic adapter
    calls: the suppression key keeps it from adding a second CLIENT span and its own token metrics."""
    instrumentation = pytest.importorskip("opentelemetry.instrumentation.anthropic")
    import anthropic

    instrumentor = instrumentation.AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        scope = "opentelemetry.instrumentation.anthropic"
        raw = anthropic.Anthropic(
            base_url=emu.base_url("anthropic"), api_key=CANARY_ANTHROPIC, http_client=emu.http_client()
        )
        raw.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=USER)  # type: ignore[arg-type]
        theirs = [
            s for s in otel.finished() if s.instrumentation_scope and s.instrumentation_scope.name == scope
        ]
        assert len(theirs) == 1  # the instrumentor is active
        their_metrics = {name: otel.points(name, scope) for name in otel.metric_names(scope)}
        their_counts = {n: sum(getattr(p, "count", 0) for p in pts) for n, pts in their_metrics.items()}
        otel.spans.clear()

        router = make_router(deployments=[claude(emu)])
        reply = router.chat.completions.create(model="claude-sonnet-4.6", messages=USER)
        stream = router.chat.completions.create(model="claude-sonnet-4.6", messages=USER, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        clients = [s for s in otel.finished() if s.kind == SpanKind.CLIENT]
        assert {s.instrumentation_scope.name for s in clients if s.instrumentation_scope} == {"llmroute"}
        assert len(clients) == len(reply.route.attempts) + len(stream.route.attempts) == 2
        after = {n: sum(getattr(p, "count", 0) for p in otel.points(n, scope)) for n in their_metrics}
        assert after == their_counts
    finally:
        instrumentor.uninstrument()


async def test_async_stream_ends_its_call_span_when_consumed(make_async_router: Any, otel: Otel) -> None:
    router = make_async_router()
    stream = await router.chat.completions.create(model="deepseek-v3.2", messages=USER, stream=True)
    assert otel.routes() == []
    assert [c async for c in stream]
    await router.close()
    (route,) = otel.routes()
    (attempt,) = otel.attempts()
    assert attempt.parent is not None and attempt.parent.span_id == route.context.span_id
    assert attrs(attempt)["gen_ai.provider.name"] == "deepseek"
    assert attrs(attempt)["gen_ai.response.time_to_first_chunk"] == stream.route.attempts[0].ttft_s


def test_metrics_alone_without_a_tracer(make_router: Any) -> None:
    reader = InMemoryMetricReader()
    telemetry.configure(meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        reply = make_router().chat.completions.create(model="gpt-5.4", messages=USER)
    finally:
        telemetry.configure()
    data = reader.get_metrics_data()
    assert data is not None
    sums = {
        (m.name, p.attributes.get("gen_ai.token.type")): p.sum
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        for p in m.data.data_points
        if m.name == "gen_ai.client.token.usage"
    }
    assert reply.usage is not None
    assert sums == {
        ("gen_ai.client.token.usage", "input"): reply.usage.prompt_tokens,
        ("gen_ai.client.token.usage", "output"): reply.usage.completion_tokens,
    }


@pytest.mark.parametrize("asynchronous", [False, True])
def test_shadow_attempts_are_their_own_spans_labelled_with_the_call(
    emu: Emulator, otel: Otel, asynchronous: bool
) -> None:
    policy = Shadow("deepseek-v3.2", sample=1.0) | llmroute.Requested()
    if asynchronous:

        async def run() -> Any:
            router = llmroute.AsyncRouter(deployments(emu, asynchronous=True), policy=policy)
            reply = await router.chat.completions.create(model="gpt-5.4", messages=USER)
            await router.close()  # waits for the background call
            return reply

        reply = asyncio.run(run())
    else:
        router = llmroute.Router(deployments(emu), policy=policy)
        reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
        router.close()  # waits for the background call
    (route,) = otel.routes()
    children = [s for s in otel.attempts() if s.parent is not None]
    (shadow,) = [s for s in otel.attempts() if s.parent is None]
    assert [attrs(s)["llmroute.deployment"] for s in children] == ["gpt"] == [reply.route.deployment]
    assert attrs(route)["llmroute.attempts"] == 1
    a = attrs(shadow)
    assert a["llmroute.deployment"] == "ds" and a["gen_ai.provider.name"] == "deepseek"
    assert a["llmroute.label.shadow"] == "candidate" and a["llmroute.label.shadow_of"] == reply.route.call_id
