"""llmroute.testing: the provider emulator, exercised through the real openai SDK.

Every test talks to 127.0.0.1 at most: the in-process transport opens no socket, the socket server
binds the loopback interface on an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest

from llmroute.testing import Bill, BillLine, Emulator, Fault, Reply, ReplyContext, RequestRecord
from llmroute.tokens import count_messages, count_text

STREAM_CUT = (openai.APIConnectionError, httpx2.RemoteProtocolError)
"""How the raw SDK reports a body cut mid-stream: APIConnectionError, or (openai 3.3) httpx2's own error."""

PROVIDERS = ["openai", "deepseek", "vllm", "ollama", "llamacpp"]
MODELS = {
    "openai": "gpt-4o",
    "deepseek": "deepseek-chat",
    "vllm": "qwen3-8b",
    "ollama": "llama3",
    "llamacpp": "local",
}
USER = [{"role": "user", "content": "Say something about routing."}]
KEY = "sk-emulator-test"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather at a place",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["location"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}

Connect = Callable[..., openai.OpenAI]


def long_system(n_words: int = 1500) -> str:
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
    ]
    return " ".join(words[i % len(words)] + str(i % 7) for i in range(n_words))


def long_chat(n_words: int = 1500, question: str = "Summarise.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": long_system(n_words)}, {"role": "user", "content": question}]


@pytest.fixture
def emu() -> Emulator:
    return Emulator(seed=7)


