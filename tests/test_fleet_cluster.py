"""Fleet mode on a real Redis Cluster (3 `redis-server` masters on loopback), through real HTTP
against the emulator: `state="redis+cluster://..."` bootstraps through a node that does not own the
fleet's slot, so the client must find the owner itself.

Covered: budgets and rpm/tpm/in-flight limits (sync and async), worker processes sharing one budget,
the breaker's shared evidence, scripts that touch keys they were not passed, error and NOSCRIPT
replies in the cluster pipeline, the owning node killed or hung mid-run, and the fleet's slot
migrated to another master mid-run (MOVED, then a migration window answering TRYAGAIN)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fleet_workers
import pytest
from fleet_servers import RedisCluster, redis_cluster
from fleet_workers import KEY, LIMIT, MAX_TOKENS, USER, model
from test_fleet import WORKERS, _billed, _estimate, _fleet

import llmroute
from llmroute.fleet import RedisLink
from llmroute.fleet._link import Op
from llmroute.money.budget import Budget, Budgets
from llmroute.testing import Emulator, Fault

SLOT_KEY = "{llmroute}"  # every key of the default prefix hashes to this key's slot


@pytest.fixture(scope="module")
def _shared_cluster() -> Iterator[RedisCluster]:
    with redis_cluster() as cluster:
        yield cluster


@pytest.fixture
def cluster(_shared_cluster: RedisCluster) -> RedisCluster:
    """The module's cluster, emptied (keys and script caches) on every node."""
    for port in _shared_cluster.ports:
        with _shared_cluster.client(port) as node:
            node.flushall()
            node.script_flush()
    return _shared_cluster


@pytest.fixture
def served(emu: Emulator) -> Iterator[str]:
    with emu.serve() as server:
        yield server.base_url("vllm")


def _deployment(emu: Emulator, name: str = "d", *, asynchronous: bool = False, **limits: Any) -> Any:
    client = (
        {"async_http_client": emu.async_http_client()} if asynchronous else {"http_client": emu.http_client()}
    )
    return llmroute.Deployment(
        name, model="m", provider="vllm", base_url=emu.base_url("vllm"), api_key=KEY, **client, **limits
    )


def _router(emu: Emulator, state: Any, *, asynchronous: bool = False, **kw: Any) -> Any:
    from tenacity import stop_after_attempt

    from llmroute.routing.engine import RetryPolicy

    deployments = kw.pop("deployments", None) or [
        _deployment(emu, asynchronous=asynchronous, rpm=1000, tpm=10_000_000, max_in_flight=4)
    ]
    kw.setdefault("budgets", Budgets([Budget("100")]))
    router_class = llmroute.AsyncRouter if asynchronous else llmroute.Router
    retry = RetryPolicy(stop_after_attempt(1), deadline=5.0)
    return router_class(deployments, models=[model()], state=state, retry=retry, **kw)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for an async router's calls (its async Redis client belongs to the loop);
    between calls no loop runs, so the test can stop and start nodes."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _call(router: Any, loop: asyncio.AbstractEventLoop) -> Any:
    answer = router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    if isinstance(router, llmroute.AsyncRouter):
        return loop.run_until_complete(answer)
    return answer


def _keys(cluster: RedisCluster, port: int) -> set[str]:
    with cluster.client(port) as node:
        return {k.decode() for k in node.keys("*")}


def _settled(router: Any) -> Any:
    """The router's fleet budgets, once every deferred write reached Redis and, after an outage,
    the spend settled meanwhile was replayed (the async router leaves the replay to the flusher
    thread; a read probes Redis when the breaker allows, and its success replays)."""
    budgets = router._core.budgets
    link = budgets.link
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        link.flush()
        if not budgets.pending and link.available:
            break
        time.sleep(0.05)
        budgets.status()
    return budgets  # `pending` counts a replay still running on the flusher thread


def _fleet_spend(cluster: RedisCluster, budget: str = "global:all") -> Decimal:
    """The fleet's spend as the node owning the slot holds it (integer picodollars)."""
    with cluster.client(cluster.owner(SLOT_KEY)) as node:
        return Decimal(int(node.get("{llmroute}:budgets:s:" + budget) or 0)) * Decimal("1e-12")


