"""Configuration traps: fallbacks a custom policy would ignore are refused; a policy that does not
follow `model=` says so (a trace step and a warning once per model); `model="auto"` works on
`Router.from_env()`'s wildcard deployments (cheapest estimated first)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import USER

import llmroute
from llmroute.errors import ConfigurationError
from llmroute.policies import Capabilities, Cheapest, Residency
from llmroute.policy import Requested
from llmroute.testing import Emulator


def test_fallbacks_with_a_custom_policy_are_refused(make_router: Any) -> None:
    with pytest.raises(
        ConfigurationError, match=r"fallbacks=\['deepseek-v3.2'\] is only read by the default"
    ):
        make_router(policy=Cheapest(), fallbacks=["deepseek-v3.2"])
    with pytest.raises(ConfigurationError, match="Requested"):
        make_router(policy=Capabilities() | Requested(["gpt-5.4"]), fallbacks=["deepseek-v3.2"])
    # the same fallbacks in the policy's Requested: nothing is ignored
    router = make_router(policy=Capabilities() | Requested(["deepseek-v3.2"]), fallbacks=["deepseek-v3.2"])
    assert router.chat.completions.create(model="gpt-5.4", messages=USER).route.deployment == "gpt"
    make_router(policy=Cheapest())  # no fallbacks: fine


def test_fallbacks_must_be_a_list_of_names(make_router: Any) -> None:
    """A lone string would be read letter by letter, and None meant "no fallbacks" but raised an
    untyped TypeError: a typed error names the argument, and None is no fallbacks."""
    with pytest.raises(ConfigurationError, match=r"write fallbacks=\['deepseek-v3.2'\]"):
        make_router(fallbacks="deepseek-v3.2")
    with pytest.raises(ConfigurationError, match="fallbacks must be model or deployment names"):
        make_router(fallbacks=["deepseek-v3.2", 3])
    with pytest.raises(ConfigurationError, match="fallbacks must be a list"):
        make_router(fallbacks=7)
    router = make_router(fallbacks=None)
    assert router.chat.completions.create(model="gpt-5.4", messages=USER).route.deployment == "gpt"


def test_config_file_policy_with_fallbacks(tmp_path: Any, emu: Emulator) -> None:
    from llmroute.routing.config import load_config

    path = tmp_path / "llmroute.toml"
    path.write_text(
        '[[deployment]]\nname = "gpt"\nmodel = "gpt-5.4"\napi_key = "sk-x"\n'
        '[router]\npolicy = "requested"\nfallbacks = ["gpt-5.4"]\n'
    )
    llmroute.Router(**load_config(path)).close()  # the default policy reads them: accepted
    path.write_text(
        '[[deployment]]\nname = "gpt"\nmodel = "gpt-5.4"\napi_key = "sk-x"\n'
        '[router]\nfallbacks = ["gpt-5.4"]\n[[router.policy]]\nname = "cheapest"\n'
    )
    with pytest.raises(ConfigurationError, match="would be ignored"):
        llmroute.Router(**load_config(path))


def test_a_policy_that_ignores_model_says_so(make_router: Any, caplog: pytest.LogCaptureFixture) -> None:
    router = make_router(policy=Capabilities() | Cheapest())
    with caplog.at_level(logging.WARNING, logger="llmroute.router"):
        first = router.chat.completions.create(model="gpt-5.4", messages=USER)
        second = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert first.route.deployment != "gpt"  # Cheapest chose another model: the trap
    steps = [s for s in first.route.decision.steps if s.policy == "ModelNotFollowed"]
    assert (
        steps and "model='gpt-5.4' not followed" in dict(steps[0].kept)[first.route.decision.targets[0].name]
    )
    assert "Requested()" in first.route.decision.reasons()[first.route.decision.targets[0].name][-1]
    warnings = [r for r in caplog.records if "not followed" in r.getMessage()]
    assert len(warnings) == 1  # once per model
    assert any(s.policy == "ModelNotFollowed" for s in second.route.decision.steps)


def test_no_note_when_the_policy_follows_or_a_gate_rules_the_model_out(
    make_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Residency({"pii": ["US"], "internal": ["*"]})
    router = make_router(policy=gate | Cheapest() | Requested(["gpt-5.4"]))
    with caplog.at_level(logging.WARNING, logger="llmroute.router"):
        followed = router.chat.completions.create(model="deepseek-v3.2", messages=USER)
        assert followed.route.deployment == "ds"
        gated = router.chat.completions.create(
            model="deepseek-v3.2", messages=USER, route={"sensitivity": "pii"}
        )
    for reply in (followed, gated):
        assert all(s.policy != "ModelNotFollowed" for s in reply.route.decision.steps)
    assert not [r for r in caplog.records if "not followed" in r.getMessage()]


def test_auto_on_from_env_picks_the_cheapest(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = Emulator(seed=0)
    with emu.serve() as server:
        monkeypatch.delenv("LLMROUTE_CONFIG", raising=False)
        for provider in ("openai", "deepseek", "anthropic"):
            monkeypatch.setenv(f"{provider.upper()}_API_KEY", "sk-test")
            monkeypatch.setenv(f"{provider.upper()}_BASE_URL", server.base_url(provider))
        router = llmroute.Router.from_env()
        try:
            reply = router.chat.completions.create(model="auto", messages=USER)
            targets = reply.route.decision.targets
            costs = [
                llmroute.money.estimate.estimate_cost(
                    router._core.prepare({"model": "auto", "messages": USER})[0], t
                ).cost
                for t in targets
            ]
        finally:
            router.close()
    assert reply.choices[0].message.content
    assert {t.provider.name for t in targets} == {"openai", "deepseek", "anthropic"}
    priced = [c for c in costs if c is not None]
    assert priced == sorted(priced) and costs[0] == min(priced)
    assert reply.route.deployment == targets[0].deployment.name
