"""Hostile-answer fuzz: whatever a provider sends back, the caller gets a success or a typed error.

The argument fuzz (`test_fuzz.py`) draws what callers send; this one draws what providers answer.
Hypothesis starts from a valid answer of each kind and breaks it: one to three fields anywhere in it
(the body, a stream's chunks or events, the headers) are deleted or replaced by a hostile value (the
wrong type, negative, astronomical, NaN, a lone surrogate, a huge string, deep nesting). Each answer
goes through the real SDK (`openai` or `anthropic`, over an in-memory transport) and the router:

- OpenAI-compatible: a chat completion, a stream of chunks, and an error status with rate-limit
  headers;
- Anthropic: a message, and a stream of events.

The property, for every case:
- the outcome is a success or an `LLMRouteError` that is also an `openai.APIError` (never a
  `KeyError`, `TypeError`, `OverflowError`... from inside the library);
- every attempt left exactly one ledger row, with usage that is consistent and in bounds and a cost
  that is finite and not negative;
- a success's route cost equals its row's cost;
- no in-flight slot and no budget reservation is left behind.

`LLMROUTE_FUZZ=long` (the `nox -s fuzz` session) runs 300 cases per test.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx2
import openai
import pytest
from conftest import CANARY_OPENAI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenacity import stop_after_attempt

import llmroute
from llmroute.money.budget import Budget, Budgets
from llmroute.routing.engine import FREE_RATE_LIMIT_WAITS
from llmroute.usage import MAX_TOKENS

CANARY_ANTHROPIC = "sk-ant-canary-fuzz-0a1b2c3d4e5f60718293"
USER = [{"role": "user", "content": "hi"}]
LONG = os.environ.get("LLMROUTE_FUZZ") == "long"
EXAMPLES = 300 if LONG else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same cases in every run: CI gates on what was checked here
)

# ----------------------------------------------------------------------------------- valid answers

OPENAI_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-5.4",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello there.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "total_tokens": 19,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
}

OPENAI_CHUNKS: list[dict[str, Any]] = [
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-5.4",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    },
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-5.4",
        "choices": [
            {"index": 0, "delta": {"content": "Hello", "reasoning_content": "think"}, "finish_reason": None}
        ],
    },
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-5.4",
        "choices": [{"index": 0, "delta": {"content": " there."}, "finish_reason": "stop"}],
    },
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-5.4",
        "choices": [],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "total_tokens": 19,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    },
]

OPENAI_ERROR: dict[str, Any] = {
    "status": 429,
    "headers": {
        "retry-after": "1",
        "retry-after-ms": "5",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "10",
        "x-ratelimit-reset-tokens": "1m2s",
    },
    "body": {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
}

ANTHROPIC_MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
        {"type": "text", "text": "Hello there."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
    },
}

ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello there."}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 7},
    },
    {"type": "message_stop"},
]

# ------------------------------------------------------------------------------------ breaking them

HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "\ud800",
            "x\udfffy",
            -1,
            -(10**30),
            10**30,
            2**63,
            1.5,
            math.nan,
            math.inf,
            -math.inf,
            True,
            [],
            {},
            [None],
            {"": None},
            "x" * 100_000,
            "9" * 400,
            "stop",
            "length",
            "tool_use",
            "content_filter",
        ]
    ),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=8,
    ),
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value (the root excluded)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*here, key)
            yield from _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*here, index)
            yield from _paths(item, (*here, index))


def _apply(value: Any, path: tuple[Any, ...], new: Any, delete: bool) -> None:
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new


@st.composite
def broken(draw: st.DrawFn, valid: Any) -> Any:
    """`valid`, with one to three places deleted or replaced by a hostile value."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(value))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        _apply(value, path, draw(HOSTILE), delete=draw(st.booleans()))
    return value


def _dumps(value: Any) -> bytes:
    # NaN and infinities are written as the bare words Python's json (and some servers) emit
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


def _sse(events: list[Any], named: bool) -> bytes:
    out = []
    for event in events:
        name = event.get("type") if named and isinstance(event, dict) else None
        if named and not isinstance(name, str):
            name = "message_delta"
        head = f"event: {name}\n".encode("utf-8", "surrogatepass") if name is not None else b""
        out.append(head + b"data: " + _dumps(event) + b"\n\n")
    if not named:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


# ------------------------------------------------------------------------------------ the property


def _router(
    anthropic: bool,
    status: int,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    deadline: float | None = None,
) -> tuple[llmroute.Router, Budgets]:
    content_type = "text/event-stream" if stream and status == 200 else "application/json"

    def handle(request: httpx2.Request) -> httpx2.Response:
        safe = {k: v for k, v in headers.items() if _header_safe(k) and _header_safe(v)}
        return httpx2.Response(
            status,
            content=body,
            headers={"content-type": content_type, "request-id": "req_1", **safe},
            request=request,
        )

    client = httpx2.Client(transport=httpx2.MockTransport(handle))
    if anthropic:
        deployment = llmroute.Deployment(
            "claude",
            model="claude-sonnet-4-6",
            base_url="http://anthropic.test",
            api_key=CANARY_ANTHROPIC,
            http_client=client,
            max_in_flight=1,
        )
    else:
        deployment = llmroute.Deployment(
            "gpt",
            model="gpt-5.4",
            base_url="http://openai.test/v1",
            api_key=CANARY_OPENAI,
            http_client=client,
            max_in_flight=1,
        )
    budgets = Budgets([Budget("5")])
    retry = llmroute.RetryPolicy(stop=stop_after_attempt(2), deadline=deadline)
    return llmroute.Router([deployment], retry=retry, budgets=budgets), budgets


