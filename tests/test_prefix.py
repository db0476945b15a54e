"""llmroute.prefix: layout, provider cache hints, linter, cache affinity, measured hit rate, warm-up.

End-to-end tests run through `llmroute.Router` on the emulator, which implements each provider's
caching rules (OpenAI 128-token blocks from 1,024, DeepSeek 64-token units, vLLM 16-token blocks,
Anthropic breakpoints).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_DEEPSEEK, CANARY_OPENAI

import llmroute
from llmroute.hinting import RouteHints
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.policies import CacheAffinity, Cheapest, PrefixLabel
from llmroute.policy import RouteContext, Target
from llmroute.prefix import (
    Conversation,
    Document,
    Example,
    PromptLayout,
    cache_hints,
    cache_report,
    lint_prompt,
    lint_sequence,
    main,
    min_cache_tokens,
    prefix_fingerprint,
    warm_up,
    warm_up_kwargs,
)
from llmroute.prefix._canon import canonical, fingerprint, located_segments, normalize_text
from llmroute.request import ChatRequest
from llmroute.routing.balance import WeightedRandom
from llmroute.testing import Emulator
from llmroute.tokens import count_messages, encoder_for, prompt_segments
from llmroute.usage import Usage

CANARY_ANTHROPIC = "sk-ant-canary-prefix-0123456789"
GUIDE = "\n".join(
    f"Rule {i}: check the diff for problem number {i} and explain it briefly and kindly." for i in range(160)
)
SHORT = "You review code. Be brief."


def tool(name: str, description: str = "Does a thing.", **props: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props or {"x": {"type": "string"}}},
        },
    }


TOOLS = [
    tool("post_comment", "Post a comment."),
    tool("approve", "Approve."),
    tool("run_tests", "Run tests."),
]


def reordered(value: Any) -> Any:
    """`value` with every dict's keys in reverse order (same data, different serialisation)."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def dep(emu: Emulator, provider: str, model: str, name: str | None = None) -> llmroute.Deployment:
    keys = {"openai": CANARY_OPENAI, "deepseek": CANARY_DEEPSEEK, "anthropic": CANARY_ANTHROPIC}
    return llmroute.Deployment(
        name or provider,
        model=model,
        provider=provider if provider == "vllm" else None,
        base_url=emu.base_url(provider),
        api_key=keys.get(provider),
        http_client=emu.http_client(),
    )


def request(kwargs: dict[str, Any], model: str = "gpt-5.4") -> ChatRequest:
    return ChatRequest.from_kwargs({"model": model, **kwargs}, RouteHints())


def targets(router: llmroute.Router) -> tuple[Target, ...]:
    return router._core.candidates(())


# ---------------------------------------------------------------- canonical form


def test_canonical_sorts_keys_recursively_and_keeps_list_order() -> None:
    value = {"b": [{"z": 1, "a": 2}, 3], "a": (1, 2)}
    out = canonical(value)
    assert list(out) == ["a", "b"] and list(out["b"][0]) == ["a", "z"]
    assert out["a"] == [1, 2] and out["b"][1] == 3


def test_normalize_text_is_harmless() -> None:
    text = "\r\n  Title  \r\n\r\n\r\n\r\n    indented code\t\nlast line   \n\n"
    assert normalize_text(text) == "Title\n\n    indented code\nlast line"
    assert normalize_text(normalize_text(text)) == normalize_text(text)


def test_located_segments_mirror_prompt_segments() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SHORT},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "approve", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    located = located_segments(messages, TOOLS)
    assert [s.segment for s in located] == prompt_segments(messages, TOOLS)
    assert located[1].where == "tools" and located[-1].where == "reply priming"
    assert any(s.where == "messages[2].tool_calls[0].function.arguments" for s in located)


# ---------------------------------------------------------------- the layout


