"""Anthropic end to end: OpenAI-style calls through `llmroute.Router`, the real `anthropic` SDK, and the
emulator's Messages endpoint. Each translation rule has a round-trip test; the request the emulator
received (`emu.requests[-1].body`) shows what was sent."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from conftest import CANARY_OPENAI, USER
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall
from openai.types.completion_usage import CompletionUsage
from tenacity import stop_after_attempt

import llmroute
from llmroute import errors as E
from llmroute.testing import Emulator, Fault, Reply

CANARY_ANTHROPIC = "sk-ant-canary-4c1d9e7a2b5f8e3d6a0c"
MODEL = "claude-sonnet-4.6"  # API name claude-sonnet-4-6; $3 in, $0.30 cache read, $3.75 / $6 writes, $15 out
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
LONG = "You review pull requests for a payments company. Be precise, kind and brief about style. " * 90


def claude(emu: Emulator, name: str = "claude", model: str = MODEL, **kwargs: Any) -> llmroute.Deployment:
    kwargs.setdefault("http_client", emu.http_client())
    kwargs.setdefault("api_key", CANARY_ANTHROPIC)
    return llmroute.Deployment(name, model=model, base_url=emu.base_url("anthropic"), **kwargs)


def gpt(emu: Emulator) -> llmroute.Deployment:
    return llmroute.Deployment(
        "gpt",
        model="gpt-5.4",
        base_url=emu.base_url("openai"),
        api_key=CANARY_OPENAI,
        http_client=emu.http_client(),
    )


@pytest.fixture
def router(make_router: Any, emu: Emulator) -> llmroute.Router:
    return make_router(deployments=[claude(emu)])  # type: ignore[no-any-return]


def sent(emu: Emulator) -> dict[str, Any]:
    """The JSON body of the last request the emulator received."""
    return emu.requests[-1].body


def reconcile(ledger: llmroute.Ledger, emu: Emulator) -> None:
    """The ledger equals the emulator's bill, kind by kind, cache writes included."""
    totals, bill = ledger.total().usage, emu.bill.total()
    assert totals.input_tokens == bill.input_tokens
    assert totals.output_tokens == bill.output_tokens
    assert totals.cache_read_tokens == bill.cached_tokens
    assert totals.cache_write_tokens == bill.cache_write_tokens
    assert totals.reasoning_tokens == bill.reasoning_tokens


# ---------------------------------------------------------------- requests


def test_system_and_developer_messages_become_top_level_system(
    router: llmroute.Router, emu: Emulator
) -> None:
    router.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "developer",
                "content": [
                    {"type": "text", "text": "Cite sources.", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"role": "user", "content": "Hi"},
        ],
    )
    body = sent(emu)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Cite sources.", "cache_control": {"type": "ephemeral"}},
    ]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["model"] == "claude-sonnet-4-6"


def test_consecutive_same_role_turns_are_merged(router: llmroute.Router, emu: Emulator) -> None:
    router.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "One."},
            {"role": "user", "content": [{"type": "text", "text": "Two."}]},
            {"role": "assistant", "content": "Three."},
            {"role": "assistant", "content": ""},  # empty: dropped (Anthropic rejects empty text)
            {"role": "user", "content": "Four."},
        ],
    )
    assert sent(emu)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
        {"role": "user", "content": [{"type": "text", "text": "Four."}]},
    ]


def test_image_inputs(router: llmroute.Router, emu: Emulator) -> None:
    reply = router.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these pictures?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content
    blocks = sent(emu)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    for url, match in (("data:image/tiff;base64,AAAA", "image/tiff"), ("ftp://x/y.png", "http")):
        with pytest.raises(llmroute.InvalidRequest, match=match) as info:
            router.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )
        assert info.value.argument == "messages[0].content[0].image_url.url"
    assert len(emu.requests) == 1


def test_pdf_file_parts_become_documents(router: llmroute.Router, emu: Emulator) -> None:
    part = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    router.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [part]}])
    assert sent(emu)["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]
    with pytest.raises(llmroute.InvalidRequest, match="file_data"):
        router.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
        )


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tools_and_tool_choice(router: llmroute.Router, emu: Emulator, choice: Any, expected: Any) -> None:
    kwargs = {} if choice is None else {"tool_choice": choice}
    reply = router.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, **kwargs)
    body = sent(emu)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": TOOLS[0]["function"]["parameters"],
            "description": "Current weather for a city.",
        }
    ]
    assert body.get("tool_choice") == expected
    calls = reply.choices[0].message.tool_calls
    if choice == "none":
        assert calls is None and reply.choices[0].finish_reason == "stop"
    else:
        assert calls is not None and json.loads(calls[0].function.arguments) == {"city": "Paris"}
        assert reply.choices[0].finish_reason == "tool_calls" and reply.route.finish_reason == "tool_calls"


def test_parallel_tool_calls_false(router: llmroute.Router, emu: Emulator) -> None:
    router.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, parallel_tool_calls=False)
    assert sent(emu)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    router.chat.completions.create(
        model=MODEL, messages=WEATHER, tools=TOOLS, tool_choice="required", parallel_tool_calls=False
    )
    assert sent(emu)["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_multi_turn_tool_use_conversation(router: llmroute.Router, emu: Emulator) -> None:
    """Two parallel calls, their results, a follow-up question, another call, its result: every turn is
    accepted by the emulator's Messages validation (tool_use/tool_result pairing, results first)."""

    def reply_fn(ctx: Any) -> Reply | None:
        last = ctx.messages[-1]
        if last["role"] == "user" and "Paris and Rome" in str(last["content"]):
            calls = [
                {"id": "call_p1", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_r1", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
            ]
            return Reply(text="Checking both.", tool_calls=calls)
        return None

    emu.set_reply(reply_fn)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    message = first.choices[0].message
    assert message.content == "Checking both." and first.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [c.id for c in message.tool_calls] == ["toolu_p1", "toolu_r1"]
    messages.append(message)  # the SDK object itself, as OpenAI code does
    messages += [
        {"role": "tool", "tool_call_id": "toolu_p1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_r1", "content": [{"type": "text", "text": "24C, clear"}]},
        {"role": "user", "content": "And which is warmer?"},
    ]
    second = router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content and second.choices[0].finish_reason == "stop"
    turns = sent(emu)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_p1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_r1", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_p1", "content": "18C, sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_r1",
            "content": [{"type": "text", "text": "24C, clear"}],
        },
        {"type": "text", "text": "And which is warmer?"},
    ]
    messages += [second.choices[0].message, {"role": "user", "content": "What is the weather in Oslo?"}]
    third = router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert third.choices[0].message.tool_calls is not None
    call = third.choices[0].message.tool_calls[0]
    messages += [third.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "-2C"}]
    fourth = router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert fourth.choices[0].finish_reason == "stop"
    assert all(r.status == 200 for r in emu.requests)
    reconcile(router.ledger, emu)


