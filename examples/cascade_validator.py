"""A cascade with a validator: DeepSeek first; if its answer is not the JSON we need, GPT-5.4."""

import json

import llmroute
from llmroute.policies import Cascade, escalation_rate
from llmroute.testing import Emulator, Reply

emu = Emulator()  # DeepSeek answers prose a third of the time here; GPT-5.4 always answers JSON
emu.set_reply(
    lambda ctx: (
        Reply(text="Sure! Here it is.")
        if ctx.provider == "deepseek" and len(str(ctx.messages)) % 3 == 0
        else Reply(text=json.dumps({"severity": "minor", "lines": [3, 7]}))
    )
)


def valid_review(completion: object) -> bool | str:
    text = completion.choices[0].message.content or ""  # type: ignore[attr-defined]
    try:
        data = json.loads(text)
    except ValueError:
        return "not JSON"
    return True if {"severity", "lines"} <= set(data) else "missing fields"


local = {"api_key": "sk-test", "http_client": emu.http_client()}
router = llmroute.Router(
    [
        llmroute.Deployment("deepseek", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), **local),
        llmroute.Deployment("gpt", model="gpt-5.4", base_url=emu.base_url("openai"), **local),
    ],
    policy=Cascade(valid_review, ["deepseek-v3.2", "gpt-5.4"]),
)
for i in range(12):
    reply = router.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": f"Review diff #{i} and answer in JSON{'.' * i}"}]
    )
    print(f"review {i:2}: {reply.route.deployment:8} {[r.outcome for r in reply.route.attempts]}")
print(f"escalation rate: {escalation_rate(router.ledger):.0%}; total cost ${router.ledger.total().cost:.6f}")