@pytest.fixture(params=["inproc", "socket"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(emu: Emulator, mode: str) -> Iterator[Connect]:
    """``connect(provider, **client_kwargs)``: an ``openai.OpenAI`` on the emulator, in-process or
    over the socket server, depending on ``mode``."""
    server = emu.serve().start() if mode == "socket" else None
    clients: list[openai.OpenAI] = []

    def make(provider: str = "openai", **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("max_retries", 0)
        if server is None:
            client = openai.OpenAI(base_url=emu.base_url(provider), http_client=emu.http_client(), **kwargs)
        else:
            client = openai.OpenAI(base_url=server.base_url(provider), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    if server is not None:
        server.stop()


def inproc(emu: Emulator, provider: str = "openai", **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(
        api_key=KEY, base_url=emu.base_url(provider), http_client=emu.http_client(), **kwargs
    )


def stream_chunks(client: openai.OpenAI, **kwargs: Any) -> list[Any]:
    return list(client.chat.completions.create(stream=True, **kwargs))


def streamed_text(chunks: list[Any], field: str = "content") -> str:
    out = []
    for chunk in chunks:
        if chunk.choices:
            delta = chunk.choices[0].delta
            value = getattr(delta, field, None) or (delta.model_extra or {}).get(field)
            out.append(value or "")
    return "".join(out)


# ---------------------------------------------------------------- shapes and usage per dialect


@pytest.mark.parametrize("provider", PROVIDERS)
def test_completion_shape_and_usage(connect: Connect, emu: Emulator, provider: str) -> None:
    model = MODELS[provider]
    raw = connect(provider).chat.completions.with_raw_response.create(model=model, messages=USER)
    assert raw.headers["x-request-id"].startswith("req_")
    reply = raw.parse()
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert reply.model == model
    choice = reply.choices[0]
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    text = choice.message.content
    assert text and text.endswith(".")
    usage = reply.usage
    assert usage is not None
    expected_prompt = count_messages(USER, model).tokens
    assert usage.completion_tokens == count_text(text, model)
    extra = usage.model_extra or {}
    if provider == "llamacpp":
        timings = (reply.model_extra or {})["timings"]
        assert timings["cache_n"] + timings["prompt_n"] == expected_prompt
        assert usage.prompt_tokens == timings["prompt_n"]
        assert timings["predicted_n"] == usage.completion_tokens
    else:
        assert usage.prompt_tokens == expected_prompt
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if provider == "openai":
        assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
        assert usage.completion_tokens_details is not None
        assert usage.completion_tokens_details.reasoning_tokens == 0
        assert choice.message.refusal is None and reply.system_fingerprint
    elif provider == "deepseek":
        assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == usage.prompt_tokens
    elif provider == "vllm":
        assert usage.prompt_tokens_details is None  # not started with --enable-prompt-tokens-details
    elif provider == "ollama":
        assert usage.prompt_tokens_details is None and usage.completion_tokens_details is None
        assert not extra
    (record,) = emu.requests
    assert (record.provider, record.model, record.status, record.stream) == (provider, model, 200, False)
    assert record.request_id == raw.headers["x-request-id"]


def test_default_text_is_deterministic() -> None:
    def answer(seed: int, content: str = "hello") -> str | None:
        client = inproc(Emulator(seed=seed))
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": content}]
        )
        return reply.choices[0].message.content

    assert answer(1) == answer(1)
    assert answer(1) != answer(2)
    assert answer(1) != answer(1, "hello!")


def test_directive_forces_output_tokens(emu: Emulator) -> None:
    messages = [{"role": "user", "content": "Write a lot. [[emulator:tokens=300]]"}]
    reply = inproc(emu).chat.completions.create(model="gpt-4o", messages=messages)
    assert reply.usage is not None and reply.usage.completion_tokens == 300
    assert count_text(reply.choices[0].message.content or "", "gpt-4o") == 300


def test_reasoning_hidden_for_openai_reasoning_models(emu: Emulator) -> None:
    reply = inproc(emu).chat.completions.create(model="o3-mini", messages=USER)
    usage = reply.usage
    assert usage is not None and usage.completion_tokens_details is not None
    hidden = usage.completion_tokens_details.reasoning_tokens or 0
    assert hidden > 0
    text = reply.choices[0].message.content or ""
    assert usage.completion_tokens == hidden + count_text(text, "o3-mini")
    assert emu.bill.total().reasoning_tokens == hidden


def test_reasoning_per_model_config(emu: Emulator) -> None:
    emu.configure("openai", "gpt-5.4-chat", reasoning=False)
    emu.configure("openai", "my-thinker", reasoning="hidden", served_model="my-thinker-2026-01-01")
    client = inproc(emu)
    plain = client.chat.completions.create(model="gpt-5.4-chat", messages=USER)
    thinker = client.chat.completions.create(model="my-thinker", messages=USER)
    assert plain.usage is not None and plain.usage.completion_tokens_details is not None
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    assert thinker.usage is not None and thinker.usage.completion_tokens_details is not None
    assert (thinker.usage.completion_tokens_details.reasoning_tokens or 0) > 0
    assert thinker.model == "my-thinker-2026-01-01"


@pytest.mark.parametrize(
    ("provider", "model", "field"),
    [("deepseek", "deepseek-reasoner", "reasoning_content"), ("ollama", "qwq:32b", "reasoning")],
)
def test_visible_reasoning(connect: Connect, provider: str, model: str, field: str) -> None:
    client = connect(provider)
    reply = client.chat.completions.create(model=model, messages=USER)
    message_extra = reply.choices[0].message.model_extra or {}
    reasoning = message_extra[field]
    assert reasoning
    content = reply.choices[0].message.content or ""
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count_text(reasoning, model) + count_text(content, model)
    if provider == "deepseek":
        assert reply.usage.completion_tokens_details is not None
        assert reply.usage.completion_tokens_details.reasoning_tokens == count_text(reasoning, model)
    chunks = stream_chunks(client, model=model, messages=USER)
    assert streamed_text(chunks, field) == reasoning
    assert streamed_text(chunks) == content


def test_deepseek_thinking_switch(emu: Emulator) -> None:
    client = inproc(emu, "deepseek")
    on = client.chat.completions.create(
        model="deepseek-v4-flash", messages=USER, extra_body={"thinking": {"type": "enabled"}}
    )
    off = client.chat.completions.create(
        model="deepseek-v4-pro", messages=USER, extra_body={"thinking": {"type": "disabled"}}
    )
    assert (on.choices[0].message.model_extra or {}).get("reasoning_content")
    assert "reasoning_content" not in (off.choices[0].message.model_extra or {})


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_matches_non_stream(connect: Connect, emu: Emulator, provider: str) -> None:
    client = connect(provider)
    model = MODELS[provider]
    whole = client.chat.completions.create(model=model, messages=USER)
    chunks = stream_chunks(client, model=model, messages=USER, stream_options={"include_usage": True})
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert streamed_text(chunks) == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 5  # a few tokens per delta
    no_usage = stream_chunks(client, model=model, messages=USER)
    assert all(c.usage is None for c in no_usage) and all(c.choices for c in no_usage)
    assert [r.stream for r in emu.requests] == [False, True, True]


def test_deepseek_stream_sends_keepalive_comment(emu: Emulator) -> None:
    with emu.serve() as server, httpx2.Client() as http:
        url = server.base_url("deepseek") + "/chat/completions"
        body = {"model": "deepseek-chat", "messages": USER, "stream": True}
        with http.stream("POST", url, json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["transfer-encoding"] == "chunked"
            raw = b"".join(response.iter_bytes())
    assert raw.startswith(b": keep-alive\n\n")
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_async_clients(emu: Emulator) -> None:
    async with openai.AsyncOpenAI(
        api_key=KEY, base_url=emu.base_url("openai"), http_client=emu.async_http_client(), max_retries=0
    ) as client:
        reply = await client.chat.completions.create(model="gpt-4o", messages=USER)
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert streamed_text(chunks) == reply.choices[0].message.content
    with emu.serve() as server:
        async with openai.AsyncOpenAI(
            api_key=KEY, base_url=server.base_url("openai"), max_retries=0
        ) as client:
            replies = await asyncio.gather(
                *(client.chat.completions.create(model="gpt-4o", messages=USER) for _ in range(20))
            )
    assert {r.choices[0].message.content for r in replies} == {reply.choices[0].message.content}
    assert emu.bill.total().requests == 22


async def test_socket_server_handles_128_keepalive_connections(emu: Emulator) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": USER}).encode()

    async def client(port: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        statuses = 0
        for _ in range(2):  # two requests on the same connection
            head = (
                f"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status = await reader.readline()
            headers = {}
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            await reader.readexactly(int(headers["content-length"]))
            statuses += status.startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
        return statuses

    with emu.serve() as server:
        results = await asyncio.wait_for(asyncio.gather(*(client(server.port) for _ in range(128))), 30)
    assert sum(results) == 256
    assert emu.bill.total().requests == 256


def test_server_stops_cleanly(emu: Emulator) -> None:
    server = emu.serve()
    with server:
        client = openai.OpenAI(api_key=KEY, base_url=server.base_url("openai"), max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=USER)
        port = server.port
        assert server.base_url("deepseek") == f"http://127.0.0.1:{port}/deepseek/v1"
    assert server._thread is None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    client.close()


# ---------------------------------------------------------------- request handling


def test_max_tokens_cuts_with_length(connect: Connect, emu: Emulator) -> None:
    client = connect()
    reply = client.chat.completions.create(model="gpt-4o", messages=USER, max_completion_tokens=7)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 7
    assert count_text(reply.choices[0].message.content or "", "gpt-4o") == 7
    legacy = client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=3)
    assert legacy.usage is not None and legacy.usage.completion_tokens == 3
    chunks = stream_chunks(client, model="gpt-4o", messages=USER, max_tokens=4)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert count_text(streamed_text(chunks), "gpt-4o") == 4


def test_max_tokens_spent_on_hidden_reasoning(emu: Emulator) -> None:
    reply = inproc(emu).chat.completions.create(model="o4-mini", messages=USER, max_completion_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert reply.usage.completion_tokens_details is not None
    hidden = reply.usage.completion_tokens_details.reasoning_tokens or 0
    assert hidden >= 1
    assert count_text(reply.choices[0].message.content or "", "o4-mini") == 2 - hidden


def test_stop_sequences(emu: Emulator) -> None:
    client = inproc(emu)
    full = client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content or ""
    stop = full.split(" ")[3]
    reply = client.chat.completions.create(model="gpt-4o", messages=USER, stop=[" " + stop, "zzz"])
    assert reply.choices[0].message.content == full[: full.index(" " + stop)]
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"messages": USER}, None, None),
        ({"model": "gpt-4o"}, "messages", "missing_required_parameter"),
        ({"model": "gpt-4o", "messages": []}, "messages", "empty_array"),
        (
            {"model": "gpt-4o", "messages": [{"content": "hi"}]},
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]},
            "messages[0].role",
            "invalid_value",
        ),
        ({"model": "gpt-4o", "messages": USER, "n": 2}, "n", "unsupported_value"),
        ({"model": "gpt-4o", "messages": USER, "max_tokens": 0}, "max_tokens", "integer_below_min_value"),
        ({"model": "gpt-4o", "messages": USER, "tool_choice": "required"}, "tool_choice", None),
    ],
)
def test_validation_errors(
    emu: Emulator, kwargs: dict[str, Any], param: str | None, code: str | None
) -> None:
    client = inproc(emu)
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/chat/completions", body=kwargs, cast_to=dict)
    error = info.value.body
    assert isinstance(error, dict)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert info.value.response.headers["x-request-id"].startswith("req_")
    assert emu.requests[-1].status == 400 and emu.bill.total() == BillLine()


def test_unknown_paths_and_optional_v1(emu: Emulator) -> None:
    with pytest.raises(openai.NotFoundError):
        inproc(emu, "nosuchprovider").chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.NotFoundError):
        inproc(emu).moderations.create(input="x")
    client = openai.OpenAI(
        api_key=KEY, base_url="http://emulator.invalid/deepseek", http_client=emu.http_client(), max_retries=0
    )
    assert client.chat.completions.create(model="deepseek-chat", messages=USER).choices[0].message.content


