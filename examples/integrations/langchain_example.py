"""LangChain's ChatOpenAI on a router: invoke, stream, structured output, tools, async.
Runs offline on the emulator.

pip install llmroute langchain-openai
"""

import asyncio

from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import llmroute
from llmroute.testing import Emulator

emu = Emulator()  # stands in for the providers: in production, leave out base_url and the http clients
local = {"base_url": emu.base_url("openai"), "api_key": "sk-test"}
router = llmroute.Router(
    [llmroute.Deployment("gpt", model="gpt-5.4", http_client=emu.http_client(), **local)]
)
arouter = llmroute.AsyncRouter(
    [llmroute.Deployment("gpt", model="gpt-5.4", async_http_client=emu.async_http_client(), **local)]
)

llm = ChatOpenAI(  # the one line (all four: given only root_client, ChatOpenAI builds its own client)
    model="gpt-5.4",
    client=router.chat.completions,
    root_client=router,
    async_client=arouter.chat.completions,
    root_async_client=arouter,
)

print("invoke:", llm.invoke("Say hello").content[:40])
print("stream:", "".join(str(chunk.content) for chunk in llm.stream("Say hello"))[:40])


class City(BaseModel):
    name: str
    country: str


print("structured:", llm.with_structured_output(City).invoke("Paris is in France"))


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


message = llm.bind_tools([weather]).invoke("What is the weather in Paris?")
print("tool calls:", [call["name"] for call in message.tool_calls])


async def main() -> None:
    reply = await llm.ainvoke("Say hello")
    chunks = [str(chunk.content) async for chunk in llm.astream("Say hello")]
    print("async:", reply.content[:30], len(chunks) > 1)


asyncio.run(main())
print(len(router.ledger.rows()), "sync and", len(arouter.ledger.rows()), "async ledger rows")