def test_layout_renders_stable_parts_first_in_canonical_form() -> None:
    layout = PromptLayout(
        system="  Review carefully.  \r\n",
        tools=[tool("zeta"), tool("alpha", "  Alpha tool.  ")],
        documents=[Document("PEP 8 applies.", title="Style"), "Use type hints."],
        examples=[Example("diff 1", "LGTM"), ("diff 2", "Needs tests.")],
    )
    out = layout.render(
        [{"role": "user", "content": "old"}, {"content": "ok", "role": "assistant"}],
        "new diff",
        context="Today: 2026-11-23",
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["alpha", "zeta"]
    assert out["tools"][0]["function"]["description"] == "Alpha tool."
    assert list(out["tools"][0]) == ["function", "type"]  # keys sorted
    roles = [m["role"] for m in out["messages"]]
    assert roles == [
        "system",
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert out["messages"][0]["content"] == "Review carefully."
    assert '<document index="1" title="Style">\nPEP 8 applies.\n</document>' in out["messages"][1]["content"]
    assert '<document index="2">\nUse type hints.\n</document>' in out["messages"][1]["content"]
    assert list(out["messages"][7]) == ["role", "content"]  # history keys in a fixed order
    assert out["messages"][-1] == {"role": "user", "content": "Today: 2026-11-23\n\nnew diff"}
    assert "prompt_cache_key" not in out and "extra_body" not in out  # portable by default
    request(out)  # valid Chat Completions arguments


def test_layout_output_does_not_depend_on_how_the_caller_built_it() -> None:
    a = PromptLayout(system=GUIDE, tools=TOOLS)
    b = PromptLayout(system=GUIDE + "\n\n", tools=reordered(TOOLS[::-1]))
    assert json.dumps(a.render([], "x")) == json.dumps(b.render([], "x"))
    assert a.fingerprint == b.fingerprint
    assert a.cache_key() == b.cache_key() == f"llmroute-{a.fingerprint}"


def test_layout_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        PromptLayout(tools=[tool("a"), tool("a")])
    with pytest.raises(ValueError, match="nothing to render"):
        PromptLayout().render()
    with pytest.raises(ValueError, match="ttl"):
        PromptLayout(ttl="2h")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PromptLayout(system="x").render([], 42)


def test_examples_in_the_system_prompt() -> None:
    layout = PromptLayout(system="Be brief.", examples=[Example("2+2?", "4")], examples_as="system")
    messages = layout.render([], "3+3?")["messages"]
    assert len(messages) == 2 and "<example>\nUser: 2+2?\nAssistant: 4\n</example>" in messages[0]["content"]


def test_user_turn_forms() -> None:
    layout = PromptLayout(system="S")
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/a.png"}}]
    out = layout.render([], parts, context="ctx")
    assert out["messages"][-1]["content"][0] == {"text": "ctx", "type": "text"}
    tool_result = layout.render([], {"role": "tool", "tool_call_id": "c", "content": "ok"})["messages"][-1]
    assert tool_result == {"role": "tool", "content": "ok", "tool_call_id": "c"}
    assert layout.render([], None, context="only context")["messages"][-1]["content"] == "only context"


@pytest.mark.parametrize("provider", [None, "openai", "deepseek", "anthropic"])
def test_prefix_invariance_as_a_conversation_grows(provider: str | None) -> None:
    """Every turn's rendered messages start with the previous turn's messages, byte for byte, and
    the tools never change."""
    layout = PromptLayout(system=GUIDE, tools=TOOLS, documents=["Doc " * 300], examples=[Example("q", "a")])
    chat = Conversation(layout, provider=provider, model="claude-sonnet-4.6")
    rng = random.Random(5)
    previous: list[str] = []
    tools_json = None
    for turn in range(12):
        kwargs = chat.render(f"Turn {turn}: {rng.random()}", context=f"Now: 2026-11-23T10:{turn:02d}:00Z")
        rendered = [json.dumps(m) for m in kwargs["messages"]]
        assert rendered[: len(previous)] == previous
        assert len(rendered) > len(previous)
        if tools_json is not None:
            assert json.dumps(kwargs["tools"]) == tools_json
        tools_json = json.dumps(kwargs["tools"])
        request(kwargs)
        if turn % 3 == 2:  # a tool round trip
            call = {
                "id": f"call_{turn}",
                "type": "function",
                "function": {"name": "run_tests", "arguments": "{}"},
            }
            chat.add_reply({"role": "assistant", "content": None, "tool_calls": [call]})
            chat.add({"role": "tool", "tool_call_id": f"call_{turn}", "content": "passed"})
        else:
            chat.add_reply(f"Answer {turn}")
        previous = rendered


@pytest.mark.parametrize(
    ("provider", "model"), [("deepseek", "deepseek-v3.2"), ("anthropic", "claude-sonnet-4.6")]
)
def test_prefix_invariance_on_the_wire(make_router: Any, emu: Emulator, provider: str, model: str) -> None:
    """What reaches the provider (in its own wire format) grows by appending only, and the cache
    reads the earlier turns."""
    router = make_router(deployments=[dep(emu, provider, model)])
    chat = Conversation(PromptLayout(system=GUIDE, tools=TOOLS), provider=provider, model=model)
    bodies: list[dict[str, Any]] = []
    reads = []
    for turn in range(6):
        reply = router.chat.completions.create(model=model, max_tokens=30, **chat.render(f"Question {turn}?"))
        chat.add_reply(reply)
        bodies.append(emu.requests[-1].body)
        reads.append(reply.route.usage.cache_read_tokens)
    for before, after in itertools.pairwise(bodies):
        assert json.dumps(after["messages"][: len(before["messages"])]) == json.dumps(before["messages"])
        assert json.dumps(after.get("system")) == json.dumps(before.get("system"))
        assert json.dumps(after["tools"]) == json.dumps(before["tools"])
    assert reads[0] == 0 and reads == sorted(reads)
    assert reads[-1] - reads[1] >= 128  # the history is read from the cache too


def test_conversation_keeps_what_was_sent_and_drops_unanswered_retries() -> None:
    chat = Conversation(PromptLayout(system="S"))
    chat.render("first", context="ctx 1")
    chat.render("first, retried", context="ctx 2")  # a failed call rendered again: not sent twice
    chat.add_reply("answer")
    assert chat.history == [
        {"role": "user", "content": "ctx 2\n\nfirst, retried"},
        {"role": "assistant", "content": "answer"},
    ]


def test_history_accepts_sdk_messages(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    layout = PromptLayout(system=SHORT)
    reply = router.chat.completions.create(model="gpt-5.4", **layout.render([], "Hi"))
    out = layout.render([{"role": "user", "content": "Hi"}, reply.choices[0].message], "More")
    assert out["messages"][2] == {"role": "assistant", "content": reply.choices[0].message.content}


# ---------------------------------------------------------------- provider hints


def test_openai_prompt_cache_key_is_derived_from_the_prefix() -> None:
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    one = layout.render([], "a", provider="openai")
    two = layout.render(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "b", provider="openai"
    )
    assert one["prompt_cache_key"] == two["prompt_cache_key"] == f"llmroute-{layout.fingerprint}"
    other = PromptLayout(system=GUIDE + " More.", tools=TOOLS).render([], "a", provider="openai")
    assert other["prompt_cache_key"] != one["prompt_cache_key"]
    sharded = PromptLayout(system=GUIDE, cache_key_shards=4)
    keys = {sharded.cache_key(f"user-{i}") for i in range(50)}
    assert len(keys) == 4 and all(k.startswith(f"llmroute-{sharded.fingerprint}-") for k in keys)
    assert sharded.cache_key("user-1") == sharded.cache_key("user-1")


def _marks(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for t in kwargs.get("tools") or ():
        if "cache_control" in t:
            out.append(("tool:" + t["function"]["name"], t["cache_control"].get("ttl", "5m")))
    for i, m in enumerate(kwargs["messages"]):
        if isinstance(m["content"], list):
            for p in m["content"]:
                if "cache_control" in p:
                    out.append((f"message:{i}", p["cache_control"].get("ttl", "5m")))
    return out


def test_anthropic_breakpoints_at_stable_section_ends() -> None:
    big_tools = [tool(f"t{i}", "A long description of a tool. " * 60) for i in range(4)]
    layout = PromptLayout(
        system=GUIDE,
        tools=big_tools,
        documents=["Reference text. " * 700],
        examples=[Example("Example question " * 200, "Example answer " * 200)],
    )
    assert layout.breakpoints("claude-sonnet-4.6") == ["tools", "system", "documents", "examples"]
    single = layout.render([], "q", provider="anthropic", model="claude-sonnet-4.6")
    assert _marks(single) == [
        ("tool:t3", "5m"),
        ("message:0", "5m"),
        ("message:1", "5m"),
        ("message:3", "5m"),
    ]
    assert "extra_body" not in single
    # In a conversation the last slot goes to the automatic (top-level) breakpoint: 3 + 1 = 4.
    convo = layout.render(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        "c",
        provider="anthropic",
        model="claude-sonnet-4.6",
    )
    assert _marks(convo) == [("message:0", "5m"), ("message:1", "5m"), ("message:3", "5m")]
    assert convo["extra_body"] == {"cache_control": {"type": "ephemeral"}}
    hour = PromptLayout(system=GUIDE, ttl="1h").render(
        [], "q", provider="anthropic", model="claude-sonnet-4.6"
    )
    assert _marks(hour) == [("message:0", "1h")]


def test_anthropic_breakpoints_only_where_the_prefix_reaches_the_minimum() -> None:
    assert min_cache_tokens("claude-haiku-4.5") == 4096 and min_cache_tokens("claude-sonnet-4.6") == 1024
    layout = PromptLayout(system=SHORT, documents=[GUIDE])  # system alone is short; with the document long
    assert layout.breakpoints("claude-sonnet-4.6") == ["documents"]
    assert layout.breakpoints("claude-haiku-4.5") == []  # under 4,096 tokens
    assert _marks(layout.render([], "q", provider="anthropic", model="claude-haiku-4.5")) == []
    assert PromptLayout(system=SHORT).breakpoints("claude-sonnet-4.6") == []


def test_anthropic_layout_end_to_end(make_router: Any, emu: Emulator) -> None:
    router = make_router(deployments=[dep(emu, "anthropic", "claude-sonnet-4.6")])
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    usages = []
    for i in range(3):
        kwargs = layout.render(
            [], f"Diff {i}", context=f"Now: 10:0{i}", provider="anthropic", model="claude-sonnet-4.6"
        )
        usages.append(
            router.chat.completions.create(model="claude-sonnet-4.6", max_tokens=20, **kwargs).route.usage
        )
    assert usages[0].cache_write_tokens > 1024 and usages[0].cache_read_tokens == 0
    assert usages[1].cache_read_tokens == usages[0].cache_write_tokens and usages[1].cache_write_tokens == 0
    assert usages[2].cache_read_tokens == usages[1].cache_read_tokens
    # A conversation: the automatic breakpoint caches the history as well.
    chat = Conversation(layout, provider="anthropic", model="claude-sonnet-4.6")
    reads = []
    for turn in range(4):
        reply = router.chat.completions.create(
            model="claude-sonnet-4.6", max_tokens=20, **chat.render(f"Q{turn}?")
        )
        chat.add_reply(reply)
        reads.append(reply.route.usage.cache_read_tokens)
    assert reads[1] > reads[0] and reads[3] > reads[2] > reads[1]
    totals, bill = router.ledger.total().usage, emu.bill.total()
    assert (
        totals.cache_read_tokens == bill.cached_tokens
        and totals.cache_write_tokens == bill.cache_write_tokens
    )


def test_cache_hints_per_target(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        deployments=[
            dep(emu, "openai", "gpt-5.4"),
            dep(emu, "deepseek", "deepseek-v3.2"),
            dep(emu, "anthropic", "claude-sonnet-4.6"),
        ]
    )
    gpt, ds, claude = targets(router)
    plain = request(
        {"messages": [{"role": "system", "content": GUIDE}, {"role": "user", "content": "q"}], "tools": TOOLS}
    )
    snapshot = json.dumps([plain.messages, plain.body])
    hinted = cache_hints(plain, gpt)
    assert hinted.body["prompt_cache_key"] == f"llmroute-{prefix_fingerprint(plain)}"
    assert (
        cache_hints(request({**{"messages": plain.messages}, "prompt_cache_key": "mine"}), gpt).body[
            "prompt_cache_key"
        ]
        == "mine"
    )
    assert cache_hints(plain, ds) is plain  # nothing to add, nothing to strip
    anth = cache_hints(plain, claude)
    assert anth.body["tools"][-1].get("cache_control") is None  # tools alone are under 1,024 tokens
    assert anth.messages[0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert anth.extra_body is None  # not a conversation
    assert json.dumps([plain.messages, plain.body]) == snapshot  # the input is never mutated
    convo = request(
        {
            "messages": [
                {"role": "system", "content": GUIDE},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "q2"},
            ]
        }
    )
    assert cache_hints(convo, claude).extra_body == {"cache_control": {"type": "ephemeral"}}
    marked = request(
        PromptLayout(system=GUIDE).render([], "q", provider="anthropic"), model="claude-sonnet-4.6"
    )
    assert cache_hints(marked, claude) is marked  # the caller's own breakpoints win
    stripped = cache_hints(marked, ds)
    assert stripped.messages[0]["content"] == [{"type": "text", "text": GUIDE}]
    # Each hinted request still goes through its adapter.
    for target, req in ((gpt, hinted), (claude, anth), (ds, stripped)):
        reply = router.chat.completions.create(
            model=target.deployment.name,
            max_tokens=5,
            messages=req.messages,
            **{k: v for k, v in req.body.items() if k != "max_tokens"},
        )
        assert reply.route.deployment == target.deployment.name


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_follows_the_rendered_stable_part() -> None:
    base = [{"role": "system", "content": GUIDE}, {"role": "user", "content": "a"}]
    fp = prefix_fingerprint(base, TOOLS)
    assert fp is not None and len(fp) == 16
    assert (
        prefix_fingerprint([*base[:1], {"role": "user", "content": "b"}], TOOLS) == fp
    )  # the turn is not in it
    assert prefix_fingerprint(base, TOOLS[::-1]) != fp  # tool order is
    assert prefix_fingerprint([{"role": "developer", "content": GUIDE}, base[1]], TOOLS) != fp  # the role is
    parts = [
        {
            "role": "system",
            "content": [{"type": "text", "text": GUIDE, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    assert prefix_fingerprint([*parts, base[1]], TOOLS) == fp  # same prompt: string or part, marks ignored
    marked_tools = [*TOOLS[:-1], {**TOOLS[-1], "cache_control": {"type": "ephemeral"}}]
    assert prefix_fingerprint(base, marked_tools) == fp
    assert (
        prefix_fingerprint({"messages": base, "tools": TOOLS, "response_format": {"type": "json_object"}})
        != fp
    )
    assert prefix_fingerprint([{"role": "user", "content": "no stable part"}]) is None
    assert fingerprint(base[:1], TOOLS) == fp


def test_fingerprint_memo_is_keyed_on_content_not_just_identity() -> None:
    system = {"role": "system", "content": GUIDE}
    first = prefix_fingerprint([system, {"role": "user", "content": "a"}], TOOLS)
    assert prefix_fingerprint([system, {"role": "user", "content": "a"}], TOOLS) == first
    changed = {"role": "system", "content": GUIDE + "!"}
    assert prefix_fingerprint([changed, {"role": "user", "content": "a"}], TOOLS) != first


# ---------------------------------------------------------------- the linter


@pytest.mark.parametrize(
    ("snippet", "label"),
    [
        ("Current time: 2026-11-23T14:05:09Z.", "ISO timestamp"),
        ("Today is 2026-11-23.", "date"),
        ("Today is November 23, 2026.", "date"),
        ("It is 14:05 now.", "time of day"),
        ("Trace 3f2b1c9a-1111-4222-8333-444455556666.", "UUID"),
        ("Request: req_8f3kd92jd0s.", "request id"),
        ("request id: 1234abcd", "request id"),
        ("Generated at 1795000000.", "Unix timestamp"),
        ("Nonce 9f86d081884c7d659a2feaa0c55ad015.", "random-looking hex string"),
        ("Session Xk29fLq83ZmP0aQw.", "random-looking id"),
        ("This is call #42.", "counter"),
    ],
)
def test_lint_finds_volatile_content_in_the_prefix(snippet: str, label: str) -> None:
    messages = [
        {"role": "system", "content": f"{SHORT} {snippet} {GUIDE}"},
        {"role": "user", "content": snippet},
    ]
    findings = [f for f in lint_prompt(messages) if f.kind == "volatile"]
    assert len(findings) == 1, findings
    finding = findings[0]
    assert finding.message.startswith(label) and finding.where == "messages[0].content"
    assert finding.text is not None and finding.text in snippet
    enc = encoder_for("")
    before = messages[0]["content"].index(finding.text)
    assert finding.token == 3 + enc.count("system") + enc.count(messages[0]["content"][:before])


def test_lint_locates_volatile_content_in_tools() -> None:
    tools = [TOOLS[0], tool("deploy", "Deploys build 2026-11-23T10:00:00Z.")]
    findings = lint_prompt([{"role": "user", "content": "q"}], tools)
    assert [(f.kind, f.where) for f in findings] == [("volatile", "tools[1] (deploy)")]


def test_lint_short_prefix_uses_the_catalog_minimum() -> None:
    messages = [{"role": "system", "content": SHORT}, {"role": "user", "content": "q"}]
    (finding,) = lint_prompt({"model": "gpt-5.4", "messages": messages})
    assert finding.kind == "short_prefix" and "2048" in finding.message
    (deepseek,) = lint_prompt(messages, model="deepseek-v3.2")
    assert deepseek.kind == "short_prefix" and "64" in deepseek.message
    medium = [{"role": "system", "content": "Be brief and exact. " * 20}, messages[1]]
    assert lint_prompt(medium, model="deepseek-v3.2") == []  # 64 tokens is enough for DeepSeek
    long = [{"role": "system", "content": GUIDE}, messages[1]]
    assert lint_prompt(long, model="gpt-5.4") == []
    assert lint_prompt(messages, model="not-a-model") == []  # unknown minimum: no claim
    (info,) = lint_prompt([{"role": "user", "content": "q"}], model="gpt-5.4")
    assert info.kind == "no_stable_prefix" and info.severity == "info"


def test_lint_flags_a_late_system_message() -> None:
    messages = [
        {"role": "system", "content": GUIDE},
        {"role": "user", "content": "q"},
        {"role": "system", "content": "Now answer in French."},
        {"role": "user", "content": "q2"},
    ]
    (finding,) = lint_prompt(messages)
    assert finding.kind == "late_system" and finding.where == "messages[2]" and finding.severity == "info"


def test_a_layout_lints_clean() -> None:
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    sequence = [
        {"model": "gpt-5.4", **layout.render([], f"Diff {i}", context=f"Now: 2026-11-23T10:0{i}:00Z")}
        for i in range(5)
    ]
    report = lint_sequence(sequence)
    assert report.ok and report.findings == []
    assert all(b.expected and b.reason == "new_turn" for b in report.breaks)
    assert report.common_share > 0.95


def _req(system: str = GUIDE, user: str = "hi", tools: Any = TOOLS, history: Any = ()) -> dict[str, Any]:
    return {
        "model": "gpt-5.4",
        "messages": [{"role": "system", "content": system}, *history, {"role": "user", "content": user}],
        "tools": list(tools),
    }


@pytest.mark.parametrize(
    ("before", "after", "reason", "where"),
    [
        (_req(), _req(user="other"), "new_turn", "messages[1].content"),
        (
            _req(),
            _req(history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]),
            "extends",
            "messages[2]",
        ),
        (_req(), _req(), "identical", "end"),
        (_req(), _req(tools=TOOLS[::-1]), "tools_reordered", "tools[0] (run_tests)"),
        (
            _req(),
            _req(tools=[reordered(TOOLS[0]), *TOOLS[1:]]),
            "tools_keys_reordered",
            "tools[0] (post_comment)",
        ),
        (
            _req(),
            _req(tools=[tool("post_comment", "New text."), *TOOLS[1:]]),
            "tools_changed",
            "tools[0] (post_comment)",
        ),
        (_req(), _req(tools=TOOLS[:2]), "tools_changed", "tools"),
        (
            _req("Now: 2026-11-23T10:00:00Z\n" + GUIDE),
            _req("Now: 2026-11-23T10:00:07Z\n" + GUIDE),
            "volatile_changed",
            "messages[0].content",
        ),
        (_req("Run #41. " + GUIDE), _req("Run #42. " + GUIDE), "counter", "messages[0].content"),
        (_req("Seed 5531. " + GUIDE), _req("Seed 9120. " + GUIDE), "volatile_changed", "messages[0].content"),
        (_req("Hello Ann. " + GUIDE), _req("Hello Bob. " + GUIDE), "system_changed", "messages[0].content"),
        (_req(GUIDE + "  "), _req(GUIDE + " "), "whitespace", "messages[0].content"),
        (
            _req(
                history=[
                    {"role": "user", "content": '{"a": 1, "b": 2}'},
                    {"role": "assistant", "content": "x"},
                ]
            ),
            _req(
                history=[
                    {"role": "user", "content": '{"b": 2, "a": 1}'},
                    {"role": "assistant", "content": "x"},
                ]
            ),
            "keys_reordered",
            "messages[1].content",
        ),
        (
            _req(history=[{"role": "user", "content": "ctx\n\nq"}, {"role": "assistant", "content": "x"}]),
            _req(history=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]),
            "history_changed",
            "messages[1].content",
        ),
        (_req(), {**_req(), "prompt_cache_key": "k2"}, "cache_key_changed", "prompt_cache_key"),
        (_req(), {**_req(), "model": "gpt-5.5"}, "model_changed", "model"),
    ],
)
def test_lint_sequence_says_where_and_why_the_common_prefix_ends(
    before: dict[str, Any], after: dict[str, Any], reason: str, where: str
) -> None:
    report = lint_sequence([before, after])
    (brk,) = report.breaks
    assert (brk.reason, brk.where) == (reason, where), brk
    expected = reason in ("new_turn", "extends", "identical", "model_changed")
    assert brk.expected is expected
    if expected:
        assert report.ok
    else:
        assert any(f.kind == reason for f in report.findings)


def test_lint_sequence_token_index_of_the_break() -> None:
    a = _req("Now: 2026-11-23T10:00:00Z\n" + GUIDE)
    b = _req("Now: 2026-11-23T10:00:07Z\n" + GUIDE)
    (brk,) = lint_sequence([a, b]).breaks
    enc = encoder_for("gpt-5.4")
    tokens_a = enc.tokens(a["messages"][0]["content"])
    tokens_b = enc.tokens(b["messages"][0]["content"])
    shared = next(i for i, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=False)) if x != y)
    tools_tokens = count_messages([], "gpt-5.4", tools=TOOLS).tokens - 3  # without the reply priming
    before = tools_tokens + 3 + enc.count("system")  # then the system message's overhead and role
    assert brk.common_tokens == before + shared
    assert brk.prompt_tokens == count_messages(b["messages"], "gpt-5.4", tools=TOOLS).tokens


def test_lint_sequence_counts_repeated_findings() -> None:
    rng = random.Random(1)
    sequence = []
    for i in range(6):
        shuffled = list(TOOLS)
        rng.shuffle(shuffled)
        sequence.append(_req(f"Time: 2026-11-23T10:00:0{i}Z\n{GUIDE}", user=f"q{i}", tools=shuffled))
    report = lint_sequence(sequence)
    assert not report.ok
    volatile = [f for f in report.findings if f.kind == "volatile"]
    assert len(volatile) == 1 and volatile[0].count == 6 and volatile[0].request == 0
    assert "6 request(s)" in report.format() and "BREAK" in report.format()
    assert json.loads(json.dumps(report.as_dict()))["ok"] is False


def test_lint_accepts_requests_in_every_form() -> None:
    messages = [{"role": "system", "content": "At 10:00."}, {"role": "user", "content": "q"}]
    expected = lint_prompt({"model": "gpt-5.4", "messages": messages})
    assert [f.kind for f in expected] == ["volatile", "short_prefix"]
    assert lint_prompt(messages, model="gpt-5.4") == expected
    assert lint_prompt({"body": {"model": "gpt-5.4", "messages": messages}}) == expected
    assert lint_prompt(request({"messages": messages})) == expected
    with pytest.raises(ValueError):
        lint_prompt({"no": "messages"})


def test_lint_prompt_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(_req()))
    assert main([str(clean), "--model", "gpt-5.4"]) == 0
    assert "no findings" in capsys.readouterr().out
    naive = tmp_path / "naive.jsonl"
    naive.write_text(
        "\n".join(json.dumps(_req(f"Now: 2026-11-23T10:00:0{i}Z\n{GUIDE}", user=f"q{i}")) for i in range(3))
    )
    assert main([str(naive)]) == 1
    out = capsys.readouterr().out
    assert "ISO timestamp" in out and "BREAK" in out
    assert main([str(naive), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["requests"] == 3 and data["breaks"][0]["reason"] == "volatile_changed"
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"requests": [_req(), _req(user="x")]}))
    assert main([str(listed)]) == 0
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(_req()["messages"]))
    assert main([str(bare)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main([str(bad)]) == 2
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert main([str(empty)]) == 2
    assert main([str(tmp_path / "missing.json")]) == 2
    assert main([]) == 2
    assert main([str(tmp_path / "clean.json"), "--bogus"]) == 2
    (tmp_path / "notreq.json").write_text(json.dumps([1, 2]))
    assert main([str(tmp_path / "notreq.json")]) == 2
    capsys.readouterr()


# ---------------------------------------------------------------- prefix labels and affinity


def test_prefix_label_puts_the_fingerprint_on_ledger_rows(make_router: Any) -> None:
    router = make_router(policy=llmroute.Requested() | PrefixLabel())
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    router.chat.completions.create(model="gpt-5.4", **layout.render([], "a"))
    router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "no prefix"}])
    first, second = router.ledger.rows()
    tokens = count_messages(list(layout.stable_messages), "gpt-5.4", tools=list(layout.tools)).tokens - 3
    assert first.labels == {"prefix": layout.fingerprint, "prefix_tokens": str(tokens)}
    assert second.labels == {}


