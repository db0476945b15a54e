"""Routers are `openai.OpenAI` / `AsyncOpenAI` clients: chat routed, the other resources sent to one
designated OpenAI-compatible deployment with its own key, the SDK client's options accepted."""

from __future__ import annotations

import httpx2
import openai
import pytest
from pydantic import BaseModel

import llmroute
from llmroute._sdkclient import PLACEHOLDER_KEY, NotRouted, ResourceUnavailable
from llmroute.testing import Emulator
from tests.conftest import CANARY_OPENAI

USER = [{"role": "user", "content": "Hi"}]


def _gpt(emu: Emulator, *, asynchronous: bool = False, **extra: object) -> llmroute.Deployment:
    http = (
        {"async_http_client": emu.async_http_client()} if asynchronous else {"http_client": emu.http_client()}
    )
    return llmroute.Deployment(
        "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, **http, **extra
    )


def _claude(emu: Emulator) -> llmroute.Deployment:
    return llmroute.Deployment(
        "claude",
        model="claude-sonnet-4.5",
        base_url=emu.base_url("anthropic"),
        api_key="sk-ant-canary-99887766554433221100ffeeddcc",
        http_client=emu.http_client(),
    )


def test_routers_are_sdk_clients(emu: Emulator) -> None:
    router = llmroute.Router([_gpt(emu)])
    arouter = llmroute.AsyncRouter([_gpt(emu, asynchronous=True)])
    assert isinstance(router, openai.OpenAI)
    assert not isinstance(router, openai.AsyncOpenAI)
    assert isinstance(arouter, openai.AsyncOpenAI)
    assert str(router.base_url).startswith(emu.base_url("openai"))
    assert router.chat.completions.create(model="gpt-5.4", messages=USER).route.deployment == "gpt"


def test_the_placeholder_key_is_never_sent(emu: Emulator) -> None:
    emu.api_keys["openai"] = CANARY_OPENAI
    router = llmroute.Router([_gpt(emu)])
    assert router.api_key == PLACEHOLDER_KEY
    with pytest.raises((NotRouted, openai.APIConnectionError)) as info:
        router.with_options(max_retries=0).get("/models", cast_to=object)
    # some openai versions let the transport's error through, others wrap it in APIConnectionError
    assert isinstance(info.value, NotRouted) or isinstance(info.value.__cause__, NotRouted)
    router.chat.completions.create(model="gpt-5.4", messages=USER)
    router.models.list()
    assert emu.requests and all(r.authorized for r in emu.requests)
    assert len(emu.requests) == 2  # the refused request never reached the server


def test_beta_and_root_raw_response_are_routed(emu: Emulator) -> None:
    class City(BaseModel):
        name: str

    router = llmroute.Router([_gpt(emu)])
    parsed = router.beta.chat.completions.parse(model="gpt-5.4", messages=USER, response_format=City)
    assert isinstance(parsed.choices[0].message.parsed, City)
    raw = router.with_raw_response.chat.completions.create(model="gpt-5.4", messages=USER)
    assert raw.headers.get("x-request-id", "").startswith("req_")
    assert raw.parse().route.deployment == "gpt"
    with router.chat.completions.with_streaming_response.create(
        model="gpt-5.4", messages=USER, stream=True
    ) as response:
        assert response.status_code == 200
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text
    assert len(router.ledger.rows()) == 3


def test_other_resources_go_to_the_default_deployment_with_its_key(emu: Emulator) -> None:
    emu.api_keys["openai"] = CANARY_OPENAI
    router = llmroute.Router([_claude(emu), _gpt(emu)])  # the first OpenAI-compatible one: gpt
    listed = [m.id for m in router.models.list()]
    assert "gpt-5.4" in listed
    first = router.embeddings.create(model="text-embedding-3-small", input=["a b c", "d"])
    again = router.embeddings.create(model="text-embedding-3-small", input=["a b c", "d"])
    assert first.data[0].embedding == again.data[0].embedding  # deterministic
    assert first.usage.prompt_tokens == 4
    rows = [r for r in router.ledger.rows() if r.model == "text-embedding-3-small"]
    assert len(rows) == 2
    assert rows[0].deployment == "gpt" and rows[0].usage.input_tokens == 4
    assert rows[0].cost is None  # not in the catalog: unpriced, never $0
    assert {r.path.split("/")[1] for r in emu.requests} == {"openai"}


def test_raw_embedding_calls_are_rows(emu: Emulator) -> None:
    router = llmroute.Router([_gpt(emu)])
    raw = router.with_raw_response.embeddings.create(model="text-embedding-3-small", input="a b")
    assert raw.headers.get("x-request-id", "").startswith("req_")
    assert len(raw.parse().data) == 1
    again = router.embeddings.with_raw_response.create(model="text-embedding-3-small", input="a b c")
    assert again.parse().usage.prompt_tokens == 3
    assert [r.usage.input_tokens for r in router.ledger.rows()] == [2, 3]
    assert router.with_raw_response.models.list().parse().data  # not billable: no row
    assert len(router.ledger.rows()) == 2