def test_models_restriction(emu: Emulator) -> None:
    emu.models["openai"] = {"gpt-4o"}
    client = inproc(emu)
    client.chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=USER)
    assert info.value.code == "model_not_found"


def test_api_keys_and_records_never_keep_the_key(emu: Emulator) -> None:
    canary = "sk-canary-0123456789abcdef"
    emu.api_keys["deepseek"] = canary
    good = openai.OpenAI(api_key=canary, base_url=emu.base_url("deepseek"), http_client=emu.http_client())
    bad = openai.OpenAI(
        api_key="sk-wrong", base_url=emu.base_url("deepseek"), http_client=emu.http_client(), max_retries=0
    )
    good.chat.completions.create(model="deepseek-chat", messages=USER)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="deepseek-chat", messages=USER)
    assert "sk-wrong" not in info.value.response.text
    assert [r.status for r in emu.requests] == [200, 401]
    assert all(r.authorized for r in emu.requests)
    assert canary not in repr(emu.requests) and "sk-wrong" not in repr(emu.requests)
    inproc(emu).chat.completions.create(model="gpt-4o", messages=USER)  # no key configured: any key works


# ---------------------------------------------------------------- tools and JSON


def test_tool_call_on_weather(connect: Connect) -> None:
    client = connect()
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris", "unit": "c"}
    assert reply.usage is not None
    assert reply.usage.completion_tokens == count_text("get_weather", "gpt-4o") + count_text(
        call.function.arguments, "gpt-4o"
    )
    assert (
        reply.usage.prompt_tokens
        == count_messages(messages, "gpt-4o", tools=[WEATHER_TOOL, TIME_TOOL]).tokens
    )

    chunks = stream_chunks(client, model="gpt-4o", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == call.id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    followup = [
        *messages,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=followup, tools=[WEATHER_TOOL])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content


def test_tool_choice_required_named_and_none(emu: Emulator) -> None:
    client = inproc(emu)
    tools: Any = [WEATHER_TOOL, TIME_TOOL]
    required = client.chat.completions.create(
        model="gpt-4o", messages=USER, tools=tools, tool_choice="required"
    )
    assert (required.choices[0].message.tool_calls or [])[0].function.name == "get_weather"
    named = client.chat.completions.create(
        model="gpt-4o",
        messages=USER,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert (named.choices[0].message.tool_calls or [])[0].function.arguments == "{}"
    weather = [{"role": "user", "content": "weather?"}]
    none = client.chat.completions.create(model="gpt-4o", messages=weather, tools=tools, tool_choice="none")
    assert none.choices[0].message.tool_calls is None


def test_json_modes(emu: Emulator) -> None:
    client = inproc(emu)
    ask = [{"role": "user", "content": "Answer in JSON."}]
    obj = client.chat.completions.create(
        model="gpt-4o", messages=ask, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(obj.choices[0].message.content or ""), dict)
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}}
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    structured = client.chat.completions.create(model="gpt-4o", messages=USER, response_format=fmt)
    assert json.loads(structured.choices[0].message.content or "") == {"city": "Paris", "n": 3}
    with pytest.raises(openai.BadRequestError, match="json"):
        client.chat.completions.create(model="gpt-4o", messages=USER, response_format={"type": "json_object"})