def replicas(n: int, seed: int = 0) -> tuple[list[Emulator], list[llmroute.Deployment]]:
    emus = [Emulator(seed=k, vllm_prompt_details=True) for k in range(n)]
    deployments = [dep(e, "vllm", "qwen3-8b", f"vllm-{k}") for k, e in enumerate(emus)]
    return emus, deployments


def tenant(p: int) -> PromptLayout:
    return PromptLayout(system=f"Tenant {p}. " + " ".join(f"Clause {p}-{k} applies." for k in range(150)))


def test_cache_affinity_keeps_a_prefix_on_its_warm_replica(make_router: Any) -> None:
    _, deployments = replicas(4)
    affinity = CacheAffinity()
    router = make_router(
        deployments=deployments,
        policy=llmroute.Requested() | affinity,
        balancer=WeightedRandom(seed=3),
    )
    order = [p for p in range(6) for _ in range(5)]
    random.Random(2).shuffle(order)
    layouts = [tenant(p) for p in range(6)]
    served: dict[int, set[str]] = {}
    for i, p in enumerate(order):
        reply = router.chat.completions.create(
            model="qwen3-8b", max_tokens=5, **layouts[p].render([], f"Q{i}")
        )
        served.setdefault(p, set()).add(reply.route.deployment)
    assert all(len(s) == 1 for s in served.values())  # each prefix stayed on one replica
    cold = [r for r in router.ledger if r.usage.cache_read_tokens == 0]
    assert len(cold) == 6  # one cold start per prefix
    report = cache_report(router.ledger)
    assert report.total.hit_share > 0.95
    again = router.chat.completions.create(model="qwen3-8b", max_tokens=5, **layouts[0].render([], "again"))
    decision = again.route.decision
    assert any("warm prefix, expected hit" in r for r in decision.reasons()[decision.targets[0].name])
    shares = affinity.hit_shares(layouts[0].fingerprint)
    assert set(shares) == served[0] and all(v > 0.9 for v in shares.values())


