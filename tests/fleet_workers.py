"""Worker processes for the fleet tests (started with multiprocessing's spawn: a fresh interpreter
each, as separate machines would be). Each returns plain counts."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

USER = [{"role": "user", "content": "Say something about routing."}]
KEY = "sk-fleet-test-account-0001"
LIMIT = Decimal("0.0015")
MAX_TOKENS = 16


def model(name: str = "m") -> Any:
    import llmroute

    return llmroute.ModelSpec(name, "vllm", name, price=llmroute.Price(input=Decimal(1), output=Decimal(2)))


def _router(base_url: str, state: str | None, **kwargs: Any) -> Any:
    from tenacity import stop_after_attempt

    import llmroute
    from llmroute.routing.engine import RetryPolicy

    deployment = llmroute.Deployment(
        "d", model="m", provider="vllm", base_url=base_url, api_key=KEY, **kwargs.pop("limits", {})
    )
    # deadline=5: refused here (NoCapacity) rather than waiting for a 60 s rate window to free up;
    # not shorter: the deadline also bounds each attempt, and a loaded machine can take a second
    retry = RetryPolicy(stop_after_attempt(1), deadline=5.0)
    return llmroute.Router([deployment], models=[model()], state=state, retry=retry, **kwargs)


def _wait(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))  # start together, so they contend


def budget_worker(
    base_url: str, state: str | None, calls: int, dsn: str | None, start_at: float
) -> dict[str, Any]:
    """Calls under one shared $LIMIT budget; returns what it spent and how many were refused."""
    import llmroute
    from llmroute.money.budget import Budget, Budgets

    ledger = llmroute.Ledger()
    store = None
    if dsn is not None:
        from llmroute.fleet.postgres import PostgresStore

        store = PostgresStore(dsn)
        store.attach(ledger)
    router = _router(base_url, state, budgets=Budgets([Budget(LIMIT)]), ledger=ledger)
    refused = 0
    _wait(start_at)
    for _ in range(calls):
        try:
            router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
        except llmroute.BudgetExceeded:
            refused += 1
    if store is not None:
        store.close()
    total = ledger.total()
    return {"spent": str(total.cost), "refused": refused, "answered": total.calls - total.errors}


def rpm_worker(base_url: str, state: str | None, calls: int, rpm: int, start_at: float) -> dict[str, int]:
    """Calls at a deployment limited to `rpm`: how many were answered, refused client-side, or 429."""
    import llmroute

    ledger = llmroute.Ledger()
    router = _router(base_url, state, ledger=ledger, limits={"rpm": rpm})
    answered = no_room = cooling = failed = 0
    _wait(start_at)
    for _ in range(calls):
        try:
            router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            answered += 1
        except llmroute.errors.NoCapacity:
            no_room += 1
        except llmroute.errors.NoRoute:  # cooling down after a 429
            cooling += 1
        except llmroute.errors.ProviderError:
            failed += 1
    throttled = sum(1 for row in ledger if row.status_code == 429)
    return {
        "answered": answered,
        "no_room": no_room,
        "cooling": cooling,
        "failed": failed,
        "throttled": throttled,
    }
