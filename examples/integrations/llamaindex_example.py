"""LlamaIndex's OpenAI LLM on a router. Runs offline on the emulator.

pip install llmroute llama-index-llms-openai — which resolves to llama-index-llms-openai 0.1.x: the
current 0.8 requires openai<3, and llmroute needs openai 3. That version builds its SDK clients
itself (no client argument), so the router goes in its client attributes.
"""

import asyncio

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

import llmroute
from llmroute.testing import Emulator

emu = Emulator()  # stands in for the providers: in production, leave out base_url and the http clients
# LlamaIndex checks model names against OpenAI's list; a wildcard deployment serves any gpt-* name.
local = {"model": "gpt-*", "provider": "openai", "base_url": emu.base_url("openai"), "api_key": "sk-test"}
router = llmroute.Router([llmroute.Deployment("gpt", http_client=emu.http_client(), **local)])
arouter = llmroute.AsyncRouter(
    [llmroute.Deployment("gpt", async_http_client=emu.async_http_client(), **local)]
)

llm = OpenAI(model="gpt-4o", api_key="unused: the router's deployments hold the keys")
llm._client, llm._aclient = router, arouter  # the one line

print("complete:", str(llm.complete("Say hello"))[:40])
print("chat:", str(llm.chat([ChatMessage(role="user", content="Say hello")]))[:40])
print("stream:", "".join(r.delta or "" for r in llm.stream_complete("Say hello"))[:40])
print("async:", str(asyncio.run(llm.acomplete("Say hello")))[:40])
print(len(router.ledger.rows()), "sync ledger rows; served by", router.ledger.rows()[0].deployment)
