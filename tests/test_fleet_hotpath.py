"""Fleet mode's hot path on a real redis-server: one round trip per routed call, one atomic admission
(limits + budget + breaker marks), latency statistics shared by workers, and an `AsyncRouter` that
never calls Redis synchronously on its event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fleet_servers import RedisServer, redis_server
from fleet_workers import KEY, MAX_TOKENS, USER, model
from hypothesis import given
from hypothesis import strategies as st

import llmroute
from llmroute.fleet import RedisLink
from llmroute.fleet.budgets import RedisBudgets
from llmroute.money.budget import Budget, Budgets
from llmroute.routing.balance import LowestLatency
from llmroute.testing import Emulator


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def _deployment(
    emu: Emulator, name: str = "d", provider: str = "vllm", *, asynchronous: bool = False, **limits: Any
) -> llmroute.Deployment:
    return llmroute.Deployment(
        name,
        model="m",
        provider=provider,
        base_url=emu.base_url(provider),
        api_key=KEY,
        **(
            {"async_http_client": emu.async_http_client()}
            if asynchronous
            else {"http_client": emu.http_client()}
        ),
        **limits,
    )


def _billed(emu: Emulator) -> Decimal:
    bill = emu.bill.total()
    return (Decimal(bill.input_tokens) * 1 + Decimal(bill.output_tokens) * 2) / Decimal(1_000_000)


def test_one_round_trip_per_routed_call(emu: Emulator, redis: RedisServer) -> None:
    """With a budget and rpm/tpm/in-flight limits shared, each routed call costs Redis exactly one
    round trip: the admission script (limits, budget reservation, breaker marks) carrying the
    previous call's writes (release, settle, outcome and latency samples). Nothing is lost by
    deferring them: once sent, Redis holds the whole spend, equal to the ledger and the bill."""
    link = RedisLink(redis.url, flush_s=3600)  # no flusher: only the calls' own round trips
    router = llmroute.Router(
        [_deployment(emu, rpm=10_000, tpm=10_000_000, max_in_flight=1)],
        models=[model()],
        budgets=Budgets([Budget("100"), Budget("100", "task:t")]),
        state=link,
    )
    router._core.cooldowns.store.cache_s = 3600  # no background refresh on a slow machine either
    for _ in range(2):  # the first look at the deployment's breaker reads it once
        router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    before = link.round_trips
    for _ in range(20):  # max_in_flight=1: each call's release reached Redis before the next admission
        router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS, route={"task": "t"})
    assert link.round_trips - before == 20
    budgets = router._core.budgets
    assert budgets.spent("global") == router.ledger.total().cost == _billed(emu)
    assert budgets.spent("task:t") == router.ledger.total(task="t").cost
    status = {s.budget.name: s for s in budgets.status()}
    assert status["global"].reserved == 0  # every hold was dropped by its settle


def test_a_budget_refusal_takes_no_rate_room(emu: Emulator, redis: RedisServer) -> None:
    """Admission and reservation are one atomic script: a call the budget refuses takes no rpm slot
    (when they were two steps, a refused call still used one of the minute's requests)."""
    import redis as redis_client

    router = llmroute.Router(
        [_deployment(emu, rpm=1000)],
        models=[model()],
        budgets=Budgets([Budget("0.0002")]),
        state=RedisLink(redis.url),
    )
    answered = refused = 0
    for _ in range(12):
        try:
            router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            answered += 1
        except llmroute.BudgetExceeded:
            refused += 1
    assert answered > 0 and refused > 0
    client = redis_client.Redis.from_url(redis.url)
    assert client.zcard("{llmroute}:load:d:req") == answered


def test_latency_statistics_are_shared(emu: Emulator, redis: RedisServer) -> None:
    """Worker A has measured a slow and a fast deployment; worker B (its own connection, nothing
    measured itself) ranks them by A's figures and goes to the fast one first. With in-process
    statistics B knows nothing and tries the slow one first."""
    emu.set_latency("vllm", ttft=0.3)  # far above what a loaded machine adds to the fast one
    with emu.serve() as server:

        def router(link: RedisLink | None) -> Any:
            deployments = [
                llmroute.Deployment(
                    name, model="m", provider=provider, base_url=server.base_url(provider), api_key=KEY
                )
                for name, provider in (("slow", "vllm"), ("fast", "openai"))
            ]
            return llmroute.Router(
                deployments, models=[model()], balancer=LowestLatency(explore=0), state=link
            )

        link_a = RedisLink(redis.url)
        first = router(link_a)
        served = [
            first.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS).route.deployment
            for _ in range(3)
        ]
        assert served == ["slow", "fast", "fast"]  # unmeasured first, then the fastest
        link_a.flush()  # what the flusher thread does within flush_s
        shared, alone = router(RedisLink(redis.url)), router(None)
        slow, fast = shared.health.get("slow").latency_s, shared.health.get("fast").latency_s
        assert slow is not None and fast is not None and slow >= 0.3 and slow > fast
        assert shared.chat.completions.create(model="m", messages=USER).route.deployment == "fast"
        assert alone.chat.completions.create(model="m", messages=USER).route.deployment == "slow"


