"""Bad input gets a typed error naming the argument, before any network call."""

from typing import Any

import openai
import pytest

from llmroute.errors import InvalidRequest
from llmroute.hinting import RouteHints
from llmroute.request import ChatRequest, known_arguments

OK = [{"role": "user", "content": "hi"}]


def build(**kwargs: Any) -> ChatRequest:
    kwargs.setdefault("model", "gpt-5.4")
    kwargs.setdefault("messages", OK)
    return ChatRequest.from_kwargs(kwargs, RouteHints())


def test_every_sdk_argument_is_known() -> None:
    for name in (
        "messages",
        "model",
        "temperature",
        "tools",
        "response_format",
        "prompt_cache_key",
        "extra_body",
    ):
        assert name in known_arguments()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"model": ""}, "model"),
        ({"model": 5}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {}}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"max_tokens": 10, "max_completion_tokens": 10}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tools": [{"type": "function"}]}, "tools[0].function.name"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"extra_headers": ["x"]}, "extra_headers"),
        ({"timeout": -1}, "timeout"),
        ({"temprature": 0.5}, "temprature"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        build(**kwargs)
    assert info.value.argument == argument
    # Code written for the SDK catches TypeError for bad keywords; ValueError for bad values.
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


def test_missing_required_arguments() -> None:
    with pytest.raises(InvalidRequest, match="model"):
        ChatRequest.from_kwargs({"messages": OK}, RouteHints())
    with pytest.raises(InvalidRequest, match="messages"):
        ChatRequest.from_kwargs({"model": "m"}, RouteHints())


def test_not_given_and_none_mean_absent() -> None:
    request = build(temperature=openai.NOT_GIVEN, top_p=None, seed=openai.omit, user="u1")
    assert request.body == {"user": "u1"}


def test_pydantic_messages_from_earlier_responses_are_accepted() -> None:
    message = openai.types.chat.ChatCompletionMessage(role="assistant", content="earlier answer")
    request = build(messages=[*OK, message, {"role": "user", "content": "and?"}])
    assert request.messages[1] == {"role": "assistant", "content": "earlier answer"}


def test_needs_and_limits() -> None:
    request = build(
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}],
            }
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
        response_format={"type": "json_object"},
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert request.needs() == {"vision", "tools", "json", "streaming"}
    assert request.max_output_tokens == 50
    assert request.include_usage


def test_hints_validation() -> None:
    with pytest.raises(InvalidRequest, match="route"):
        RouteHints.coerce({"taks": "x"})
    with pytest.raises(InvalidRequest, match=r"route\.max_cost"):
        RouteHints.coerce({"max_cost": -1})
    with pytest.raises(InvalidRequest, match=r"route\.tags"):
        RouteHints.coerce({"tags": "a"})
    assert RouteHints.coerce({"task": "chat", "tags": ["a"]}).tags == ("a",)
