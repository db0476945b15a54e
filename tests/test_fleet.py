"""Fleet mode on a real redis-server: budgets, rate limits shared by worker processes; Redis failures.

Each LiteLLM Router bug named in issue 19 has a test here that would catch it in llmroute."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fleet_workers
import pytest
from fleet_servers import RedisServer, free_port, redis_server
from fleet_workers import KEY, LIMIT, MAX_TOKENS, USER, model

import llmroute
from llmroute.fleet import RedisLink
from llmroute.money.budget import Budget, Budgets
from llmroute.testing import Emulator

WORKERS = 4


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def served(emu: Emulator) -> Iterator[str]:
    with emu.serve() as server:
        yield server.base_url("vllm")


def _fleet(fn: Any, *args: Any, workers: int = WORKERS) -> list[Any]:
    """Run `fn(*args, start_at)` in `workers` fresh processes at once; their results."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 4.0  # after every interpreter has started and imported llmroute
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(fn, *args, start_at) for _ in range(workers)]
        return [f.result(timeout=240) for f in futures]


def _billed(emu: Emulator) -> Decimal:
    """What the emulator charged, at the model's price ($1 / $2 per million tokens)."""
    bill = emu.bill.total()
    return (Decimal(bill.input_tokens) * 1 + Decimal(bill.output_tokens) * 2) / Decimal(1_000_000)


def _estimate(emu: Emulator) -> Decimal:
    """The largest estimate the router reserves for one call of these tests."""
    from llmroute.money.estimate import estimate_cost
    from llmroute.request import ChatRequest

    router = llmroute.Router(
        [llmroute.Deployment("d", model="m", provider="vllm", base_url=emu.base_url("vllm"), api_key=KEY)],
        models=[model()],
    )
    from llmroute.hinting import RouteHints

    target = router._core.resolve("m")[0]
    request = ChatRequest.from_kwargs(
        {"model": "m", "messages": USER, "max_tokens": MAX_TOKENS}, RouteHints()
    )
    cost = estimate_cost(request, target).cost
    assert cost is not None
    return cost


# -- 1. one budget, several processes ----------------------------------------------------------------


@pytest.mark.parametrize("state", [True, False], ids=["redis", "in-process baseline"])
def test_processes_share_one_budget(emu: Emulator, served: str, redis: RedisServer, state: bool) -> None:
    """4 worker processes, one $ budget: with Redis the fleet spends at most the limit plus one call's
    estimate (litellm #6288: budgets synced every 60 s let replicas overspend); each process alone
    (the baseline) spends the whole limit itself."""
    results = _fleet(fleet_workers.budget_worker, served, redis.url if state else None, 40, None)
    billed = _billed(emu)
    spent = sum(Decimal(r["spent"]) for r in results)
    assert spent == billed  # the workers' ledgers are the emulator's bill
    estimate = _estimate(emu)
    if state:
        assert billed <= LIMIT + estimate
        assert billed >= LIMIT - 2 * estimate  # the room was used, not refused early
        assert sum(r["refused"] for r in results) > 0
    else:
        assert billed > LIMIT * (WORKERS - 1)  # each believed it had the whole budget


# -- 2. one rate limit, several processes ------------------------------------------------------------


@pytest.mark.parametrize("state", [True, False], ids=["redis", "in-process baseline"])
def test_processes_share_one_rpm_limit(emu: Emulator, served: str, redis: RedisServer, state: bool) -> None:
    """The account allows 12 requests a minute (the emulator enforces it per API key) and the
    deployment says rpm=12: 4 processes together send 12 and get no 429 (litellm #40291/#27736: the
    pre-call check read local memory only, so the real limit was rpm x replicas)."""
    rpm = 12
    emu.set_rate_limit("vllm", rpm, key=KEY)
    results = _fleet(fleet_workers.rpm_worker, served, redis.url if state else None, 6, rpm)
    answered = sum(r["answered"] for r in results)
    throttled = sum(r["throttled"] for r in results)
    if state:
        assert throttled == 0
        assert answered == rpm
        assert sum(r["no_room"] for r in results) == WORKERS * 6 - rpm
    else:
        assert throttled > 0
        assert answered == rpm  # the account let 12 through and refused the rest with 429s