def test_without_affinity_replicas_start_cold_more_often(make_router: Any) -> None:
    _, deployments = replicas(4)
    router = make_router(
        deployments=deployments, policy=llmroute.Requested() | PrefixLabel(), balancer=WeightedRandom(seed=3)
    )
    layouts = [tenant(p) for p in range(6)]
    for i in range(30):
        router.chat.completions.create(model="qwen3-8b", max_tokens=5, **layouts[i % 6].render([], f"Q{i}"))
    cold = [r for r in router.ledger if r.usage.cache_read_tokens == 0]
    assert len(cold) > 6


def test_affinity_forgets_after_the_cache_lifetime(make_router: Any) -> None:
    now = [1_000.0]
    _, deployments = replicas(2)
    affinity = CacheAffinity(clock=lambda: now[0], lifetimes={"vllm": 60.0})
    router = make_router(deployments=deployments, policy=llmroute.Requested() | affinity)
    layout = tenant(1)
    req = request(layout.render([], "q"), model="qwen3-8b")
    rows = [
        LedgerRow(
            "c1",
            1,
            1_000.0,
            "vllm-1",
            "vllm",
            "qwen3-8b",
            "qwen3-8b",
            None,
            RouteHints(),
            Usage(2000, 5, 0),
            None,
            labels={"prefix": layout.fingerprint, "prefix_tokens": "1990"},
        ),
        LedgerRow(
            "c2",
            1,
            1_010.0,
            "vllm-1",
            "vllm",
            "qwen3-8b",
            "qwen3-8b",
            None,
            RouteHints(),
            Usage(2000, 5, 1984),
            None,
            labels={"prefix": layout.fingerprint, "prefix_tokens": "1990"},
        ),
    ]
    affinity.warm(rows)
    ctx = RouteContext(req, req.hints, targets(router))
    now[0] = 1_030.0
    decision = affinity.decide(ctx)
    assert decision.targets[0].name == "vllm-1"
    assert affinity.expected_hit_share(layout.fingerprint, "vllm-1") == pytest.approx(1984 / 2000)
    now[0] = 1_100.0  # 90 s after the last use: the replica's cache may have dropped it
    decision = affinity.decide(ctx)
    assert decision.targets[0].name == "vllm-0"
    assert affinity.expected_hit_share(layout.fingerprint, "vllm-1") == 0.0
    assert decision.steps[0].kept[0][1] == "cold prefix"