def test_set_reply(emu: Emulator) -> None:
    seen: list[ReplyContext] = []

    def reply(ctx: ReplyContext) -> Reply | None:
        seen.append(ctx)
        if ctx.model == "default":
            return None
        if ctx.provider == "deepseek":
            return Reply(text="Fine.", reasoning="Think first.")
        call = {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
        return Reply(text="Calling f.", tool_calls=[call], finish_reason=None)

    emu.set_reply(reply)
    out = inproc(emu).chat.completions.create(model="gpt-4o", messages=USER, temperature=0.3)
    assert out.choices[0].message.content == "Calling f."
    (call,) = out.choices[0].message.tool_calls or []
    assert call.function.arguments == '{"a":1}' and call.id.startswith("call_")
    assert out.choices[0].finish_reason == "tool_calls"
    ds = inproc(emu, "deepseek").chat.completions.create(model="deepseek-reasoner", messages=USER)
    assert (ds.choices[0].message.model_extra or {})["reasoning_content"] == "Think first."
    assert inproc(emu).chat.completions.create(model="default", messages=USER).choices[0].message.content
    assert seen[0].body["temperature"] == 0.3 and seen[0].messages == USER and seen[0].stream is False
    emu.set_reply(None)


# ---------------------------------------------------------------- prefix caching


def _usage_pair(client: openai.OpenAI, model: str, **kwargs: Any) -> tuple[Any, Any]:
    first = client.chat.completions.create(model=model, **kwargs)
    second = client.chat.completions.create(model=model, **kwargs)
    return first.usage, second.usage


def test_openai_prefix_cache(connect: Connect) -> None:
    client = connect()
    messages = long_chat()
    first, second = _usage_pair(client, "gpt-4o", messages=messages)
    prompt = count_messages(messages, "gpt-4o").tokens
    assert prompt > 1200
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details.cached_tokens == (prompt - 1) // 128 * 128
    assert second.prompt_tokens == prompt  # includes the cached tokens

    grown = [*messages, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "More."}]
    third = client.chat.completions.create(model="gpt-4o", messages=grown).usage
    assert third is not None and third.prompt_tokens_details is not None
    assert third.prompt_tokens_details.cached_tokens == prompt // 128 * 128  # the previous prompt's prefix

    short = [{"role": "user", "content": long_system(300)}]
    assert _usage_pair(client, "gpt-4o", messages=short)[1].prompt_tokens_details.cached_tokens == 0  # < 1024

    keyed = _usage_pair(client, "gpt-4o", messages=messages, extra_body={"prompt_cache_key": "tenant-2"})
    assert keyed[0].prompt_tokens_details.cached_tokens == 0  # another shard
    assert keyed[1].prompt_tokens_details.cached_tokens > 0