def test_foreign_tool_call_ids_are_made_valid_consistently(router: llmroute.Router, emu: Emulator) -> None:
    messages = [
        *WEATHER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call:1.a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
            ],
        },
        {"role": "tool", "tool_call_id": "call:1.a", "content": "ok"},
    ]
    router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    turns = sent(emu)["messages"]
    assert turns[1]["content"][0]["id"] == turns[2]["content"][0]["tool_use_id"] == "call_1_a"
    assert turns[1]["content"][0]["input"] == {}


@pytest.mark.parametrize(("arguments", "match"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_tool_call_arguments_fail_before_any_call(
    router: llmroute.Router, emu: Emulator, arguments: str, match: str
) -> None:
    messages = [
        *WEATHER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    with pytest.raises(llmroute.InvalidRequest, match=match) as info:
        router.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert info.value.argument == "messages[1].tool_calls[0].function.arguments"
    assert emu.requests == [] and len(router.ledger) == 0


def test_stop_and_max_tokens(router: llmroute.Router, emu: Emulator) -> None:
    router.chat.completions.create(model=MODEL, messages=USER, stop="END", max_tokens=50)
    assert sent(emu)["stop_sequences"] == ["END"] and sent(emu)["max_tokens"] == 50
    router.chat.completions.create(model=MODEL, messages=USER, stop=["a.", "b."], max_completion_tokens=60)
    assert sent(emu)["stop_sequences"] == ["a.", "b."] and sent(emu)["max_tokens"] == 60


def test_default_max_tokens_per_model(make_router: Any, emu: Emulator) -> None:
    small = llmroute.ModelSpec("claude-small", "anthropic", "claude-small-1", max_output=4096)
    router = make_router(
        deployments=[claude(emu), claude(emu, "small", "claude-small"), claude(emu, "any", "claude-*")],
        models=[small],
    )
    router.chat.completions.create(model=MODEL, messages=USER)
    assert sent(emu)["max_tokens"] == 16_384  # catalog max_output 128,000, capped
    router.chat.completions.create(model="claude-small", messages=USER)
    assert sent(emu)["max_tokens"] == 4096  # the model's own maximum
    router.chat.completions.create(model="claude-future-9", messages=USER)
    assert sent(emu)["max_tokens"] == 16_384  # unknown model: the cap
    # The SDK refuses non-streaming calls to claude-opus-4 above 8,192 tokens: the default respects it.
    router.chat.completions.create(model="claude-opus-4-20250514", messages=USER)
    assert sent(emu)["max_tokens"] == 8192
    list(router.chat.completions.create(model="claude-opus-4-20250514", messages=USER, stream=True))
    assert sent(emu)["max_tokens"] == 16_384
    with pytest.raises(llmroute.InvalidRequest, match="Streaming is required") as info:
        router.chat.completions.create(model=MODEL, messages=USER, max_tokens=64_000)
    assert info.value.argument == "max_tokens"
    router.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=64_000, timeout=900
    )  # caller's choice


def test_temperature_range_and_api_version(make_router: Any, emu: Emulator) -> None:
    router = make_router(deployments=[claude(emu)])
    with pytest.raises(llmroute.InvalidRequest, match="0 to 1") as info:
        router.chat.completions.create(model=MODEL, messages=USER, temperature=1.5)
    assert info.value.argument == "temperature" and emu.requests == []
    # API version 2026-10-21 (the anthropic 2.x default) has no sampling parameters: not sent.
    router.chat.completions.create(model=MODEL, messages=USER, temperature=0.2, top_p=0.9)
    assert "temperature" not in sent(emu) and "top_p" not in sent(emu)
    # A deployment pinned to 2023-06-01 still takes them.
    pinned = make_router(deployments=[claude(emu, headers={"anthropic-version": "2023-06-01"})])
    pinned.chat.completions.create(model=MODEL, messages=USER, temperature=0.2, top_p=0.9)
    assert sent(emu)["temperature"] == 0.2 and sent(emu)["top_p"] == 0.9 and emu.requests[-1].status == 200


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": False, "top_logprobs": 2}, "top_logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"tools": [{"type": "custom", "custom": {"name": "grep"}}]}, "tools[0].type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0]",
        ),
    ],
)
def test_unsupported_arguments_are_rejected_before_any_call(
    router: llmroute.Router, emu: Emulator, kwargs: dict[str, Any], argument: str
) -> None:
    kwargs.setdefault("messages", USER)
    with pytest.raises(llmroute.InvalidRequest) as info:
        router.chat.completions.create(model=MODEL, **kwargs)
    assert info.value.argument.startswith(argument)
    assert isinstance(info.value, TypeError | ValueError)
    assert emu.requests == [] and len(router.ledger) == 0


def test_ignored_arguments_are_accepted_and_not_sent(router: llmroute.Router, emu: Emulator) -> None:
    reply = router.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi", "name": "ann"}],
        n=1,
        seed=7,
        store=True,
        metadata={"team": "payments"},
        service_tier="auto",
        prompt_cache_key="k",
        prompt_cache_retention="24h",
        reasoning_effort="low",
        verbosity="low",
        presence_penalty=0,
        frequency_penalty=0.0,
        logprobs=False,
        logit_bias={},
        modalities=["text"],
        prediction={"type": "content", "content": "Hello"},
    )
    assert reply.choices[0].message.content
    assert set(sent(emu)) == {"model", "max_tokens", "messages"}


def test_user_becomes_metadata_user_id(router: llmroute.Router, emu: Emulator) -> None:
    router.chat.completions.create(model=MODEL, messages=USER, user="user-42")
    assert sent(emu)["metadata"] == {"user_id": "user-42"}
    router.chat.completions.create(model=MODEL, messages=USER, safety_identifier="hash-9")
    assert sent(emu)["metadata"] == {"user_id": "hash-9"}


