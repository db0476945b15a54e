"""The pre-1.0 module surface: `llmroute.error`, module-level settings, per-loop async routers,
`Completion` / `Embedding` / `Model`, and default routers dropped at fork."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import llmroute
from llmroute import legacy
from llmroute.testing import Emulator, Fault
from tests.conftest import CANARY_OPENAI

USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    legacy.reset_default_router()
    yield
    for name in legacy.SETTINGS:
        setattr(llmroute, name, None)
    legacy.reset_default_router()


def test_error_names_catch_what_the_router_raises(emu: Emulator) -> None:
    import llmroute as openai_v0

    deployment = llmroute.Deployment(
        "gpt",
        model="gpt-5.4",
        base_url=emu.base_url("openai"),
        api_key=CANARY_OPENAI,
        http_client=emu.http_client(),
    )
    cases = [
        (Fault.rate_limit(), openai_v0.error.RateLimitError),
        (Fault.server_error(), openai_v0.error.ServiceUnavailableError),
        (Fault.auth(), openai_v0.error.AuthenticationError),
    ]
    for fault, name in cases:
        emu.inject(fault, provider="openai")
        with pytest.raises(name) as info:
            llmroute.Router([deployment], max_retries=0).chat.completions.create(
                model="gpt-5.4", messages=USER
            )
        assert isinstance(info.value, openai_v0.error.APIError)
    router = llmroute.Router([deployment], max_retries=0)
    with pytest.raises(openai_v0.error.InvalidRequestError):
        router.chat.completions.create(model="gpt-5.4", messages=USER, temperature="hot")
    with pytest.raises(openai_v0.error.InvalidRequestError):
        router.chat.completions.create(model="no-such-model", messages=USER)
    assert openai_v0.error.Timeout is openai.APITimeoutError


def test_api_base_and_key_are_honoured(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.api_keys["vllm"] = CANARY_OPENAI
    with emu.serve() as server:
        llmroute.api_base = server.base_url("vllm")
        llmroute.api_key = CANARY_OPENAI
        llmroute.organization = "org-123"
        assert llmroute.api_key == CANARY_OPENAI
        reply = llmroute.ChatCompletion.create(model="llama-3-8b", messages=USER)
        assert reply.choices[0].message.content
        assert reply.route.deployment == "openai"
        (record,) = emu.requests
        assert record.provider == "vllm" and record.authorized
        llmroute.api_key = "sk-wrong"  # a changed setting rebuilds the default router
        with pytest.raises(llmroute.error.AuthenticationError):
            llmroute.ChatCompletion.create(model="llama-3-8b", messages=USER)


def test_settings_that_cannot_apply_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    with pytest.raises(llmroute.ConfigurationError, match="api_type"):
        llmroute.api_type = "azure"
    llmroute.api_type = "open_ai"  # the 0.x default: harmless
    with pytest.raises(llmroute.ConfigurationError, match="api_version"):
        llmroute.api_version = "2023-05-15"
    monkeypatch.setenv("LLMROUTE_CONFIG", "router.toml")
    with pytest.raises(llmroute.ConfigurationError, match="LLMROUTE_CONFIG"):
        llmroute.api_key = "sk-x"
    monkeypatch.delenv("LLMROUTE_CONFIG")
    legacy.set_default_router(llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4", api_key="sk-x")]))
    with pytest.raises(llmroute.ConfigurationError, match="set_default_router"):
        llmroute.api_base = "http://localhost:8000/v1"


def test_one_default_async_router_per_event_loop(emu: Emulator) -> None:
    with emu.serve() as server:
        llmroute.api_base = server.base_url("openai")
        llmroute.api_key = CANARY_OPENAI

        async def ask() -> tuple[str, int]:
            reply = await llmroute.ChatCompletion.acreate(model="gpt-5.4", messages=USER)
            return reply["choices"][0]["message"]["content"], id(legacy.default_async_router())

        first, router_a = asyncio.run(ask())
        second, router_b = asyncio.run(ask())  # a second loop: no "Event loop is closed"
    assert first and second
    assert router_a != router_b


def test_completion_embedding_model(emu: Emulator) -> None:
    with emu.serve() as server:
        llmroute.api_base = server.base_url("openai")
        llmroute.api_key = CANARY_OPENAI
        vectors = llmroute.Embedding.create(model="text-embedding-3-small", input=["one two", "three"])
        assert len(vectors["data"]) == 2 and isinstance(vectors.data[0].embedding[0], float)
        assert "gpt-5.4" in [m["id"] for m in llmroute.Model.list()["data"]]
        with pytest.raises(llmroute.error.InvalidRequestError):  # the emulator has no /v1/completions
            llmroute.Completion.create(model="gpt-5.4", prompt="Hi")
        rows = legacy.default_router().ledger.rows()
    assert [r.model for r in rows] == ["text-embedding-3-small", "gpt-5.4"]
    assert rows[0].usage.input_tokens == 3 and rows[1].outcome == "error"


def _in_child(check: Any) -> bytes:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, b"1" if check() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    return os.read(read, 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_fork_drops_the_default_routers_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    legacy.reset_default_router()
    built = legacy.default_router()
    assert _in_child(lambda: legacy._router is None and not legacy._explicit) == b"1"
    assert legacy._router is built  # the parent keeps its own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_fork_keeps_the_router_the_application_set() -> None:
    """A router set with `set_default_router` (its ledger, its store) serves the child's calls too;
    it drops its own connections there (tests/test_fork.py)."""
    router = llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4", api_key="sk-x")])
    legacy.set_default_router(router)
    assert _in_child(lambda: legacy.default_router() is router and legacy._explicit) == b"1"
    assert legacy.default_router() is router