def test_reordered_tools_miss_the_cache(emu: Emulator) -> None:
    client = inproc(emu)
    messages = long_chat()
    _, second = _usage_pair(client, "gpt-4o", messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    assert second.prompt_tokens_details.cached_tokens > 1024
    swapped = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[TIME_TOOL, WEATHER_TOOL]
    )
    assert swapped.usage is not None and swapped.usage.prompt_tokens_details is not None
    assert swapped.usage.prompt_tokens_details.cached_tokens == 0
    assert abs(swapped.usage.prompt_tokens - second.prompt_tokens) <= 2  # same tools, another order


def test_cache_min_tokens_per_model(emu: Emulator) -> None:
    emu.configure("openai", "gpt-5", cache_min_tokens=2048)
    client = inproc(emu)
    messages = long_chat(700)
    assert 1024 < count_messages(messages, "gpt-5").tokens < 2048
    assert _usage_pair(client, "gpt-5", messages=messages)[1].prompt_tokens_details.cached_tokens == 0
    assert _usage_pair(client, "gpt-4.1", messages=messages)[1].prompt_tokens_details.cached_tokens > 0


def test_cache_ttl_with_fake_clock() -> None:
    now = [0.0]
    emu = Emulator(clock=lambda: now[0])
    emu.configure("openai", cache_ttl=300.0)
    client = inproc(emu)
    messages = long_chat()
    client.chat.completions.create(model="gpt-4o", messages=messages)
    now[0] = 200.0
    hit = client.chat.completions.create(model="gpt-4o", messages=messages).usage
    assert hit is not None and (hit.prompt_tokens_details.cached_tokens or 0) > 0  # type: ignore[union-attr]
    now[0] = 600.0
    miss = client.chat.completions.create(model="gpt-4o", messages=messages).usage
    assert miss is not None and miss.prompt_tokens_details.cached_tokens == 0  # type: ignore[union-attr]
    assert emu.requests[-1].time == 600.0


def test_deepseek_cache_units(connect: Connect) -> None:
    client = connect("deepseek")
    messages = long_chat(200)
    first, second = _usage_pair(client, "deepseek-chat", messages=messages)
    prompt = count_messages(messages, "deepseek-chat").tokens
    hit = second.model_extra["prompt_cache_hit_tokens"]
    assert first.model_extra["prompt_cache_hit_tokens"] == 0
    assert hit == (prompt - 1) // 64 * 64 and hit > 0
    assert second.model_extra["prompt_cache_miss_tokens"] == prompt - hit
    assert second.prompt_tokens_details.cached_tokens == hit
    tiny = [{"role": "user", "content": "hi"}]
    assert _usage_pair(client, "deepseek-chat", messages=tiny)[1].model_extra["prompt_cache_hit_tokens"] == 0


def test_vllm_cache_blocks_and_reporting() -> None:
    quiet = Emulator()
    messages = long_chat(100)
    prompt = count_messages(messages, "qwen3-8b").tokens
    second = _usage_pair(inproc(quiet, "vllm"), "qwen3-8b", messages=messages)[1]
    assert second.prompt_tokens_details is None
    assert quiet.bill.total().cached_tokens == 0  # what is not reported is not billed
    detailed = Emulator(vllm_prompt_details=True)
    second = _usage_pair(inproc(detailed, "vllm"), "qwen3-8b", messages=messages)[1]
    assert second.prompt_tokens_details.cached_tokens == (prompt - 1) // 16 * 16
    assert detailed.bill.total().cached_tokens == second.prompt_tokens_details.cached_tokens


def test_llamacpp_single_slot(connect: Connect) -> None:
    client = connect("llamacpp")
    a, b = long_chat(60, "First question?"), long_chat(60, "Second question?")
    prompt = count_messages(a, "local").tokens

    def timings(messages: list[dict[str, Any]]) -> dict[str, int]:
        reply = client.chat.completions.create(model="local", messages=messages)
        result: dict[str, int] = (reply.model_extra or {})["timings"]
        assert reply.usage is not None and reply.usage.prompt_tokens == result["prompt_n"]
        return result

    assert timings(a)["cache_n"] == 0
    assert timings(a) == {**timings(a), "cache_n": prompt - 1, "prompt_n": 1}
    shared = timings(b)["cache_n"]
    assert 0 < shared < prompt - 1  # common prefix with the previous request, any length
    assert timings(a)["cache_n"] == shared  # the slot now holds b


