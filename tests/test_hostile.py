"""Provider responses that are malformed or hostile: the caller gets a typed error or a flagged
answer, never a crash from inside the library. Each case is a row of docs/bad-input.md."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from tenacity import stop_after_attempt

import llmroute
from llmroute.errors import MalformedResponse, ServerError

OK: dict[str, Any] = {
    "id": "x",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def router_answering(body: Any, status: int = 200, content_type: str = "application/json") -> llmroute.Router:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=raw, headers={"content-type": content_type}, request=request)

    client = httpx2.Client(transport=httpx2.MockTransport(handle))
    deployment = llmroute.Deployment(
        "d", model="gpt-5.4", api_key="sk-test", base_url="http://x.invalid/v1", http_client=client
    )
    return llmroute.Router([deployment], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))


@pytest.mark.parametrize(
    ("body", "status", "content_type"),
    [
        (b"{not json", 200, "application/json"),
        ({k: v for k, v in OK.items() if k != "choices"}, 200, "application/json"),
        ({**OK, "choices": "nope"}, 200, "application/json"),
        ({}, 200, "application/json"),
        ([1, 2, 3], 200, "application/json"),
        ({**OK, "choices": []}, 200, "application/json"),
    ],
    ids=["invalid-json", "no-choices", "choices-not-a-list", "empty-object", "json-array", "empty-choices"],
)
def test_malformed_answers_are_a_typed_retryable_error(body: Any, status: int, content_type: str) -> None:
    router = router_answering(body, status, content_type)
    with pytest.raises(MalformedResponse) as info:
        router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    assert info.value.retryable.value == "retry"
    assert router.ledger.rows()[0].outcome == "error"


def test_an_html_error_page_is_a_server_error() -> None:
    router = router_answering(b"<html>bad gateway</html>", 502, "text/html")
    with pytest.raises(ServerError):
        router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])


def test_usage_of_the_wrong_type_is_estimated_and_flagged() -> None:
    router = router_answering({**OK, "usage": {"prompt_tokens": "three", "completion_tokens": None}})
    reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    assert reply.route.usage.estimated and reply.route.usage.input_tokens > 0


def test_missing_usage_is_estimated_and_flagged() -> None:
    router = router_answering({k: v for k, v in OK.items() if k != "usage"})
    reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    assert reply.route.usage.estimated and reply.route.cost is not None


def test_an_unknown_finish_reason_is_unknown_not_stop() -> None:
    weird = {**OK, "choices": [{**OK["choices"][0], "finish_reason": "cosmic_ray"}]}
    reply = router_answering(weird).chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].finish_reason == "cosmic_ray"  # what the provider said, untouched
    assert reply.route.finish_reason == "unknown" and reply.route.truncated


def test_a_huge_answer_is_handled() -> None:
    huge = {
        **OK,
        "choices": [{**OK["choices"][0], "message": {"role": "assistant", "content": "word " * 1_000_000}}],
    }
    reply = router_answering(huge).chat.completions.create(
        model="gpt-5.4", messages=[{"role": "user", "content": "hi"}]
    )
    assert len(reply.choices[0].message.content or "") == 5_000_000
