"""The README's quickstart: two providers, a fallback, the ledger. Runs offline on the emulator."""

import llmroute
from llmroute.testing import Emulator

emu = Emulator()  # stands in for the providers: in production, leave out base_url and http_client
local = {"api_key": "sk-test", "http_client": emu.http_client()}
router = llmroute.Router(
    [
        llmroute.Deployment("gpt", model="gpt-5.4", base_url=emu.base_url("openai"), **local),
        llmroute.Deployment("deepseek", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), **local),
    ],
    fallbacks=["deepseek-v3.2"],  # if GPT-5.4 fails, DeepSeek answers
)
reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "Hello!"}])
print(reply.choices[0].message.content)  # an ordinary openai ChatCompletion...
print(reply.route.deployment, reply.route.cost)  # ...that also says where it went and what it cost
print(router.ledger.total())
