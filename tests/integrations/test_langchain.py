"""LangChain's ChatOpenAI with a router's clients: invoke, stream, structured output, tools, async."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_openai")

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator
from tests.integrations.conftest import run_example


class City(BaseModel):
    name: str
    country: str


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _llm(emu: Emulator) -> tuple[ChatOpenAI, llmroute.Router, llmroute.AsyncRouter]:
    local = {"base_url": emu.base_url("openai"), "api_key": "sk-t"}
    router = llmroute.Router(
        [llmroute.Deployment("gpt", model="gpt-5.4", http_client=emu.http_client(), **local)]
    )
    arouter = llmroute.AsyncRouter(
        [llmroute.Deployment("gpt", model="gpt-5.4", async_http_client=emu.async_http_client(), **local)]
    )
    llm = ChatOpenAI(
        model="gpt-5.4",
        client=router.chat.completions,
        root_client=router,
        async_client=arouter.chat.completions,
        root_async_client=arouter,
    )
    return llm, router, arouter


def test_sync_surface(emu: Emulator) -> None:
    llm, router, _ = _llm(emu)
    assert llm.invoke("Say hello").content
    chunks = list(llm.stream("Say hello"))
    assert len(chunks) > 1
    city = llm.with_structured_output(City).invoke("Paris is in France")
    assert isinstance(city, City)
    schema = emu.requests[-1].body["response_format"]["json_schema"]
    assert schema["name"] == "City"
    streamed = list(llm.with_structured_output(City).stream("Paris is in France"))  # beta...stream
    assert isinstance(streamed[-1], City)
    message = llm.bind_tools([weather]).invoke("What is the weather in Paris?")
    assert [call["name"] for call in message.tool_calls] == ["weather"]
    assert len(router.ledger.rows()) == 5
    assert all(r.deployment == "gpt" and r.outcome == "ok" for r in router.ledger.rows())


async def test_async_surface(emu: Emulator) -> None:
    llm, router, arouter = _llm(emu)
    assert (await llm.ainvoke("Say hello")).content
    assert len([c async for c in llm.astream("Say hello")]) > 1
    assert isinstance(await llm.with_structured_output(City).ainvoke("Paris is in France"), City)
    assert len(arouter.ledger.rows()) == 3 and not router.ledger.rows()
    await arouter.close()


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("langchain_example.py", capsys)
    assert "tool calls: ['weather']" in out
