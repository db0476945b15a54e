"""The OpenAI Agents SDK with OpenAIChatCompletionsModel(openai_client=arouter). A run that does not
stream passes `stream=omit`, which request validation reads as not given."""

from __future__ import annotations

import pytest

pytest.importorskip("agents")

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator, Reply, ReplyContext
from tests.integrations.conftest import run_example

set_tracing_disabled(True)


CALLS: list[str] = []


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


class Trip(BaseModel):
    city: str
    days: int


def _model(emu: Emulator) -> tuple[OpenAIChatCompletionsModel, llmroute.AsyncRouter]:
    arouter = llmroute.AsyncRouter(
        [
            llmroute.Deployment(
                "gpt",
                model="gpt-5.4",
                base_url=emu.base_url("openai"),
                api_key="sk-t",
                async_http_client=emu.async_http_client(),
            )
        ]
    )
    return OpenAIChatCompletionsModel(model="gpt-5.4", openai_client=arouter), arouter


async def test_run_with_tools_and_output_type(emu: Emulator) -> None:
    model, arouter = _model(emu)
    CALLS.clear()

    def reply(ctx: ReplyContext) -> Reply | None:
        if ctx.body.get("tools") and not any(m["role"] == "tool" for m in ctx.messages):
            call = {"type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
            return Reply(tool_calls=[call])
        if any(m["role"] == "tool" for m in ctx.messages):
            return Reply(text="Sunny.")
        return None

    emu.set_reply(reply)
    result = await Runner.run(Agent(name="a", model=model, tools=[weather]), "Weather in Paris?")
    assert CALLS == ["Paris"]
    assert result.final_output == "Sunny."
    trip = (
        await Runner.run(Agent(name="p", model=model, output_type=Trip), "Three days in Rome")
    ).final_output
    assert isinstance(trip, Trip)
    assert [r.outcome for r in arouter.ledger.rows()] == ["ok", "ok", "ok"]
    await arouter.close()


async def test_run_streamed(emu: Emulator) -> None:
    model, arouter = _model(emu)
    streamed = Runner.run_streamed(Agent(name="s", model=model), "Say hello")
    events = [event async for event in streamed.stream_events()]
    assert events and streamed.final_output
    (row,) = arouter.ledger.rows()
    assert row.stream
    await arouter.close()


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_example("agents_example.py", capsys)
    assert "output_type: Trip" in out
