"""Cascade: the cheap model first, escalating when a check rejects its answer."""

from __future__ import annotations

from typing import Any

from conftest import USER, reconcile_ledger

import llmroute
from llmroute.policies import Cascade, escalation_rate
from llmroute.testing import Emulator, Reply


def test_accepted_answers_stay_on_the_cheap_rung(make_router: Any, emu: Emulator) -> None:
    router = make_router(policy=Cascade(lambda completion: True, ["deepseek-v3.2", "gpt-5.4"]))
    reply = router.chat.completions.create(model="auto", messages=USER)
    assert reply.route.deployment == "ds" and len(reply.route.attempts) == 1
    assert escalation_rate(router.ledger) == 0.0


def test_rejected_answers_escalate_and_the_ledger_shows_both(make_router: Any, emu: Emulator) -> None:
    emu.set_reply(
        lambda ctx: Reply(text="not json at all") if ctx.provider == "deepseek" else Reply(text='{"ok": 1}')
    )

    def is_json_object(completion: Any) -> bool | str:
        text = completion.choices[0].message.content or ""
        return True if text.startswith("{") else "not a JSON object"

    router = make_router(policy=Cascade(is_json_object, ["deepseek-v3.2", "gpt-5.4"]))
    reply = router.chat.completions.create(model="auto", messages=USER)
    assert reply.route.deployment == "gpt" and reply.choices[0].message.content == '{"ok": 1}'
    assert [r.outcome for r in reply.route.attempts] == ["rejected", "ok"]
    assert escalation_rate(router.ledger) == 1.0
    # a rejected answer is billed, but it is not a failure of the deployment
    assert router.health.get("ds").failures == 0 and router._core.cooldowns.cooling_until("ds") is None
    reconcile_ledger(router.ledger, emu)


def test_when_every_rung_rejects_the_last_answer_is_returned(make_router: Any, emu: Emulator) -> None:
    router = make_router(policy=Cascade(lambda completion: "never good enough", ["deepseek-v3.2", "gpt-5.4"]))
    reply = router.chat.completions.create(model="auto", messages=USER)
    # the two rungs, then the remaining candidate (the self-hosted model), all rejected
    assert [r.outcome for r in reply.route.attempts] == ["rejected", "rejected", "rejected"]
    assert [r.deployment for r in reply.route.attempts] == ["ds", "gpt", "local"]


def test_cascade_composes_after_gates(make_router: Any) -> None:
    from llmroute.policies import Residency

    residency = Residency(
        {"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]}, default="internal"
    )
    router = make_router(policy=residency | Cascade(lambda c: True, ["deepseek-v3.2", "gpt-5.4"]))
    reply = router.chat.completions.create(model="auto", messages=USER, route={"sensitivity": "pii"})
    assert reply.route.deployment == "gpt"
    assert isinstance(router.policy, llmroute.Chain)