def test_fleet_latency_average_is_the_in_process_one(redis: RedisServer) -> None:
    """The server-side EWMA follows the same rule as the in-process one (half-life in observations)."""
    from llmroute.fleet.health import RedisHealthStore
    from llmroute.routing.health import Health

    link = RedisLink(redis.url)
    fleet, local = Health(half_life=3, store=RedisHealthStore(link)), Health(half_life=3)
    for i, latency in enumerate((0.5, 0.1, 0.9, 0.3, 0.3, 2.0)):
        for health in (fleet, local):
            health.observe("t", ok=i != 2, latency_s=latency, ttft_s=latency / 2, error="ServerError")
    link.flush()
    other = Health(store=RedisHealthStore(RedisLink(redis.url))).get("t")
    expected = local.get("t")
    assert other.successes == expected.successes == 5 and other.failures == 1
    assert other.consecutive_failures == expected.consecutive_failures == 0
    assert other.last_error == "ServerError"
    assert other.latency_s == pytest.approx(expected.latency_s, rel=1e-12)
    assert other.ttft_s == pytest.approx(expected.ttft_s, rel=1e-12)


class _Watched:
    """A sync Redis client that records the threads it is used from."""

    def __init__(self, client: Any, seen: set[int]) -> None:
        self._client = client
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        self._seen.add(threading.get_ident())
        return getattr(self._client, name)


@pytest.mark.parametrize("setup", ["fleet", "own load store", "shadow"])
async def test_async_router_never_calls_redis_on_its_loop(
    emu: Emulator, redis: RedisServer, setup: str
) -> None:
    """Admission and reservation go through `redis.asyncio`; the writes after a call, the first looks
    at breaker and latency state, and refreshes go with the next round trip or to the flusher thread.
    The sync client is never touched from the event loop's thread; the bill still matches Redis.
    Also when the router's own `load=` store (not Redis) means the budget is reserved on its own
    round trip, and for the reservations of shadow calls."""
    from llmroute.policies import Shadow
    from llmroute.routing.balance import LoadTracker

    seen: set[int] = set()
    link = RedisLink(redis.url)
    link.client = _Watched(link.client, seen)
    extra: dict[str, Any] = {}
    if setup == "own load store":
        extra["load"] = LoadTracker()
    if setup == "shadow":
        extra["policy"] = Shadow("m2", sample=1.0) | llmroute.Requested()
    router = llmroute.AsyncRouter(
        [
            _deployment(emu, "a", rpm=1000, asynchronous=True),
            _deployment(emu, "b", provider="openai", rpm=1000, asynchronous=True),
            *(
                [
                    llmroute.Deployment(
                        "s",
                        model="m2",
                        provider="vllm",
                        base_url=emu.base_url("vllm"),
                        api_key=KEY,
                        async_http_client=emu.async_http_client(),
                    )
                ]
                if setup == "shadow"
                else []
            ),
        ],
        models=[model(), model("m2")],
        budgets=Budgets([Budget("100")]),
        balancer=LowestLatency(explore=0),
        state=link,
        **extra,
    )
    budgets = router._core.budgets
    assert isinstance(budgets, RedisBudgets)
    for _ in range(10):
        await router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    await router.close()  # waits for the shadow calls
    assert threading.get_ident() not in seen
    assert link.round_trips >= 10
    assert len(router.ledger) == (20 if setup == "shadow" else 10)
    assert await budgets.aspent("global") == router.ledger.total().cost == _billed(emu)
    assert threading.get_ident() not in seen