def test_ollama_reports_no_cache(emu: Emulator) -> None:
    messages = long_chat()
    second = _usage_pair(inproc(emu, "ollama"), "llama3", messages=messages)[1]
    assert second.prompt_tokens_details is None and emu.bill.total().cached_tokens == 0


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault.rate_limit(retry_after=2.0), openai.RateLimitError, 429),
        (Fault.quota(), openai.RateLimitError, 429),
        (Fault.server_error(500), openai.InternalServerError, 500),
        (Fault.server_error(502), openai.InternalServerError, 502),
        (Fault.server_error(503), openai.InternalServerError, 503),
        (Fault.server_error(504), openai.InternalServerError, 504),
        (Fault.overloaded(), openai.InternalServerError, 503),
        (Fault.overloaded(status=529), openai.InternalServerError, 529),
        (Fault.auth(), openai.AuthenticationError, 401),
        (Fault.payment(), openai.APIStatusError, 402),
        (Fault.bad_request("bad thing"), openai.BadRequestError, 400),
    ],
)
def test_error_faults(
    connect: Connect, emu: Emulator, fault: Fault, error: type[Exception], status: int
) -> None:
    emu.inject(fault, provider="openai")
    client = connect()
    with pytest.raises(error) as info:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    exc = info.value
    assert isinstance(exc, openai.APIStatusError) and exc.status_code == status
    assert exc.response.headers["x-request-id"].startswith("req_")
    if fault.kind == "rate_limit":
        assert exc.code == "rate_limit_exceeded"
        assert exc.response.headers["retry-after"] == "2"
        assert exc.response.headers["x-ratelimit-remaining-requests"] == "0"
    if fault.kind == "quota":
        assert exc.code == "insufficient_quota" and "retry-after" not in exc.response.headers
    (record,) = emu.requests
    assert (record.status, record.fault, record.billed) == (status, fault.kind, BillLine())
    assert client.chat.completions.create(model="gpt-4o", messages=USER).choices  # only once
    assert emu.bill.total().requests == 1


def test_retry_after_variants(emu: Emulator) -> None:
    client = inproc(emu)
    emu.inject(Fault.rate_limit(retry_after=0.25, retry_after_ms=True))
    emu.inject(Fault.rate_limit(retry_after=30, retry_after_date=True))
    emu.inject(Fault.rate_limit(retry_after=None))
    headers = []
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model="gpt-4o", messages=USER)
        headers.append(info.value.response.headers)
    assert headers[0]["retry-after-ms"] == "250" and "retry-after" not in headers[0]
    assert headers[1]["retry-after"].endswith(" GMT")
    assert "retry-after" not in headers[2] and headers[2]["x-ratelimit-reset-requests"] == "1000ms"


def test_sdk_honours_retry_after(emu: Emulator) -> None:
    emu.inject(Fault.rate_limit(retry_after=0.05), times=2)
    start = time.perf_counter()
    reply = inproc(emu, max_retries=2).chat.completions.create(model="gpt-4o", messages=USER)
    assert reply.choices and time.perf_counter() - start >= 0.1
    assert [r.status for r in emu.requests] == [429, 429, 200]


def test_timeout_and_reset_in_process(emu: Emulator) -> None:
    client = inproc(emu)
    emu.inject(Fault.timeout(delay=30.0))
    start = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.perf_counter() - start < 1.0  # no sleeping in-process
    emu.inject(Fault.connection_reset())
    with pytest.raises(openai.APIConnectionError) as info:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert [(r.status, r.fault) for r in emu.requests] == [(None, "timeout"), (None, "connection_reset")]
    assert emu.bill.total() == BillLine()


def test_timeout_and_reset_on_socket(emu: Emulator) -> None:
    with emu.serve() as server:
        client = openai.OpenAI(api_key=KEY, base_url=server.base_url("openai"), max_retries=0, timeout=0.2)
        emu.inject(Fault.timeout(delay=1.0))
        start = time.perf_counter()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert 0.15 < time.perf_counter() - start < 0.9
        emu.inject(Fault.connection_reset())
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert client.chat.completions.create(model="gpt-4o", messages=USER).choices
        patient = openai.OpenAI(api_key=KEY, base_url=server.base_url("openai"), max_retries=0, timeout=5)
        emu.inject(Fault.timeout(delay=0.05))
        with pytest.raises(openai.InternalServerError) as info:  # the wait ends in a gateway timeout
            patient.chat.completions.create(model="gpt-4o", messages=USER)
        assert info.value.status_code == 504


@pytest.mark.parametrize("final_chunk", [False, True])
def test_stream_cut(connect: Connect, emu: Emulator, final_chunk: bool) -> None:
    emu.inject(Fault.stream_cut(after_tokens=5, final_chunk=final_chunk), provider="openai")
    client = connect()
    received: list[Any] = []
    with pytest.raises(STREAM_CUT):
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        ):
            received.append(chunk)
    text = streamed_text(received)
    assert count_text(text, "gpt-4o") == 5
    assert not [c for c in received if c.choices and c.choices[0].finish_reason]
    usage = [c.usage for c in received if c.usage]
    assert len(usage) == (1 if final_chunk else 0)
    billed = BillLine(1, count_messages(USER, "gpt-4o").tokens, 0, 0, 5, 0)
    assert emu.bill.total() == billed and emu.requests[0].billed == billed
    assert emu.requests[0].fault == "stream_cut" and emu.requests[0].finish_reason is None


