"""Shadow: a sample of calls is also sent to a candidate in the background, and compared."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import USER, deployments, reconcile_ledger

import llmroute
from llmroute.policies import Residency, Shadow, shadow_report
from llmroute.testing import Emulator

RESIDENCY = Residency(
    {"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]}, default="internal"
)


def test_shadow_calls_are_recorded_beside_the_primary_without_changing_the_answer(emu: Emulator) -> None:
    router = llmroute.Router(
        deployments(emu), policy=RESIDENCY | Shadow("deepseek-v3.2", sample=1.0) | llmroute.Requested()
    )
    replies = [router.chat.completions.create(model="gpt-5.4", messages=USER) for _ in range(5)]
    router.close()  # waits for the background calls
    assert all(r.route.deployment == "gpt" and len(r.route.attempts) == 1 for r in replies)
    shadows = [r for r in router.ledger if r.labels.get("shadow") == "candidate"]
    assert len(shadows) == 5 and {r.deployment for r in shadows} == {"ds"}
    assert {r.labels["shadow_of"] for r in shadows} == {r.route.call_id for r in replies}
    (comparison,) = shadow_report(router.ledger)
    assert (comparison.primary_model, comparison.candidate_model, comparison.calls) == (
        "gpt-5.4",
        "deepseek-v3.2",
        5,
    )
    assert comparison.candidate_cost is not None and comparison.primary_cost is not None
    assert comparison.candidate_cost < comparison.primary_cost
    reconcile_ledger(router.ledger, emu)


def test_a_gate_keeps_pii_out_of_the_shadow_too(emu: Emulator) -> None:
    router = llmroute.Router(
        deployments(emu), policy=RESIDENCY | Shadow("deepseek-v3.2", sample=1.0) | llmroute.Requested()
    )
    router.chat.completions.create(model="gpt-5.4", messages=USER, route={"sensitivity": "pii"})
    router.close()
    assert not any(r.provider == "deepseek" for r in emu.requests)


def test_sampling(emu: Emulator) -> None:
    router = llmroute.Router(
        deployments(emu), policy=Shadow("deepseek-v3.2", sample=0.25, seed=4) | llmroute.Requested()
    )
    for _ in range(40):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    router.close()
    shadowed = sum(1 for r in router.ledger if r.labels.get("shadow"))
    assert 3 <= shadowed <= 20


def test_async_shadow(emu: Emulator) -> None:
    async def run() -> Any:
        router = llmroute.AsyncRouter(
            deployments(emu, asynchronous=True),
            policy=Shadow("deepseek-v3.2", sample=1.0) | llmroute.Requested(),
        )
        await asyncio.gather(
            *(router.chat.completions.create(model="gpt-5.4", messages=USER) for _ in range(4))
        )
        await router.close()
        return router

    router = asyncio.run(run())
    assert sum(1 for r in router.ledger if r.labels.get("shadow")) == 4