def test_the_balancer_order_stands_when_the_affinity_has_no_opinion() -> None:
    calls = []

    class Spy(WeightedRandom):
        def order(self, group: Any, load: Any, health: Any) -> list[Any]:
            calls.append([t.name for t in group])
            return list(reversed(group))

    _, deployments = replicas(2)
    affinity = CacheAffinity()
    router = llmroute.Router(deployments, policy=llmroute.Requested() | affinity, balancer=Spy())
    with router:
        reply = router.chat.completions.create(model="qwen3-8b", max_tokens=5, **tenant(0).render([], "q"))
    assert calls == [["vllm-0", "vllm-1"]] and reply.route.deployment == "vllm-1"


def test_cold_hash_spreads_prefixes_deterministically() -> None:
    _, deployments = replicas(4)
    router = llmroute.Router(deployments)
    candidates = targets(router)
    first_choice = {}
    for p in range(40):
        req = request(tenant(p).render([], "q"), model="qwen3-8b")
        picks = {
            CacheAffinity(cold="hash").decide(RouteContext(req, req.hints, candidates)).targets[0].name
            for _ in range(3)
        }
        assert len(picks) == 1  # no shared state needed: every process agrees
        first_choice[p] = picks.pop()
    assert len(set(first_choice.values())) == 4
    router.close()