async def test_budgets_read_and_reserve_on_the_loop(redis: RedisServer) -> None:
    """`areserve`, `astatus`, `aspent` and `aremaining` go through `redis.asyncio` and see what
    another process (another `RedisBudgets` on its own link) reserved and spent; the in-process
    `Budgets` offers the same coroutines."""
    seen: set[int] = set()
    link = RedisLink(redis.url)
    link.client = _Watched(link.client, seen)
    mine = RedisBudgets(link, [Budget("1", name="g")])
    other = RedisBudgets(redis.url, [Budget("1", name="g")])
    held = other.reserve(None, None, Decimal("0.25"))
    taken = await mine.areserve(None, None, Decimal("0.5"))
    with pytest.raises(llmroute.BudgetExceeded):
        await mine.areserve(None, None, Decimal("0.3"))  # 0.25 + 0.5 + 0.3 > 1, across processes
    taken.settle(Decimal("0.4"))
    (status,) = await mine.astatus()
    assert (status.spent, status.reserved) == (Decimal("0.4"), Decimal("0.25"))
    assert await mine.aspent("global") == Decimal("0.4")
    assert await mine.aremaining("global") == Decimal("0.35")
    held.release()
    other.link.flush()
    assert await mine.aremaining("global") == Decimal("0.6")
    assert threading.get_ident() not in seen
    local = Budgets([Budget("1")])
    (await local.areserve(None, None, Decimal("0.5"))).settle(Decimal("0.5"))
    assert await local.aspent("global") == Decimal("0.5") == (await local.astatus())[0].spent


@pytest.mark.parametrize("own_load_store", [False, True], ids=["fleet", "own load store"])
def test_sync_router_baseline_uses_the_sync_client_on_the_callers_thread(
    emu: Emulator, redis: RedisServer, own_load_store: bool
) -> None:
    """The check above can fail: the sync router's round trips are on the caller's thread (also a
    reservation made on its own round trip, beside a `load=` store of the router's own)."""
    from llmroute.routing.balance import LoadTracker

    seen: set[int] = set()
    link = RedisLink(redis.url)
    link.client = _Watched(link.client, seen)
    extra: dict[str, Any] = {"load": LoadTracker()} if own_load_store else {}
    router = llmroute.Router(
        [_deployment(emu, rpm=1000)], models=[model()], budgets=Budgets([Budget("100")]), state=link, **extra
    )
    router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    assert threading.get_ident() in seen


