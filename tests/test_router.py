"""The router end to end over real HTTP through the real openai SDK, against the emulator."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import openai
import pytest
from conftest import CANARY_DEEPSEEK, CANARY_OPENAI, USER
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmroute
from llmroute.testing import Emulator, Fault


def reconcile(ledger: llmroute.Ledger, emu: Emulator) -> None:
    """The ledger's tokens equal the emulator's bill, kind by kind."""
    totals = ledger.total()
    bill = emu.bill.total()
    assert totals.usage.input_tokens == bill.input_tokens
    assert totals.usage.output_tokens == bill.output_tokens
    assert totals.usage.cache_read_tokens == bill.cached_tokens
    assert totals.usage.reasoning_tokens == bill.reasoning_tokens


def test_drop_in_returns_openai_types(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert isinstance(reply, ChatCompletion)
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    dumped = reply.model_dump()
    assert "route" not in dumped and "_route" not in dumped
    assert ChatCompletion.model_validate(dumped) == reply  # equality with a plain ChatCompletion holds
    assert reply.route.deployment == "gpt" and reply.route.provider == "openai"
    assert reply.route.usage.input_tokens == reply.usage.prompt_tokens  # type: ignore[union-attr]
    assert reply.route.cost is not None and reply.route.cost > 0
    assert len(router.ledger) == 1
    reconcile(router.ledger, emu)


def test_cost_is_computed_from_catalog_prices(make_router: Any) -> None:
    router = make_router()
    reply = router.chat.completions.create(model="deepseek-v3.2", messages=USER)
    usage = reply.route.usage
    expected = (
        Decimal(usage.uncached_input_tokens) * Decimal("0.28")
        + Decimal(usage.cache_read_tokens) * Decimal("0.028")
        + Decimal(usage.output_tokens) * Decimal("0.42")
    ) / Decimal(1_000_000)
    assert reply.route.cost == expected
    row = router.ledger.rows()[0]
    assert row.cost is not None and row.cost.total == expected
    assert (
        row.cost.uncached_input + row.cost.cache_read + row.cost.cache_write + row.cost.output
        == row.cost.total
    )


def test_prefix_cache_hits_are_reported_per_dialect(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    system = {"role": "system", "content": "You review code. " + "Be precise and kind about style. " * 400}
    for model in ("gpt-5.4", "deepseek-v3.2"):
        first = router.chat.completions.create(
            model=model, messages=[system, {"role": "user", "content": "a"}]
        )
        second = router.chat.completions.create(
            model=model, messages=[system, {"role": "user", "content": "b"}]
        )
        assert first.route.usage.cache_read_tokens == 0
        assert second.route.usage.cache_read_tokens > 1000, model
        assert second.route.cost is not None and first.route.cost is not None
        assert second.route.cost < first.route.cost or model == "gpt-5.4"
    reconcile(router.ledger, emu)
    # DeepSeek's own fields: hit + miss = prompt_tokens.
    ds = router.chat.completions.create(
        model="deepseek-v3.2", messages=[system, {"role": "user", "content": "c"}]
    )
    raw = ds.usage
    assert raw is not None
    assert raw.prompt_cache_hit_tokens + raw.prompt_cache_miss_tokens == raw.prompt_tokens  # type: ignore[attr-defined]
    assert ds.route.usage.cache_read_tokens == raw.prompt_cache_hit_tokens  # type: ignore[attr-defined]


@pytest.mark.parametrize("dialect", ["vllm", "ollama", "llamacpp"])
def test_self_hosted_dialects(make_router: Any, emu: Emulator, dialect: str) -> None:
    deployment = llmroute.Deployment(
        "local",
        model="qwen3-8b",
        provider=dialect,
        base_url=emu.base_url(dialect),
        http_client=emu.http_client(),
    )
    router = make_router(
        deployments=[deployment], models=[llmroute.ModelSpec("qwen3-8b", dialect, "qwen3-8b")]
    )
    system = {"role": "system", "content": "Context. " * 600}
    router.chat.completions.create(model="qwen3-8b", messages=[system, {"role": "user", "content": "a"}])
    reply = router.chat.completions.create(
        model="qwen3-8b", messages=[system, {"role": "user", "content": "b"}]
    )
    assert reply.route.usage.input_tokens > 600
    if dialect == "llamacpp":  # prompt_tokens counts only new tokens; timings.cache_n the reused ones
        assert reply.route.usage.cache_read_tokens > 0
        assert reply.route.usage.input_tokens > reply.usage.prompt_tokens  # type: ignore[union-attr]
    reconcile(router.ledger, emu)
    assert reply.route.cost is None  # no price row: unpriced, never $0
    assert router.ledger.total().unpriced == 2


def test_streaming_sync(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    stream = router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True)
    with stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert all(c.choices for c in chunks)  # the usage chunk the caller did not ask for is hidden
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
    assert stream.route.usage.output_tokens > 0 and not stream.route.usage.estimated
    assert emu.requests[-1].body["stream_options"] == {"include_usage": True}
    reconcile(router.ledger, emu)


def test_streaming_with_usage_requested(make_router: Any) -> None:
    router = make_router()
    chunks = list(
        router.chat.completions.create(
            model="deepseek-v3.2", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


async def test_async_and_streaming(make_async_router: Any, emu: Emulator) -> None:
    router = make_async_router()
    reply = await router.chat.completions.create(model="deepseek-v3.2", messages=USER)
    assert isinstance(reply, ChatCompletion) and reply.route.deployment == "ds"
    stream = await router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True)
    async with stream:
        chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream.route.usage.output_tokens > 0
    reconcile(router.ledger, emu)
    await router.close()


def test_sync_and_async_agree(make_router: Any, make_async_router: Any) -> None:
    import asyncio

    sync_reply = make_router().chat.completions.create(model="gpt-5.4", messages=USER, seed=3)
    async_reply = asyncio.run(
        make_async_router().chat.completions.create(model="gpt-5.4", messages=USER, seed=3)
    )
    assert sync_reply.choices[0].message.content == async_reply.choices[0].message.content
    assert sync_reply.route.usage == async_reply.route.usage


def test_fallback_after_retries_and_every_attempt_in_the_ledger(make_router: Any, emu: Emulator) -> None:
    router = make_router(fallbacks=["deepseek-v3.2"])
    emu.inject(Fault.server_error(500), provider="openai", times=4)  # the default 4 attempts
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.route.deployment == "ds"
    assert [r.outcome for r in reply.route.attempts] == ["error"] * 4 + ["ok"]
    assert reply.route.retries == 4 and reply.route.fallbacks == 1
    assert [r.error for r in router.ledger.rows()][:4] == ["ServerError"] * 4
    reconcile(router.ledger, emu)


def test_retry_after_is_honoured(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    emu.inject(Fault.rate_limit(retry_after=0.3), provider="openai", times=1)
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert reply.route.retries == 1
    first, second = emu.requests[-2], emu.requests[-1]
    assert second.time - first.time >= 0.3


def test_errors_are_openai_exceptions(make_router: Any, emu: Emulator) -> None:
    router = make_router(retry=llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(1)))
    emu.inject(Fault.rate_limit(retry_after=0), provider="openai", times=1)
    with pytest.raises(openai.RateLimitError) as info:
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    error = info.value
    assert isinstance(error, llmroute.ProviderError)
    assert error.status_code == 429 and error.request_id and error.response.headers.get("x-request-id")
    assert error.deployment == "gpt" and error.provider == "openai"
    assert len(router.ledger) == 1 and router.ledger.rows()[0].outcome == "error"


def test_all_targets_failed(make_router: Any, emu: Emulator) -> None:
    router = make_router(
        fallbacks=["deepseek-v3.2"],
        retry=llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(1)),
    )
    emu.inject(Fault.server_error(500), times=2)
    with pytest.raises(llmroute.AllTargetsFailed) as info:
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert isinstance(info.value, openai.InternalServerError) and len(info.value.exceptions) == 2
    assert {e.deployment for e in info.value.exceptions} == {"gpt", "ds"}


def test_bad_request_is_not_retried_elsewhere(make_router: Any, emu: Emulator) -> None:
    router = make_router(fallbacks=["deepseek-v3.2"])
    emu.inject(Fault.bad_request("messages[0]: invalid"), provider="openai", times=1)
    with pytest.raises(openai.BadRequestError):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert len(emu.requests) == 1


def test_length_is_flagged_truncated(make_router: Any) -> None:
    router = make_router()
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER, max_tokens=3)
    assert reply.choices[0].finish_reason == "length"
    assert reply.route.truncated and reply.route.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert router.ledger.rows()[0].outcome == "truncated"


def test_cut_stream_raises_and_is_still_billed(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    emu.inject(Fault.stream_cut(after_tokens=6), provider="deepseek", times=1)
    stream = router.chat.completions.create(model="deepseek-v3.2", messages=USER, stream=True)
    received = []
    with pytest.raises(llmroute.StreamInterrupted) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert info.value.partial_text == "".join(received)
    row = router.ledger.rows()[-1]
    assert row.outcome == "cut" and row.usage.estimated
    reconcile(router.ledger, emu)  # the estimate equals what the provider billed


def test_stream_failing_before_first_chunk_falls_back(make_router: Any, emu: Emulator) -> None:
    router = make_router(fallbacks=["deepseek-v3.2"])
    emu.inject(Fault.connection_reset(), provider="openai", times=4)  # the default 4 attempts
    stream = router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True)
    list(stream)
    assert stream.route.deployment == "ds"


def test_hints_reach_the_ledger(make_router: Any) -> None:
    router = make_router()
    with llmroute.hints(task="code_review", tags=["ci"]):
        router.chat.completions.create(model="gpt-5.4", messages=USER, route={"sensitivity": "internal"})
    row = router.ledger.rows()[0]
    assert (row.hints.task, row.hints.sensitivity, row.hints.tags) == ("code_review", "internal", ("ci",))
    assert router.ledger.group_by("task")["code_review"].calls == 1


def test_model_auto_and_deployment_names(make_router: Any) -> None:
    router = make_router()
    assert router.chat.completions.create(model="auto", messages=USER).route.deployment == "gpt"
    assert router.chat.completions.create(model="ds", messages=USER).route.deployment == "ds"
    assert router.chat.completions.create(model="deepseek-chat", messages=USER).route.model == "deepseek-v3.2"


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"model": "gpt-9-ultra"}, llmroute.UnknownModel, "known: "),
        (
            {"model": "gpt-5.4", "max_tokens": 5, "max_completion_tokens": 5},
            llmroute.InvalidRequest,
            "not both",
        ),
        ({"model": "gpt-5.4", "temperature": 9}, llmroute.InvalidRequest, "temperature"),
        ({"model": "gpt-5.4", "messages": [{"role": "user"}]}, llmroute.InvalidRequest, "content"),
        ({"model": "gpt-5.4", "route": {"sensitivty": "pii"}}, llmroute.InvalidRequest, "sensitivty"),
    ],
)
def test_bad_input_fails_before_any_network_call(
    make_router: Any, emu: Emulator, kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    router = make_router()
    kwargs.setdefault("messages", USER)
    with pytest.raises(error, match=text):
        router.chat.completions.create(**kwargs)
    assert emu.requests == [] and len(router.ledger) == 0


def test_unknown_model_lists_what_is_known(make_router: Any) -> None:
    with pytest.raises(llmroute.UnknownModel) as info:
        make_router().chat.completions.create(model="nope", messages=USER)
    assert {"gpt", "gpt-5.4", "deepseek-v3.2", "auto"} <= set(info.value.known)


def test_missing_key_names_the_variable_and_sends_nothing(emu: Emulator) -> None:
    router = llmroute.Router(
        [
            llmroute.Deployment(
                "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), http_client=emu.http_client()
            )
        ]
    )
    with pytest.raises(llmroute.MissingAPIKey, match="OPENAI_API_KEY"):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert emu.requests == []


def test_canary_keys_never_leak(make_router: Any, emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu.api_keys = {"openai": "sk-the-right-key-000000000", "deepseek": CANARY_DEEPSEEK}
    router = make_router(fallbacks=["deepseek-v3.2"])
    reply = router.chat.completions.create(model="gpt-5.4", messages=USER)  # 401 on gpt, then ds
    assert reply.route.deployment == "ds"
    emu.api_keys = {"openai": "sk-the-right-key-000000000", "deepseek": "sk-also-wrong-000000000"}
    with pytest.raises(openai.AuthenticationError) as info:
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    # gpt's breaker is open after its 401, so ds is tried first; with ds failing too, every
    # candidate is closed off and gpt is probed anyway (the marks are not trusted when nothing is left).
    errors = list(getattr(info.value, "exceptions", [info.value]))
    assert [e.deployment for e in errors] == ["ds", "gpt"]
    texts = [
        repr(router),
        repr(router.deployments),
        repr(reply.route),
        str(info.value),
        repr(info.value),
        *(str(e) for e in errors),
        *(repr(e.__dict__) for e in errors),
        caplog.text,
        *(repr(r) for r in router.ledger),
        *(str(r.as_dict()) for r in router.ledger),
    ]
    import traceback

    texts.append("".join(traceback.format_exception(info.value)))
    for text in texts:
        assert CANARY_OPENAI not in text and CANARY_DEEPSEEK not in text


def test_router_from_config(tmp_path: Any, emu: Emulator) -> None:
    with emu.serve() as server:
        config = tmp_path / "llmroute.toml"
        config.write_text(f"""
