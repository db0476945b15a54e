"""The built-in policies (`llmroute.policies`): each one, their composition, the hard-gate property,
and end to end through a `Router` over the emulator."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from conftest import USER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmroute.catalog import Deployment, ModelSpec, ProviderSpec, default_catalog, unpriced_model
from llmroute.errors import ConfigurationError, NoRoute
from llmroute.hinting import RouteHints
from llmroute.money.estimate import DEFAULT_OUTPUT_TOKENS, estimate_cost, estimate_prompt_tokens
from llmroute.money.ledger import LedgerRow
from llmroute.policies import (
    Budget,
    Capabilities,
    Cheapest,
    ContextWindow,
    Fastest,
    MaxCost,
    Pipeline,
    Prefer,
    Residency,
    Split,
    TaskType,
    bucket,
    by_name,
    default_chain,
    facts,
    from_spec,
    names,
    register,
    undescribed,
)
from llmroute.policy import Chain, Decision, Policy, Requested, RouteContext, Step, Target, _run
from llmroute.request import ChatRequest
from llmroute.routing.health import Health
from llmroute.testing import Emulator
from llmroute.tokens import TokenizerFallbackWarning
from llmroute.usage import Price, Usage

pytestmark = pytest.mark.filterwarnings("ignore::llmroute.tokens.TokenizerFallbackWarning")
warnings.filterwarnings("ignore", category=TokenizerFallbackWarning)

CATALOG = default_catalog()
SEED_LEVELS = {
    "public": ["*"],
    "internal": ["*"],
    "pii": ["US", "EU", "self-hosted"],
    "phi": ["US", "EU", "self-hosted"],
    "restricted": ["self-hosted"],
}
QWEN = ModelSpec(
    "qwen3-coder-32b",
    "vllm",
    "qwen3-coder-32b",
    context_window=131_072,
    capabilities=frozenset({"tools", "streaming"}),
    price=Price(input=Decimal("0.05"), output=Decimal("0.10")),
)


# ---------------------------------------------------------------- helpers


def target(
    name: str, model: str | ModelSpec, *, jurisdiction: str | None = None, provider: str | None = None
) -> Target:
    spec = model if isinstance(model, ModelSpec) else CATALOG.model(model)
    if spec is None:
        spec = unpriced_model(str(model), provider or "vllm")
    provider_spec = CATALOG.provider(provider or spec.provider)
    assert provider_spec is not None
    deployment = Deployment(name, model=spec.id, provider=provider_spec.name, jurisdiction=jurisdiction)
    return Target(deployment, spec, provider_spec, spec.api_name, name)


GPT = target("gpt", "gpt-5.4")
DS = target("ds", "deepseek-v3.2")
FLASH = target("flash", "deepseek-v4-flash")
MINI = target("mini", "gpt-5.4-mini")
NANO = target("nano", "gpt-5-nano")
LOCAL = target("local", QWEN)
UNKNOWN = target("mystery", "mystery-model-7b", provider="vllm")
ALL = (GPT, DS, FLASH, MINI, NANO, LOCAL, UNKNOWN)
ODD = Target(  # an endpoint of a provider the catalog does not know: jurisdiction "unknown"
    Deployment("odd", model="odd-model", provider="acme"),
    unpriced_model("odd-model", "acme"),
    ProviderSpec("acme", "openai", "https://acme.invalid/v1"),
    "odd-model",
    "odd",
)


def request(
    messages: Sequence[dict[str, Any]] = USER, *, hints: RouteHints | None = None, **kwargs: Any
) -> ChatRequest:
    return ChatRequest.from_kwargs(
        {"model": "auto", "messages": list(messages), **kwargs}, hints or RouteHints()
    )


def ctx(
    candidates: Sequence[Target] = ALL,
    *,
    messages: Sequence[dict[str, Any]] = USER,
    health: Health | None = None,
    **hints: Any,
) -> RouteContext:
    kwargs = {k: hints.pop(k) for k in list(hints) if k not in RouteHints.__dataclass_fields__}
    route = RouteHints.coerce(hints)
    req = request(messages, hints=route, **kwargs)
    return RouteContext(req, route, tuple(candidates), (), health or Health(), None)


def kept(policy: Policy, context: RouteContext) -> list[str]:
    return [t.name for t in policy.decide(context).targets]


def reasons(policy: Policy, context: RouteContext) -> dict[str, str]:
    step = policy.decide(context).steps[-1]
    return dict(step.kept)


def dropped(policy: Policy, context: RouteContext) -> dict[str, str]:
    """Every rejection as {target: "Gate: reason"} (raises nothing: NoRoute is caught)."""
    try:
        steps = policy.decide(context).steps
        rejections = [r for s in steps for r in s.dropped]
    except NoRoute as e:
        rejections = list(e.rejections)
    return {r.deployment: f"{r.policy}: {r.reason}" for r in rejections}


def row(
    t: Target,
    *,
    task: str | None = None,
    input_tokens: int = 1000,
    cached: int = 0,
    output: int = 100,
    outcome: str = "ok",
) -> LedgerRow:
    return LedgerRow(
        call_id="c",
        attempt=1,
        timestamp=0.0,
        deployment=t.deployment.name,
        provider=t.provider.name,
        requested_model="auto",
        model=t.model.id,
        served_model=None,
        hints=RouteHints(task=task),
        usage=Usage(input_tokens, output, cache_read_tokens=cached),
        cost=None,
        latency_s=1.0,
        outcome=outcome,  # type: ignore[arg-type]
    )


def same_step(a: Step, b: Step) -> None:
    assert a.policy == b.policy
    assert a.kept == b.kept
    assert [(r.deployment, r.policy, r.reason) for r in a.dropped] == [
        (r.deployment, r.policy, r.reason) for r in b.dropped
    ]
    assert {k: dict(v) for k, v in a.labels.items()} == {k: dict(v) for k, v in b.labels.items()}


# ---------------------------------------------------------------- Residency


def test_residency_keeps_pii_away_from_cn_and_says_why() -> None:
    policy = Residency(SEED_LEVELS)
    context = ctx([*ALL, ODD], sensitivity="pii")
    assert kept(policy, context) == ["gpt", "mini", "nano", "local", "mystery"]
    gone = dropped(policy, context)
    assert set(gone) == {"ds", "flash", "odd"}
    assert gone["ds"] == (
        "Residency: pii data may not be sent to CN (deepseek); allowed: US, EU, self-hosted"
    )
    assert "unknown (acme)" in gone["odd"]  # an endpoint whose jurisdiction nobody stated
    assert reasons(policy, context)["gpt"] == "pii allowed in US (openai)"
    assert kept(policy, ctx([ODD], sensitivity="public")) == ["odd"]  # "*" covers unknown too


def test_residency_default_level_and_public() -> None:
    policy = Residency(SEED_LEVELS, default="pii")
    assert "ds" not in kept(policy, ctx())  # unlabelled: treated as pii
    assert "pii (default)" in dropped(policy, ctx())["ds"]
    assert kept(policy, ctx(sensitivity="public")) == [t.name for t in ALL]
    assert kept(policy, ctx(sensitivity="PUBLIC")) == [t.name for t in ALL]  # levels are case-insensitive


def test_residency_validates_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="default level 'internal' is not in allow"):
        Residency({"pii": ["US"], "public": ["*"]})
    with pytest.raises(ConfigurationError, match="'planet:mars' is not a jurisdiction"):
        Residency({"internal": ["planet:mars"]})
    with pytest.raises(ConfigurationError, match="deny names level 'secret'"):
        Residency({"internal": ["*"]}, deny={"secret": ["CN"]})
    with pytest.raises(ConfigurationError, match="given twice"):
        Residency({"internal": ["*"], "INTERNAL": ["US"]})
    with pytest.raises(ConfigurationError):
        Residency({})


def test_residency_unknown_level_is_the_strictest_or_refused() -> None:
    strict = Residency(SEED_LEVELS)
    assert kept(strict, ctx(sensitivity="secret-sauce")) == ["local", "mystery"]  # what every level allows
    assert "held to every level" in dropped(strict, ctx(sensitivity="secret-sauce"))["gpt"]
    refuse = Residency(SEED_LEVELS, unknown="refuse")
    with pytest.raises(NoRoute, match="unknown sensitivity level 'secret-sauce'"):
        refuse.decide(ctx(sensitivity="secret-sauce"))


def test_residency_entries_by_provider_deployment_model_and_deny() -> None:
    policy = Residency(
        {
            "internal": ["*"],
            "pii": ["provider:openai", "deployment:local"],
            "phi": ["model:gpt-5.4-mini"],
            "restricted": [],
        },
        deny={"internal": ["CN", "deployment:nano"]},
    )
    assert kept(policy, ctx()) == ["gpt", "mini", "local", "mystery"]
    assert "denied by 'deployment:nano'" in dropped(policy, ctx())["nano"]
    assert kept(policy, ctx(sensitivity="pii")) == ["gpt", "mini", "nano", "local"]
    assert kept(policy, ctx(sensitivity="phi")) == ["mini"]
    with pytest.raises(NoRoute, match="allowed: nowhere"):
        policy.decide(ctx(sensitivity="restricted"))


def test_residency_uses_the_deployment_jurisdiction_override() -> None:
    us_hosted = target("ds-us", "deepseek-v3.2", jurisdiction="US")  # e.g. the open weights on a US cloud
    assert kept(Residency(SEED_LEVELS), ctx([DS, us_hosted], sensitivity="pii")) == ["ds-us"]


# ---------------------------------------------------------------- Capabilities


VISION = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]


@pytest.mark.parametrize(
    ("kwargs", "messages", "expected", "lacks"),
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            USER,
            "gpt ds local mystery old",
            None,
        ),
        ({}, VISION, "gpt mystery old", "vision"),
        ({"response_format": {"type": "json_object"}}, USER, "gpt ds mystery old", "json"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            USER,
            "gpt mystery old",
            "json_schema",
        ),
        ({"reasoning_effort": "high"}, USER, "gpt ds mystery", "reasoning"),
        ({"reasoning_effort": "none"}, USER, "gpt ds local mystery old", None),
        ({"stream": True}, USER, "gpt ds local mystery old", None),
    ],
)
def test_capabilities_gate(kwargs: dict[str, Any], messages: Any, expected: str, lacks: str | None) -> None:
    old = target("old", "gpt-4o")  # tools, vision, json, json_schema, streaming; no reasoning
    context = ctx([GPT, DS, LOCAL, UNKNOWN, old], messages=messages, **kwargs)
    assert kept(Capabilities(), context) == expected.split()
    gone = dropped(Capabilities(), context)
    assert all(f"lacks {lacks}" in why for why in gone.values()) and bool(gone) == bool(lacks), gone


def test_capabilities_unknown_models_and_require() -> None:
    tools = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    assert undescribed(UNKNOWN.model) and not undescribed(LOCAL.model) and not undescribed(GPT.model)
    assert "mystery" in kept(Capabilities(), ctx(**tools))
    assert "capabilities unknown" in reasons(Capabilities(), ctx(**tools))["mystery"]
    assert "mystery" not in kept(Capabilities(strict_unknown=True), ctx(**tools))
    assert kept(Capabilities(require=["vision"]), ctx([GPT, DS, LOCAL])) == ["gpt"]
    with pytest.raises(ConfigurationError, match="telepathy"):
        Capabilities(require=["telepathy"])


def test_capabilities_named_cases() -> None:
    vision = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    gone = dropped(Capabilities(), ctx([GPT, DS], messages=vision))
    assert gone == {"ds": "Capabilities: deepseek-v3.2 lacks vision (needs vision)"}
    assert kept(Capabilities(), ctx([GPT, target("old", "gpt-4o")], reasoning_effort="low")) == ["gpt"]
    assert kept(Capabilities(), ctx([GPT, LOCAL], response_format={"type": "json_object"})) == ["gpt"]


# ---------------------------------------------------------------- ContextWindow


def long_prompt(tokens: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "word " * tokens}]


def test_context_window_drops_what_does_not_fit() -> None:
    small = ModelSpec("small", "vllm", "small", context_window=1_000, max_output=200, price=QWEN.price)
    tiny = target("tiny", small)
    context = ctx([GPT, tiny, UNKNOWN], messages=long_prompt(800))
    prompt = facts(context.request).prompt_tokens(tiny)
    assert 750 < prompt < 900
    assert kept(ContextWindow(), context) == ["gpt", "mystery"]
    why = dropped(ContextWindow(), context)["tiny"]
    assert (
        f"prompt ~{prompt:,}" in why and "window 1,000" in why and "200 output" in why
    )  # capped by max output
    assert reasons(ContextWindow(), context)["mystery"] == "window unknown"
    # The margin matters: with max_tokens filling the window but one token, 5% of the prompt is too much.
    fits = ctx([tiny], messages=long_prompt(800), max_tokens=1_000 - prompt - 1)
    assert kept(ContextWindow(margin=0.0, check_max_output=False), fits) == ["tiny"]
    with pytest.raises(NoRoute, match="ContextWindow"):
        ContextWindow(check_max_output=False).decide(fits)


def test_context_window_short_prompts_and_max_output() -> None:
    assert reasons(ContextWindow(), ctx([GPT, DS]))["gpt"] == "fits the context window"
    context = ctx([GPT, NANO, target("old", "gpt-4o")], max_tokens=20_000)
    assert kept(ContextWindow(), context) == ["gpt", "nano"]
    assert dropped(ContextWindow(), context)["old"] == (
        "ContextWindow: max tokens 20,000 exceed gpt-4o's max output 16,384"
    )
    assert kept(ContextWindow(check_max_output=False), context) == ["gpt", "nano", "old"]
    with pytest.raises(ConfigurationError):
        ContextWindow(margin=1.5)


def test_context_window_long_prompt_against_catalog_windows() -> None:
    # 130k tokens: gpt-5.4 and deepseek-v3.2 (128k) are out; deepseek-v4-flash (1M) stays.
    context = ctx([GPT, DS, FLASH], messages=long_prompt(130_000))
    assert kept(ContextWindow(), context) == ["flash"]
    assert "window 128,000" in dropped(ContextWindow(), context)["gpt"]


# ---------------------------------------------------------------- TaskType, Prefer


TABLE = {"code_review": ["deepseek-v3.2", "gpt-5.4"], "architecture": ["gpt-5.4"], "empty": []}


def test_task_type_orders_listed_first_then_the_rest() -> None:
    policy = TaskType(TABLE, default=["gpt-5.4-mini"])
    assert kept(policy, ctx(task="code_review")) == ["ds", "gpt", "flash", "mini", "nano", "local", "mystery"]
    assert kept(policy, ctx(task="architecture"))[:2] == ["gpt", "ds"]
    assert kept(policy, ctx(task="chat"))[0] == "mini"  # an unlisted task gets the default list
    assert kept(policy, ctx())[0] == "mini"  # so does no task
    why = reasons(policy, ctx(task="code_review"))
    assert (
        why["ds"] == "code_review: 1st choice (deepseek-v3.2)" and why["flash"] == "code_review: not listed"
    )


def test_task_type_exclusive_and_names() -> None:
    policy = TaskType(TABLE, exclusive=True)
    assert kept(policy, ctx(task="code_review")) == ["ds", "gpt"]
    assert dropped(policy, ctx(task="code_review"))["flash"] == "TaskType: code_review: not listed"
    with pytest.raises(NoRoute):
        policy.decide(ctx(task="empty"))
    by_deployment = TaskType({"x": ["local", "deepseek-chat"]})  # a deployment name, an API name
    assert kept(by_deployment, ctx(task="x"))[:2] == ["local", "ds"]
    with pytest.raises(ConfigurationError):
        TaskType({"x": [""]})


def test_prefer_and_tiers() -> None:
    assert kept(Prefer("local", "gpt-5.4"), ctx([GPT, DS, LOCAL])) == ["local", "gpt", "ds"]
    # A tier keeps the previous order: after Cheapest, the cheaper of the two first.
    tiered = Cheapest() | Prefer(["gpt-5.4", "deepseek-v4-flash"], "gpt-5-nano")
    assert kept(tiered, ctx([GPT, FLASH, NANO, DS])) == ["flash", "gpt", "nano", "ds"]
    assert repr(Prefer("a", ["b", "c"])) == "Prefer('a', ['b', 'c'])"


# ---------------------------------------------------------------- Cheapest


def exact_order(context: RouteContext, policy: Cheapest) -> list[str]:
    """The ranking computed with exact `Decimal` estimates: cost, then higher tier, then order."""
    indexed = list(enumerate(context.candidates))

    def key(item: tuple[int, Target]) -> tuple[bool, Decimal, int, int]:
        i, t = item
        cost = policy.estimate(context.request, t).cost
        return (cost is None, cost or Decimal(0), -t.model.quality_tier, i)

    return [t.name for _, t in sorted(indexed, key=key)]


def test_cheapest_orders_by_estimate_cost_with_unpriced_last() -> None:
    candidates = [UNKNOWN, GPT, LOCAL, DS, MINI, NANO, FLASH]
    context = ctx(candidates)
    policy = Cheapest()
    assert kept(policy, context) == exact_order(context, policy)
    assert kept(policy, context)[-1] == "mystery"
    assert reasons(policy, context)["mystery"] == "unpriced: ranked last"
    est = estimate_cost(context.request, GPT)
    assert est.output_tokens == DEFAULT_OUTPUT_TOKENS and est.cost is not None
    assert reasons(policy, context)["gpt"] == f"est. ${float(est.cost):.6f}"


def test_cheapest_over_the_whole_catalog_matches_exact_estimates() -> None:
    candidates = [target(f"t{i}", m) for i, m in enumerate(CATALOG.models())]
    # Short, medium with a small max_tokens, and above the 272K long-context threshold of gpt-5.6.
    for messages, kwargs in [
        (USER, {}),
        (long_prompt(3_000), {"max_tokens": 50}),
        (long_prompt(280_000), {}),
    ]:
        context = ctx(candidates, messages=messages, **kwargs)
        policy = Cheapest(explain=100)
        assert kept(policy, context) == exact_order(context, policy)


def test_cheapest_breaks_ties_by_quality_tier() -> None:
    price = Price(input=Decimal("1"), output=Decimal("1"))
    low = target("low", ModelSpec("low", "vllm", "low", quality_tier=1, price=price))
    high = target("high", ModelSpec("high", "vllm", "high", quality_tier=3, price=price))
    also_low = target("also-low", ModelSpec("also-low", "vllm", "also-low", quality_tier=1, price=price))
    assert kept(Cheapest(), ctx([low, also_low, high])) == ["high", "low", "also-low"]


def test_cheapest_learns_cache_share_and_output_from_history() -> None:
    policy = Cheapest(explain=10)
    context = ctx([GPT, DS], task="code_review")
    assert policy.cache_share("code_review", "gpt") == 0.0
    before = reasons(policy, context)
    policy.observe(row(GPT, task="code_review", input_tokens=1000, cached=900, output=40))
    policy.observe(row(GPT, task="code_review", input_tokens=1000, cached=700, output=60))
    policy.observe(row(GPT, task="code_review", output=10_000, outcome="truncated"))  # not an ok answer
    policy.observe(row(GPT, task="other", cached=0, output=999))  # another task
    policy.observe("not a row")
    assert policy.cache_share("code_review", "gpt") == pytest.approx(1600 / 3000)
    assert policy.output_tokens(context.request, GPT) == 50
    assert policy.output_tokens(context.request, DS) == DEFAULT_OUTPUT_TOKENS
    est = policy.estimate(context.request, GPT)
    assert est == estimate_cost(context.request, GPT, output_tokens=50, cache_read_share=1600 / 3000)
    after = reasons(policy, context)
    assert after["gpt"] != before["gpt"] and after["ds"] == before["ds"]
    assert after["gpt"] == f"est. ${float(est.cost or 0):.6f}"
    # The request's own limit caps the learned mean; the model's max output caps everything.
    assert policy.output_tokens(request(max_tokens=20, hints=RouteHints(task="code_review")), GPT) == 20


def test_cheapest_history_changes_the_ranking_incrementally() -> None:
    cheap_out = ModelSpec(
        "cheap-out", "vllm", "cheap-out", price=Price(input=Decimal("10"), output=Decimal("0"))
    )
    cheap_in = ModelSpec("cheap-in", "vllm", "cheap-in", price=Price(input=Decimal("0"), output=Decimal("1")))
    a, b = target("a", cheap_out), target("b", cheap_in)
    policy = Cheapest(output_prior=10_000)
    pipeline = Capabilities() | policy
    context = ctx([a, b], task="t")
    assert kept(pipeline, context) == ["a", "b"]  # 10,000 output tokens expected: b costs 0.01, a ~0.0001
    for _ in range(3):
        policy.observe(row(b, task="t", output=1))  # b answers in one token: cheap
    assert kept(pipeline, context) == ["b", "a"]
    assert kept(pipeline, ctx([a, b], task="other")) == ["a", "b"]  # learned per task
    fresh = Cheapest(output_prior=10_000).warm([row(b, task="t", output=1)])
    assert kept(fresh, context) == ["b", "a"]


def test_cheapest_validates() -> None:
    for bad in ({"cache_prior": 2}, {"output_prior": -1}, {"explain": -1}):
        with pytest.raises(ConfigurationError):
            Cheapest(**bad)


def test_prompt_is_counted_once_per_request_and_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    import llmroute.policies._core as core

    def counting(req: ChatRequest, t: Target) -> tuple[int, bool]:
        calls.append(t.name)
        return estimate_prompt_tokens(req, t)

    monkeypatch.setattr(core, "estimate_prompt_tokens", counting)
    other = target("other", ModelSpec("other", "vllm", "other", tokenizer="cl100k_base", price=QWEN.price))
    chain = default_chain(SEED_LEVELS, TABLE) | MaxCost() | Budget(Spend({"": ("5", "10")}))
    chain.decide(ctx([GPT, DS, MINI, NANO, other], max_cost="1"))
    assert len(calls) == 2  # one per tokenizer, for five policies that need the count


# ---------------------------------------------------------------- MaxCost, Budget


def test_max_cost_gate() -> None:
    context = ctx([GPT, DS, LOCAL, UNKNOWN], max_cost="0.001")
    assert kept(MaxCost(), context) == ["ds", "local", "mystery"]
    assert dropped(MaxCost(), context)["gpt"].startswith("MaxCost: est. $0.00")
    assert "> max_cost $0.001000" in dropped(MaxCost(), context)["gpt"]
    assert reasons(MaxCost(), context)["mystery"] == "unpriced: cost unknown, kept"
    assert kept(MaxCost(unpriced="drop"), context) == ["ds", "local"]
    assert reasons(MaxCost(), ctx([GPT]))["gpt"] == "no max_cost hint"


class Spend:
    """A SpendView over fixed numbers: scope -> (remaining, limit)."""

    def __init__(self, table: dict[str, tuple[str, str | None]]) -> None:
        self.table = table

    def remaining(self, scope: str) -> Decimal | None:
        entry = self.table.get(scope)
        return Decimal(entry[0]) if entry else None

    def limit(self, scope: str) -> Decimal | None:
        entry = self.table.get(scope)
        return Decimal(entry[1]) if entry and entry[1] is not None else None


def test_budget_gate_and_preference() -> None:
    candidates = [GPT, MINI, DS, LOCAL, UNKNOWN]
    gpt_cost = estimate_cost(request(), GPT).cost
    assert gpt_cost is not None
    # Plenty left: order kept, nothing dropped.
    plenty = Budget(Spend({"": ("90", "100"), "budget:team": ("40", "50")}))
    assert kept(plenty, ctx(candidates, budget="team")) == ["gpt", "mini", "ds", "local", "mystery"]
    # Under 20% of the team's budget left: cheapest first (unpriced last), still all affordable.
    near = Budget(Spend({"": ("90", "100"), "budget:team": ("5", "50")}))
    assert kept(near, ctx(candidates, budget="team")) == ["local", "ds", "mini", "gpt", "mystery"]
    assert (
        "budget 'budget:team' has 10% left: cheapest first"
        in reasons(near, ctx(candidates, budget="team"))["ds"]
    )
    assert kept(near, ctx(candidates)) == ["gpt", "mini", "ds", "local", "mystery"]  # global scope only
    # Less left than gpt-5.4's estimate (and no limit to be near): removed, the order kept.
    tight = Budget(Spend({"": (str(gpt_cost / 2), None)}))
    assert kept(tight, ctx(candidates)) == ["mini", "ds", "local", "mystery"]
    assert (
        "exceeds the $" in dropped(tight, ctx(candidates))["gpt"]
        and "the global budget" in dropped(tight, ctx(candidates))["gpt"]
    )
    # Nothing left: every priced target is removed; with unpriced="drop" the call fails before sending.
    spent = Budget(Spend({"budget:team": ("0", "50")}), unpriced="drop")
    with pytest.raises(NoRoute, match="exceeds the nothing left of budget 'budget:team'"):
        spent.decide(ctx(candidates, budget="team"))
    assert kept(Budget(Spend({})), ctx(candidates)) == ["gpt", "mini", "ds", "local", "mystery"]
    # Scopes of the target: a provider budget that is nearly spent removes that provider's targets.
    openai = Budget(Spend({"provider:openai": (str(gpt_cost / 2), "1000")}))
    assert kept(openai, ctx(candidates)) == ["mini", "ds", "local", "mystery"]
    assert "budget 'provider:openai'" in dropped(openai, ctx(candidates))["gpt"]
    assert kept(Budget(Spend({"provider:openai": ("0", "1")}), per_target=False), ctx(candidates)) == [
        "gpt",
        "mini",
        "ds",
        "local",
        "mystery",
    ]
    # Scopes of the request: task, user, tags, extra.
    by_task = Budget(Spend({"task:review": ("0", "1")}))
    assert kept(by_task, ctx(candidates, task="review")) == ["mystery"]
    assert kept(by_task, ctx(candidates, task="chat")) == ["gpt", "mini", "ds", "local", "mystery"]
    with pytest.raises(ConfigurationError):
        Budget(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------- Fastest


def test_fastest_uses_health_priors_and_only_interactive() -> None:
    health = Health()
    health.observe("ds", ok=True, latency_s=2.0, ttft_s=0.9)
    health.observe("gpt", ok=True, latency_s=1.0, ttft_s=1.5)
    policy = Fastest(priors={"gpt-5.4-mini": 0.5})
    candidates = [LOCAL, GPT, DS, MINI]
    assert kept(policy, ctx(candidates, health=health)) == ["local", "gpt", "ds", "mini"]  # not interactive
    assert kept(policy, ctx(candidates, health=health, latency="interactive")) == [
        "mini",
        "gpt",
        "ds",
        "local",
    ]
    streaming = ctx(candidates, health=health, latency="interactive", stream=True)
    assert kept(policy, streaming) == ["mini", "ds", "gpt", "local"]
    why = reasons(policy, streaming)
    assert why["ds"] == "time to first token ~0.9s (observed)" and why["local"].endswith("not measured yet")
    assert kept(Fastest(always=True), ctx(candidates, health=health)) == ["gpt", "ds", "local", "mini"]


# ---------------------------------------------------------------- Split


def test_split_is_deterministic_and_weighted() -> None:
    split = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]}, weights={"a": 90, "b": 10})
    arms = [split.arm(f"user-{i}") for i in range(10_000)]
    assert 0.08 < arms.count("b") / len(arms) < 0.12
    again = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]}, weights={"a": 90, "b": 10})
    assert [again.arm(f"user-{i}") for i in range(10_000)] == arms  # the same in every instance/process
    assert (
        bucket("user-1")
        == int.from_bytes(__import__("hashlib").blake2b(b"\x00user-1", digest_size=8).digest(), "big") / 2**64
    )
    # Gradual rollout: raising the last arm's share only moves users into it.
    wider = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]}, weights={"a": 80, "b": 20})
    moved = [wider.arm(f"user-{i}") for i in range(10_000)]
    assert all(new == "b" for old, new in zip(arms, moved, strict=True) if old == "b")
    assert 0.18 < moved.count("b") / len(moved) < 0.22
    # A new salt reshuffles.
    salted = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]}, weights={"a": 90, "b": 10}, salt="exp-2")
    assert [salted.arm(f"user-{i}") for i in range(10_000)] != arms


def test_split_orders_and_labels() -> None:
    split = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]})
    user_b = next(f"u{i}" for i in range(100) if split.arm(f"u{i}") == "b")
    decision = split.decide(ctx([GPT, DS, LOCAL], user=user_b))
    assert [t.name for t in decision.targets] == ["ds", "gpt", "local"]
    assert all(decision.labels_for(t) == {"arm": "b"} for t in decision.targets)
    assert dict(decision.steps[0].kept)["gpt"] == "arm 'b': fallback"
    unsplit = split.decide(ctx([GPT, DS, LOCAL]))
    assert [t.name for t in unsplit.targets] == ["gpt", "ds", "local"] and not unsplit.labels_for(GPT)
    by_session = Split({"x": ["local"]}, key="session", label="exp", default_arm="x")
    assert by_session.decide(ctx([GPT, LOCAL], extra={"session": "s1"})).labels_for(LOCAL) == {"exp": "x"}
    assert "default" in dict(by_session.decide(ctx([GPT, LOCAL])).steps[0].kept)["local"]
    for bad in (
        {"arms": {}},
        {"arms": {"a": ["x"]}, "weights": {"b": 1}},
        {"arms": {"a": ["x"]}, "weights": {"a": 0}},
        {"arms": {"a": ["x"]}, "default_arm": "z"},
    ):
        with pytest.raises(ConfigurationError):
            Split(**bad)


# ---------------------------------------------------------------- composition


def test_or_builds_pipelines_and_chains_flatten() -> None:
    pipeline = Residency(SEED_LEVELS) | Capabilities() | Cheapest()
    assert isinstance(pipeline, Pipeline) and len(pipeline.policies) == 3
    assert isinstance(pipeline | Requested(), Pipeline)
    assert pipeline.name == "Residency | Capabilities | Cheapest"
    plain = Requested() | Cheapest()  # a core policy on the left: a plain Chain, still correct
    assert type(plain) is Chain


def test_preference_order_last_one_decides() -> None:
    candidates = [GPT, DS, MINI, LOCAL]
    task_then_cost = TaskType(TABLE) | Cheapest()
    cost_then_task = Cheapest() | TaskType(TABLE)
    # local (qwen at $0.05/$0.10) < ds < mini < gpt by cost.
    assert kept(task_then_cost, ctx(candidates, task="architecture")) == ["local", "ds", "mini", "gpt"]
    assert kept(cost_then_task, ctx(candidates, task="architecture")) == ["gpt", "local", "ds", "mini"]
    assert kept(default_chain(tasks=TABLE), ctx(candidates, task="architecture")) == [
        "gpt",
        "local",
        "ds",
        "mini",
    ]


def test_no_route_names_the_gate_that_removed_each_candidate() -> None:
    chain = default_chain(SEED_LEVELS, TABLE)
    vision = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    tiny = target(
        "tiny", ModelSpec("tiny", "vllm", "tiny", context_window=50, capabilities=frozenset({"vision"}))
    )
    with pytest.raises(NoRoute) as info:
        chain.decide(ctx([DS, LOCAL, tiny, GPT], messages=vision, sensitivity="pii", max_cost="0.0000001"))
    by_target = {r.deployment: r.policy for r in info.value.rejections}
    assert by_target == {
        "ds": "Residency",
        "local": "Capabilities",
        "tiny": "ContextWindow",
        "gpt": "MaxCost",
    }
    message = str(info.value)
    for gate in (
        "ds: removed by Residency (pii",
        "local: removed by Capabilities",
        "tiny: removed by ContextWindow",
        "gpt: removed by MaxCost",
    ):
        assert gate in message


class KeepShortNames(Policy):
    """A user policy in the middle of a pipeline."""

    def rank(self, context: RouteContext) -> list[Any]:
        return [t.keep("short") if len(t.name) <= 4 else t.drop("long name") for t in context.candidates]


POLICIES: list[Callable[[], Policy]] = [
    lambda: Residency(SEED_LEVELS),
    lambda: Residency(SEED_LEVELS, unknown="refuse"),
    Capabilities,
    lambda: Capabilities(strict_unknown=True),
    ContextWindow,
    MaxCost,
    lambda: TaskType(TABLE, default=["gpt-5.4-mini"]),
    lambda: TaskType(TABLE, exclusive=True),
    Cheapest,
    lambda: Fastest(always=True, priors={"gpt-5.4": 1.0}),
    lambda: Split({"a": ["gpt-5.4"], "b": [["deepseek-v3.2", "local"]]}),
    lambda: Prefer("local"),
    lambda: Budget(Spend({"": ("0.001", "1")})),
    KeepShortNames,
    Requested,
]
CANDIDATES = [
    *ALL,
    target("eu", "gpt-5.4-mini", jurisdiction="EU"),
    target("ds2", "deepseek-v4-pro"),
    target("sh", "deepseek-v3.2", jurisdiction="self-hosted"),
    target("o4", "o4-mini"),
]
contexts = st.fixed_dictionaries(
    {
        "sensitivity": st.sampled_from(
            [None, "public", "internal", "pii", "phi", "restricted", "PII", "other"]
        ),
        "task": st.sampled_from([None, "code_review", "architecture", "empty", "chat"]),
        "user": st.sampled_from([None, "u1", "u2", "u3"]),
        "max_cost": st.sampled_from([None, "0.001", "1"]),
        "latency": st.sampled_from([None, "interactive"]),
    }
)
requests = st.sampled_from(
    [
        {},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"response_format": {"type": "json_object"}},
        {"reasoning_effort": "medium"},
        {"stream": True},
        {"max_tokens": 50_000},
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}
            ]
        },
    ]
)


def make_context(candidates: Sequence[Target], hints: dict[str, Any], extra: dict[str, Any]) -> RouteContext:
    extra = dict(extra)
    messages = extra.pop("messages", USER)
    return ctx(candidates, messages=messages, **{k: v for k, v in hints.items() if v is not None}, **extra)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(POLICIES) - 1), min_size=1, max_size=6),
    subset=st.lists(
        st.integers(0, len(CANDIDATES) - 1), min_size=1, max_size=len(CANDIDATES), unique=True
    ).map(lambda picked: [CANDIDATES[i] for i in picked]),
    hints=contexts,
    extra=requests,
)
def test_pipeline_decides_exactly_like_the_core_chain(
    picks: list[int], subset: list[Target], hints: dict[str, Any], extra: dict[str, Any]
) -> None:
    context = make_context(subset, hints, extra)
    fast = Pipeline(*(POLICIES[i]() for i in picks))
    slow = Chain(*(POLICIES[i]() for i in picks))
    try:
        expected: Decision | NoRoute = slow.decide(context)
    except NoRoute as e:
        expected = e
    for _ in range(2):  # the second run is served from the memos
        try:
            got: Decision | NoRoute = fast.decide(context)
        except NoRoute as e:
            got = e
        if isinstance(expected, NoRoute):
            assert isinstance(got, NoRoute) and str(got) == str(expected)
        else:
            assert isinstance(got, Decision) and got.targets == expected.targets
            for a, b in zip(got.steps, expected.steps, strict=True):
                same_step(a, b)
    for i in picks:  # rank() of a built-in is its fast step, choice by choice
        policy = POLICIES[i]()
        if hasattr(policy, "_step"):
            step, kept_targets = _run(policy, context)
            fast_step, fast_kept = policy._step(context, context.candidates)
            same_step(step, fast_step)
            assert kept_targets == fast_kept


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(POLICIES) - 1), max_size=5),
    where=st.integers(0, 5),
    subset=st.lists(
        st.integers(0, len(CANDIDATES) - 1), min_size=1, max_size=len(CANDIDATES), unique=True
    ).map(lambda picked: [CANDIDATES[i] for i in picked]),
    hints=contexts,
    extra=requests,
    level=st.sampled_from(["pii", "phi", "PII", "Phi", "restricted"]),
    fallbacks=st.lists(st.sampled_from(["deepseek-v3.2", "gpt-5.4", "local", "deepseek-v4-pro"]), max_size=3),
)
def test_hard_gate_property_sensitive_data_never_keeps_a_cn_target(
    picks: list[int],
    where: int,
    subset: list[Target],
    hints: dict[str, Any],
    extra: dict[str, Any],
    level: str,
    fallbacks: list[str],
) -> None:
    """Wherever Residency sits in a random chain, a pii/phi/restricted request never keeps a CN target."""
    policies = [POLICIES[i]() for i in picks]
    policies.insert(min(where, len(policies)), Residency(SEED_LEVELS))
    policies.append(Requested(fallbacks))
    context = make_context(subset, {**hints, "sensitivity": level}, extra)
    for chain in (Pipeline(*policies), Chain(*policies)):
        try:
            decision = chain.decide(context)
        except NoRoute:
            continue
        assert all(t.jurisdiction != "CN" for t in decision.targets), decision.targets


WILD = Target(
    Deployment("wild", model="gpt-*", provider="openai"),
    CATALOG.model("gpt-5.4-mini") or unpriced_model("gpt-5.4-mini", "openai"),
    CATALOG.provider("openai") or ProviderSpec("openai", "openai", "https://x.invalid/v1"),
    "gpt-5.4-mini",
    "wild/gpt-5.4-mini",
)


@settings(max_examples=200, deadline=None)
@given(
    picked=st.lists(st.sampled_from([*CANDIDATES, WILD]), max_size=12),
    model=st.sampled_from(["auto", "gpt-5.4", "deepseek-v3.2"]),
    fallbacks=st.lists(st.sampled_from(["deepseek-v3.2", "gpt-5.4", "local"]), max_size=2),
)
def test_requested_fast_step_is_rank_choice_by_choice(
    picked: list[Target], model: str, fallbacks: list[str]
) -> None:
    """`Requested.step` (the `model="auto"` fast path and its memo) gives what `rank` gives, for
    named and wildcard candidates, duplicates, and a candidates tuple that changes between calls."""
    route = RouteHints()
    req = ChatRequest.from_kwargs({"model": model, "messages": list(USER)}, route)
    requested = tuple(t for t in picked if model in (t.deployment.name, *t.model.names()))
    context = RouteContext(req, route, tuple(picked), requested, Health(), None)
    policy = Requested(fallbacks)
    expected_step, expected_kept = _run(policy, context)
    for candidates in (context.candidates, context.candidates, tuple(picked)):  # memo, then a new tuple
        step, kept_targets = policy.step(context, candidates)
        same_step(step, expected_step)
        assert kept_targets == expected_kept
    if len(picked) > 1:  # a different tuple is never answered from the memo of the previous one
        other = context.with_candidates(tuple(reversed(picked)))
        step, kept_targets = policy.step(other, other.candidates)
        same_step(step, _run(policy, other)[0])


# ---------------------------------------------------------------- registry


def test_registry_by_name_and_from_spec() -> None:
    assert {
        "residency",
        "capabilities",
        "context_window",
        "task_type",
        "cheapest",
        "fastest",
        "max_cost",
        "split",
        "prefer",
        "budget",
        "requested",
        "default",
    } <= set(names())
    residency = by_name("Residency", allow={"internal": ["*"], "pii": ["US"]})
    assert isinstance(residency, Residency)
    assert isinstance(by_name("context-window", margin=0.1), ContextWindow)
    assert kept(by_name("prefer", names=["local"]), ctx([GPT, LOCAL])) == ["local", "gpt"]
    assert isinstance(by_name("requested", fallbacks=["gpt-5.4"]), Requested)
    with pytest.raises(ConfigurationError, match="unknown policy 'magic'"):
        by_name("magic")
    with pytest.raises(ConfigurationError, match="bad options"):
        by_name("cheapest", colour="red")
    chain = from_spec(
        [
            {"name": "residency", "allow": SEED_LEVELS},
            "capabilities",
            {"name": "cheapest", "cache_prior": 0.5},
            {"name": "task_type", "table": TABLE},
        ]
    )
    assert isinstance(chain, Pipeline) and chain.name == "Residency | Capabilities | Cheapest | TaskType"
    assert isinstance(from_spec({"name": "default", "residency": SEED_LEVELS}), Pipeline)
    with pytest.raises(ConfigurationError):
        from_spec({"allow": {}})
    register("short_names", KeepShortNames)
    assert isinstance(by_name("ShortNames"), KeepShortNames)
    with pytest.raises(ConfigurationError, match="already registered"):
        register("short_names", KeepShortNames)
    register("short_names", KeepShortNames, replace=True)


# ---------------------------------------------------------------- end to end


def test_pii_request_for_deepseek_is_served_elsewhere(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        policy=Residency(SEED_LEVELS) | Capabilities() | Requested(["deepseek-v3.2", "local", "gpt-5.4"]),
    )
    reply = router.chat.completions.create(model="deepseek-v3.2", messages=USER, route={"sensitivity": "pii"})
    assert reply.route.deployment in ("local", "gpt")
    assert [t.name for t in reply.route.decision.targets] == ["local", "gpt"]
    assert all(r.provider != "deepseek" for r in router.ledger.rows())
    assert all(r.provider != "deepseek" for r in emu.requests) and emu.requests
    removed = [r for s in reply.route.decision.steps for r in s.dropped]
    assert [(r.deployment, r.policy) for r in removed] == [("ds", "Residency")]
    assert "pii" in removed[0].reason and "CN" in removed[0].reason
    # Unlabelled, the same call goes to DeepSeek.
    plain = router.chat.completions.create(model="deepseek-v3.2", messages=USER)
    assert plain.route.deployment == "ds"


def test_phi_with_only_cn_left_fails_before_any_network_call(make_router: Any, emu: Emulator) -> None:
    router = make_router(policy=Residency({"internal": ["*"], "phi": ["EU"]}) | Requested())
    with pytest.raises(NoRoute, match="phi data may not be sent to CN"):
        router.chat.completions.create(model="deepseek-v3.2", messages=USER, route={"sensitivity": "phi"})
    assert emu.requests == [] and len(router.ledger) == 0


def test_split_arm_lands_in_the_ledger(make_router: Any) -> None:
    split = Split(
        {"control": ["gpt-5.4"], "candidate": ["deepseek-v3.2"]}, weights={"control": 50, "candidate": 50}
    )
    router = make_router(policy=Residency(SEED_LEVELS) | split)
    users = [f"user-{i}" for i in range(12)]
    for user in users:
        reply = router.chat.completions.create(model="auto", messages=USER, route={"user": user})
        arm = split.arm(user)
        assert reply.route.deployment == ("gpt" if arm == "control" else "ds")
    rows = router.ledger.rows()
    assert [r.labels["arm"] for r in rows] == [split.arm(u) for u in users]
    assert {r.labels["arm"] for r in rows} == {"control", "candidate"}
    per_arm = router.ledger.group_by(lambda r: r.labels["arm"])
    assert per_arm["control"].calls + per_arm["candidate"].calls == len(users)


def test_default_chain_end_to_end_and_cheapest_learns(make_router: Any) -> None:
    policy = default_chain(SEED_LEVELS, {"architecture": ["gpt-5.4"]})
    router = make_router(policy=policy)
    cheap = router.chat.completions.create(model="auto", messages=USER, route={"task": "chat"})
    assert cheap.route.deployment == "ds"  # the cheapest priced target; qwen3-8b (unpriced) is last
    arch = router.chat.completions.create(model="auto", messages=USER, route={"task": "architecture"})
    assert arch.route.deployment == "gpt"
    pii = router.chat.completions.create(
        model="auto", messages=USER, route={"task": "chat", "sensitivity": "pii"}
    )
    assert pii.route.deployment == "gpt"
    cheapest = next(p for p in policy.policies if isinstance(p, Cheapest))
    assert cheapest.output_tokens(
        request(hints=RouteHints(task="chat")), cheap.route.decision.targets[0]
    ) == (cheap.route.usage.output_tokens)


def test_subclass_overriding_rank_runs_through_rank() -> None:
    class NoLocal(Cheapest):
        def rank(self, context: RouteContext) -> list[Any]:
            return [c for c in super().rank(context) if c.target.name != "local"]

    decision = (Capabilities() | NoLocal()).decide(ctx([GPT, LOCAL, DS]))
    assert [t.name for t in decision.targets] == ["ds", "gpt"]
    assert [(r.deployment, r.policy, r.reason) for r in decision.steps[1].dropped] == [
        ("local", "NoLocal", "not kept")
    ]


def test_request_facts_follow_the_request() -> None:
    req = request(long_prompt(100))
    first = facts(req).prompt_tokens(GPT)
    assert facts(req) is facts(req)
    req.messages.append({"role": "user", "content": "word " * 100})  # mutated in place: counted again
    assert facts(req).prompt_tokens(GPT) > first + 90
    assert facts(request()) is not facts(req)


def test_cheapest_explains_the_first_targets_and_survives_long_histories() -> None:
    candidates = [target(f"t{i}", m) for i, m in enumerate(CATALOG.models())]
    policy = Cheapest(explain=2)
    context = ctx(candidates, task="t")
    why = list(dict(policy.decide(context).steps[0].kept).values())
    assert why[0].startswith("est. $") and why[1].startswith("est. $") and why[2] == "est. costlier"
    for i in range(5_000):  # past the change log's bound: entries start over from the statistics
        policy.observe(row(candidates[i % len(candidates)], task="t", cached=i % 900, output=1 + i % 700))
    assert kept(policy, context) == exact_order(context, policy)


def test_single_builtin_decide_and_rank_agree() -> None:
    policy = Residency(SEED_LEVELS)
    context = ctx(sensitivity="pii")
    choices = list(policy.rank(context))
    assert [c.target.name for c in choices if c.kept] == kept(policy, context)
    assert {c.target.name: c.reason for c in choices if not c.kept} == {
        name: why.removeprefix("Residency: ") for name, why in dropped(policy, context).items()
    }