def test_writes_left_at_exit_are_sent(emu: Emulator, redis: RedisServer) -> None:
    """A process that ends right after a call still settles it: the writes waiting for a round trip
    are sent at exit (here the flusher never would: `flush_s` is an hour)."""
    import subprocess
    import sys
    import textwrap

    with emu.serve() as server:
        script = textwrap.dedent(
            f"""
            from decimal import Decimal
            import llmroute
            from llmroute.fleet import RedisLink
            from llmroute.money.budget import Budget, Budgets
            price = llmroute.Price(input=Decimal(1), output=Decimal(2))
            model = llmroute.ModelSpec("m", "vllm", "m", price=price)
            deployment = llmroute.Deployment(
                "d", model="m", provider="vllm", base_url={server.base_url("vllm")!r}, api_key="sk-exit"
            )
            link = RedisLink({redis.url!r}, flush_s=3600)
            router = llmroute.Router([deployment], models=[model], budgets=Budgets([Budget("1")]), state=link)
            router.chat.completions.create(model="m", messages=[{{"role": "user", "content": "Hi"}}])
            print(router.ledger.total().cost, len(link._waiting))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
        )
    from llmroute.fleet.budgets import RedisBudgets

    spent, waiting = out.stdout.split()
    assert Decimal(spent) > 0 and int(waiting) > 0  # the settle was still waiting when the script ended
    assert RedisBudgets(redis.url, [Budget("1")]).spent("global") == Decimal(spent)


def test_an_admission_never_sent_gives_its_budget_hold_back(emu: Emulator, redis: RedisServer) -> None:
    """The engine admits (lease + budget hold in one script), then the call is abandoned before its
    attempt (the driver raised, the task was cancelled): closing the plan gives both back."""
    from llmroute.routing.engine import Call, Io

    router = llmroute.Router(
        [_deployment(emu, max_in_flight=5)],
        models=[model()],
        budgets=Budgets([Budget("1")]),
        state=RedisLink(redis.url),
    )
    core = router._core
    request, decision = core.prepare({"model": "m", "messages": USER, "max_tokens": MAX_TOKENS})
    flow = core.plan(decision, request)
    action = next(flow)
    assert isinstance(action, Io)
    call = flow.send(action.run())
    assert isinstance(call, Call) and call.ticket.reservation is not None
    held = {s.budget.name: s.reserved for s in core.budgets.status()}
    assert held["global"] > 0
    flow.close()
    assert {s.budget.name: s.reserved for s in core.budgets.status()}["global"] == 0
    assert core.load.in_flight("d") == 0


@pytest.mark.parametrize("fault", ["out of memory", "wrong type"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_redis_error_replies_are_not_the_callers_error(
    emu: Emulator, redis: RedisServer, caplog: pytest.LogCaptureFixture, asynchronous: bool, fault: str
) -> None:
    """A Redis that answers with an error is served like one that is down: the call is admitted and
    reserved in this process and answered, the error is logged, and no `redis` exception reaches the
    caller. Faults: out of memory (`maxmemory` reached under `noeviction`: the writes after a call
    fail), and another application's value at the deployment's rate-window key (`WRONGTYPE`: the
    admission script fails)."""
    import asyncio

    import redis as redis_client

    link = RedisLink(redis.url, retry_s=0.2)
    deployments = [_deployment(emu, rpm=1000, asynchronous=asynchronous)]
    kw: dict[str, Any] = {"models": [model()], "budgets": Budgets([Budget("100")]), "state": link}
    admin = redis_client.Redis.from_url(redis.url)
    if fault == "out of memory":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
    else:
        admin.set(link.tag("load", "d") + ":req", "not a sorted set")

    def mend() -> None:  # the fault ends; past retry_s the next call probes Redis
        admin.config_set("maxmemory", "0")
        admin.delete(link.tag("load", "d") + ":req")
        time.sleep(0.3)

    if asynchronous:

        async def calls() -> Any:
            router = llmroute.AsyncRouter(deployments, **kw)
            for i in range(4):
                if i == 3:
                    mend()
                await router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            await router.close()
            return router

        router: Any = asyncio.run(calls())
    else:
        router = llmroute.Router(deployments, **kw)
        for i in range(4):
            if i == 3:
                mend()
            router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    assert router.ledger.total().calls == 4 and router.ledger.total().errors == 0
    expected = "maxmemory" if fault == "out of memory" else "WRONGTYPE"
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "llmroute.fleet" and r.levelname == "WARNING"
    ]
    assert warnings and all(expected in w for w in warnings)  # a warning per outage, with its cause
    budgets = router._core.budgets
    assert budgets.pending == 0  # what was settled during the fault is replayed, once
    assert budgets.spent("global") == router.ledger.total().cost == _billed(emu)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["EVAL", "EVALSHA"]),
            st.lists(st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1), st.binary()), max_size=12),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_commands_are_packed_alike_with_and_without_hiredis(commands: list[tuple[str, list[Any]]]) -> None:
    """The link packs its pipeline with hiredis when installed, else in Python: the same bytes."""
    hiredis = pytest.importorskip("hiredis")
    from llmroute.fleet._link import _pack_resp

    packed = [(name, *args) for name, args in commands]
    assert _pack_resp(packed) == b"".join(hiredis.pack_command(tuple(c)) for c in packed)


@pytest.mark.xfail(
    tuple(int(x) for x in __import__("redis").__version__.split(".")[:2]) < (6, 0),
    reason="open: on redis-py 5.3 (the floor) a cancelled admission's hold was once left reserved",
    strict=False,
)
async def test_a_call_cancelled_during_its_round_trip_leaves_nothing_behind(
    emu: Emulator, redis: RedisServer
) -> None:
    """A caller's timeout (`asyncio.wait_for`) cancels a call while its admission waits on Redis (the
    server busy: a script spinning). The connection's unread replies are not read by the next call (it is
    disconnected), the writes the round trip carried are sent again (settles are idempotent), no
    outage is declared, and once all is sent the fleet's spend equals the ledger and the bill."""
    import asyncio

    import redis as redis_client

    link = RedisLink(redis.url, socket_timeout=2.0)
    router = llmroute.AsyncRouter(
        [_deployment(emu, rpm=1000, asynchronous=True)],
        models=[model()],
        budgets=Budgets([Budget("100")]),
        state=link,
    )

    async def call() -> Any:
        return await router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)

    await call()  # its writes wait for the next round trip
    admin = redis_client.asyncio.Redis.from_url(redis.url)
    spin = (
        "local t = redis.call('TIME'); local s = t[1] + t[2] / 1e6; "
        "repeat t = redis.call('TIME') until t[1] + t[2] / 1e6 > s + 0.3"
    )
    busy = asyncio.create_task(admin.eval(spin, 0))  # the server busy for 0.3 s
    await asyncio.sleep(0.05)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(call(), 0.05)
    await busy
    for _ in range(3):
        await call()
    await router.close()
    await admin.aclose()
    budgets = router._core.budgets
    assert link.outages == 0
    assert router.ledger.total().calls == 4  # the cancelled call never reached the provider
    assert await budgets.aspent("global") == router.ledger.total().cost == _billed(emu)
    (status,) = await budgets.astatus()
    assert status.reserved == 0  # no hold left behind by the cancelled admission


