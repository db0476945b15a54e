"""Cooldowns, stream fallback before the first content chunk, context-window fallbacks."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from conftest import USER, reconcile_ledger
from tenacity import stop_after_attempt

import llmroute
from llmroute import errors as E
from llmroute.routing.cooldown import Cooldowns
from llmroute.testing import Emulator, Fault

REQ = httpx2.Request("POST", "http://test.invalid/v1/chat/completions")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error(cls: type[E.ProviderStatusError], status: int, retry_after: float | None = None) -> E.ProviderError:
    return cls("x", request=REQ, response=httpx2.Response(status, request=REQ), retry_after=retry_after)


def test_breaker_opens_on_failure_rate_with_growing_periods() -> None:
    clock = Clock()
    cd = Cooldowns(min_samples=4, base_s=10, max_s=25, clock=clock)
    for _ in range(3):
        cd.observe("a", error(E.ServerError, 500))
    assert cd.cooling_until("a") is None  # three failures are not enough samples
    cd.observe("a", error(E.ServerError, 500))
    assert cd.cooling_until("a") == 1010.0
    clock.now = 1010.0  # half-open: available for a probe
    assert cd.cooling_until("a") is None
    assert cd.acquire("a") is None
    cd.observe("a", error(E.ServerError, 500))  # the probe fails: longer open period
    assert cd.cooling_until("a") == 1030.0
    clock.now = 1030.0
    cd.observe("a", None)  # the probe succeeds: closed, the window emptied
    cd.observe("a", error(E.ServerError, 500))
    assert cd.cooling_until("a") is None


def test_rate_limit_pauses_for_retry_after_and_pauses_only_move_later() -> None:
    clock = Clock()
    cd = Cooldowns(clock=clock)
    cd.observe("a", error(E.RateLimited, 429, retry_after=30))
    assert cd.cooling_until("a") == 1030.0
    blocked = cd.blocked("a")
    assert blocked is not None and blocked.kind == "paused"
    cd.observe("a", error(E.RateLimited, 429, retry_after=1))  # a shorter ask never shortens it
    assert cd.cooling_until("a") == 1030.0
    cd.observe("a", error(E.AuthenticationFailed, 401))  # evidence by itself: open for auth_s
    clock.now = 1031.0
    assert cd.cooling_until("a") == 1000.0 + cd.auth_s


def test_failure_rate_over_window() -> None:
    clock = Clock()
    cd = Cooldowns(failure_rate=0.5, min_samples=10, window_s=60, clock=clock)
    for i in range(10):
        cd.observe("a", None if i % 3 == 0 else error(E.ServerError, 500))
        cd.observe("a", None) if i == 4 else None
    assert cd.cooling_until("a") is not None


def test_down_provider_is_not_called_again_until_its_cooldown_ends(make_router: Any, emu: Emulator) -> None:
    clock = Clock()
    router = make_router(
        fallbacks=["deepseek-v3.2"],
        retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)),
        cooldowns=Cooldowns(min_samples=2, base_s=60, clock=clock),
    )
    emu.inject(Fault.server_error(500), provider="openai", times=1000)
    for _ in range(5):
        assert router.chat.completions.create(model="gpt-5.4", messages=USER).route.deployment == "ds"
    openai_calls = [r for r in emu.requests if r.provider == "openai"]
    assert len(openai_calls) == 2  # opened after two failures in two samples, then skipped
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    cooldown_step = reply.route.decision.steps[-1]
    assert cooldown_step.policy == "Cooldown" and cooldown_step.dropped[0].deployment == "gpt"
    clock.now += 61  # cooldown over: gpt is probed again
    emu.clear_faults()
    assert router.chat.completions.create(model="gpt-5.4", messages=USER).route.deployment == "gpt"


def test_everything_cooling_is_probed_not_refused(make_router: Any, emu: Emulator) -> None:
    """The only deployment's breaker is open: the call is not refused, it is sent as a probe."""
    router = make_router(
        retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)), cooldowns=Cooldowns(min_samples=1)
    )
    emu.inject(Fault.server_error(500), provider="openai", times=1)
    with pytest.raises(E.ServerError):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert router._core.cooldowns.cooling_until("gpt") is not None
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.route.deployment == "gpt" and reply.route.decision.steps[-1].policy == "Cooldown"
    assert router._core.cooldowns.cooling_until("gpt") is None  # the probe's success closed it


@pytest.mark.parametrize("final_chunk", [False, True])
def test_stream_cut_before_content_falls_back_and_is_billed(
    make_router: Any, emu: Emulator, final_chunk: bool
) -> None:
    # (DeepSeek first: a cut stream of a model with hidden reasoning tokens bills reasoning the client
    # never sees, so without the provider's usage chunk its estimate is short by exactly those.)
    router = make_router(fallbacks=["gpt-5.4"], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))
    emu.inject(Fault.stream_cut(after_tokens=0, final_chunk=final_chunk), provider="deepseek", times=1)
    stream = router.chat.completions.create(
        model="deepseek-v3.2", messages=USER, stream=True, stream_options={"include_usage": final_chunk}
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text and stream.route.deployment == "gpt"
    first = stream.route.attempts[0]
    assert first.deployment == "ds" and first.outcome == "cut" and first.usage.input_tokens > 0
    assert first.usage.estimated is not final_chunk
    reconcile_ledger(router.ledger, emu)


def test_context_window_error_skips_targets_that_are_not_larger(make_router: Any, emu: Emulator) -> None:
    small = llmroute.ModelSpec("small-a", "vllm", "small-a", context_window=8_000)
    same = llmroute.ModelSpec("small-b", "vllm", "small-b", context_window=8_000)
    large = llmroute.ModelSpec("large", "vllm", "large", context_window=128_000)
    client = emu.http_client()
    deployments = [
        llmroute.Deployment(
            m.id, model=m.id, provider="vllm", base_url=emu.base_url("vllm"), http_client=client
        )
        for m in (small, same, large)
    ]
    router = make_router(deployments=deployments, models=[small, same, large], fallbacks=["small-b", "large"])
    emu.inject(
        Fault.bad_request("This model's maximum context length is 8000 tokens"), model="small-a", times=1
    )
    reply = router.chat.completions.create(model="small-a", messages=USER)
    assert reply.route.deployment == "large"
    assert [r.deployment for r in reply.route.attempts] == ["small-a", "large"]