def test_extra_headers_query_body_and_timeout_reach_the_sdk(make_router: Any, emu: Emulator) -> None:
    seen: list[httpx2.Request] = []
    client = httpx2.Client(transport=emu.transport, event_hooks={"request": [seen.append]})
    router = make_router(deployments=[claude(emu, http_client=client)])
    reply = router.chat.completions.create(
        model=MODEL,
        messages=USER,
        extra_headers={"anthropic-beta": "test-beta-1"},
        extra_query={"trace": "1"},
        extra_body={"thinking": {"type": "adaptive"}},
        timeout=12.5,
    )
    request = seen[-1]
    assert request.headers["anthropic-beta"] == "test-beta-1"
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert request.headers["authorization"] == f"Bearer {CANARY_ANTHROPIC}"
    assert request.headers["x-stainless-retry-count"] == "0"
    assert request.url.params["trace"] == "1"
    assert request.extensions["timeout"]["read"] == 12.5
    assert sent(emu)["thinking"] == {"type": "adaptive"}
    assert reply.choices[0].message.reasoning_content  # type: ignore[attr-defined]


# ---------------------------------------------------------------- prompt caching


def test_cache_control_is_passed_through_and_placed(router: llmroute.Router, emu: Emulator) -> None:
    tools = [{**TOOLS[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    router.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": LONG, "cache_control": {"type": "ephemeral"}},  # message level
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Context.",
                        "prompt_cache_breakpoint": {"mode": "explicit"},
                    },  # OpenAI's
                    {"type": "text", "text": "Question?"},
                ],
            },
        ],
        tools=tools,
        tool_choice="none",
    )
    body = sent(emu)
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert body["system"] == [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][0]["content"][0] == {
        "type": "text",
        "text": "Context.",
        "cache_control": {"type": "ephemeral"},
    }
    assert emu.requests[-1].status == 200 and emu.requests[-1].billed.cache_write_tokens > 0


def test_at_most_four_breakpoints(router: llmroute.Router, emu: Emulator) -> None:
    cached = {"type": "ephemeral"}
    parts = [{"type": "text", "text": f"Part {i}.", "cache_control": cached} for i in range(5)]
    with pytest.raises(llmroute.InvalidRequest, match="at most 4") as info:
        router.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": parts}])
    assert info.value.argument == "cache_control"
    with pytest.raises(llmroute.InvalidRequest, match="at most 4"):  # a top-level breakpoint counts too
        router.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": parts[:4]}],
            extra_body={"cache_control": cached},
        )
    with pytest.raises(llmroute.InvalidRequest, match="1h breakpoint"):
        router.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": [{"type": "text", "text": "A", "cache_control": cached}]},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "B", "cache_control": {**cached, "ttl": "1h"}}],
                },
            ],
        )
    with pytest.raises(llmroute.InvalidRequest, match="ephemeral"):
        router.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "text", "text": "B", "cache_control": {}}]}],
        )
    assert emu.requests == []


def _cached_call(router: llmroute.Router, question: str, ttl: str | None = None) -> Any:
    control: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return router.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": [{"type": "text", "text": LONG, "cache_control": control}]},
            {"role": "user", "content": question},
        ],
    )


@pytest.mark.parametrize(("ttl", "write_rate"), [(None, Decimal("3.75")), ("1h", Decimal("6.00"))])
def test_caching_across_calls_first_writes_then_reads(
    router: llmroute.Router, emu: Emulator, ttl: str | None, write_rate: Decimal
) -> None:
    first = _cached_call(router, "First question?", ttl)
    second = _cached_call(router, "Second question?", ttl)
    written = first.route.usage.cache_write_tokens
    assert written > 1024 and first.route.usage.cache_read_tokens == 0
    assert first.route.usage.cache_write_1h_tokens == (written if ttl == "1h" else 0)
    assert second.route.usage.cache_read_tokens == written and second.route.usage.cache_write_tokens == 0
    for reply in (first, second):  # OpenAI's usage: prompt_tokens = input + cache reads + cache writes
        usage, bill = reply.usage, reply.route.usage
        line = next(r.billed for r in emu.requests if r.request_id == reply.route.attempts[-1].request_id)
        assert usage.prompt_tokens == line.input_tokens == bill.input_tokens
        assert usage.prompt_tokens_details.cached_tokens == line.cached_tokens == bill.cache_read_tokens
        assert usage.prompt_tokens_details.cache_write_tokens == line.cache_write_tokens
        assert usage.completion_tokens == line.output_tokens
        uncached = line.input_tokens - line.cached_tokens - line.cache_write_tokens
        expected = (
            uncached * Decimal("3.00")
            + line.cached_tokens * Decimal("0.30")
            + line.cache_write_tokens * write_rate
            + line.output_tokens * Decimal("15.00")
        ) / Decimal(1_000_000)
        assert reply.route.cost == expected
    assert second.route.cost < first.route.cost
    reconcile(router.ledger, emu)


def test_cache_minimum_length_per_model(make_router: Any, emu: Emulator) -> None:
    router = make_router(deployments=[claude(emu), claude(emu, "haiku", "claude-haiku-4.5")])
    prompt = [
        {
            "role": "system",
            "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    sonnet = router.chat.completions.create(model=MODEL, messages=[*prompt, *USER])
    haiku = router.chat.completions.create(model="claude-haiku-4.5", messages=[*prompt, *USER])
    assert 1024 < sonnet.route.usage.input_tokens < 4096
    assert sonnet.route.usage.cache_write_tokens > 0
    assert haiku.route.usage.cache_write_tokens == 0  # under Haiku 4.5's 4,096: silently not cached
    short = router.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    )
    assert short.route.usage.cache_write_tokens == 0


def test_cache_invalidation_order_tools_system_messages(router: llmroute.Router, emu: Emulator) -> None:
    def call(tool_description: str, question: str) -> Any:
        tools = [{"type": "function", "function": {**TOOLS[0]["function"], "description": tool_description}}]
        return router.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": LONG, "cache_control": {"type": "ephemeral"}},
                {"role": "user", "content": question},
            ],
            tools=tools,
            tool_choice="none",
        )

    first = call("Weather.", "a")
    assert first.route.usage.cache_write_tokens > 0
    assert call("Weather.", "b").route.usage.cache_read_tokens == first.route.usage.cache_write_tokens
    changed = call("Weather, in Celsius.", "c")  # a tool changed: the system prefix after it is gone
    assert changed.route.usage.cache_read_tokens == 0 and changed.route.usage.cache_write_tokens > 0
    reconcile(router.ledger, emu)


