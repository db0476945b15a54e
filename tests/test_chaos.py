"""Chaos: 2,000 calls with 30% injected faults on every provider but one healthy fallback.

Every call completes, no deployment is called again sooner than a provider's Retry-After asked, and
the ledger reconciles with the emulator's bill to the token.
"""

from __future__ import annotations

import random
from collections import defaultdict

from conftest import reconcile_ledger
from tenacity import wait_none

import llmroute
from llmroute.routing.cooldown import Cooldowns
from llmroute.testing import Emulator, Fault

CALLS = 2_000


def test_chaos_every_call_completes_and_the_ledger_reconciles() -> None:
    emu = Emulator(seed=42)
    client = emu.http_client()
    deployments = [
        llmroute.Deployment(
            "gpt", model="gpt-5.4", api_key="sk-test", base_url=emu.base_url("openai"), http_client=client
        ),
        llmroute.Deployment(
            "ds",
            model="deepseek-v3.2",
            api_key="sk-test",
            base_url=emu.base_url("deepseek"),
            http_client=client,
        ),
        llmroute.Deployment(
            "local", model="qwen3-8b", provider="vllm", base_url=emu.base_url("vllm"), http_client=client
        ),
    ]
    router = llmroute.Router(
        deployments,
        fallbacks=["deepseek-v3.2", "qwen3-8b"],
        retry=llmroute.RetryPolicy(wait=wait_none(), switch_after=0.01),
        cooldowns=Cooldowns(base_s=0.01, max_s=0.05, rate_limit_s=0.005),
    )
    faults = [
        Fault.rate_limit(retry_after=0.004),
        Fault.rate_limit(retry_after=0.004, retry_after_ms=True),
        Fault.server_error(500),
        Fault.server_error(502),
        Fault.overloaded(),
        Fault.timeout(),
        Fault.connection_reset(),
        Fault.content_filter(after_tokens=3),
        Fault.silent_stop(after_tokens=4),
    ]
    stream_faults = [*faults, Fault.stream_cut(after_tokens=0, final_chunk=True)]
    emu.fault_rate(0.3, faults, provider="openai", stream=False, seed=1)
    emu.fault_rate(0.3, faults, provider="deepseek", stream=False, seed=2)
    emu.fault_rate(0.3, stream_faults, provider="openai", stream=True, seed=3)
    emu.fault_rate(0.3, stream_faults, provider="deepseek", stream=True, seed=4)
    rng = random.Random(7)
    completed = 0
    for i in range(CALLS):
        model = rng.choice(["gpt-5.4", "deepseek-v3.2"])
        messages = [{"role": "user", "content": f"Question {i}: {'context ' * rng.randint(1, 30)}"}]
        if i % 5 == 0:
            stream = router.chat.completions.create(model=model, messages=messages, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        else:
            reply = router.chat.completions.create(model=model, messages=messages)
            assert reply.choices[0].message is not None
        completed += 1
    assert completed == CALLS

    # Retry-After: after a 429 asking for N seconds, that provider got no request for N seconds.
    last_429: dict[str, tuple[float, float]] = {}
    violations = 0
    for record in emu.requests:
        asked = last_429.get(record.provider)
        if asked is not None and record.time < asked[0] + asked[1]:
            violations += 1
        if record.status == 429 and record.fault:
            last_429[record.provider] = (record.time, 0.004)  # every injected 429 asks for 4 ms
    assert violations == 0

    totals = router.ledger.total()
    assert totals.calls == CALLS
    assert totals.errors > 0.1 * CALLS  # faults really happened and were survived
    outcomes: dict[str, int] = defaultdict(int)
    for row in router.ledger:
        outcomes[row.outcome] += 1
    assert outcomes["truncated"] > 0 and outcomes["error"] > 0
    reconcile_ledger(router.ledger, emu)
    router.close()