def _router(emu: Emulator, link: RedisLink | str | None, *deployments: llmroute.Deployment, **kw: Any) -> Any:
    from tenacity import stop_after_attempt

    from llmroute.routing.engine import RetryPolicy

    # deadline=5: a call does not wait for a 60 s rate window to free up (it would, within the
    # default 300 s deadline): it is refused here, with NoCapacity, which is what these tests count;
    # not shorter: the deadline also bounds each attempt, and a loaded machine can take a second
    retry = RetryPolicy(stop_after_attempt(1), deadline=5.0)
    return llmroute.Router(list(deployments), models=[model()], state=link, retry=retry, **kw)


def _deployment(emu: Emulator, name: str = "d", **limits: Any) -> llmroute.Deployment:
    return llmroute.Deployment(
        name,
        model="m",
        provider="vllm",
        base_url=emu.base_url("vllm"),
        api_key=KEY,
        http_client=emu.http_client(),
        **limits,
    )


def test_rpm_keys_do_not_drift(emu: Emulator, redis: RedisServer) -> None:
    """litellm #8430: 4 deployments x 6 RPM gave a 429 after 19 requests. Two replicas (each with its
    own connection) share 4 deployments of 6 RPM on one 24-RPM account: exactly 24 are answered,
    none throttled."""
    emu.set_rate_limit("vllm", 24, key=KEY)
    routers = [
        _router(emu, RedisLink(redis.url), *(_deployment(emu, f"d{i}", rpm=6) for i in range(4)))
        for _ in range(2)
    ]
    answered = no_room = 0
    for i in range(40):
        try:
            routers[i % 2].chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            answered += 1
        except llmroute.errors.NoCapacity:
            no_room += 1
    assert answered == 24 and no_room == 16
    assert not [row for r in routers for row in r.ledger if row.status_code == 429]


def test_tpm_is_shared_by_replicas(emu: Emulator, redis: RedisServer) -> None:
    """litellm #40291, #27736 (TPM pre-call check local only): two replicas, one tpm limit."""
    tpm = 400
    routers = [_router(emu, RedisLink(redis.url), _deployment(emu, tpm=tpm)) for _ in range(2)]
    answered = 0
    for i in range(30):
        try:
            routers[i % 2].chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            answered += 1
        except llmroute.errors.NoCapacity:
            pass
    used = sum(row.usage.total_tokens for r in routers for row in r.ledger)
    assert 0 < used <= tpm
    alone = _router(emu, None, _deployment(emu, tpm=tpm))
    solo = 0
    for _ in range(30):
        try:
            alone.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
            solo += 1
        except llmroute.errors.NoCapacity:
            pass
    assert answered < 2 * solo  # with local state each replica would have had the whole limit


def test_provider_headers_are_shared(emu: Emulator, redis: RedisServer) -> None:
    """One replica hears "0 requests remaining" from the provider: the other waits too."""
    emu.set_rate_limit("vllm", 2, key=KEY)
    first, second = (_router(emu, RedisLink(redis.url), _deployment(emu)) for _ in range(2))
    first.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    first.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)  # remaining: 0
    with pytest.raises(llmroute.errors.NoCapacity):
        second.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
    assert not [row for row in second.ledger if row.status_code == 429]


# -- budgets: idempotence, periods, reseeding ---------------------------------------------------------


def test_settle_is_idempotent_across_instances(redis: RedisServer) -> None:
    """A settle replayed (by this process or another) counts once."""
    from llmroute.fleet.budgets import RedisBudgets

    a = RedisBudgets(redis.url, [Budget("1")])
    b = RedisBudgets(redis.url, [Budget("1")])
    reservation = a.reserve(None, None, Decimal("0.1"), key=("call", 1))
    assert b.spent("global") == 0 and b.remaining("global") == Decimal("0.9")
    reservation.settle(Decimal("0.25"))
    reservation.settle(Decimal("0.25"))
    again = b.reserve(None, None, Decimal("0.1"), key=("call", 1))  # same attempt id, another process
    again.settle(Decimal("0.25"))
    assert a.spent("global") == Decimal("0.25")
    assert b.remaining("global") == Decimal("0.75")