def test_stream_cut_waits_for_a_stream(emu: Emulator) -> None:
    emu.inject(Fault.stream_cut(after_tokens=2))
    client = inproc(emu)
    assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].finish_reason == "stop"
    with pytest.raises(STREAM_CUT):
        stream_chunks(client, model="gpt-4o", messages=USER)


@pytest.mark.parametrize(
    ("fault", "finish"), [(Fault.content_filter(4), "content_filter"), (Fault.silent_stop(6), "stop")]
)
def test_truncating_faults(connect: Connect, emu: Emulator, fault: Fault, finish: str) -> None:
    client = connect()
    emu.inject(fault, times=2)
    reply = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert reply.choices[0].finish_reason == finish
    assert reply.usage is not None and reply.usage.completion_tokens == fault.after_tokens
    assert not (reply.choices[0].message.content or "").endswith(".")
    chunks = stream_chunks(client, model="gpt-4o", messages=USER)
    assert chunks[-1].choices[0].finish_reason == finish
    assert emu.bill.total().output_tokens == 2 * fault.after_tokens


def test_fault_matching(emu: Emulator) -> None:
    emu.inject(Fault.server_error(), provider="deepseek")
    emu.inject(Fault.quota(), provider="openai", model="gpt-4.1", times=2)
    emu.inject(Fault.auth(), stream=True)
    client = inproc(emu)
    client.chat.completions.create(model="gpt-4o", messages=USER)  # no match
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4.1", messages=USER)
    client.chat.completions.create(model="gpt-4.1", messages=USER)  # used up
    with pytest.raises(openai.AuthenticationError):
        stream_chunks(client, model="gpt-4o", messages=USER)
    with pytest.raises(openai.InternalServerError):
        inproc(emu, "deepseek").chat.completions.create(model="deepseek-chat", messages=USER)
    emu.inject(Fault.server_error())
    emu.clear_faults()
    client.chat.completions.create(model="gpt-4o", messages=USER)


def test_fault_rate_is_seeded_and_scripted_faults_come_first() -> None:
    def run(seed: int) -> list[str | None]:
        emu = Emulator()
        emu.fault_rate(
            0.3, [Fault.server_error(503), Fault.rate_limit(retry_after=0.01)], provider="openai", seed=seed
        )
        emu.inject(Fault.payment(), times=2)
        client = inproc(emu)
        for _ in range(100):
            with contextlib.suppress(openai.APIStatusError):
                client.chat.completions.create(model="gpt-4o", messages=USER)
        inproc(emu, "deepseek").chat.completions.create(model="deepseek-chat", messages=USER)
        return [r.fault for r in emu.requests]

    faults = run(1)
    assert faults[:2] == ["payment", "payment"]
    share = sum(f is not None for f in faults[2:100]) / 98
    assert 0.15 < share < 0.45
    assert {"server_error", "rate_limit"} <= set(faults)
    assert faults[-1] is None  # deepseek is not affected
    assert run(1) == faults and run(2) != faults


# ---------------------------------------------------------------- billing and records


def test_bill_equals_sum_of_returned_usage(connect: Connect, emu: Emulator) -> None:
    emu.fault_rate(
        0.3,
        [Fault.server_error(), Fault.rate_limit(0.01), Fault.content_filter(3), Fault.silent_stop(2)],
        seed=3,
    )
    expected = BillLine()
    for i in range(40):
        provider = PROVIDERS[i % len(PROVIDERS)]
        model = MODELS[provider]
        messages = long_chat(120) if i % 3 else USER
        client = connect(provider)
        try:
            if i % 2:
                chunks = stream_chunks(
                    client, model=model, messages=messages, stream_options={"include_usage": True}
                )
                usage = chunks[-1].usage
                extra = chunks[-2].model_extra or {}
            else:
                reply = client.chat.completions.create(model=model, messages=messages)
                usage, extra = reply.usage, reply.model_extra or {}
        except openai.APIStatusError:
            continue
        assert usage is not None
        if provider == "llamacpp":
            cached = extra["timings"]["cache_n"]
            total = cached + usage.prompt_tokens
        else:
            details = usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
            total = usage.prompt_tokens
        reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else 0
        expected = expected + BillLine(1, total, cached, 0, usage.completion_tokens, reasoning or 0)
    assert emu.bill.total() == expected
    assert expected.requests > 15 and expected.cached_tokens > 0
    records: list[RequestRecord] = emu.requests
    assert len(records) == 40
    summed = BillLine()
    for record in records:
        summed = summed + record.billed
    assert summed == expected
    per_model = emu.bill.lines()
    assert set(per_model) <= {(p, MODELS[p]) for p in PROVIDERS}
    assert sum((line for line in per_model.values()), BillLine()) == expected


