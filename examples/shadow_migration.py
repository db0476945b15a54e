"""A migration with shadow traffic: GPT-5.4 answers; a sample also goes to DeepSeek in the
background, and the report says what switching would change. PII never goes to the shadow."""

import llmroute
from llmroute.policies import Residency, Shadow, shadow_report
from llmroute.testing import Emulator

emu = Emulator()
local = {"api_key": "sk-test", "http_client": emu.http_client()}
residency = Residency(
    {"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]}, default="internal"
)
router = llmroute.Router(
    [
        llmroute.Deployment("gpt", model="gpt-5.4", base_url=emu.base_url("openai"), **local),
        llmroute.Deployment("deepseek", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), **local),
    ],
    policy=residency | Shadow("deepseek-v3.2", sample=0.5, seed=1) | llmroute.Requested(),
)
for i in range(40):
    sensitivity = "pii" if i % 5 == 0 else "internal"
    router.chat.completions.create(
        model="gpt-5.4",
        messages=[{"role": "user", "content": f"Summarise support ticket {i}."}],
        route={"sensitivity": sensitivity},
    )
router.close()  # waits for the background calls
for row in shadow_report(router.ledger):
    print(
        f"{row.calls} shadowed calls: {row.primary_model} ${row.primary_cost:.5f} "
        f"(p50 {row.primary_latency_p50_s * 1e3:.1f} ms) vs {row.candidate_model} ${row.candidate_cost:.5f} "
        f"(p50 {row.candidate_latency_p50_s * 1e3:.1f} ms), candidate failures {row.candidate_failures}"
    )
pii_to_deepseek = sum(1 for r in router.ledger if r.provider == "deepseek" and r.hints.sensitivity == "pii")
print("PII calls shadowed to DeepSeek:", pii_to_deepseek)