def test_no_reseed_inflation(redis: RedisServer) -> None:
    """litellm #28247: reseeding spend with INCRBYFLOAT on each start inflated it to N x true spend.
    Here a process that starts reads the shared figure and adds nothing."""
    from llmroute.fleet.budgets import RedisBudgets

    first = RedisBudgets(redis.url, [Budget("10")])
    first.reserve(None, None, Decimal("0.3")).settle(Decimal("0.3"))
    first.link.flush()  # the settle goes with the next round trip, or within flush_s: now
    for _ in range(5):
        RedisBudgets(redis.url, [Budget("10")]).status()
    assert RedisBudgets(redis.url, [Budget("10")]).spent("global") == Decimal("0.3")


def test_period_rollover_loses_no_spend(redis: RedisServer) -> None:
    """litellm #34733: a concurrent budget-window reset used plain SET and lost spend. Threads charge
    across midnight: each day's key gets exactly the spend charged in that day."""
    from llmroute.fleet.budgets import RedisBudgets

    midnight = 1_800_000_000 - 1_800_000_000 % 86400 + 86400
    clock = {"now": float(midnight - 1)}
    budgets = RedisBudgets(redis.url, [Budget("1000", period="day")], clock=lambda: clock["now"])
    charged: dict[int, int] = {}
    lock = threading.Lock()

    def charge(n: int) -> None:
        for i in range(50):
            day = int(clock["now"] // 86400)
            budgets.reserve(None, None, Decimal("0.01")).settle(Decimal("0.01"))
            with lock:
                charged[day] = charged.get(day, 0) + 1
            if n == 0 and i == 25:
                clock["now"] = float(midnight + 1)

    threads = [threading.Thread(target=charge, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import redis as redis_client

    budgets.link.flush()  # settles go with the next round trip: send them before reading Redis directly
    client = redis_client.Redis.from_url(redis.url)
    keys = sorted(k.decode() for k in client.keys("*:s:global/day:*"))
    assert len(keys) == 2
    total = sum(int(client.get(k) or 0) for k in keys)
    assert Decimal(total) * Decimal("1e-12") == Decimal("0.01") * 200  # nothing lost at the boundary
    assert budgets.spent("global") <= Decimal("0.01") * 200


def test_dead_workers_reservations_expire(redis: RedisServer) -> None:
    """A worker that reserved and died holds the room only for `reservation_ttl`."""
    from llmroute.fleet.budgets import RedisBudgets

    clock = {"now": 1000.0}
    dead = RedisBudgets(redis.url, [Budget("1")], reservation_ttl=60, clock=lambda: clock["now"])
    dead.reserve(None, None, Decimal("0.9"))
    alive = RedisBudgets(redis.url, [Budget("1")], reservation_ttl=60, clock=lambda: clock["now"])
    with pytest.raises(llmroute.BudgetExceeded):
        alive.reserve(None, None, Decimal("0.5"))
    clock["now"] += 61
    alive.reserve(None, None, Decimal("0.5")).settle(Decimal("0.5"))
    assert alive.spent("global") == Decimal("0.5")


# -- 4. Redis failures are not the application's --------------------------------------------------------


def test_unreachable_redis_does_not_block_calls(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """PR #35273: with no socket timeout an unreachable Redis blocked every request. Nothing listens
    on the port: every call is answered, budgets and limits hold in process, one warning is logged,
    and only one call in each `retry_s` tries Redis."""
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", retry_s=60)
    router = _router(emu, link, _deployment(emu, rpm=5), budgets=Budgets([Budget("1")]))
    with caplog.at_level(logging.WARNING, "llmroute.fleet"):
        answered = 0
        for _ in range(8):
            try:
                router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
                answered += 1
            except llmroute.errors.NoCapacity:
                pass
    assert answered == 5  # the in-process fallback still enforces rpm
    assert link.outages == 1
    assert link.fallbacks >= 8
    assert len([r for r in caplog.records if "Redis unavailable" in r.message]) == 1


def test_hung_redis_does_not_hang_workers(emu: Emulator) -> None:
    """PR #36804: a dead cluster hung workers. A server that accepts connections and never answers:
    calls still complete; the socket timeout bounds the one probe per `retry_s`."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        link = RedisLink(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", socket_timeout=0.05, retry_s=60)
        router = _router(emu, link, _deployment(emu), budgets=Budgets([Budget("1")]))
        for _ in range(5):
            router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
        assert link.outages == 1
    finally:
        silent.close()


def test_redis_killed_and_restarted_mid_run(emu: Emulator) -> None:
    """Redis dies mid-run and comes back: no call fails because of it; what was spent meanwhile is
    replayed, so Redis ends with the whole spend, equal to the ledger and the emulator's bill."""
    with redis_server(persistent=True) as server:
        link = RedisLink(server.url, retry_s=0.2)
        budgets = Budgets([Budget("100")])
        router = _router(emu, link, _deployment(emu, rpm=1000), budgets=budgets)
        for phase in ("up", "down", "back"):
            if phase == "down":
                server.stop()
            if phase == "back":
                server.start()
                time.sleep(0.3)  # past retry_s: the next call probes Redis
            for _ in range(10):
                router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS)
        shared = router._core.budgets
        assert link.outages == 1 and shared.pending == 0
        assert shared.spent("global") == router.ledger.total().cost == _billed(emu)
        assert router.ledger.total().errors == 0


def test_all_keys_of_a_script_share_one_cluster_slot(emu: Emulator, redis: RedisServer) -> None:
    """litellm #8878: CROSSSLOT errors on Redis Cluster. Every key of every pipeline (the admission
    script, the writes carried with it, the reads) hashes to one slot."""
    from redis.crc import key_slot

    slots: list[set[int]] = []
    sent: list[str] = []

    class Recording(RedisLink):
        def _send(self, ops: Any) -> list[Any]:
            slots.append({key_slot(k.encode()) for op in ops for k in op.keys})
            sent.extend(op.source for op in ops)
            return super()._send(ops)

    link = Recording(redis.url)
    budgets = Budgets([Budget("1"), Budget("1", "task:a"), Budget("1", "provider:vllm", period="day")])
    router = _router(emu, link, _deployment(emu, rpm=100, tpm=100_000), budgets=budgets)
    for _ in range(2):
        router.chat.completions.create(model="m", messages=USER, max_tokens=MAX_TOKENS, extra_body={})
    router._core.budgets.status()
    from llmroute.fleet import budgets as fleet_budgets
    from llmroute.fleet import cooldowns, health, limits

    kinds = {limits._ADMIT, limits._RELEASE, fleet_budgets._SETTLE, health._OBSERVE, cooldowns._SAMPLE}
    assert kinds <= set(sent)  # admission, release, settle, outcome and latency samples all went
    assert slots and all(len(s) == 1 for s in slots)


# -- 3. one breaker --------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [True, False], ids=["redis", "in-process baseline"])
def test_one_workers_evidence_protects_the_others(emu: Emulator, redis: RedisServer, state: bool) -> None:
    """Worker A hits a quota error at deployment `bad` (evidence enough to close it off): worker B,
    with its own connection, goes straight to the fallback and never calls `bad`; with in-process
    cooldowns B pays for the same lesson."""
    from llmroute.testing import Fault

    emu.inject(Fault.quota(), provider="vllm", times=10)
    first, second = (
        _router(
            emu,
            RedisLink(redis.url) if state else None,
            _deployment(emu, "bad"),
            llmroute.Deployment(
                "good",
                model="m",
                provider="openai",
                base_url=emu.base_url("openai"),
                api_key=KEY,
                http_client=emu.http_client(),
            ),
            fallbacks=["good"],
        )
        for _ in range(2)
    )
    assert first.chat.completions.create(model="bad", messages=USER).route.deployment == "good"
    assert second.chat.completions.create(model="bad", messages=USER).route.deployment == "good"
    tried = [row.deployment for row in second.ledger]
    assert tried == (["good"] if state else ["bad", "good"])


def test_cooldown_state_round_trips_through_redis(redis: RedisServer) -> None:
    """Whatever the breaker keeps (times, samples, streaks) reads back as written, in the reader's
    own monotonic clock."""
    from llmroute.fleet.cooldowns import decode, encode
    from llmroute.routing.cooldown import CooldownState

    state = CooldownState()
    for field in ("until", "paused_until"):
        if hasattr(state, field):
            setattr(state, field, 1234.5)
    state.recent.extend([(1000.0, True), (1001.5, False)])
    back = decode(encode(state, offset=5000.0), offset=4000.0)  # another process, another clock
    assert back.until == 2234.5
    assert list(back.recent) == [(2000.0, True), (2001.5, False)]
    assert decode(encode(CooldownState(), 5000.0), 4000.0).until == 0.0  # "never" stays never