def test_affinity_across_models_compares_expected_costs(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        deployments=[dep(emu, "deepseek", "deepseek-v3.2", "ds"), dep(emu, "openai", "gpt-5.4-mini", "mini")]
    )
    ds, mini = targets(router)
    layout = PromptLayout(system=GUIDE * 2, tools=TOOLS)
    req = request({**layout.render([], "q"), "max_tokens": 5}, model="auto")
    warm_rows = [
        LedgerRow(
            f"c{i}",
            1,
            1_000.0 + i,
            "mini",
            "openai",
            "gpt-5.4-mini",
            "gpt-5.4-mini",
            None,
            RouteHints(),
            Usage(4000, 5, 3968 if i else 0),
            None,
            labels={"prefix": layout.fingerprint, "prefix_tokens": "3990"},
        )
        for i in range(3)
    ]
    clock = lambda: 1_010.0  # noqa: E731
    # Cold mini ($0.75/M in) costs more than cold deepseek ($0.28/M); warm mini reads at $0.075/M.
    assert (
        CacheAffinity(clock=clock).warm(warm_rows).decide(RouteContext(req, req.hints, (ds, mini))).targets[0]
        is ds
    )
    across = CacheAffinity(across_models=True, clock=clock).warm(warm_rows)
    decision = across.decide(RouteContext(req, req.hints, (ds, mini)))
    assert decision.targets[0] is mini
    assert "est. $" in dict(decision.steps[0].kept)["mini"]
    # A warm target that is still dearer stays behind.
    dear = [
        LedgerRow(
            r.call_id,
            1,
            r.timestamp,
            "mini",
            "openai",
            "gpt-5.4-mini",
            "gpt-5.4-mini",
            None,
            RouteHints(),
            Usage(4000, 5, 400 if i else 0),
            None,
            labels=r.labels,
        )
        for i, r in enumerate(warm_rows)
    ]
    assert (
        CacheAffinity(across_models=True, clock=clock)
        .warm(dear)
        .decide(RouteContext(req, req.hints, (ds, mini)))
        .targets[0]
        is ds
    )