def _header_safe(text: str) -> bool:
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return False
    return "\n" not in text and "\r" not in text and "\x00" not in text


def _check(
    anthropic: bool,
    status: int,
    body: bytes,
    stream: bool,
    headers: dict[str, str] | None = None,
    deadline: float | None = None,
) -> None:
    router, budgets = _router(anthropic, status, body, headers or {}, stream, deadline)
    model = "claude-sonnet-4-6" if anthropic else "gpt-5.4"
    reply: Any = None
    try:
        if stream:
            chunks = router.chat.completions.create(
                model=model, messages=USER, stream=True, stream_options={"include_usage": True}
            )
            for _ in chunks:
                pass
            reply = chunks
        else:
            reply = router.chat.completions.create(model=model, messages=USER)
    except llmroute.LLMRouteError as error:
        assert isinstance(error, openai.APIError), f"{type(error).__name__} is not an openai.APIError"
        text = f"{error!r} {error}"
        assert CANARY_OPENAI not in text and CANARY_ANTHROPIC not in text
    rows = router.ledger.rows()
    assert rows, "an attempt left no ledger row"
    # two attempts, plus the 429s that said how long to wait (waited out, not counted as attempts)
    assert len(rows) <= 2 + FREE_RATE_LIMIT_WAITS, f"{len(rows)} rows for at most 2 attempts"
    for row in rows:
        usage = row.usage
        assert usage.consistent, usage
        assert 0 <= usage.input_tokens <= MAX_TOKENS and 0 <= usage.output_tokens <= MAX_TOKENS
        if row.cost is not None:
            total = row.cost.total
            assert total.is_finite() and Decimal(0) <= total <= Decimal(10**6), total
    if reply is not None and not stream:
        assert reply.route.cost == rows[-1].cost_total
    assert router._core.load.in_flight(router.deployments[0].name) == 0, "in-flight slot left taken"
    assert budgets.in_flight == 0, "a budget reservation was left open"
    router.close()


@FUZZ
@given(answer=broken(OPENAI_COMPLETION))
def test_any_openai_completion(answer: Any) -> None:
    _check(False, 200, _dumps(answer), stream=False)


@FUZZ
@given(chunks=broken(OPENAI_CHUNKS))
def test_any_openai_stream(chunks: list[Any]) -> None:
    _check(False, 200, _sse(chunks, named=False), stream=True)


@FUZZ
@given(error=broken(OPENAI_ERROR))
def test_any_openai_error_and_rate_limit_headers(error: dict[str, Any]) -> None:
    status = error.get("status")
    status = (
        status if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599 else 500
    )
    headers = error.get("headers")
    headers = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
    # a drawn Retry-After of up to 60 s would be waited out (ten times, within the default 300 s
    # deadline): what is fuzzed here is reading the headers, so a deadline keeps each case short
    _check(False, status, _dumps(error.get("body")), stream=False, headers=headers, deadline=0.15)


@FUZZ
@given(headers=broken(OPENAI_ERROR["headers"]))
def test_any_rate_limit_headers_on_a_success(headers: dict[str, Any]) -> None:
    _check(
        False, 200, _dumps(OPENAI_COMPLETION), stream=False, headers={k: str(v) for k, v in headers.items()}
    )


@FUZZ
@given(answer=broken(ANTHROPIC_MESSAGE))
def test_any_anthropic_message(answer: Any) -> None:
    _check(True, 200, _dumps(answer), stream=False)


@FUZZ
@given(events=broken(ANTHROPIC_EVENTS))
def test_any_anthropic_stream(events: list[Any]) -> None:
    _check(True, 200, _sse(events, named=True), stream=True)


@pytest.mark.parametrize(
    ("anthropic", "valid", "stream"),
    [
        (False, OPENAI_COMPLETION, False),
        (False, OPENAI_CHUNKS, True),
        (True, ANTHROPIC_MESSAGE, False),
        (True, ANTHROPIC_EVENTS, True),
    ],
    ids=["openai", "openai-stream", "anthropic", "anthropic-stream"],
)
def test_the_valid_answers_succeed(anthropic: bool, valid: Any, stream: bool) -> None:
    """The templates themselves are answers the router accepts (a broken template would make every
    fuzz case an error and the property trivially true for successes)."""
    body = _sse(valid, named=anthropic) if stream else _dumps(valid)
    router, _ = _router(anthropic, 200, body, {}, stream)
    model = "claude-sonnet-4-6" if anthropic else "gpt-5.4"
    if stream:
        chunks = router.chat.completions.create(
            model=model, messages=USER, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello there."
    else:
        reply = router.chat.completions.create(model=model, messages=USER)
        assert "Hello there." in (reply.choices[0].message.content or "")
        assert reply.route.usage.input_tokens > 0 and not reply.route.usage.estimated
    rows = router.ledger.rows()
    assert len(rows) == 1 and rows[0].outcome == "ok" and rows[0].cost is not None