# -- budgets and limits, sync and async -----------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Router", "AsyncRouter"])
def test_budget_and_limits_on_a_cluster(
    emu: Emulator, cluster: RedisCluster, loop: asyncio.AbstractEventLoop, asynchronous: bool
) -> None:
    """A budget and rpm/tpm/in-flight limits on the cluster: every call is answered, the fleet's
    spend is the ledger's and the emulator's bill, Redis never failed, and the state is on the node
    that owns the slot (the client was pointed at another one)."""
    owner, entry = cluster.owner(SLOT_KEY), cluster.other(SLOT_KEY)
    router = _router(emu, cluster.url(entry), asynchronous=asynchronous)
    link = router._core.budgets.link
    for _ in range(8):
        assert _call(router, loop).choices[0].message.content
    budgets = _settled(router)
    assert budgets.spent("global") == router.ledger.total().cost == _billed(emu) > 0
    assert budgets.pending == 0 and link.outages == 0 and link.fallbacks == 0
    on_owner = _keys(cluster, owner)
    assert "{llmroute}:budgets:s:global:all" in on_owner
    assert "{llmroute}:load:d:req" in on_owner  # the rpm window
    assert not any(_keys(cluster, p) for p in cluster.ports if p != owner)
    assert _fleet_spend(cluster) == _billed(emu)  # the shared figure, read on the owner itself
    with cluster.client(owner) as node:
        assert node.zcard("{llmroute}:load:d:req") == 8


def test_processes_share_one_budget_on_a_cluster(emu: Emulator, served: str, cluster: RedisCluster) -> None:
    """4 worker processes, one budget, state on the cluster: the fleet spends at most the limit plus
    one call's estimate, as on one server (tests/test_fleet.py has the in-process baseline)."""
    results = _fleet(fleet_workers.budget_worker, served, cluster.url(cluster.other(SLOT_KEY)), 40, None)
    billed = _billed(emu)
    assert sum(Decimal(r["spent"]) for r in results) == billed
    estimate = _estimate(emu)
    assert LIMIT - 2 * estimate <= billed <= LIMIT + estimate
    assert sum(r["refused"] for r in results) > 0
    assert len(results) == WORKERS


def test_one_workers_evidence_protects_the_others_on_a_cluster(emu: Emulator, cluster: RedisCluster) -> None:
    """Worker A's quota error closes deployment `bad` off; worker B (its own connection to the
    cluster) never calls it."""
    emu.inject(Fault.quota(), provider="vllm", times=10)
    good = {"base_url": emu.base_url("openai"), "api_key": KEY, "http_client": emu.http_client()}
    first, second = (
        _router(
            emu,
            cluster.url(cluster.other(SLOT_KEY)),
            deployments=[
                _deployment(emu, "bad"),
                llmroute.Deployment("good", model="m", provider="openai", **good),
            ],
            fallbacks=["good"],
            budgets=None,
        )
        for _ in range(2)
    )
    assert first.chat.completions.create(model="bad", messages=USER).route.deployment == "good"
    assert second.chat.completions.create(model="bad", messages=USER).route.deployment == "good"
    assert [row.deployment for row in second.ledger] == ["good"]
    assert any(k.startswith("{llmroute}:cooldown:bad") for k in _keys(cluster, cluster.owner(SLOT_KEY)))


# -- the scripts and the cluster pipeline -------------------------------------------------------------


def test_a_dead_reservation_frees_budgets_the_script_was_not_passed(cluster: RedisCluster) -> None:
    """A reservation records the keys it holds; the process that drops it when it expires may not
    have that budget at all, so its script decrements keys it was not passed in KEYS (same slot).
    Redis Cluster runs it: the dead worker's hold on `task:a` is given back."""
    from llmroute.fleet.budgets import RedisBudgets

    url = cluster.url(cluster.other(SLOT_KEY))
    clock = {"now": 1000.0}
    dead = RedisBudgets(
        url, [Budget("1"), Budget("1", "task:a")], reservation_ttl=60, clock=lambda: clock["now"]
    )
    dead.reserve({"task": "a"}, None, Decimal("0.9"))
    alive = RedisBudgets(url, [Budget("1")], reservation_ttl=60, clock=lambda: clock["now"])
    with pytest.raises(llmroute.BudgetExceeded):
        alive.reserve(None, None, Decimal("0.5"))
    clock["now"] += 61
    alive.reserve(None, None, Decimal("0.5")).settle(Decimal("0.5"))
    alive.link.flush()
    assert alive.spent("global") == Decimal("0.5")
    with cluster.client(cluster.owner(SLOT_KEY)) as node:
        assert int(node.get("{llmroute}:budgets:r:task:a")) == 0  # not passed, still given back
    assert {s.budget.name: s.reserved for s in dead.status()} == {"global": 0, "task:a": 0}
    assert alive.link.outages == dead.link.outages == 0