def test_cache_ttls_expire_and_hits_refresh(make_router: Any) -> None:
    now = [1000.0]
    emu = Emulator(seed=1, clock=lambda: now[0])
    router = make_router(deployments=[claude(emu)])
    written = _cached_call(router, "a").route.usage.cache_write_tokens
    now[0] += 299
    assert _cached_call(router, "b").route.usage.cache_read_tokens == written  # a hit refreshes the 5m TTL
    now[0] += 299
    assert _cached_call(router, "c").route.usage.cache_read_tokens == written
    now[0] += 301
    expired = _cached_call(router, "d").route.usage
    assert expired.cache_read_tokens == 0 and expired.cache_write_tokens == written
    now[0] += 301
    assert _cached_call(router, "e", "1h").route.usage.cache_write_1h_tokens == written  # written at 1h
    now[0] += 3000
    assert _cached_call(router, "f", "1h").route.usage.cache_read_tokens == written
    now[0] += 3601
    assert _cached_call(router, "g", "1h").route.usage.cache_read_tokens == 0
    reconcile(router.ledger, emu)


def test_growing_conversation_reads_the_previous_breakpoint(router: llmroute.Router, emu: Emulator) -> None:
    """The breakpoint moves to the newest message each turn; the lookback finds the previous one."""
    history: list[dict[str, Any]] = [{"role": "system", "content": LONG}]
    previous = None
    for turn in range(3):
        text = f"Question {turn}?"
        marked = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
        reply = router.chat.completions.create(
            model=MODEL, messages=[*history, {"role": "user", "content": marked}]
        )
        usage = reply.route.usage
        expected_read = 0 if previous is None else previous.cache_read_tokens + previous.cache_write_tokens
        assert usage.cache_read_tokens == expected_read and usage.cache_write_tokens > 0
        previous = usage
        history += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": reply.choices[0].message.content},
        ]
    reconcile(router.ledger, emu)


# ---------------------------------------------------------------- responses


def test_response_format_json_schema(router: llmroute.Router, emu: Emulator) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    reply = router.chat.completions.create(model=MODEL, messages=USER, response_format=fmt)
    assert json.loads(reply.choices[0].message.content or "") == {"name": "example", "age": 3}
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.tool_calls is None
    body = sent(emu)
    assert body["tools"][-1]["name"] == "person" and body["tools"][-1]["input_schema"] == schema
    assert body["tool_choice"] == {"type": "tool", "name": "person"}
    # With the caller's own tools: the model must call one of them or the answer tool.
    with_tools = router.chat.completions.create(
        model=MODEL, messages=WEATHER, response_format=fmt, tools=TOOLS
    )
    assert sent(emu)["tool_choice"] == {"type": "any"} and [t["name"] for t in sent(emu)["tools"]] == [
        "get_weather",
        "person",
    ]
    assert with_tools.choices[0].message.tool_calls is not None
    assert with_tools.choices[0].finish_reason == "tool_calls"
    # Streaming: the answer arrives as content deltas.
    chunks = list(
        router.chat.completions.create(model=MODEL, messages=USER, response_format=fmt, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"name": "example", "age": 3}
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)


def test_response_format_json_object(router: llmroute.Router, emu: Emulator) -> None:
    reply = router.chat.completions.create(
        model=MODEL, messages=USER, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
    assert sent(emu)["tool_choice"] == {"type": "tool", "name": "json_response"}
    with pytest.raises(llmroute.InvalidRequest, match="object schema"):
        router.chat.completions.create(
            model=MODEL,
            messages=USER,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "xs", "schema": {"type": "array"}},
            },
        )


