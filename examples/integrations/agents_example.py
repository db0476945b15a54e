"""The OpenAI Agents SDK on a router: `OpenAIChatCompletionsModel(model=..., openai_client=arouter)`.
Tools, a structured `output_type`, and a streamed run. Runs offline on the emulator.

pip install llmroute openai-agents
"""

import asyncio

from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator

set_tracing_disabled(True)  # the SDK's tracing exports to OpenAI; nothing leaves this example
emu = Emulator()  # stands in for the providers: in production, leave out base_url and the http client
arouter = llmroute.AsyncRouter(
    [
        llmroute.Deployment(
            "gpt",
            model="gpt-5.4",
            base_url=emu.base_url("openai"),
            api_key="sk-test",
            async_http_client=emu.async_http_client(),
        )
    ]
)
model = OpenAIChatCompletionsModel(model="gpt-5.4", openai_client=arouter)  # the one line


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Trip(BaseModel):
    city: str
    days: int


async def main() -> None:
    helper = Agent(name="helper", instructions="Answer briefly.", model=model, tools=[weather])
    result = await Runner.run(helper, "What is the weather in Paris?")
    print("run:", str(result.final_output)[:40])
    planner = Agent(name="planner", model=model, output_type=Trip)
    trip = (await Runner.run(planner, "Three days in Rome")).final_output
    print("output_type:", type(trip).__name__, trip)
    streamed = Runner.run_streamed(Agent(name="streamer", model=model), "Say hello")
    events = [event async for event in streamed.stream_events()]
    print("streamed:", len(events), "events;", str(streamed.final_output)[:30])
    print(len(arouter.ledger.rows()), "ledger rows")
    await arouter.close()


asyncio.run(main())