_INCR = "return redis.call('INCR', KEYS[1])"
_BOOM = "return redis.error_reply('boom')"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_cluster_pipeline_errors_and_noscript(
    cluster: RedisCluster, loop: asyncio.AbstractEventLoop, asynchronous: bool
) -> None:
    """On the cluster pipeline, as on one server: scripts the node lost (SCRIPT FLUSH: NOSCRIPT) are
    sent again in full, with no outage; a script's error reply is that op's result (the others in
    the pipeline run) and opens the breaker, like an outage."""
    link = RedisLink(cluster.url(cluster.other(SLOT_KEY)))
    key = link.tag("n")

    def exchange(*sources: str) -> list[Any]:
        ops = [Op(source, [key], []) for source in sources]
        if asynchronous:
            return loop.run_until_complete(link.aexchange(ops))
        return link.exchange(ops)

    assert exchange(_INCR, _INCR) == [1, 2]
    assert exchange(_INCR, _INCR) == [3, 4]  # EVALSHA now
    with cluster.client(cluster.owner(SLOT_KEY)) as node:
        node.script_flush()
    assert exchange(_INCR, _INCR) == [5, 6]
    assert link.round_trips == 4  # the round after the flush took one more, to resend the script
    assert link.outages == 0 and link.fallbacks == 0

    first, error, second = exchange(_INCR, _BOOM, _INCR)
    assert (first, second) == (7, 8)
    assert isinstance(error, Exception) and "boom" in str(error)
    assert link.outages == 1


# -- a node down, a slot moving --------------------------------------------------------------------------