async def test_async_router_through_redis_killed_and_restarted(emu: Emulator) -> None:
    """`test_redis_killed_and_restarted_mid_run` for `AsyncRouter`, 8 calls at a time: no call fails
    because Redis died; the replay after it (on the flusher thread) brings the fleet's spend to the
    ledger and the emulator's bill, and the in-flight leases whose release Redis missed are released
    (they held the deployment's 4 slots for `lease_s`: the calls after the restart found no room)."""
    import asyncio

    with redis_server(persistent=True) as server:
        link = RedisLink(server.url, retry_s=0.2)
        router = llmroute.AsyncRouter(
            [_deployment(emu, rpm=10_000, max_in_flight=4, asynchronous=True)],
            models=[model()],
            budgets=Budgets([Budget("100")]),
            state=link,
            queue_timeout=30,
        )
        for phase in ("up", "down", "back"):
            if phase == "down":
                server.stop()
            if phase == "back":
                server.start()
                await asyncio.sleep(0.3)  # past retry_s: the next round trip probes Redis
            await asyncio.gather(
                *(
                    router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
                    for _ in range(8)
                )
            )
        await router.close()
        budgets = router._core.budgets
        assert link.outages >= 1 and budgets.pending == 0
        assert await budgets.aspent("global") == router.ledger.total().cost == _billed(emu)
        assert router.ledger.total().calls == 24 and router.ledger.total().errors == 0
