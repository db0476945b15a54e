"""Load balancing across deployments of one model, and client-side limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from conftest import USER

import llmroute
import llmroute.routing.health
from llmroute.errors import NoCapacity
from llmroute.routing.balance import LeastBusy, LoadTracker, LowestLatency, MostHeadroom, WeightedRandom
from llmroute.testing import Emulator

MODEL = llmroute.ModelSpec(
    "m",
    "vllm",
    "m",
    price=llmroute.Price(input=__import__("decimal").Decimal(1), output=__import__("decimal").Decimal(2)),
)


def replicas(
    emu: Emulator, n: int = 3, *, asynchronous: bool = False, **limits: Any
) -> list[llmroute.Deployment]:
    client = (
        {"async_http_client": emu.async_http_client()} if asynchronous else {"http_client": emu.http_client()}
    )
    return [
        llmroute.Deployment(
            f"r{i}", model="m", provider="vllm", base_url=emu.base_url("vllm"), weight=i, **limits, **client
        )
        for i in range(1, n + 1)
    ]


def test_weighted_random_respects_weights(emu: Emulator) -> None:
    router = llmroute.Router(replicas(emu), models=[MODEL], balancer=WeightedRandom(seed=3))
    served = Counter(
        router.chat.completions.create(model="m", messages=USER).route.deployment for _ in range(600)
    )
    for name, weight in (("r1", 1), ("r2", 2), ("r3", 3)):
        assert abs(served[name] / 600 - weight / 6) < 0.06, served


def test_balancer_only_reorders_within_a_model(emu: Emulator) -> None:
    router = llmroute.Router(replicas(emu), models=[MODEL], balancer=WeightedRandom(seed=1))
    reply = router.chat.completions.create(model="m", messages=USER)
    assert {t.name for t in reply.route.decision.targets} == {"r1", "r2", "r3"}
    assert reply.route.decision.steps[0].policy == "WeightedRandom"


def test_rpm_limit_is_never_exceeded(emu: Emulator) -> None:
    deployments = replicas(emu, 2)
    deployments[0] = llmroute.Deployment(
        "r1",
        model="m",
        provider="vllm",
        base_url=emu.base_url("vllm"),
        rpm=5,
        weight=10,
        http_client=emu.http_client(),
    )
    router = llmroute.Router(deployments, models=[MODEL], balancer=LeastBusy())
    served = Counter(
        router.chat.completions.create(model="m", messages=USER).route.deployment for _ in range(30)
    )
    assert served["r1"] == 5 and served["r2"] == 25


def test_tpm_limit_is_charged_by_estimate_and_settled(emu: Emulator) -> None:
    deployment = llmroute.Deployment(
        "r1",
        model="m",
        provider="vllm",
        base_url=emu.base_url("vllm"),
        tpm=400,
        http_client=emu.http_client(),
    )
    # The window frees room only after 60 s: a 1 s deadline cannot wait for it, so the call fails.
    router = llmroute.Router([deployment], models=[MODEL], retry=llmroute.RetryPolicy(deadline=1.0))
    served = 0
    with pytest.raises(NoCapacity):
        for _ in range(20):
            router.chat.completions.create(model="m", messages=USER, max_tokens=50)
            served += 1
    used = router.ledger.total().usage.total_tokens
    assert used <= 400 and served >= 3


async def test_least_busy_keeps_in_flight_under_limits_with_200_calls() -> None:
    emu = Emulator(simulate_latency=True)
    emu.set_latency("vllm", ttft=0.01, per_token=0.0005)
    router = llmroute.AsyncRouter(
        replicas(emu, 2, asynchronous=True, max_in_flight=10),
        models=[MODEL],
        balancer=LeastBusy(),
        queue_timeout=30,
    )
    peak: Counter[str] = Counter()
    admit = router._core.load.admit

    def watching(target: Any, tokens: int) -> Any:
        result = admit(target, tokens)
        name = target.deployment.name
        peak[name] = max(peak[name], router._core.load.in_flight(name))
        return result

    router._core.load.admit = watching  # type: ignore[method-assign]
    replies = await asyncio.gather(
        *(router.chat.completions.create(model="m", messages=USER) for _ in range(200))
    )
    assert len(replies) == 200
    assert max(peak.values()) <= 10
    served = Counter(r.route.deployment for r in replies)
    assert abs(served["r1"] - served["r2"]) <= 40, served
    assert router._core.load.in_flight("r1") == router._core.load.in_flight("r2") == 0
    await router.close()


def test_every_deployment_full_waits_then_fails_clearly(emu: Emulator) -> None:
    router = llmroute.Router(replicas(emu, 1, max_in_flight=1), models=[MODEL], queue_timeout=0.05)
    stream = router.chat.completions.create(model="m", messages=USER, stream=True)  # holds the only slot
    with pytest.raises(NoCapacity, match="limits"):
        router.chat.completions.create(model="m", messages=USER)
    list(stream)  # the stream ends: the slot is free again
    assert router.chat.completions.create(model="m", messages=USER).route.deployment == "r1"


def test_full_model_falls_back_to_the_next_model(emu: Emulator) -> None:
    other = llmroute.ModelSpec("other", "vllm", "other")
    deployments = [
        *replicas(emu, 1, max_in_flight=1),
        llmroute.Deployment(
            "o", model="other", provider="vllm", base_url=emu.base_url("vllm"), http_client=emu.http_client()
        ),
    ]
    router = llmroute.Router(deployments, models=[MODEL, other], fallbacks=["other"])
    stream = router.chat.completions.create(model="m", messages=USER, stream=True)
    assert router.chat.completions.create(model="m", messages=USER).route.deployment == "o"
    stream.close()


def test_slow_deployment_loses_traffic_and_wins_it_back() -> None:
    emu = Emulator(simulate_latency=True)
    client = emu.http_client()
    deployments = [
        llmroute.Deployment(
            "fast", model="m", provider="vllm", base_url=emu.base_url("vllm"), http_client=client
        ),
        llmroute.Deployment(
            "slow",
            model="m",
            provider="vllm",
            dialect="llamacpp",
            base_url=emu.base_url("llamacpp"),
            http_client=client,
        ),
    ]
    router = llmroute.Router(
        deployments,
        models=[MODEL],
        balancer=LowestLatency(explore=0.1),
        health=llmroute.routing.health.Health(half_life=2),
    )
    emu.set_latency("llamacpp", ttft=0.03)
    served = Counter(
        router.chat.completions.create(model="m", messages=USER).route.deployment for _ in range(40)
    )
    assert served["fast"] >= 30, served
    emu.set_latency("llamacpp", ttft=0.0)
    emu.set_latency("vllm", ttft=0.03)
    served = Counter(
        router.chat.completions.create(model="m", messages=USER).route.deployment for _ in range(60)
    )
    assert served["slow"] >= 35, served


def test_provider_headers_update_headroom() -> None:
    load = LoadTracker(clock=lambda: 100.0)
    deployment = llmroute.Deployment("d", model="m", provider="vllm", base_url="http://x.invalid/v1")
    target = llmroute.Target(
        deployment, MODEL, llmroute.ProviderSpec("vllm", "vllm", "http://x.invalid/v1"), "m", "d"
    )
    load.observe_headers("d", {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
    ticket, wait = load.admit(target, 0)
    assert ticket is None and wait == 2.0
    assert load.headroom(target) == 0.0
    assert MostHeadroom().order([target], load, llmroute.routing.health.Health()) == [target]


def test_router_stays_under_provider_limits_it_learns_from_headers(emu: Emulator) -> None:
    """Two accounts (keys) of one provider, each limited to 5 requests a minute by the emulator; the
    router reads the rate-limit headers and moves on before the provider has to say 429."""
    emu.set_rate_limit("vllm", 5, key="key-a")
    emu.set_rate_limit("vllm", 5, key="key-b")
    client = emu.http_client()
    deployments = [
        llmroute.Deployment(
            name, model="m", provider="vllm", base_url=emu.base_url("vllm"), api_key=key, http_client=client
        )
        for name, key in (("a", "key-a"), ("b", "key-b"))
    ]
    router = llmroute.Router(
        deployments, models=[MODEL], balancer=LeastBusy(), retry=llmroute.RetryPolicy(deadline=1.0)
    )
    served = Counter(
        router.chat.completions.create(model="m", messages=USER).route.deployment for _ in range(10)
    )
    assert served == {"a": 5, "b": 5}
    assert not any(r.status == 429 for r in emu.requests)
    with pytest.raises(NoCapacity):
        router.chat.completions.create(model="m", messages=USER)
    assert len(emu.requests) == 10  # the 11th call was refused here, not sent