def test_a_failed_embedding_call_is_a_row_too(emu: Emulator) -> None:
    router = llmroute.Router([_gpt(emu)], max_retries=0)
    with pytest.raises(openai.BadRequestError):
        router.embeddings.create(model="text-embedding-3-small", input=[])
    (row,) = router.ledger.rows()
    assert row.outcome == "error" and row.status_code == 400


def test_default_deployment_names_the_target(emu: Emulator) -> None:
    other = llmroute.Deployment(
        "local",
        model="llama-3",
        provider="vllm",
        base_url=emu.base_url("vllm"),
        http_client=emu.http_client(),
    )
    router = llmroute.Router([_gpt(emu), other], default_deployment="local")
    router.models.list()
    assert emu.requests[-1].provider == "vllm"
    with pytest.raises(llmroute.ConfigurationError, match="not one of"):
        llmroute.Router([_gpt(emu)], default_deployment="nope")
    with pytest.raises(llmroute.ConfigurationError, match="not OpenAI-compatible"):
        llmroute.Router([_gpt(emu), _claude(emu)], default_deployment="claude")


def test_no_openai_compatible_deployment_is_a_typed_error(emu: Emulator) -> None:
    router = llmroute.Router([_claude(emu)])
    with pytest.raises(ResourceUnavailable, match=r"router\.embeddings") as info:
        router.embeddings.create(model="x", input="y")
    assert info.value.resource == "embeddings"
    assert not isinstance(info.value, AttributeError)
    with pytest.raises(ResourceUnavailable, match="default_deployment"):
        router.models.list()
    assert (
        router.chat.completions.create(model="claude-sonnet-4.5", messages=USER).route.provider == "anthropic"
    )


async def test_async_other_resources(emu: Emulator) -> None:
    arouter = llmroute.AsyncRouter([_gpt(emu, asynchronous=True)])
    result = await arouter.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(result.data[0].embedding) == 8
    page = await arouter.models.list()
    assert [m.id async for m in page]
    assert [r.usage.input_tokens for r in arouter.ledger.rows()] == [2]
    await arouter.close()


def test_client_options(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.inject(llmroute.testing.Fault.server_error(), provider="openai")
    router = llmroute.Router([_gpt(emu)], max_retries=0, timeout=20.0, default_headers={"X-Team": "search"})
    with pytest.raises(openai.InternalServerError):
        router.chat.completions.create(model="gpt-5.4", messages=USER)
    assert len(router.ledger.rows()) == 1  # max_retries=0: one attempt
    router.chat.completions.create(model="gpt-5.4", messages=USER, extra_headers={"X-Call": "1"})
    assert router.timeout == 20.0 and router.max_retries == 0
    copy = router.with_options(default_headers={"X-Other": "2"}, max_retries=1)
    assert copy.max_retries == 1 and router.max_retries == 0
    assert copy._custom_headers == {"X-Team": "search", "X-Other": "2"}
    assert router.copy(timeout=5.0).timeout == 5.0

    monkeypatch.setenv("OPENAI_API_KEY", CANARY_OPENAI)
    monkeypatch.delenv("LLMROUTE_CONFIG", raising=False)
    from_env = llmroute.Router.from_env(max_retries=0, timeout=20.0)
    assert from_env.max_retries == 0 and from_env.timeout == 20.0


def test_default_headers_reach_the_provider(emu: Emulator) -> None:
    seen: list[str | None] = []

    def hook(request: httpx2.Request) -> None:
        seen.append(request.headers.get("x-team"))

    http = httpx2.Client(transport=emu.transport, event_hooks={"request": [hook]})
    deployment = llmroute.Deployment(
        "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, http_client=http
    )
    router = llmroute.Router([deployment], default_headers={"X-Team": "search"})
    router.chat.completions.create(model="gpt-5.4", messages=USER)
    router.chat.completions.create(model="gpt-5.4", messages=USER, extra_headers={"X-Team": "ads"})
    router.embeddings.create(model="text-embedding-3-small", input="x")
    assert seen == ["search", "ads", "search"]


def test_connection_settings_on_the_router_are_refused(emu: Emulator) -> None:
    for option in ("api_key", "base_url", "http_client", "organization"):
        with pytest.raises(llmroute.ConfigurationError, match="belong on each Deployment"):
            llmroute.Router([_gpt(emu)], **{option: "x"})
    with pytest.raises(llmroute.ConfigurationError, match="connection settings"):
        llmroute.Router([_gpt(emu)]).with_options(base_url="http://x")


def test_sync_and_async_clients_in_the_wrong_place(emu: Emulator) -> None:
    with pytest.raises(llmroute.ConfigurationError, match="async_http_client="):
        llmroute.Deployment("gpt", model="gpt-5.4", http_client=emu.async_http_client())
    with pytest.raises(llmroute.ConfigurationError, match="pass it as http_client="):
        llmroute.Deployment("gpt", model="gpt-5.4", async_http_client=emu.http_client())
    sync_sdk = openai.OpenAI(api_key="x", base_url=emu.base_url("openai"), http_client=emu.http_client())
    with pytest.raises(llmroute.ConfigurationError, match="pass it as client="):
        llmroute.Deployment("gpt", model="gpt-5.4", async_client=sync_sdk)
