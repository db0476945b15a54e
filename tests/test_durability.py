"""What the caller saw, the ledger keeps (docs/ledger.md, "Durability").

A child process routes calls through a `Router` whose ledger persists to SQLite, against the
emulator's socket server, and prints each call id once `create` has returned; the test kills it
(`kill -9` or SIGTERM) at a random moment and checks that every call id it printed has its row.
Then: the writer never dies (surrogates, numbers no column holds, failing writes), flush and close
are bounded, and whatever usage a provider sends, costs stay non-negative and bounded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import CANARY_OPENAI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tenacity import stop_after_attempt

import llmroute
from llmroute.hinting import RouteHints
from llmroute.money.budget import Budget, Budgets
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.money.store import SQLiteStore, StoreError
from llmroute.testing import Emulator
from llmroute.usage import MAX_TOKENS, Cost, Price, Usage, reported_usage

_CHILD = r"""
import sys, threading
import llmroute
from llmroute.money.store import SQLiteStore

base_url, path, threads, durability = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = SQLiteStore(path, durability=durability)
router = llmroute.Router(
    [llmroute.Deployment("gpt", model="gpt-5.4", base_url=base_url, api_key=sys.argv[5])],
    ledger=llmroute.Ledger(store=store),
)
out = sys.stdout
lock = threading.Lock()

def work(n):
    i = 0
    while True:
        i += 1
        reply = router.chat.completions.create(
            model="gpt-5.4", messages=[{"role": "user", "content": f"call {n}.{i}"}]
        )
        with lock:
            out.write(reply.route.call_id + "\n")
            out.flush()

for n in range(threads - 1):
    threading.Thread(target=work, args=(n,), daemon=True).start()