[router]
fallbacks = ["deepseek-v3.2"]

[router.retry]
attempts = 1

[[deployment]]
name = "gpt"
model = "gpt-5.4"
base_url = "{server.base_url("openai")}"
api_key = "{CANARY_OPENAI}"

[[deployment]]
name = "ds"
model = "deepseek-v3.2"
base_url = "{server.base_url("deepseek")}"
api_key_env = "MY_DS_KEY"

[[model]]
id = "gpt-5.4"
provider = "openai"
price = {{ input = "1", output = "2", source = "test", as_of = "2026-11-23" }}
""")
        import os

        os.environ["MY_DS_KEY"] = CANARY_DEEPSEEK
        try:
            with llmroute.Router.from_config(config) as router:
                emu.inject(Fault.server_error(500), provider="openai", times=1)
                reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
                assert reply.route.deployment == "ds"
                reply = router.chat.completions.create(model="gpt-5.4", messages=USER)
                usage = reply.route.usage
                assert reply.route.cost == (
                    Decimal(usage.input_tokens) + 2 * Decimal(usage.output_tokens)
                ) / Decimal(10**6)
        finally:
            del os.environ["MY_DS_KEY"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[deployment]]\nname='a'\nmodel='gpt-5.4'\ncolour='red'\n", "colour"),
        ("[router]\npolicy='magic'\n[[deployment]]\nname='a'\nmodel='gpt-5.4'\n", "magic"),
        (
            "[[deployment]]\nname='a'\nmodel='gpt-5.4'\n"
            "[[model]]\nid='gpt-5.4'\nprovider='openai'\nprice={input='-3', output='1'}\n",
            "input",
        ),
        ("[[deployment]]\nname='a'\nmodel='mystery-model'\n", "provider"),
        ("not toml at all [", "invalid TOML"),
    ],
)
def test_bad_config_files(tmp_path: Any, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(llmroute.ConfigurationError, match=match):
        llmroute.Router.from_config(path)


def test_legacy_module_level_api_from_environment(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmroute import legacy

    with emu.serve() as server:
        monkeypatch.setenv("OPENAI_API_KEY", CANARY_OPENAI)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url("openai"))
        legacy.reset_default_router()
        try:
            response = llmroute.ChatCompletion.create(model="gpt-5.4", messages=USER, request_timeout=10)
            assert response["choices"][0]["message"]["content"] == response.choices[0].message.content
            assert response["usage"]["total_tokens"] > 0
            assert response.route is not None and response.route.deployment == "openai"
            # A model the catalog does not know, in a configured family: served, unpriced.
            unknown = llmroute.ChatCompletion.create(model="gpt-7-preview", messages=USER)
            assert unknown.route is not None and unknown.route.cost is None
            chunks = list(llmroute.ChatCompletion.create(model="gpt-5.4", messages=USER, stream=True))
            assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
            with pytest.raises(llmroute.UnknownModel, match="claude"):
                llmroute.ChatCompletion.create(model="claude-opus-4.8", messages=USER)
            with pytest.raises(llmroute.InvalidRequest, match="api_key"):
                llmroute.ChatCompletion.create(model="gpt-5.4", messages=USER, api_key="sk-x")
        finally:
            legacy.reset_default_router()


def test_legacy_without_any_provider_is_a_clear_error() -> None:
    from llmroute import legacy

    legacy.reset_default_router()
    with pytest.raises(llmroute.ConfigurationError, match="OPENAI_API_KEY"):
        llmroute.ChatCompletion.create(model="gpt-5.4", messages=USER)


def test_real_socket_server_sync_async_stream(emu: Emulator) -> None:
    import asyncio

    with emu.serve() as server:
        router = llmroute.Router(
            [
                llmroute.Deployment(
                    "gpt", model="gpt-5.4", base_url=server.base_url("openai"), api_key=CANARY_OPENAI
                )
            ]
        )
        assert router.chat.completions.create(model="gpt-5.4", messages=USER).choices[0].message.content
        assert list(router.chat.completions.create(model="gpt-5.4", messages=USER, stream=True))
        router.close()

        async def run() -> None:
            arouter = llmroute.AsyncRouter(
                [
                    llmroute.Deployment(
                        "gpt", model="gpt-5.4", base_url=server.base_url("openai"), api_key=CANARY_OPENAI
                    )
                ]
            )
            replies = await asyncio.gather(
                *(arouter.chat.completions.create(model="gpt-5.4", messages=USER) for _ in range(20))
            )
            assert len(replies) == 20
            await arouter.close()

        asyncio.run(run())
    reconcile_total = emu.bill.total()
    assert reconcile_total.requests == 22


def test_timeout_is_a_timeout_error_and_falls_back(emu: Emulator) -> None:
    with emu.serve() as server:
        router = llmroute.Router(
            [
                llmroute.Deployment(
                    "gpt", model="gpt-5.4", base_url=server.base_url("openai"), api_key=CANARY_OPENAI
                ),
                llmroute.Deployment(
                    "ds", model="deepseek-v3.2", base_url=server.base_url("deepseek"), api_key=CANARY_DEEPSEEK
                ),
            ],
            fallbacks=["deepseek-v3.2"],
            retry=llmroute.RetryPolicy(stop=__import__("tenacity").stop_after_attempt(1)),
        )
        emu.inject(Fault.timeout(delay=2.0), provider="openai", times=1)
        reply = router.chat.completions.create(model="gpt-5.4", messages=USER, timeout=0.3)
        assert reply.route.deployment == "ds"
        assert reply.route.attempts[0].error == "ProviderTimeout"
        router.close()
