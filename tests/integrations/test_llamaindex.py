"""LlamaIndex's OpenAI LLM with a router as its clients."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("llama_index.llms.openai")

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import llmroute
from llmroute.testing import Emulator, Fault
from tests.integrations.conftest import run_example


def test_complete_chat_stream_async_with_fallback(emu: Emulator) -> None:
    emu.inject(Fault.server_error(), provider="openai")
    deployments = [
        llmroute.Deployment(
            "gpt",
            model="gpt-*",
            provider="openai",
            base_url=emu.base_url("openai"),
            api_key="sk-t",
            http_client=emu.http_client(),
            async_http_client=emu.async_http_client(),
        ),
        llmroute.Deployment(
            "deepseek",
            model="deepseek-v3.2",
            base_url=emu.base_url("deepseek"),
            api_key="sk-t",
            http_client=emu.http_client(),
            async_http_client=emu.async_http_client(),
        ),
    ]
    router = llmroute.Router(deployments, fallbacks=["deepseek-v3.2"], max_retries=0)
    arouter = llmroute.AsyncRouter(deployments, fallbacks=["deepseek-v3.2"], max_retries=0)
    llm = OpenAI(model="gpt-4o", api_key="unused", max_retries=0)
    llm._client, llm._aclient = router, arouter
    assert str(llm.complete("Say hello"))
    assert [(r.deployment, r.outcome) for r in router.ledger.rows()] == [("gpt", "error"), ("deepseek", "ok")]
    assert str(llm.chat([ChatMessage(role="user", content="Say hello")]))
    assert "".join(r.delta or "" for r in llm.stream_complete("Say hello"))
    assert str(asyncio.run(llm.acomplete("Say hello")))
    assert len(arouter.ledger.rows()) == 1


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("llamaindex_example.py", capsys)
    assert "served by gpt" in out
