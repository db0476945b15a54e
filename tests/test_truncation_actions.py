"""The router acts on truncation verdicts as its TruncationPolicy says."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import USER, reconcile_ledger

import llmroute
from llmroute.errors import TruncatedResponse
from llmroute.testing import Emulator, Fault
from llmroute.truncation import TruncationPolicy


def test_content_filter_falls_back_by_default(make_router: Any, emu: Emulator) -> None:
    router = make_router(fallbacks=["deepseek-v3.2"])
    emu.inject(Fault.content_filter(after_tokens=4), provider="openai", times=1)
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.route.deployment == "ds" and not reply.route.truncated
    assert [r.outcome for r in reply.route.attempts] == ["truncated", "ok"]
    reconcile_ledger(router.ledger, emu)


def test_content_filter_with_nowhere_to_go_returns_the_flagged_answer(
    make_router: Any, emu: Emulator
) -> None:
    router = make_router()
    emu.inject(Fault.content_filter(after_tokens=4), provider="openai", times=1)
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.route.truncated and reply.route.verdict is not None
    assert reply.route.verdict.kind == "content_filter"


def test_silent_truncation_is_flagged_with_reasons(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    emu.inject(Fault.silent_stop(after_tokens=6), provider="deepseek", times=1)
    reply = router.chat.completions.create(model="deepseek-v3.2", messages=USER)
    assert reply.choices[0].finish_reason == "stop"
    verdict = reply.route.verdict
    assert verdict is not None and verdict.kind == "suspected" and verdict.reasons
    assert reply.route.truncated and router.ledger.rows()[-1].outcome == "truncated"


def test_raise_on_length(make_router: Any) -> None:
    router = make_router(truncation=TruncationPolicy(length="raise"))
    with pytest.raises(TruncatedResponse) as info:
        router.chat.completions.create(model="gpt-5.4", messages=USER, max_tokens=3)
    assert info.value.verdict.kind == "length"
    assert info.value.completion.choices[0].finish_reason == "length"
    assert len(router.ledger) == 1  # billed, recorded, and not retried elsewhere


def test_retry_with_a_larger_limit(make_router: Any, emu: Emulator) -> None:
    router = make_router(truncation=TruncationPolicy(length="retry_larger"))
    messages = [{"role": "user", "content": "[[emulator:tokens=15]] Explain caching."}]
    reply = router.chat.completions.create(model="deepseek-v3.2", messages=messages, max_tokens=5)
    assert reply.choices[0].finish_reason == "stop" and not reply.route.truncated
    sent = [r.body.get("max_tokens") for r in emu.requests]
    assert sent == [5, 10, 20]
    assert [r.outcome for r in router.ledger] == ["truncated", "truncated", "ok"]
    reconcile_ledger(router.ledger, emu)


def test_continue_joins_the_parts(make_router: Any, emu: Emulator) -> None:
    router = make_router(truncation=TruncationPolicy(length="continue"))
    messages = [{"role": "user", "content": "[[emulator:tokens=12]] Tell a story."}]
    reply = router.chat.completions.create(model="deepseek-v3.2", messages=messages, max_tokens=5)
    rows = router.ledger.rows()
    assert len(rows) == 3 and len(emu.requests) == 3
    assert emu.requests[1].body["messages"][-2]["role"] == "assistant"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(r.usage.output_tokens for r in rows)
    assert reply.route.usage.output_tokens == reply.usage.completion_tokens
    reconcile_ledger(router.ledger, emu)


def test_stream_verdicts(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    emu.inject(Fault.silent_stop(after_tokens=6), provider="deepseek", times=1)
    stream = router.chat.completions.create(model="deepseek-v3.2", messages=USER, stream=True)
    list(stream)
    assert stream.route.verdict is not None and stream.route.verdict.kind == "suspected"
    assert stream.route.truncated


def test_complete_answers_are_not_flagged(make_router: Any) -> None:
    router = make_router()
    for model in ("gpt-5.4", "deepseek-v3.2"):
        reply = router.chat.completions.create(model=model, messages=USER)
        assert reply.route.verdict is not None and reply.route.verdict.kind == "complete", reply.route.verdict
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER, stop=["the"])
    assert not reply.route.truncated  # the caller's own stop sequence: not a truncation
    assert isinstance(llmroute.RouteInfo, type)
