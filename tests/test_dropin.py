"""The OpenAI SDK's documented chat patterns, unchanged except for how the client is built."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from conftest import USER
from openai.types.chat import ParsedChatCompletion
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator, Fault


class Step(BaseModel):
    explanation: str
    output: str


class MathResponse(BaseModel):
    steps: list[Step]
    final_answer: str


MATH = [
    {"role": "system", "content": "You are a helpful math tutor."},
    {"role": "user", "content": "solve 8x + 31 = 2"},
]


@pytest.mark.parametrize("model", ["gpt-5.4", "deepseek-v3.2"])
def test_structured_outputs_with_pydantic(make_router: Any, model: str) -> None:
    client = make_router()
    completion = client.chat.completions.parse(model=model, messages=MATH, response_format=MathResponse)
    assert isinstance(completion, ParsedChatCompletion)
    message = completion.choices[0].message
    assert isinstance(message.parsed, MathResponse)
    assert completion.route.model == model
    assert completion == ParsedChatCompletion.model_validate(completion.model_dump())


def test_parse_length_limit_raises_like_the_sdk(make_router: Any) -> None:
    client = make_router()
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(
            model="gpt-5.4", messages=MATH, response_format=MathResponse, max_completion_tokens=2
        )


def test_streaming_helper_events_and_final_completion(make_router: Any) -> None:
    client = make_router()
    deltas = []
    with client.chat.completions.stream(model="gpt-5.4", messages=USER) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
            elif event.type == "content.done":
                done = event.content
    final = stream.get_final_completion()
    assert "".join(deltas) == done == final.choices[0].message.content
    assert len(client.ledger) == 1 and client.ledger.rows()[0].outcome == "ok"


def test_streaming_helper_with_structured_output(make_router: Any) -> None:
    client = make_router()
    with client.chat.completions.stream(
        model="gpt-5.4", messages=MATH, response_format=MathResponse
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, MathResponse)


def test_streaming_helper_closed_early_still_settles_the_ledger(make_router: Any) -> None:
    client = make_router()
    with client.chat.completions.stream(model="gpt-5.4", messages=USER) as stream:
        for _event in stream:
            break
    assert len(client.ledger) == 1 and client.ledger.rows()[0].outcome == "cut"


def test_function_calling_with_strict_tools(make_router: Any) -> None:
    client = make_router()

    class GetWeather(BaseModel):
        city: str

    completion = client.chat.completions.parse(
        model="gpt-5.4",
        messages=[{"role": "user", "content": "What's the weather like in Paris?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather)


def test_with_raw_response_gives_headers_then_the_object(make_router: Any) -> None:
    client = make_router()
    raw = client.chat.completions.with_raw_response.create(model="gpt-5.4", messages=USER)
    assert raw.headers.get("x-request-id") and raw.request_id == raw.headers["x-request-id"]
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.route.attempts[-1].request_id == raw.request_id


def test_with_options_max_retries_and_timeout(make_router: Any, emu: Emulator) -> None:
    client = make_router()
    emu.inject(Fault.rate_limit(retry_after=0), provider="openai", times=1)
    with pytest.raises(openai.RateLimitError):
        client.with_options(max_retries=0).chat.completions.create(model="gpt-5.4", messages=USER)
    assert client.with_options(max_retries=2).chat.completions.create(model="gpt-5.4", messages=USER)
    assert len(client.ledger) == 2  # the copy shares the ledger
    client.with_options(timeout=12.5).chat.completions.create(model="gpt-5.4", messages=USER)


def test_extra_headers_body_and_query_reach_the_provider(make_router: Any, emu: Emulator) -> None:
    client = make_router()
    client.chat.completions.create(
        model="deepseek-v3.2",
        messages=USER,
        extra_headers={"X-Trace": "t-1"},
        extra_body={"thinking": {"type": "disabled"}},
        extra_query={"debug": "1"},
    )
    assert emu.requests[-1].body["thinking"] == {"type": "disabled"}


async def test_async_parse_stream_and_raw(make_async_router: Any) -> None:
    client = make_async_router()
    completion = await client.chat.completions.parse(
        model="gpt-5.4", messages=MATH, response_format=MathResponse
    )
    assert isinstance(completion.choices[0].message.parsed, MathResponse)
    async with client.chat.completions.stream(model="deepseek-v3.2", messages=USER) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content
    raw = await client.chat.completions.with_raw_response.create(model="gpt-5.4", messages=USER)
    assert raw.headers.get("x-request-id")
    await client.close()


def test_errors_keep_the_real_response(make_router: Any, emu: Emulator) -> None:
    client = make_router(retry=llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(1)))
    emu.inject(Fault.server_error(500), provider="openai", times=1)
    try:
        client.chat.completions.create(model="gpt-5.4", messages=USER)
    except openai.APIStatusError as e:
        assert e.status_code == 500
        assert e.response.request.url.path.endswith("/chat/completions")
        assert e.request_id == e.response.headers["x-request-id"]
    else:
        pytest.fail("expected an error")