def _run_phases(
    router: Any, loop: asyncio.AbstractEventLoop, during: Any, after: Any, calls: int = 8
) -> float:
    """`calls` calls, `during()`, `calls` calls, `after()`, `calls` calls; how long the middle calls
    took (seconds)."""
    for _ in range(calls):
        _call(router, loop)
    during()
    started = time.monotonic()
    for _ in range(calls):
        _call(router, loop)
        time.sleep(0.05)  # past retry_s now and then: some calls probe the node
    middle = time.monotonic() - started
    after()
    time.sleep(0.3)  # past retry_s: the next call probes, finds the node back, and replays
    for _ in range(calls):
        _call(router, loop)
    return middle


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Router", "AsyncRouter"])
def test_owner_killed_and_restarted_mid_run(
    emu: Emulator, loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, asynchronous: bool
) -> None:
    """The node owning the fleet's slot is killed mid-run and restarted (same port, same nodes.conf,
    its append-only file): no call fails, the fleet serves from in-process state meanwhile (one
    warning per outage), and what was spent meanwhile is replayed, so the cluster ends with the
    whole spend.

    The async cluster pipeline handed "Connection closed by server" back as the admission's result:
    the async call failed. Measured (2 shared cores): a dead node refuses connections, so a probe
    costs ~1 ms; the calls while it is down take 1-3 ms each, as with it up."""
    with redis_cluster(persistent=True) as cluster:
        owner = cluster.owner(SLOT_KEY)
        link = RedisLink(cluster.url(cluster.other(SLOT_KEY)), retry_s=0.2)
        router = _router(emu, link, asynchronous=asynchronous)
        with caplog.at_level(logging.WARNING, "llmroute.fleet"):
            middle = _run_phases(router, loop, lambda: cluster.stop(owner), lambda: cluster.start(owner))
        assert middle < 30  # a hang guard, not a speed check
        budgets = _settled(router)
        assert link.fallbacks > 0 and budgets.pending == 0
        assert _fleet_spend(cluster) == router.ledger.total().cost == _billed(emu)
        assert router.ledger.total().errors == 0 and router.ledger.total().calls == 24
        assert link.outages == len([r for r in caplog.records if "Redis unavailable" in r.message]) >= 1


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Router", "AsyncRouter"])
def test_owner_hung_mid_run(emu: Emulator, loop: asyncio.AbstractEventLoop, asynchronous: bool) -> None:
    """The owning node hangs (SIGSTOP: connections are accepted, nothing is answered) and continues.
    No call fails and nothing is lost. redis-py's cluster pipeline hands a timeout back as every
    command's result instead of raising it: the admission's result was then an exception and the
    call failed (both routers), and the sync pipeline resent each failed command on its own, one
    more timeout each. Measured (socket_timeout 0.1 s): the first call after the hang took 0.61 s
    and failed; now a probe costs one timeout, ~0.10 s, the calls in between ~2 ms."""
    with redis_cluster() as cluster:
        owner = cluster.owner(SLOT_KEY)
        link = RedisLink(cluster.url(cluster.other(SLOT_KEY)), retry_s=0.2)
        router = _router(emu, link, asynchronous=asynchronous)
        middle = _run_phases(router, loop, lambda: cluster.pause(owner), lambda: cluster.resume(owner))
        assert middle < 30  # a hang guard, not a speed check
        budgets = _settled(router)
        assert link.outages >= 1 and link.fallbacks > 0 and budgets.pending == 0
        assert _fleet_spend(cluster) == router.ledger.total().cost == _billed(emu)
        assert router.ledger.total().errors == 0 and router.ledger.total().calls == 24


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Router", "AsyncRouter"])
def test_slot_migrated_mid_run(emu: Emulator, loop: asyncio.AbstractEventLoop, asynchronous: bool) -> None:
    """The fleet's slot moves to another master between calls (IMPORTING/MIGRATING, MIGRATE, SETSLOT
    NODE): the next calls are answered MOVED, follow it, and the new owner, which never saw the
    scripts, answers NOSCRIPT: they are resent in full; the breaker does not open for it (a write
    the flusher sends during the move itself may meet its window, see below) and the spend is kept.
    Then a migration left half done (keys on both nodes): the scripts' keys are split, Redis answers
    TRYAGAIN, the fleet serves in process meanwhile; once the slot is moved, the spend made
    meanwhile is replayed on the new owner."""
    from redis.crc import key_slot

    from llmroute.fleet.limits import _ADMIT

    with redis_cluster() as cluster:
        first = cluster.owner(SLOT_KEY)
        second, third = (p for p in cluster.ports if p != first)
        link = RedisLink(cluster.url(second), retry_s=0.2)
        router = _router(emu, link, asynchronous=asynchronous)
        for _ in range(5):
            _call(router, loop)
        cluster.move_slot(SLOT_KEY, second)
        # a deferred write the flusher sent during the move's own short window may have met TRYAGAIN
        outages = link.outages
        time.sleep(0.3)  # past retry_s then
        fallbacks = link.fallbacks
        for _ in range(5):
            _call(router, loop)
        assert link.outages == outages and link.fallbacks == fallbacks
        assert not _keys(cluster, first) and "{llmroute}:budgets:s:global:all" in _keys(cluster, second)
        with cluster.client(second) as node:
            assert node.script_exists(link._sha(_ADMIT)) == [True]  # sent again in full there

        slot = key_slot(SLOT_KEY.encode())
        source, target = cluster.node_id(second), cluster.node_id(third)
        with cluster.client(second) as src, cluster.client(third) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target)
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            src.execute_command("MIGRATE", "127.0.0.1", third, "", 0, 5000, "KEYS", *keys[::2])
            for _ in range(5):
                _call(router, loop)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", third, "", 0, 5000, "KEYS", *keys)
        for port in cluster.ports:
            with cluster.client(port) as node:
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)
        cluster.wait_ok()
        assert cluster.owner(SLOT_KEY) == third
        time.sleep(0.3)  # past retry_s
        for _ in range(5):
            _call(router, loop)
        budgets = _settled(router)
        assert link.outages > outages and budgets.pending == 0
        assert _fleet_spend(cluster) == router.ledger.total().cost == _billed(emu)
        assert router.ledger.total().errors == 0 and router.ledger.total().calls == 20
        assert not _keys(cluster, second)