def test_bill_api() -> None:
    bill = Bill()
    bill.add("openai", "gpt-4o", BillLine(1, 10, 2, 0, 5, 1))
    bill.add("openai", "gpt-4o", BillLine(1, 1, 0, 0, 1, 0))
    bill.add("deepseek", "deepseek-chat", BillLine(1, 3, 0, 0, 3, 0))
    assert bill.lines()[("openai", "gpt-4o")] == BillLine(2, 11, 2, 0, 6, 1)
    assert bill.total() == BillLine(3, 14, 2, 0, 9, 1)
    assert bill.total().as_dict()["input_tokens"] == 14
    bill.reset()
    assert bill.total() == BillLine() and bill.lines() == {}


def test_reset(emu: Emulator) -> None:
    client = inproc(emu)
    messages = long_chat()
    _usage_pair(client, "gpt-4o", messages=messages)
    emu.inject(Fault.server_error(), times=5)
    emu.reset()
    assert emu.requests == [] and emu.bill.total() == BillLine()
    reply = client.chat.completions.create(model="gpt-4o", messages=messages)  # no fault, cold cache
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0


def test_records_keep_bad_bodies_and_cap(emu: Emulator) -> None:
    capped = Emulator(max_requests=3)
    client = inproc(capped)
    for _ in range(5):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert len(capped.requests) == 3
    with pytest.raises(openai.BadRequestError):
        inproc(emu).post("/chat/completions", body={"model": "gpt-4o", "messages": []}, cast_to=dict)
    (record,) = emu.requests
    assert record.body == {"model": "gpt-4o", "messages": []} and record.model == "gpt-4o"


# ---------------------------------------------------------------- latency


def test_latency_on_socket_and_in_process() -> None:
    emu = Emulator()
    emu.set_latency("openai", ttft=0.05, per_token=0.001)
    client = inproc(emu)
    client.chat.completions.create(model="gpt-4o", messages=USER)  # warm up (tokenizer loading)
    start = time.perf_counter()
    reply = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.perf_counter() - start < 0.05  # ignored in-process by default
    assert reply.usage is not None
    expected = 0.05 + 0.001 * reply.usage.completion_tokens
    with emu.serve() as server:
        client = openai.OpenAI(api_key=KEY, base_url=server.base_url("openai"), max_retries=0)
        start = time.perf_counter()
        client.chat.completions.create(model="gpt-4o", messages=USER)
        assert time.perf_counter() - start >= expected * 0.95
        start = time.perf_counter()
        stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        first = next(iter(stream))
        ttft = time.perf_counter() - start
        list(stream)
        total = time.perf_counter() - start
    assert first.choices[0].delta.role == "assistant"
    assert ttft >= 0.045 and total - ttft >= (expected - 0.05) * 0.9
    slow = Emulator(simulate_latency=True)
    slow.set_latency("openai", ttft=0.05)
    start = time.perf_counter()
    inproc(slow).chat.completions.create(model="gpt-4o", messages=USER)
    assert time.perf_counter() - start >= 0.05


def test_reply_errors_surface(emu: Emulator) -> None:
    def broken(ctx: ReplyContext) -> Reply | None:
        raise ValueError("reply function bug")

    emu.set_reply(broken)
    with pytest.raises((ValueError, openai.APIConnectionError)) as info:
        inproc(emu).with_options(max_retries=0).chat.completions.create(model="gpt-4o", messages=USER)
    # openai 3.3 wraps a transport's exception in APIConnectionError; later versions let it through
    bug = info.value if isinstance(info.value, ValueError) else info.value.__cause__
    assert isinstance(bug, ValueError) and str(bug) == "reply function bug"
    with emu.serve() as server:
        client = openai.OpenAI(api_key=KEY, base_url=server.base_url("openai"), max_retries=0)
        with pytest.raises(openai.InternalServerError, match="reply function bug"):
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert [type(e) for e in server.errors] == [ValueError]


def test_socket_chunked_request_and_connection_close(emu: Emulator) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": USER}).encode()
    half = len(body) // 2
    chunked = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    head = (
        b"POST /openai/v1/chat/completions HTTP/1.1\r\n"
        b"host: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    with emu.serve() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + chunked)
        data = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            data += chunk
    status, _, rest = data.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers
    assert json.loads(payload)["object"] == "chat.completion"


def test_public_surface() -> None:
    import llmroute.testing

    assert set(llmroute.testing.__all__) == {
        "Bill",
        "BillLine",
        "Emulator",
        "EmulatorServer",
        "EmulatorTransport",
        "Fault",
        "FaultKind",
        "ModelConfig",
        "Outcome",
        "Reply",
        "ReplyContext",
        "RequestRecord",
    }
    transport = Emulator().transport
    assert isinstance(transport, httpx2.BaseTransport) and isinstance(transport, httpx2.AsyncBaseTransport)
