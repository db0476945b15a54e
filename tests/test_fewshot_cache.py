"""Anthropic's automatic cache hints with few-shot examples: a stable system prompt + tools + three
user/assistant example pairs + a varying question is cached like the explicit
`PromptLayout.render(provider="anthropic")` (examples read on every call, nothing written after the
first calls), on the emulator, which implements Anthropic's breakpoint rules; a growing conversation
still gets the top-level automatic breakpoint."""

from __future__ import annotations

import itertools
from typing import Any

import llmroute
from llmroute.prefix import PromptLayout
from llmroute.testing import Emulator
from llmroute.tokens import REPLY_PRIMING

GUIDE = "\n".join(f"Rule {i}: check the diff for problem {i}, explain it briefly." for i in range(90))
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} on the repository.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for name in ("search", "post_comment")
]
EXAMPLES = [
    (f"Example {i}: review `value = compute({i})` " + "in the billing module. " * 30, "Looks fine. " * 40)
    for i in range(3)
]
MODEL = "claude-sonnet-4.6"


def _router(emu: Emulator) -> llmroute.Router:
    deployment = llmroute.Deployment(
        "claude",
        model=MODEL,
        base_url=emu.base_url("anthropic"),
        api_key="sk-x",
        http_client=emu.http_client(),
    )
    return llmroute.Router([deployment])


def _month(explicit: bool, calls: int = 6) -> list[Any]:
    emu = Emulator(seed=0)
    router = _router(emu)
    layout = PromptLayout(system=GUIDE, tools=TOOLS, examples=EXAMPLES)
    try:
        for i in range(calls):
            question = f"Review diff {i}: + total = price * {i + 2}"
            kwargs = layout.render([], question, provider="anthropic", model=MODEL) if explicit else None
            if kwargs is None:
                kwargs = layout.render([], question)  # no marks: the router's automatic hints
                assert all("cache_control" not in str(m) for m in kwargs["messages"])
            router.chat.completions.create(model=MODEL, max_tokens=5, **kwargs)
        assert len(emu.requests) == calls
        return [r.usage for r in router.ledger.rows()]
    finally:
        router.close()


def test_automatic_hints_cache_few_shot_examples_like_the_explicit_render() -> None:
    auto, explicit = _month(explicit=False), _month(explicit=True)
    stable_read = explicit[-1].cache_read_tokens
    assert stable_read > 1024 and explicit[-1].cache_write_tokens == 0
    for usage in auto[2:]:  # once the examples are known to repeat
        assert usage.cache_read_tokens == stable_read  # tools, system and the examples: all read
        assert usage.cache_write_tokens == 0  # the varying question is not written at 1.25x
    hit = sum(u.cache_read_tokens for u in auto[1:]) / sum(u.cache_read_tokens for u in explicit[1:])
    assert hit == 1.0
    assert sum(u.cache_write_tokens for u in auto) <= sum(u.cache_write_tokens for u in explicit) + max(
        u.input_tokens - u.cache_read_tokens for u in auto
    )  # at most one question written once, on the first call


def test_a_growing_conversation_still_caches_its_newest_turn() -> None:
    emu = Emulator(seed=0)
    router = _router(emu)
    messages: list[dict[str, Any]] = [{"role": "system", "content": GUIDE}]
    usages = []
    try:
        for turn in range(4):
            messages.append({"role": "user", "content": f"Question {turn}: " + "explain the diff. " * 40})
            reply = router.chat.completions.create(model=MODEL, max_tokens=50, messages=messages)
            assert reply.route.usage is not None
            messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
            usages.append(reply.route.usage)
    finally:
        router.close()
    for before, now in itertools.pairwise(usages[1:]):
        # the previous call was cached through its newest turn: all of it is read now
        assert 0 <= before.input_tokens - now.cache_read_tokens <= REPLY_PRIMING
