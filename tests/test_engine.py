"""The engine as a pure state machine: actions out, outcomes in, no I/O."""

from collections.abc import Sequence

import httpx2
import openai
import pytest
from tenacity import stop_after_attempt, wait_fixed

from llmroute import errors as E
from llmroute.catalog import Deployment, ModelSpec, ProviderSpec
from llmroute.policy import Target
from llmroute.routing.engine import Attempt, Call, RetryPolicy, Sleep, plan

REQ = httpx2.Request("POST", "http://test.invalid/v1/chat/completions")
PROVIDER = ProviderSpec("p", "openai", "http://test.invalid/v1", jurisdiction="US")


def target(name: str) -> Target:
    return Target(
        Deployment(name, model=name, provider="p"), ModelSpec(name, "p", name), PROVIDER, name, name
    )


def error(cls: type[E.ProviderStatusError], status: int, retry_after: float | None = None) -> E.ProviderError:
    response = httpx2.Response(status, request=REQ)
    return cls(
        "boom", request=REQ, response=response, retryable=E.default_retryability(cls), retry_after=retry_after
    )


def run(
    targets: Sequence[Target], outcomes: list[E.ProviderError | str], retry: RetryPolicy
) -> tuple[list[object], object]:
    """Feed outcomes to the plan in order; return the actions it yielded and its result or error."""
    actions: list[object] = []
    flow = plan(targets, retry, clock=lambda: 0.0)
    action = next(flow)
    try:
        while True:
            actions.append(action)
            if isinstance(action, Call):
                outcome = outcomes.pop(0)
                reply = Attempt(result=outcome) if isinstance(outcome, str) else Attempt(error=outcome)
                action = flow.send(reply)
            else:
                action = flow.send(None)
    except StopIteration as done:
        return actions, done.value
    except Exception as e:
        return actions, e


def test_first_success_returns() -> None:
    a = target("a")
    actions, result = run([a, target("b")], ["ok"], RetryPolicy())
    assert result == "ok" and actions == [Call(a, 1, 1)]


def test_retry_waits_at_least_retry_after() -> None:
    retry = RetryPolicy(stop=stop_after_attempt(3), wait=wait_fixed(0.1))
    actions, result = run([target("a")], [error(E.RateLimited, 429, retry_after=1.5), "ok"], retry)
    assert result == "ok"
    assert actions[1] == Sleep(1.5)


def test_retry_after_beyond_the_cap_moves_to_next_target() -> None:
    retry = RetryPolicy(stop=stop_after_attempt(3), wait=wait_fixed(0), max_retry_after=10)
    actions, result = run(
        [target("a"), target("b")], [error(E.RateLimited, 429, retry_after=30), "ok"], retry
    )
    assert result == "ok"
    assert [a.target.name for a in actions if isinstance(a, Call)] == ["a", "b"]
    assert not any(isinstance(a, Sleep) for a in actions)


def test_long_wait_prefers_next_target_when_one_remains() -> None:
    retry = RetryPolicy(stop=stop_after_attempt(3), wait=wait_fixed(0), switch_after=1.0)
    actions, _ = run([target("a"), target("b")], [error(E.RateLimited, 429, retry_after=5), "ok"], retry)
    assert [a.target.name for a in actions if isinstance(a, Call)] == ["a", "b"]
    # ...but with no other target left, it waits as asked.
    actions, _ = run([target("a")], [error(E.RateLimited, 429, retry_after=5), "ok"], retry)
    assert Sleep(5) in actions


def test_auth_failure_skips_retries_and_moves_on() -> None:
    actions, result = run(
        [target("a"), target("b")], [error(E.AuthenticationFailed, 401), "ok"], RetryPolicy()
    )
    assert result == "ok" and len(actions) == 2


def test_bad_request_is_fatal_for_the_whole_call() -> None:
    _, result = run([target("a"), target("b")], [error(E.BadRequest, 400)], RetryPolicy())
    assert isinstance(result, E.BadRequest)


def test_all_failed_is_an_exception_group_and_an_openai_error() -> None:
    retry = RetryPolicy(stop=stop_after_attempt(2), wait=wait_fixed(0))
    outcomes: list[E.ProviderError | str] = [error(E.ServerError, 500) for _ in range(4)]
    actions, result = run([target("a"), target("b")], outcomes, retry)
    assert isinstance(result, E.AllTargetsFailed)
    assert isinstance(result, ExceptionGroup) and len(result.exceptions) == 4
    assert isinstance(result, openai.InternalServerError)  # every attempt failed the same way
    assert [a.target.name for a in actions if isinstance(a, Call)] == ["a", "a", "b", "b"]


def test_single_failure_raises_the_error_itself() -> None:
    retry = RetryPolicy(stop=stop_after_attempt(1))
    _, result = run([target("a")], [error(E.RateLimited, 429)], retry)
    assert isinstance(result, openai.RateLimitError) and not isinstance(result, ExceptionGroup)


def test_quota_exhaustion_is_not_retried() -> None:
    cls = E.status_error_class(429, {"code": "insufficient_quota"})
    assert cls is E.QuotaExhausted and E.default_retryability(cls) is E.Retryability.NEXT_TARGET


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (
            400,
            {"message": "This model's maximum context length is 8192 tokens"},
            E.ContextWindowExceeded,
            "next_target",
        ),
        (400, {"message": "bad"}, E.BadRequest, "fatal"),
        (401, None, E.AuthenticationFailed, "next_target"),
        (402, None, E.PaymentRequired, "next_target"),
        (403, None, E.PermissionDenied, "next_target"),
        (404, None, E.ModelNotFound, "next_target"),
        (408, None, E.ProviderStatusError, "retry"),
        (409, None, E.Conflict, "retry"),
        (422, None, E.UnprocessableRequest, "fatal"),
        (429, None, E.RateLimited, "retry"),
        (500, None, E.ServerError, "retry"),
        (503, {"message": "Server overloaded"}, E.Overloaded, "retry"),
        (529, None, E.Overloaded, "retry"),
    ],
)
def test_status_classification(status: int, body: object, cls: type, retryable: str) -> None:
    found = E.status_error_class(status, body)
    assert found is cls
    assert E.default_retryability(found).value == retryable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:30 GMT"}, 20.0),
        (
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"},
            60.0,
        ),  # 90 s, capped (MAX_WAIT_S)
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s"}, 45.0),
        ({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "6m0s"}, None),
        (
            {
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "12ms",
                "x-ratelimit-reset-requests": "1s",
            },
            1.0,
        ),
        (
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "1970-01-01T00:00:15Z",
            },
            5.0,
        ),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    from llmroute.providers.base import retry_after_seconds

    assert retry_after_seconds(headers, now=10.0) == expected