def test_thinking_is_kept_out_of_content_and_round_trips(router: llmroute.Router, emu: Emulator) -> None:
    reply = router.chat.completions.create(
        model=MODEL, messages=WEATHER, tools=TOOLS, extra_body={"thinking": {"type": "adaptive"}}
    )
    message = reply.choices[0].message
    reasoning = message.reasoning_content  # type: ignore[attr-defined]
    assert reasoning and message.tool_calls is not None and message.content is None
    blocks = message.thinking_blocks  # type: ignore[attr-defined]
    assert blocks[0]["type"] == "thinking" and blocks[0]["signature"] and blocks[0]["thinking"] == reasoning
    assert reply.usage.completion_tokens_details.reasoning_tokens == reply.route.usage.reasoning_tokens > 0
    follow = [
        *WEATHER,
        message,
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"},
    ]
    router.chat.completions.create(
        model=MODEL, messages=follow, tools=TOOLS, extra_body={"thinking": {"type": "adaptive"}}
    )
    assert sent(emu)["messages"][1]["content"][0] == blocks[0]  # signed thinking goes back first
    stream = router.chat.completions.create(
        model=MODEL,
        messages=USER,
        stream=True,
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    chunks = list(stream)
    streamed = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed and text and streamed not in text
    assert chunks[1].choices[0].delta.model_dump(exclude_none=True) == {
        "reasoning_content": chunks[1].choices[0].delta.reasoning_content
    }  # type: ignore[attr-defined]
    assert stream.route.usage.reasoning_tokens == emu.requests[-1].billed.reasoning_tokens > 0
    reconcile(router.ledger, emu)


@pytest.mark.parametrize(
    ("stop_reason", "completion_finish", "normalised", "truncated"),
    [
        ("end_turn", "stop", "stop", False),
        ("max_tokens", "length", "length", True),
        ("tool_use", "tool_calls", "tool_calls", False),
        ("refusal", "content_filter", "content_filter", True),
        ("model_context_window_exceeded", "length", "length", True),
        ("pause_turn", "length", "length", True),
        ("brand_new_reason", "brand_new_reason", "unknown", True),  # unknown: suspected, never "complete"
    ],
)
def test_stop_reasons(
    router: llmroute.Router,
    emu: Emulator,
    stop_reason: str,
    completion_finish: str,
    normalised: str,
    truncated: bool,
) -> None:
    emu.set_reply(lambda ctx: Reply(text="Partial answer", finish_reason=stop_reason))
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert emu.requests[-1].finish_reason == stop_reason or stop_reason == "end_turn"
    assert reply.choices[0].finish_reason == completion_finish
    assert reply.route.finish_reason == normalised and reply.route.truncated is truncated
    assert router.ledger.rows()[-1].outcome == ("truncated" if truncated else "ok")
    assert router.ledger.rows()[-1].finish_reason == normalised
    chunks = list(router.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == completion_finish


def test_stop_sequence_and_max_tokens_from_the_emulator(router: llmroute.Router, emu: Emulator) -> None:
    emu.set_reply(lambda ctx: Reply(text="Hello there. STOP And more."))
    reply = router.chat.completions.create(model=MODEL, messages=USER, stop=["STOP"])
    assert reply.choices[0].message.content == "Hello there. " and reply.choices[0].finish_reason == "stop"
    emu.set_reply(None)
    cut = router.chat.completions.create(model=MODEL, messages=USER, max_tokens=3)
    assert (
        cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 3 and cut.route.truncated
    )


def test_refusal_fault_is_content_filter(router: llmroute.Router, emu: Emulator) -> None:
    emu.inject(Fault.content_filter(after_tokens=4), provider="anthropic")
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert reply.choices[0].finish_reason == "content_filter" and reply.route.truncated
    assert reply.usage.completion_tokens == 4
    reconcile(router.ledger, emu)


# ---------------------------------------------------------------- streaming


def test_streaming_with_tools(router: llmroute.Router, emu: Emulator) -> None:
    calls = [
        {
            "id": "call_a",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","units":"metric"}'},
        },
        {
            "id": "call_b",
            "function": {"name": "get_weather", "arguments": '{"city":"Rome","units":"metric"}'},
        },
    ]
    emu.set_reply(lambda ctx: Reply(text="Let me check both cities.", tool_calls=calls))
    stream = router.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, stream=True)
    with stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert all(c.choices for c in chunks)  # no usage chunk: the caller did not ask for it
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("msg_")
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Let me check both cities."
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    firsts = [d for d in deltas if d.id is not None]
    assert [(d.index, d.id, d.function.name) for d in firsts] == [  # type: ignore[union-attr]
        (0, "toolu_a", "get_weather"),
        (1, "toolu_b", "get_weather"),
    ]
    assert all(d.function.name is None for d in deltas if d.id is None)  # type: ignore[union-attr]
    for index, call in enumerate(calls):
        args = "".join(d.function.arguments or "" for d in deltas if d.index == index)  # type: ignore[union-attr]
        assert args == call["function"]["arguments"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert stream.route.usage.output_tokens == emu.requests[-1].billed.output_tokens
    assert not stream.route.usage.estimated
    reconcile(router.ledger, emu)


def test_streaming_usage_chunk_when_asked(router: llmroute.Router, emu: Emulator) -> None:
    chunks = list(
        router.chat.completions.create(
            model=MODEL, messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop"
    line = emu.requests[-1].billed
    assert chunks[-1].usage.prompt_tokens == line.input_tokens
    assert chunks[-1].usage.completion_tokens == line.output_tokens
    assert "stream_options" not in sent(emu)


def test_message_delta_usage_is_cumulative(router: llmroute.Router, emu: Emulator) -> None:
    """The stream's usage equals the non-streaming usage of the same request: counts are replaced
    by each message_delta, never added up."""
    plain = router.chat.completions.create(model=MODEL, messages=USER)
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    list(stream)
    assert stream.route.usage == plain.route.usage


def test_cut_stream_is_billed_and_estimated(router: llmroute.Router, emu: Emulator) -> None:
    emu.inject(Fault.stream_cut(after_tokens=6), provider="anthropic")
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    received = []
    with pytest.raises(llmroute.StreamInterrupted) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert info.value.partial_text == "".join(received)
    assert isinstance(info.value.__cause__, E.ProviderConnectionError)
    row = router.ledger.rows()[-1]
    assert row.outcome == "cut" and row.usage.estimated
    reconcile(router.ledger, emu)  # input as reported at message_start, output counted


def test_mid_stream_overloaded_before_content_is_retried(router: llmroute.Router, emu: Emulator) -> None:
    emu.inject(Fault.stream_error(after_tokens=0), provider="anthropic")
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream.route.retries == 1 and [r.outcome for r in stream.route.attempts] == ["cut", "ok"]
    assert emu.requests[0].fault == "stream_error"
    reconcile(router.ledger, emu)


def test_mid_stream_overloaded_falls_back(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        deployments=[claude(emu), gpt(emu)],
        fallbacks=["gpt-5.4"],
        retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)),
    )
    emu.inject(Fault.stream_error(after_tokens=0), provider="anthropic")
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    list(stream)
    assert stream.route.deployment == "gpt" and stream.route.fallbacks == 1


def test_mid_stream_overloaded_after_content_is_an_overloaded_error(
    router: llmroute.Router, emu: Emulator
) -> None:
    emu.inject(Fault.stream_error(after_tokens=5), provider="anthropic")
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    with pytest.raises(llmroute.StreamInterrupted) as info:
        list(stream)
    cause = info.value.__cause__
    assert isinstance(cause, E.Overloaded) and isinstance(cause, openai.InternalServerError)
    assert cause.retryable is E.Retryability.RETRY and cause.type == "overloaded_error"
    assert cause.status_code == 200  # the SDK's view: an error event inside a 200 response
    reconcile(router.ledger, emu)


async def test_async_complete_and_stream(make_async_router: Any, emu: Emulator) -> None:
    router = make_async_router(
        deployments=[claude(emu, http_client=None, async_http_client=emu.async_http_client())]
    )
    reply = await router.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS)
    assert reply.choices[0].message.tool_calls is not None
    stream = await router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop" and stream.route.usage.output_tokens > 0
    emu.inject(Fault.stream_error(after_tokens=0), provider="anthropic")
    retried = await router.chat.completions.create(model=MODEL, messages=USER, stream=True)
    assert [c async for c in retried] and retried.route.retries == 1
    reconcile(router.ledger, emu)
    await router.close()


# ---------------------------------------------------------------- errors


def _error_router(status: int, body: Any, headers: dict[str, str] | None = None) -> llmroute.Router:
    """A router whose Anthropic deployment always answers `status` (through the real SDK)."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx2.Response(
            status,
            headers={"request-id": "req_test_1", "content-type": "application/json", **(headers or {})},
            content=content,
        )

    client = httpx2.Client(transport=httpx2.MockTransport(answer))
    deployment = llmroute.Deployment(
        "claude", model=MODEL, base_url="http://anthropic.test", api_key=CANARY_ANTHROPIC, http_client=client
    )
    return llmroute.Router([deployment], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test_1"}


@pytest.mark.parametrize(
    ("status", "kind", "message", "error", "openai_error", "retryable"),
    [
        (400, "invalid_request_error", "messages: bad", E.BadRequest, openai.BadRequestError, "fatal"),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            E.ContextWindowExceeded,
            openai.BadRequestError,
            "next_target",
        ),
        (
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
            E.PaymentRequired,
            openai.APIStatusError,
            "next_target",
        ),
        (
            401,
            "authentication_error",
            "invalid x-api-key",
            E.AuthenticationFailed,
            openai.AuthenticationError,
            "next_target",
        ),
        (402, "billing_error", "billing issue", E.PaymentRequired, openai.APIStatusError, "next_target"),
        (
            403,
            "permission_error",
            "no access",
            E.PermissionDenied,
            openai.PermissionDeniedError,
            "next_target",
        ),
        (404, "not_found_error", "model: claude-x", E.ModelNotFound, openai.NotFoundError, "next_target"),
        (409, "invalid_request_error", "conflict", E.Conflict, openai.ConflictError, "retry"),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum size",
            E.RequestTooLarge,
            openai.APIStatusError,
            "next_target",
        ),
        (
            422,
            "invalid_request_error",
            "unprocessable",
            E.UnprocessableRequest,
            openai.UnprocessableEntityError,
            "fatal",
        ),
        (429, "rate_limit_error", "slow down", E.RateLimited, openai.RateLimitError, "retry"),
        (500, "api_error", "Internal server error", E.ServerError, openai.InternalServerError, "retry"),
        (504, "timeout_error", "Request timed out", E.ServerError, openai.InternalServerError, "retry"),
        (529, "overloaded_error", "Overloaded", E.Overloaded, openai.InternalServerError, "retry"),
    ],
)
def test_every_error_status_maps_to_llmroute_and_openai_classes(
    status: int, kind: str, message: str, error: type, openai_error: type, retryable: str
) -> None:
    router = _error_router(status, _anthropic_error(kind, message), {"retry-after": "7"})
    with pytest.raises(openai_error) as info:
        router.chat.completions.create(model=MODEL, messages=USER)
    e = info.value
    assert type(e) is error and isinstance(e, llmroute.ProviderError)
    assert e.status_code == status and e.request_id == "req_test_1" and e.retryable == retryable
    assert e.retry_after == 7.0 and e.type == kind and message in str(e)
    assert e.response is not None and e.response.request.url.path == "/v1/messages"  # the real response
    assert e.provider == "anthropic" and e.deployment == "claude" and e.model == MODEL
    assert e.__cause__ is not None and type(e.__cause__).__module__.startswith("anthropic")
    assert CANARY_ANTHROPIC not in str(e) + repr(e)


def test_x_should_retry_overrides_the_status_rule() -> None:
    router = _error_router(500, _anthropic_error("api_error", "x"), {"x-should-retry": "false"})
    with pytest.raises(E.ServerError) as info:
        router.chat.completions.create(model=MODEL, messages=USER)
    assert info.value.retryable is E.Retryability.NEXT_TARGET


@pytest.mark.parametrize(
    ("fault", "error", "openai_error", "status"),
    [
        (Fault.rate_limit(retry_after=0), E.RateLimited, openai.RateLimitError, 429),
        (Fault.overloaded(), E.Overloaded, openai.InternalServerError, 529),
        (Fault.payment(), E.PaymentRequired, openai.APIStatusError, 402),
        (Fault.quota(), E.PaymentRequired, openai.APIStatusError, 400),
        (Fault.server_error(504), E.ServerError, openai.InternalServerError, 504),
        (Fault.bad_request("messages.0: nope"), E.BadRequest, openai.BadRequestError, 400),
    ],
)
def test_emulator_faults_map_through_the_router(
    make_router: Any, emu: Emulator, fault: Fault, error: type, openai_error: type, status: int
) -> None:
    router = make_router(deployments=[claude(emu)], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))
    emu.inject(fault, provider="anthropic")
    with pytest.raises(openai_error) as info:
        router.chat.completions.create(model=MODEL, messages=USER)
    assert type(info.value) is error and info.value.status_code == status
    assert info.value.request_id == emu.requests[-1].request_id
    assert router.ledger.rows()[-1].outcome == "error" and router.ledger.rows()[-1].status_code == status


def test_rate_limit_retry_after_and_overloaded_are_retried(router: llmroute.Router, emu: Emulator) -> None:
    emu.inject(Fault.rate_limit(retry_after=0.2), provider="anthropic")
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert reply.route.retries == 1 and emu.requests[1].time - emu.requests[0].time >= 0.2
    assert router.ledger.rows()[0].error == "RateLimited"
    emu.inject(Fault.overloaded(), provider="anthropic", times=2)
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert reply.route.retries == 2 and [r.error for r in reply.route.attempts] == [
        "Overloaded",
        "Overloaded",
        None,
    ]
    reconcile(router.ledger, emu)


def test_connection_errors_and_timeouts(make_router: Any, emu: Emulator) -> None:
    for fault, openai_error, error in (
        (Fault.connection_reset(), openai.APIConnectionError, E.ProviderConnectionError),
        (Fault.timeout(), openai.APITimeoutError, E.ProviderTimeout),
    ):
        router = make_router(
            deployments=[claude(emu)], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1))
        )
        emu.inject(fault, provider="anthropic")
        with pytest.raises(openai_error) as info:
            router.chat.completions.create(model=MODEL, messages=USER)
        assert type(info.value) is error and info.value.__cause__ is not None
    assert emu.bill.total().requests == 0


def test_model_not_found_falls_back(make_router: Any, emu: Emulator) -> None:
    emu.models = {"anthropic": {"claude-opus-4-8"}}
    router = make_router(deployments=[claude(emu), gpt(emu)], fallbacks=["gpt-5.4"])
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert reply.route.deployment == "gpt" and reply.route.attempts[0].error == "ModelNotFound"


def test_canary_api_key_never_leaks(
    make_router: Any, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu.api_keys = {"anthropic": "sk-ant-the-right-key-0000"}
    router = make_router(deployments=[claude(emu), gpt(emu)], fallbacks=["gpt-5.4"])
    reply = router.chat.completions.create(model=MODEL, messages=USER)  # 401 on claude, then gpt
    assert reply.route.deployment == "gpt" and reply.route.attempts[0].error == "AuthenticationFailed"
    other = make_router(deployments=[claude(emu)], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))
    with pytest.raises(openai.AuthenticationError) as auth:
        other.chat.completions.create(model=MODEL, messages=USER)
    errors: list[BaseException] = [auth.value]
    emu.api_keys = {}
    for fault in (
        Fault.rate_limit(retry_after=0),
        Fault.bad_request(f"echo {CANARY_ANTHROPIC}"),
        Fault.timeout(),
    ):
        emu.inject(fault, provider="anthropic")
        fresh = make_router(deployments=[claude(emu)], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))
        with pytest.raises(openai.APIError) as info:
            fresh.chat.completions.create(model=MODEL, messages=USER)
        errors.append(info.value)
    texts = [caplog.text, repr(router), repr(other.deployments), repr(reply.route)]
    for e in errors:
        texts += [str(e), repr(e), repr(getattr(e, "__dict__", {})), "".join(traceback.format_exception(e))]
    texts += [repr(r) for r in [*router.ledger, *other.ledger]] + [str(r.as_dict()) for r in other.ledger]
    for text in texts:
        assert CANARY_ANTHROPIC not in text
    assert "[redacted]" in str(errors[2])  # the provider echoed the key: redacted


# ---------------------------------------------------------------- ledger and drop-in


def test_ledger_reconciles_with_the_emulator_bill(make_router: Any, emu: Emulator) -> None:
    router = make_router(deployments=[claude(emu), claude(emu, "haiku", "claude-haiku-4.5")])
    emu.inject(Fault.rate_limit(retry_after=0), provider="anthropic")
    _cached_call(router, "a", "1h")
    _cached_call(router, "b", "1h")
    router.chat.completions.create(model="claude-haiku-4.5", messages=WEATHER, tools=TOOLS)
    list(router.chat.completions.create(model=MODEL, messages=USER, stream=True))
    emu.inject(Fault.stream_cut(after_tokens=3), provider="anthropic")
    with pytest.raises(llmroute.StreamInterrupted):
        list(router.chat.completions.create(model=MODEL, messages=USER, stream=True))
    router.chat.completions.create(
        model=MODEL, messages=USER, extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}}
    )
    reconcile(router.ledger, emu)
    assert (
        router.ledger.total().usage.cache_write_1h_tokens
        == router.ledger.total().usage.cache_write_tokens
        > 0
    )
    assert router.ledger.total().unpriced == 0


def _user_code(router: llmroute.Router, model: str) -> tuple[Any, list[ChatCompletionChunk], Any]:
    """What an application written for the OpenAI SDK does."""
    reply = router.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, *WEATHER],
        tools=TOOLS,
        max_completion_tokens=200,
        temperature=0.2,
        user="u-1",
    )
    call = reply.choices[0].message.tool_calls[0]
    messages = [
        *WEATHER,
        reply.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    chunks = list(
        router.chat.completions.create(
            model=model, messages=messages, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    final = router.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    return reply, chunks, final


def _populated(model: Any) -> set[str]:
    return {k for k, v in model if v is not None}


def test_drop_in_same_types_and_fields_as_openai(make_router: Any, emu: Emulator) -> None:
    router = make_router(deployments=[claude(emu), gpt(emu)])
    results = {model: _user_code(router, model) for model in ("gpt-5.4", MODEL)}
    (o_reply, o_chunks, o_final), (a_reply, a_chunks, a_final) = results["gpt-5.4"], results[MODEL]
    for o, a in ((o_reply, a_reply), (o_final, a_final)):
        assert type(o) is type(a) and isinstance(a, ChatCompletion)
        # Documented difference: Anthropic has no system_fingerprint.
        assert _populated(o) - {"system_fingerprint"} == _populated(a)
        assert _populated(o.choices[0]) == _populated(a.choices[0])
        assert type(o.choices[0].message) is type(a.choices[0].message) is ChatCompletionMessage
        assert _populated(o.choices[0].message) == _populated(a.choices[0].message)
        assert type(o.usage) is type(a.usage) is CompletionUsage
        assert _populated(o.usage) == _populated(a.usage)
        assert isinstance(a.usage.prompt_tokens_details.cached_tokens, int)
        assert isinstance(a.usage.completion_tokens_details.reasoning_tokens, int)
        assert o.choices[0].finish_reason == a.choices[0].finish_reason
        assert o.route.finish_reason == a.route.finish_reason
    assert type(o_reply.choices[0].message.tool_calls[0]) is ChatCompletionMessageFunctionToolCall
    assert type(a_reply.choices[0].message.tool_calls[0]) is ChatCompletionMessageFunctionToolCall
    for chunks in (o_chunks, a_chunks):
        assert all(type(c) is ChatCompletionChunk for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-2].choices[0].finish_reason == "stop"
        assert chunks[-1].choices == [] and type(chunks[-1].usage) is CompletionUsage
    assert _populated(o_chunks[-1]) - {"system_fingerprint"} == _populated(a_chunks[-1])
    assert _populated(o_chunks[1].choices[0].delta) == _populated(a_chunks[1].choices[0].delta) == {"content"}


def test_sdk_helpers_work_on_anthropic(router: llmroute.Router, emu: Emulator) -> None:
    import pydantic

    class Person(pydantic.BaseModel):
        name: str
        age: int

    raw = router.chat.completions.with_raw_response.create(model=MODEL, messages=USER)
    assert raw.request_id == raw.headers["request-id"] == emu.requests[-1].request_id
    assert raw.status_code == 200 and raw.parse().choices[0].message.content
    parsed = router.chat.completions.parse(model=MODEL, messages=USER, response_format=Person)
    assert parsed.choices[0].message.parsed == Person(name="example", age=3)
    with router.chat.completions.stream(model=MODEL, messages=WEATHER, tools=TOOLS) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"chunk", "tool_calls.function.arguments.done"} <= kinds
    assert json.loads(final.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert router.ledger.rows()[-1].outcome == "ok"


def test_stream_route_finish_reason_is_normalised(router: llmroute.Router) -> None:
    stream = router.chat.completions.create(model=MODEL, messages=USER, stream=True, max_tokens=3)
    list(stream)
    assert stream.route.finish_reason == "length" and stream.route.truncated


# ---------------------------------------------------------------- socket server


def test_end_to_end_over_the_real_socket_server(emu: Emulator) -> None:
    with emu.serve() as server:
        deployment = llmroute.Deployment(
            "claude", model=MODEL, base_url=server.base_url("anthropic"), api_key=CANARY_ANTHROPIC
        )
        with llmroute.Router([deployment]) as router:
            reply = router.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS)
            assert reply.choices[0].message.tool_calls is not None
            chunks = list(router.chat.completions.create(model=MODEL, messages=USER, stream=True))
            assert chunks[-1].choices[0].finish_reason == "stop"
            emu.inject(Fault.stream_error(after_tokens=0), provider="anthropic")
            retried = router.chat.completions.create(model=MODEL, messages=USER, stream=True)
            assert list(retried) and retried.route.retries == 1
            reconcile(router.ledger, emu)

        async def run() -> None:
            async with llmroute.AsyncRouter([deployment]) as arouter:
                replies = await asyncio.gather(
                    *(arouter.chat.completions.create(model=MODEL, messages=USER) for _ in range(10))
                )
                assert all(r.choices[0].message.content for r in replies)

        asyncio.run(run())
    assert emu.bill.total().requests == 14  # the stream that failed mid-way billed its input
    assert {r.path for r in emu.requests} == {"/anthropic/v1/messages"}


# ---------------------------------------------------------------- the emulator's Messages endpoint


def _post(emu: Emulator, body: dict[str, Any], **headers: str) -> httpx2.Response:
    headers.setdefault("anthropic-version", "2026-10-21")
    with emu.http_client() as client:
        return client.post(f"{emu.base_url('anthropic')}/v1/messages", json=body, headers=headers)


BODY = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (BODY, {"anthropic-version": "2021-01-01"}, "anthropic-version"),
        ({**BODY, "temperature": 1.0}, {}, "temperature: Extra inputs are not permitted"),
        ({**BODY, "temperature": 1.5}, {"anthropic-version": "2023-06-01"}, "temperature: range"),
        ({**BODY, "n": 2}, {}, "n: Extra inputs"),
        ({k: v for k, v in BODY.items() if k != "max_tokens"}, {}, "max_tokens: Field required"),
        ({**BODY, "messages": [{"role": "system", "content": "x"}]}, {}, "top-level `system`"),
        (
            {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            {},
            "non-empty",
        ),
        (
            {
                **BODY,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {"role": "user", "content": "no result"},
                ],
            },
            {},
            "without `tool_result`",
        ),
        (
            {
                **BODY,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "x"},
                            {"type": "tool_result", "tool_use_id": "t1"},
                        ],
                    },
                ],
            },
            {},
            "must come first",
        ),
        (
            {
                **BODY,
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "zz"}]}],
            },
            {},
            "unexpected `tool_use_id`",
        ),
        (
            {
                **BODY,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}}
                            for i in range(5)
                        ],
                    }
                ],
            },
            {},
            "A maximum of 4 blocks with cache_control",
        ),
        (
            {
                **BODY,
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "thinking": {"type": "adaptive"},
            },
            {},
            "Thinking may not be enabled",
        ),
    ],
)
def test_emulator_validates_like_the_messages_api(
    emu: Emulator, body: dict[str, Any], headers: dict[str, str], message: str
) -> None:
    response = _post(emu, body, **headers)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]
    assert response.headers["request-id"] == emu.requests[-1].request_id
    assert emu.bill.total().requests == 0


def test_emulator_requires_the_version_and_checks_keys(emu: Emulator) -> None:
    with emu.http_client() as client:
        missing = client.post(f"{emu.base_url('anthropic')}/v1/messages", json=BODY)
    assert missing.status_code == 400 and "anthropic-version" in missing.json()["error"]["message"]
    emu.api_keys = {"anthropic": "sk-ant-right"}
    assert _post(emu, BODY, **{"x-api-key": "sk-ant-right"}).status_code == 200
    assert _post(emu, BODY, authorization="Bearer sk-ant-right").status_code == 200
    wrong = _post(emu, BODY, **{"x-api-key": "sk-ant-wrong", "authorization": "Bearer sk-ant-right"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert emu.requests[-1].authorized


def test_emulator_error_bodies_and_headers(emu: Emulator) -> None:
    emu.inject(Fault.rate_limit(retry_after=3), provider="anthropic")
    limited = _post(emu, BODY)
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "rate_limit_error"
    assert limited.headers["retry-after"] == "3"
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert limited.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    emu.inject(Fault.overloaded(), provider="anthropic")
    overloaded = _post(emu, BODY)
    assert overloaded.status_code == 529 and overloaded.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def _events(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in response.text.strip().split("\n\n"):
        name, data = chunk.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_emulator_stream_event_sequence(emu: Emulator) -> None:
    emu.set_reply(lambda ctx: Reply(text="Two words."))
    events = _events(
        _post(emu, {**BODY, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}})
    )
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert [data["content_block"]["type"] for name, data in events if name == "content_block_start"] == [
        "thinking",
        "text",
    ]
    assert "signature_delta" in {
        data["delta"]["type"] for name, data in events if name == "content_block_delta"
    }
    start, delta = events[0][1]["message"]["usage"], events[-2][1]["usage"]
    line = emu.requests[-1].billed
    assert start["output_tokens"] == 1 and delta["output_tokens"] == line.output_tokens
    assert delta["input_tokens"] == start["input_tokens"] == line.input_tokens
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert line.reasoning_tokens > 0


def test_emulator_mid_stream_error_event(emu: Emulator) -> None:
    emu.inject(Fault.stream_error(after_tokens=2, error_type="api_error"), provider="anthropic")
    events = _events(_post(emu, {**BODY, "stream": True}))
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}},
    )
    assert "message_delta" not in [name for name, _ in events]
    assert emu.requests[-1].billed.output_tokens == 2


def test_a_fallback_that_cannot_take_the_request_is_dropped_before_any_call(emu: Emulator) -> None:
    """presence_penalty is fine for OpenAI but not for Claude: with Claude as the fallback, the call still
    goes to OpenAI, and the trace says why Claude was dropped; with only Claude, the refusal itself."""
    client = emu.http_client()
    router = llmroute.Router(
        [
            llmroute.Deployment(
                "gpt", model="gpt-5.4", api_key="sk-test", base_url=emu.base_url("openai"), http_client=client
            ),
            llmroute.Deployment(
                "claude",
                model="claude-sonnet-4.6",
                api_key="sk-test",
                base_url=emu.base_url("anthropic"),
                http_client=client,
            ),
        ],
        fallbacks=["claude-sonnet-4.6"],
    )
    reply = router.chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], presence_penalty=0.5
    )
    assert reply.route.deployment == "gpt"
    step = reply.route.decision.steps[-1]
    assert step.policy == "Adapter" and step.dropped[0].deployment == "claude"
    with pytest.raises(llmroute.InvalidRequest, match="presence_penalty"):
        router.chat.completions.create(
            model="claude-sonnet-4.6", messages=[{"role": "user", "content": "hi"}], presence_penalty=0.5
        )
    assert all(r.provider != "anthropic" for r in emu.requests)