work(threads - 1)
"""


def _stored_call_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT call_id FROM ledger_rows")]


def _run_and_kill(
    base_url: str, path: Path, sig: int, threads: int, durability: str, rng: random.Random
) -> tuple[list[str], int]:
    """Start a child, let it make calls for a random while, kill it; (acknowledged ids, exit code)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, base_url, str(path), str(threads), durability, CANARY_OPENAI],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    first = child.stdout.readline()  # the child is up and has made a call
    assert first, "the child made no call"
    acknowledged.append(first.decode().strip())
    reader = threading.Thread(
        target=lambda: acknowledged.extend(line.decode() for line in child.stdout),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    time.sleep(rng.uniform(0.05, 0.8))
    child.send_signal(sig)
    code = child.wait(timeout=60)
    reader.join(timeout=60)
    complete = [line.strip() for line in acknowledged if line.endswith("\n") or len(line.strip()) == 32]
    return [c for c in complete if len(c) == 32], code


@pytest.mark.parametrize(
    ("sig", "threads", "durability"),
    [
        (signal.SIGKILL, 1, "commit"),
        (signal.SIGKILL, 4, "commit"),
        (signal.SIGTERM, 1, "commit"),
        (signal.SIGTERM, 3, "queued"),  # queued rows are written by the store's SIGTERM handler
    ],
    ids=["kill-9", "kill-9-4-threads", "sigterm", "sigterm-queued"],
)
def test_every_acknowledged_call_survives_the_process_being_killed(
    tmp_path: Path, sig: int, threads: int, durability: str
) -> None:
    emu = Emulator(seed=1)
    rng = random.Random(int(sig) * 10 + threads)
    missing: list[str] = []
    total = 0
    with emu.serve() as server:
        for trial in range(3):
            path = tmp_path / f"trial{trial}.db"
            acknowledged, code = _run_and_kill(server.base_url("openai"), path, sig, threads, durability, rng)
            assert code == -sig  # died of the signal: the SIGTERM handler chains to the default action
            stored = set(_stored_call_ids(path))
            missing += [c for c in acknowledged if c not in stored]
            total += len(acknowledged)
    assert total > 3 * threads
    assert missing == [], f"{len(missing)} of {total} acknowledged calls have no row"


def test_an_application_sigterm_handler_is_kept(tmp_path: Path) -> None:
    """A queued store installs its SIGTERM handler only over the default action."""
    script = (
        "import signal, sys\n"
        "from llmroute.money.store import SQLiteStore\n"
        "def mine(signum, frame): pass\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        f"SQLiteStore({str(tmp_path / 'a.db')!r}, durability='queued')\n"
        "print(signal.getsignal(signal.SIGTERM) is mine)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        f"SQLiteStore({str(tmp_path / 'b.db')!r}, durability='queued')\n"
        "print(signal.getsignal(signal.SIGTERM).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "llmroute.money.store"]


# -- the writer never dies ---------------------------------------------------------------------------


def _row(**changes: Any) -> LedgerRow:
    fields: dict[str, Any] = {
        "call_id": os.urandom(16).hex(),
        "attempt": 1,
        "timestamp": 1_795_000_000.0,
        "deployment": "gpt",
        "provider": "openai",
        "requested_model": "gpt-5.4",
        "model": "gpt-5.4",
        "served_model": "gpt-5.4-2026",
        "hints": RouteHints(task="t"),
        "usage": Usage(10, 5),
        "latency_s": 0.1,
        "outcome": "ok",
    }
    fields.update(changes)
    return LedgerRow(**fields)


@pytest.mark.parametrize("durability", ["commit", "queued"])
def test_a_surrogate_in_every_text_field_is_written_and_read_back(tmp_path: Path, durability: str) -> None:
    bad = "x\ud800y"
    rows = [
        _row(),
        _row(
            call_id=bad,
            deployment=bad,
            provider=bad,
            requested_model=bad,
            model=bad,
            served_model=bad,
            hints=RouteHints(task=bad, sensitivity=bad, tags=(bad,), user=bad, budget=bad, extra={bad: bad}),
            error=bad,
            request_id=bad,
            labels={bad: bad},
        ),
        _row(),
    ]
    store = SQLiteStore(tmp_path / "l.db", durability=durability)
    ledger = Ledger(store=store)
    for row in rows:
        ledger.record(row)
    store.close(timeout=10)  # no StoreError: nothing was lost
    assert store.written == 3 and store.escaped == 1 and store.lost == 0
    back = SQLiteStore(tmp_path / "l.db").rows()
    assert [r.call_id for r in back] == [rows[0].call_id, "x\\ud800y", rows[2].call_id]
    odd = back[1]
    escaped = "x\\ud800y"
    assert (odd.deployment, odd.provider, odd.model, odd.served_model, odd.error, odd.request_id) == (
        escaped,
    ) * 6
    assert odd.hints.task == odd.hints.user == odd.hints.budget == odd.hints.sensitivity == escaped
    # JSON columns escape the same way, and JSON reads its own `\ud800` back as the character:
    assert odd.hints.tags == (bad,) and dict(odd.labels) == {bad: bad} and odd.hints.extra == {bad: bad}


def test_a_number_no_column_holds_is_kept_as_text(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "l.db")
    store.put(_row(attempt=10**20))
    store.put(_row())
    store.flush(timeout=5)
    assert store.written == 2 and store.escaped == 1
    assert [r.attempt for r in SQLiteStore(tmp_path / "l.db").rows()] == [10**20, 1]


def test_a_route_hint_surrogate_is_refused_before_the_store_and_the_store_keeps_writing(
    tmp_path: Path,
) -> None:
    """A lone surrogate in a route hint is bad input (docs/bad-input.md): refused before any network
    call or row; the calls around it are written as usual. (Text that reaches the store with a
    surrogate — a provider's answer — is escaped: the next test.)"""
    emu = Emulator(seed=2)
    store = SQLiteStore(tmp_path / "l.db")
    with emu.serve() as server:
        router = llmroute.Router(
            [
                llmroute.Deployment(
                    "gpt", model="gpt-5.4", base_url=server.base_url("openai"), api_key=CANARY_OPENAI
                )
            ],
            ledger=Ledger(store=store),
        )
        for task in ("\ud800", "fine", "\udfff again", "also fine"):
            try:
                router.chat.completions.create(
                    model="gpt-5.4", messages=[{"role": "user", "content": "hi"}], route={"task": task}
                )
            except llmroute.InvalidRequest as e:
                assert "route.task" in str(e)
        router.close()
    store.close(timeout=10)
    back = SQLiteStore(tmp_path / "l.db").rows()
    assert [r.hints.task for r in back] == ["fine", "also fine"]


def test_a_served_model_with_a_surrogate_reaches_the_store(tmp_path: Path) -> None:
    """A provider answering `"model": "gpt-\\ud800"` (valid JSON, a lone surrogate once decoded)."""
    store = SQLiteStore(tmp_path / "l.db")
    router = _answering({"prompt_tokens": 3, "completion_tokens": 2}, model="gpt-\ud800")
    store.attach(router.ledger)
    router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    store.close(timeout=10)
    assert [r.served_model for r in SQLiteStore(tmp_path / "l.db").rows()] == ["gpt-\\ud800"] * 2


def test_failed_writes_are_counted_and_flush_and_close_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that cannot write (the file locked by another process for longer than the busy
    timeout) keeps running; the rows are counted lost, and flush/close return within their
    timeout."""
    path = tmp_path / "l.db"
    store = SQLiteStore(path, durability="queued", busy_timeout=0.05)
    monkeypatch.setattr("llmroute.money.store._RETRIES", 2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        store.put(_row())
        started = time.monotonic()
        with pytest.raises((StoreError, TimeoutError)):
            store.flush(timeout=2)
        assert time.monotonic() - started < 10
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.lost == 1 and store._thread is not None and store._thread.is_alive()
    store.put(_row())  # the writer is still there and writes once the lock is gone
    with pytest.raises(StoreError, match="1 rows were lost"):
        store.flush(timeout=5)
    assert store.written == 1
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.close(timeout=5)
    assert time.monotonic() - started < 10


def test_close_returns_within_its_timeout_while_a_commit_is_stuck(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = SQLiteStore(path, busy_timeout=30)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    writer = threading.Thread(target=store.put, args=(_row(),), daemon=True)
    writer.start()
    try:
        time.sleep(0.2)  # the put is waiting for the lock
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            store.close(timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    writer.join(timeout=30)
    assert store.written == 1  # the commit in progress finished once the lock was free


def test_rows_put_during_a_commit_go_together_and_each_put_returns_with_its_row_in_the_file(
    tmp_path: Path,
) -> None:
    """Group commit: while one commit is held up (another connection has the write lock), every
    other thread's row joins one group; once the lock is free that group is one transaction, and no
    `put` returns before a separate connection can read its row. `write()` waits its turn."""
    path = tmp_path / "l.db"
    store = SQLiteStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the write lock: the first commit waits (busy_timeout)
    rows = [_row() for _ in range(16)]
    seen: dict[str, bool] = {}
    errors: list[BaseException] = []

    def put(row: LedgerRow) -> None:
        try:
            store.put(row)
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as reader:
                found = reader.execute("SELECT 1 FROM ledger_rows WHERE call_id = ?", (row.call_id,))
                seen[row.call_id] = found.fetchone() is not None
        except BaseException as e:
            errors.append(e)

    first = threading.Thread(target=put, args=(rows[0],))
    first.start()
    deadline = time.monotonic() + 30
    while not store._leading and time.monotonic() < deadline:  # the first commit has begun
        time.sleep(0.01)
    others = [threading.Thread(target=put, args=(row,)) for row in rows[1:]]
    for t in others:
        t.start()
    bulk = threading.Thread(target=store.write, args=([_row(call_id="bulk")],))
    bulk.start()
    while len(store._open.rows) < len(others) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(store._open.rows) == len(others)
    assert not seen  # nothing returned while the lock was held
    blocker.execute("ROLLBACK")
    blocker.close()
    for t in [first, *others, bulk]:
        t.join(timeout=30)
    assert not errors
    assert seen == {row.call_id: True for row in rows}
    assert store._commits == 3  # the first row alone, the 15 that waited in one, then write()'s
    store.close()
    assert store.written == 17 and store.lost == 0
    assert sorted(r.call_id for r in SQLiteStore(path).rows()) == sorted([*seen, "bulk"])


# -- money is sane -----------------------------------------------------------------------------------

_COUNT = st.one_of(
    st.none(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=0, max_value=5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
)
_MAX_CALL_COST = Decimal(6 * MAX_TOKENS) * Decimal(1000) / Decimal(1_000_000)  # 6 kinds at $1000/M at most


def _answering(usage: dict[str, Any] | None, model: str = "gpt-5.4") -> llmroute.Router:
    body: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    raw = json.dumps(body).encode()

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=raw, headers={"content-type": "application/json"}, request=request
        )

    deployment = llmroute.Deployment(
        "d",
        model="gpt-5.4",
        api_key="sk-test",
        base_url="http://x.invalid/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handle)),
    )
    return llmroute.Router(
        [deployment], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)), budgets=Budgets([Budget("1")])
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    usage=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "prompt_tokens": _COUNT,
                "completion_tokens": _COUNT,
                "total_tokens": _COUNT,
                "prompt_tokens_details": st.fixed_dictionaries({}, optional={"cached_tokens": _COUNT}),
                "completion_tokens_details": st.fixed_dictionaries({}, optional={"reasoning_tokens": _COUNT}),
            },
        ),
    )
)
def test_any_usage_a_provider_sends_gives_a_sane_cost_and_an_intact_ledger(
    usage: dict[str, Any] | None,
) -> None:
    router = _answering(usage)
    try:
        reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    except llmroute.errors.MalformedResponse:
        return  # the SDK refused the body as a whole (a typed error; nothing billed was hidden)
    cost = reply.route.cost
    assert cost is not None and Decimal(0) <= cost <= _MAX_CALL_COST
    rows = router.ledger.rows()
    assert len(rows) == 1 and rows[0].call_id == reply.route.call_id
    row_usage = rows[0].usage
    assert row_usage.consistent and max(row_usage.input_tokens, row_usage.output_tokens) <= MAX_TOKENS
    assert rows[0].cost is not None and rows[0].cost.total == cost
    spent = router._core.budgets.spent("global")  # type: ignore[union-attr]
    assert spent is not None and spent >= 0


@given(
    st.lists(st.integers(min_value=-(10**19), max_value=10**19), min_size=6, max_size=6),
)
def test_reported_usage_is_bounded_consistent_and_flagged(values: list[int]) -> None:
    usage = reported_usage(*values)
    assert usage.consistent
    assert all(0 <= getattr(usage, f) <= MAX_TOKENS for f in ("input_tokens", "output_tokens"))
    honest = all(0 <= v <= MAX_TOKENS for v in values) and Usage(*values).consistent
    assert usage.suspect is not honest
    if usage.suspect:
        assert json.loads(usage.raw or "")["input_tokens"] == values[0]  # the numbers as sent are kept
    price = Price(input=Decimal("1.25"), output=Decimal("10"), cache_read=Decimal("0.125"))
    assert price.cost(usage).total >= 0
    assert price.cost(Usage(*values)).total >= 0  # even a Usage built by hand is priced as corrected


@pytest.mark.parametrize(
    ("usage", "suspect"),
    [
        ({"prompt_tokens": -5000, "completion_tokens": -300}, True),
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9000}},
            True,
        ),
        ({"prompt_tokens": 10**15, "completion_tokens": 10**15}, True),
        ({"prompt_tokens": 10**20, "completion_tokens": 1}, True),
        ({"prompt_tokens": 12, "completion_tokens": 4}, False),
    ],
    ids=["negative", "cached-above-prompt", "10^15", "10^20", "honest"],
)
def test_impossible_usage_is_corrected_flagged_and_kept_raw(usage: dict[str, Any], suspect: bool) -> None:
    router = _answering(usage)
    reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "hi"}])
    row = router.ledger.rows()[0]
    assert row.usage.suspect is suspect
    if suspect:
        assert json.loads(row.usage.raw or "")["input_tokens"] == usage["prompt_tokens"]
    assert reply.route.cost is not None and 0 <= reply.route.cost <= _MAX_CALL_COST
    # the ledger is intact: a second, honest call reads back right after it
    router2_row = _row(usage=Usage(7, 3))
    router.ledger.record(router2_row)
    assert router.ledger.rows()[-1] == router2_row and router.ledger.rows()[0] == row


def test_a_row_no_column_can_hold_is_refused_whole() -> None:
    ledger = Ledger()
    first = _row()
    ledger.record(first)
    with pytest.raises(OverflowError):
        ledger.record(_row(usage=Usage(10**20, 5)))
    last = _row()
    ledger.record(last)
    assert ledger.rows() == [first, last]


def test_suspect_rows_never_give_a_budget_room() -> None:
    """Three calls reporting negative usage against a $0.01 budget: spend never goes down and the
    room left never grows."""
    budgets = Budgets([Budget("0.01")])
    ledger = Ledger()
    budgets.watch(ledger)
    price = Price(input=Decimal("1.25"), output=Decimal("10"))
    rooms = [budgets.remaining("global")]
    for n in range(3):
        reservation = budgets.reserve(RouteHints(), None, Decimal("0.001"), key=(f"c{n}", 1))
        assert reservation.amount == Decimal("0.001")
        ledger.record(_row(call_id=f"c{n}", usage=reported_usage(-50_000, -1_000), price=price))
        rooms.append(budgets.remaining("global"))
    assert rooms == sorted(rooms, reverse=True) and rooms[-1] == Decimal("0.007")
    budgets.observe(_row(cost=Cost(uncached_input=Decimal("-5"))))  # an explicit negative
    assert budgets.spent("global") == Decimal("0.003")


def test_a_listener_that_fails_does_not_starve_the_others() -> None:
    ledger = Ledger()
    seen: list[LedgerRow] = []

    def broken(row: LedgerRow) -> None:
        raise RuntimeError("boom")

    ledger.subscribe(broken)
    ledger.subscribe(seen.append)
    with pytest.raises(RuntimeError):
        ledger.record(_row())
    assert len(seen) == 1 and len(ledger) == 1
