"""Budgets: exact semantics at the limit, periods on a fake clock, soft alerts, ledger spend, and races
between many threads and asyncio tasks (no overshoot beyond the documented bound)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from decimal import Decimal
from typing import Any

import pytest
from conftest import USER
from test_ledger import make_row

import llmroute
from llmroute.catalog import default_catalog
from llmroute.errors import BudgetExceeded, ConfigurationError
from llmroute.hinting import RouteHints
from llmroute.money.budget import Budget, BudgetAlert, Budgets, CallFacts, OverBudget, Scope, SpendView
from llmroute.money.ledger import Ledger
from llmroute.testing import Emulator

D = Decimal
NOON = dt.datetime(2026, 11, 18, 12, tzinfo=dt.UTC).timestamp()  # a Wednesday


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_scopes_parse_and_match() -> None:
    hints = RouteHints(
        task="code_review", tags=("ci", "nightly"), user="ann", budget="team-a", extra={"team": "pay"}
    )
    facts = CallFacts(model="deepseek-v3.2", provider="deepseek", deployment="ds", api_name="deepseek-chat")
    for text in (
        "global",
        "task:code_review",
        "tag:nightly",
        "user:ann",
        "budget:team-a",
        "extra:team=pay",
        "model:deepseek-v3.2",
        "model:deepseek-chat",
        "provider:deepseek",
        "deployment:ds",
    ):
        assert Scope.parse(text).matches(hints, facts), text
        assert str(Scope.parse(text)) == text
    for text in ("task:chat", "tag:x", "user:bob", "extra:team=ops", "model:gpt-5.4", "provider:openai"):
        assert not Scope.parse(text).matches(hints, facts), text
    for bad in ("team:x", "task:", "extra:team", "global:x"):
        with pytest.raises(ConfigurationError):
            Scope.parse(bad)


def test_call_facts_from_a_target_and_a_row() -> None:
    spec = default_catalog().model("deepseek-v3.2")
    provider = default_catalog().provider("deepseek")
    assert spec is not None and provider is not None
    target = llmroute.Target(
        llmroute.Deployment("ds", model="deepseek-v3.2"), spec, provider, "deepseek-chat", "ds"
    )
    assert CallFacts.of(target) == CallFacts("deepseek-v3.2", "deepseek", "ds", "deepseek-chat")
    assert CallFacts.of(make_row()) == CallFacts("deepseek-v3.2", "deepseek", "ds")
    assert CallFacts.of({"provider": "x"}).provider == "x"


def test_budget_validation() -> None:
    with pytest.raises(ConfigurationError):
        Budget("-1")
    with pytest.raises(ConfigurationError):
        Budget("1", period="fortnight")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Budget("1", soft_at="1.5")
    assert Budget(10, period=dt.timedelta(hours=1)).period == 3600.0
    assert Budget("5", "task:x", "day").name == "task:x/day"


def test_exactly_at_the_limit_is_admitted_one_cent_over_is_refused() -> None:
    budgets = Budgets([Budget("1.00", period="day")], clock=Clock())
    first = budgets.reserve(None, None, D("0.60"))
    budgets.settle(first, D("0.60"))
    held = budgets.reserve(None, None, D("0.30"))  # in flight: counts against the limit
    with pytest.raises(OverBudget) as refused:
        budgets.reserve(None, None, D("0.11"))
    error = refused.value
    assert isinstance(error, BudgetExceeded)
    assert (error.scope, error.spent, error.limit, error.estimate, error.reserved) == (
        "global",
        D("0.60"),
        D("1.00"),
        D("0.11"),
        D("0.30"),
    )
    assert "spent 0.6 + in flight 0.3 + estimated 0.11 > limit 1" in str(error)
    exact = budgets.reserve(None, None, D("0.10"))  # 0.60 + 0.30 + 0.10 == 1.00: admitted
    budgets.settle(held, D("0.30"))
    budgets.settle(exact, D("0.10"))
    assert budgets.spent("global") == D("1.00") and budgets.remaining("global") == 0
    budgets.reserve(None, None, D("0")).release()  # at the limit, a free call still passes
    with pytest.raises(OverBudget):
        budgets.reserve(None, None, D("0.000001"))


def test_reservations_are_released_on_failure_and_settle_is_idempotent() -> None:
    budgets = Budgets([Budget("1")])
    with pytest.raises(RuntimeError), budgets.reserve(None, None, D("0.9")):
        assert budgets.remaining("global") == D("0.1")
        raise RuntimeError("the attempt failed before anything was billed")
    assert budgets.remaining("global") == D("1") and budgets.in_flight == 0
    reservation = budgets.reserve(None, None, D("0.5"))
    reservation.settle(D("0.4"))
    reservation.settle(D("0.4"))
    reservation.release()
    assert budgets.spent("global") == D("0.4")


def test_only_matching_budgets_are_charged_all_or_nothing() -> None:
    budgets = Budgets([Budget("10"), Budget("1", "task:code_review"), Budget("5", "provider:openai")])
    review = RouteHints(task="code_review")
    with pytest.raises(OverBudget) as refused:
        budgets.reserve(review, {"provider": "openai"}, D("2"))
    assert refused.value.scope == "task:code_review"
    assert budgets.remaining("global") == D("10")  # nothing was held by the refused call
    budgets.reserve(RouteHints(task="chat"), {"provider": "openai"}, D("2")).settle(D("2"))
    assert budgets.spent("global") == D("2") and budgets.spent("provider:openai") == D("2")
    assert budgets.spent("task:code_review") == D("0")
    assert budgets.headroom(review, {"provider": "openai"}) == D("1")
    assert budgets.remaining("task:chat") is None and budgets.limit("task:chat") is None


def test_calendar_periods_reset_in_utc() -> None:
    clock = Clock()
    budgets = Budgets(
        [Budget("1", period="day"), Budget("3", period="week"), Budget("5", period="month")], clock=clock
    )
    budgets.reserve(None, None, D("1")).settle(D("1"))
    with pytest.raises(OverBudget, match="global/day"):
        budgets.reserve(None, None, D("0.5"))
    clock.now += 12 * 3600  # midnight UTC: a new day
    budgets.reserve(None, None, D("1")).settle(D("1"))
    statuses = {s.budget.name: s for s in budgets.status()}
    assert statuses["global/day"].spent == D("1")
    assert statuses["global/week"].spent == D("2")
    clock.now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC).timestamp()  # Monday: a new ISO week
    budgets.reserve(None, None, D("1")).settle(D("1"))
    assert {s.budget.name: s.spent for s in budgets.status()}["global/week"] == D("1")
    assert budgets.spent("global") == D("1")  # the tightest budget on the scope: the day's
    clock.now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
    budgets.reserve(None, None, D("1")).settle(D("1"))
    assert {s.budget.name: s.spent for s in budgets.status()}["global/month"] == D("1")


def test_rolling_window_forgets_old_spend() -> None:
    clock = Clock()
    budgets = Budgets([Budget("1", period=3600)], clock=clock)
    budgets.reserve(None, None, D("0.6")).settle(D("0.6"))
    clock.now += 1800
    budgets.reserve(None, None, D("0.4")).settle(D("0.4"))
    with pytest.raises(OverBudget):
        budgets.reserve(None, None, D("0.1"))
    clock.now += 1800  # the first spend is exactly an hour old: out of the window
    assert budgets.remaining("global") == D("0.6")
    clock.now += 1800
    assert budgets.remaining("global") == D("1")


def test_soft_alert_once_per_period_and_soft_budgets_never_refuse(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    alerts: list[BudgetAlert] = []
    budgets = Budgets(
        [
            Budget("1", "task:x", "day", soft_at="0.5", on_soft=alerts.append),
            Budget("2", "user:ann", hard=False),
        ],
        clock=clock,
    )
    ann = RouteHints(user="ann", task="x")
    budgets.reserve(ann, None, D("0.4")).settle(D("0.4"))
    assert alerts == []
    budgets.reserve(ann, None, D("0.1")).settle(D("0.1"))
    assert [(a.level, a.spent) for a in alerts] == [("soft", D("0.5"))]
    budgets.reserve(ann, None, D("0.1")).settle(D("0.1"))
    assert len(alerts) == 1
    clock.now += 86_400
    budgets.reserve(ann, None, D("0.6")).settle(D("0.6"))
    assert len(alerts) == 2  # again in the new day
    with caplog.at_level(logging.WARNING, logger="llmroute.money.budget"):
        for _ in range(3):
            budgets.reserve(RouteHints(user="ann"), None, D("0")).settle(D("0.5"))  # soft: admits past it
    assert "user:ann" in caplog.text and "limit reached" in caplog.text
    assert budgets.spent("user:ann") == D("2.7")


def test_unpriced_calls_allowed_and_counted_or_refused() -> None:
    allow = Budgets([Budget("1")])
    allow.reserve(None, None, None).settle(None)
    assert allow.status()[0].unpriced == 1 and allow.spent("global") == 0
    refuse = Budgets([Budget("1")], unpriced="refuse")
    with pytest.raises(OverBudget, match="unpriced"):
        refuse.reserve(None, None, None)


def test_forgotten_reservations_expire() -> None:
    clock = Clock()
    budgets = Budgets([Budget("1")], reservation_ttl=60, clock=clock)
    budgets.reserve(None, None, D("1"))  # an abandoned stream never settles
    with pytest.raises(OverBudget):
        budgets.reserve(None, None, D("0.5"))
    clock.now += 61
    budgets.reserve(None, None, D("0.5")).release()
    assert budgets.expired == 1


def test_watched_ledger_counts_spend_from_any_router_once() -> None:
    budgets = Budgets([Budget("1")])
    ledger = Ledger()
    budgets.watch(ledger)
    other = make_row()  # recorded by a router that does not use these budgets
    ledger.record(other)
    cost = other.cost.total  # type: ignore[union-attr]
    assert budgets.spent("global") == cost
    # A wired router: reserve with the attempt's key; its row settles the reservation...
    row = make_row(attempt=1)
    reservation = budgets.reserve(row.hints, row, D("0.01"), key=(row.call_id, 1))
    ledger.record(row)
    assert reservation.done and budgets.spent("global") == 2 * cost
    reservation.settle(row)  # ...and the router's own settle after it is a no-op
    # Settled before its row is recorded: the row is not counted again.
    late = make_row()
    early = budgets.reserve(late.hints, late, D("0.01"), key=(late.call_id, 1))
    early.settle(late)
    ledger.record(late)
    assert budgets.spent("global") == 3 * cost and budgets.in_flight == 0
    budgets.unwatch(ledger)
    ledger.record(make_row())
    assert budgets.spent("global") == 3 * cost


def test_spend_view_protocol() -> None:
    view: SpendView = Budgets([Budget("3", "task:x"), Budget("2", "task:x", "day")])
    assert view.remaining("task:x") == D("2") and view.limit("task:x") == D("2")


def test_threads_cannot_overshoot_with_exact_estimates() -> None:
    """16 threads x 200 attempts at 0.01 against a 5.00 limit: exactly 500 admitted, spend == 5.00."""
    budgets = Budgets([Budget("5.00")])
    admitted = refused = 0
    lock = threading.Lock()
    start = threading.Barrier(16)

    def work() -> None:
        nonlocal admitted, refused
        start.wait()
        for _ in range(200):
            try:
                reservation = budgets.reserve(None, None, D("0.01"))
            except OverBudget:
                with lock:
                    refused += 1
                continue
            reservation.settle(D("0.01"))
            with lock:
                admitted += 1

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted == 500 and refused == 16 * 200 - 500
    assert budgets.spent("global") == D("5.00") and budgets.in_flight == 0


def test_threads_overshoot_at_most_the_estimation_error_in_flight() -> None:
    """Actual cost twice the estimate: spend may pass the limit, by at most (actual - estimate) per
    call admitted while under it; with 8 threads at most 8 calls are in flight."""
    budgets = Budgets([Budget("1.00")])
    threads_n = 8
    barrier = threading.Barrier(threads_n)

    def work() -> None:
        barrier.wait()
        for _ in range(100):
            try:
                reservation = budgets.reserve(None, None, D("0.01"))
            except OverBudget:
                continue
            reservation.settle(D("0.02"))

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = budgets.spent("global")
    assert spent is not None and D("1.00") <= spent <= D("1.00") + threads_n * D("0.01") + D("0.01")


async def test_asyncio_tasks_race_and_failures_release() -> None:
    budgets = Budgets([Budget("2.00")])
    outcomes: list[str] = []

    async def call(n: int) -> None:
        try:
            reservation = budgets.reserve(RouteHints(task="t"), None, D("0.01"))
        except OverBudget:
            outcomes.append("refused")
            return
        with reservation:
            await asyncio.sleep(0)
            if n % 3 == 0:
                outcomes.append("failed")
                return  # leaving the block unsettled releases it
            reservation.settle(D("0.01"))
            outcomes.append("ok")

    await asyncio.gather(*(call(n) for n in range(1_000)))
    assert budgets.in_flight == 0
    assert 0 < outcomes.count("ok") <= 200  # released room was reused; settled spend never passed 2.00
    assert budgets.spent("global") == D("0.01") * outcomes.count("ok")
    assert outcomes.count("failed") > 0 and outcomes.count("refused") > 0


def test_budgets_watch_a_real_router(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    budgets = Budgets([Budget("100", "provider:deepseek"), Budget("100")])
    budgets.watch(router.ledger)
    for _ in range(3):
        router.chat.completions.create(model="deepseek-v3.2", messages=USER, route={"task": "chat"})
    router.chat.completions.create(model="gpt-5.4", messages=USER)
    ds_cost = router.ledger.total(provider="deepseek").cost
    assert budgets.spent("provider:deepseek") == ds_cost
    assert budgets.spent("global") == router.ledger.total().cost
    tight = Budgets([Budget(ds_cost, "provider:deepseek")])
    tight.watch(router.ledger)
    router.chat.completions.create(model="deepseek-v3.2", messages=USER)
    target = router._core.resolve("deepseek-v3.2")[0]
    request = router._core.prepare({"model": "deepseek-v3.2", "messages": USER})[0]
    with pytest.raises(OverBudget, match="provider:deepseek"):
        tight.reserve_for(request, target)


# -- through the router ------------------------------------------------------------------------------


def _router_with(budgets: Any, emu: Any) -> Any:
    from conftest import deployments

    import llmroute

    return llmroute.Router(deployments(emu), budgets=budgets)


def test_router_refuses_the_call_that_would_cross_a_hard_limit_before_sending() -> None:
    from conftest import USER

    import llmroute
    from llmroute.money.budget import Budget, Budgets
    from llmroute.testing import Emulator

    emu = Emulator()
    budgets = Budgets([Budget("0.02", scope="global")])
    router = _router_with(budgets, emu)
    sent = 0
    with pytest.raises(llmroute.BudgetExceeded) as info:
        for _ in range(100):
            router.chat.completions.create(model="gpt-5.4", messages=USER, max_tokens=200)
            sent += 1
    assert len(emu.requests) == sent > 0  # the refused call reached no provider
    spent = router.ledger.total().cost
    assert spent <= Decimal("0.02")
    assert info.value.limit == Decimal("0.02")
    assert budgets.remaining("") == Decimal("0.02") - spent  # reservations all settled
    router.close()


def test_router_budget_holds_under_threads() -> None:
    import threading

    from conftest import USER

    import llmroute
    from llmroute.money.budget import Budget, Budgets
    from llmroute.testing import Emulator

    emu = Emulator()
    budgets = Budgets([Budget("0.05", scope="global")])
    router = _router_with(budgets, emu)
    refused = []

    def work() -> None:
        for _ in range(30):
            try:
                router.chat.completions.create(model="gpt-5.4", messages=USER, max_tokens=100)
            except llmroute.BudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused
    assert router.ledger.total().cost <= Decimal("0.05")  # estimates bound each call from above
    assert budgets.status() is not None
    router.close()
