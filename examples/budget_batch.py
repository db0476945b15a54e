"""A budget-capped batch job: summarise documents until the day's budget would be crossed, then stop
cleanly — the call that would cross it is refused before anything is sent."""

from decimal import Decimal

import llmroute
from llmroute.money.budget import Budget, Budgets
from llmroute.testing import Emulator

emu = Emulator()
budgets = Budgets(
    [
        Budget(
            "0.05",
            scope="global",
            period="day",
            soft_at="0.8",
            on_soft=lambda alert: print(f"warning: {alert}"),
        )
    ]
)
router = llmroute.Router(
    [
        llmroute.Deployment(
            "gpt",
            model="gpt-5.4",
            api_key="sk-test",
            base_url=emu.base_url("openai"),
            http_client=emu.http_client(),
        )
    ],
    budgets=budgets,
)
done = 0
for doc in range(100):
    try:
        router.chat.completions.create(
            model="gpt-5.4",
            messages=[{"role": "user", "content": f"Summarise document {doc}: " + "text " * 300}],
            max_tokens=300,
            route={"task": "batch_summary"},
        )
        done += 1
    except llmroute.BudgetExceeded as e:
        print(f"stopped after {done} documents: {e}")
        break
spent = router.ledger.total().cost
print(f"spent ${spent:.4f} of $0.05; remaining ${budgets.remaining('')}")
assert spent <= Decimal("0.05")