def test_affinity_composes_with_builtin_policies(make_router: Any, emu: Emulator) -> None:
    affinity = CacheAffinity()
    router = make_router(policy=Cheapest() | affinity)
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    for i in range(3):
        reply = router.chat.completions.create(model="auto", max_tokens=5, **layout.render([], f"q{i}"))
    assert [s.policy for s in reply.route.decision.steps][:2] == ["Cheapest", "CacheAffinity"]
    assert all(r.labels.get("prefix") == layout.fingerprint for r in router.ledger)
    assert "CacheAffinity" in repr(affinity)
    affinity.forget()
    assert affinity.hit_shares(layout.fingerprint) == {}


def test_affinity_ignores_rows_without_prefix_or_usage() -> None:
    affinity = CacheAffinity()
    affinity.observe("not a row")
    affinity.observe(
        LedgerRow(
            "c", 1, 1.0, "d", "openai", "m", "m", None, RouteHints(), Usage(), None, labels={"prefix": "p"}
        )
    )
    affinity.observe(LedgerRow("c", 1, 1.0, "d", "openai", "m", "m", None, RouteHints(), Usage(10, 1), None))
    assert affinity.hit_shares("p", now=1.0) == {}


def test_anthropic_one_hour_writes_extend_the_lifetime() -> None:
    affinity = CacheAffinity()
    labels = {"prefix": "p", "prefix_tokens": "2000"}
    affinity.observe(
        LedgerRow(
            "c",
            1,
            0.0,
            "claude",
            "anthropic",
            "m",
            "m",
            None,
            RouteHints(),
            Usage(2100, 5, 0, 2000, 2000),
            None,
            labels=labels,
        )
    )
    affinity.observe(
        LedgerRow(
            "c",
            1,
            100.0,
            "claude",
            "anthropic",
            "m",
            "m",
            None,
            RouteHints(),
            Usage(2100, 5, 2000),
            None,
            labels=labels,
        )
    )
    assert affinity.expected_hit_share("p", "claude", now=3000.0) == pytest.approx(2000 / 2100)


# ---------------------------------------------------------------- measured hit rate


def _row(
    t: float,
    dep_name: str,
    usage: Usage,
    prefix: str | None = "p",
    tokens: str = "3000",
    provider: str = "deepseek",
    model: str = "deepseek-v3.2",
) -> LedgerRow:
    price = llmroute.catalog.default_catalog().model(model)
    cost = price.price.cost(usage) if price is not None and price.price is not None else None
    labels = {"prefix": prefix, "prefix_tokens": tokens} if prefix else None
    return LedgerRow(
        "c", 1, t, dep_name, provider, model, model, None, RouteHints(), usage, cost, labels=labels
    )


def test_cache_report_figures() -> None:
    rows = [
        _row(0.0, "ds", Usage(3500, 100, 0)),  # cold start: nothing cacheable
        _row(10.0, "ds", Usage(3600, 100, 2944)),
        _row(20.0, "ds", Usage(3400, 100, 2944)),
        _row(30.0, "ds2", Usage(3400, 100, 0)),  # another deployment starts cold
        _row(30.0, "ds", Usage(0, 0), prefix="p"),  # an unbilled failure: ignored
        _row(40.0, "ds", Usage(50, 5, 0), prefix=None),  # unlabelled
    ]
    report = cache_report(Ledger(rows))
    by = {(r.prefix, r.deployment): r for r in report.rows}
    main_row = by[("p", "ds")]
    assert (main_row.calls, main_row.cacheable_tokens, main_row.cached_tokens) == (3, 6000, 5888)
    assert main_row.hit_share == pytest.approx(5888 / 6000)
    price = llmroute.catalog.default_catalog().model("deepseek-v3.2").price  # type: ignore[union-attr]
    assert price is not None
    expected = sum(
        (price.cost(Usage(u.input_tokens, u.output_tokens)).total - price.cost(u).total)
        for u in (rows[0].usage, rows[1].usage, rows[2].usage)
    )
    assert main_row.saved == expected and expected > 0
    assert by[("p", "ds2")].cacheable_tokens == 0 and by[("p", "ds2")].saved == Decimal(0)
    assert by[(None, "ds")].cacheable_tokens == 0
    assert report.total.calls == 5 and report.total.cached_tokens == 5888
    assert "total" in report.format() and json.loads(json.dumps(report.as_dict()))["total"]["calls"] == 5
    per_provider = cache_report(rows, by=("provider",))
    assert len(per_provider.rows) == 1 and per_provider.rows[0].provider == "deepseek"
    with pytest.raises(ValueError):
        cache_report(rows, by=("colour",))


def test_cache_report_respects_lifetimes_minimums_and_prices() -> None:
    rows = [_row(0.0, "ds", Usage(3500, 10)), _row(1_000.0, "ds", Usage(3500, 10))]
    assert cache_report(rows, lifetimes={"deepseek": 60.0}).total.cacheable_tokens == 0  # expired
    assert cache_report(rows).total.cacheable_tokens == 3000  # DeepSeek keeps prefixes for hours
    short = [
        _row(0.0, "g", Usage(900, 10), tokens="800", provider="openai", model="gpt-5.4"),
        _row(1.0, "g", Usage(900, 10), tokens="800", provider="openai", model="gpt-5.4"),
    ]
    assert cache_report(short).total.cacheable_tokens == 0  # below gpt-5.4's 2,048-token minimum
    unpriced = [_row(0.0, "x", Usage(3500, 10), provider="vllm", model="qwen3-8b")]
    assert cache_report(unpriced).total.saved is None  # unpriced: unknown, never $0
    assert "unpriced" in cache_report(unpriced).format()


def test_cache_report_matches_the_emulator_on_a_workload(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        deployments=[dep(emu, "deepseek", "deepseek-v3.2"), dep(emu, "anthropic", "claude-sonnet-4.6")],
        policy=llmroute.Requested() | PrefixLabel(),
    )
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    for provider, model in (("deepseek", "deepseek-v3.2"), ("anthropic", "claude-sonnet-4.6")):
        for i in range(10):
            kwargs = layout.render([], f"Diff {i}: " + "x" * (i * 37), provider=provider, model=model)
            router.chat.completions.create(model=model, max_tokens=10, **kwargs)
    report = cache_report(router.ledger, by=("provider",))
    assert report.total.cached_tokens == emu.bill.total().cached_tokens
    for row in report.rows:
        assert row.hit_share > 0.95 and row.saved is not None and row.saved > 0


# ---------------------------------------------------------------- warm-up


def test_warm_up_writes_the_prefix_once(make_router: Any, emu: Emulator) -> None:
    affinity = CacheAffinity()
    router = make_router(
        deployments=[dep(emu, "anthropic", "claude-sonnet-4.6")], policy=llmroute.Requested() | affinity
    )
    layout = PromptLayout(system=GUIDE, tools=TOOLS)
    reply = warm_up(router, layout, model="claude-sonnet-4.6", provider="anthropic", affinity=affinity)
    assert reply is not None and reply.route.usage.output_tokens == 1
    assert reply.route.usage.cache_write_tokens > 1024
    assert emu.requests[-1].body["max_tokens"] == 1
    assert warm_up(router, layout, model="claude-sonnet-4.6", provider="anthropic", affinity=affinity) is None
    first = router.chat.completions.create(
        model="claude-sonnet-4.6",
        max_tokens=10,
        **layout.render([], "Diff", provider="anthropic", model="claude-sonnet-4.6"),
    )
    assert first.route.usage.cache_read_tokens == reply.route.usage.cache_write_tokens
    assert warm_up_kwargs(PromptLayout(system=SHORT), model="claude-sonnet-4.6", provider="anthropic") is None


async def test_async_warm_up(make_async_router: Callable[..., llmroute.AsyncRouter], emu: Emulator) -> None:
    from llmroute.prefix import awarm_up

    router = make_async_router(
        deployments=[
            llmroute.Deployment(
                "ds",
                model="deepseek-v3.2",
                base_url=emu.base_url("deepseek"),
                api_key=CANARY_DEEPSEEK,
                async_http_client=emu.async_http_client(),
            )
        ]
    )
    layout = PromptLayout(system=GUIDE)
    reply = await awarm_up(router, layout, model="deepseek-v3.2")
    assert reply is not None and reply.route.usage.output_tokens == 1
    second = await router.chat.completions.create(
        model="deepseek-v3.2", max_tokens=5, **layout.render([], "q")
    )
    assert second.route.usage.cache_read_tokens > 0
    await router.close()
