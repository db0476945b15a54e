"""The ledger: exact costs for every provider's usage shape, compact rows that read back equal,
persistence across a restart (SQLite), export to JSONL and CSV."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import USER

import llmroute
from llmroute.catalog import default_catalog
from llmroute.hinting import RouteHints
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.money.store import SQLiteStore, StoreError, export_csv, export_jsonl, read_jsonl
from llmroute.providers.openai_compat import DIALECTS, decode_usage
from llmroute.testing import Emulator
from llmroute.usage import Cost, Price, Usage

D = Decimal
T0 = 1_795_000_000.0  # 2026-11-18T...Z

V32 = Price(input=D("0.28"), output=D("0.42"), cache_read=D("0.028"), source="seed")
GPT54 = Price(input=D("2.50"), output=D("15.00"), source="seed")


def make_row(**overrides: Any) -> LedgerRow:
    """A realistic row; any field can be overridden (`task=`/`tags=`/`user=` go into the hints)."""
    hint_fields = {k: overrides.pop(k) for k in ("task", "tags", "user", "budget", "extra") if k in overrides}
    fields: dict[str, Any] = {
        "call_id": uuid.uuid4().hex,
        "attempt": 1,
        "timestamp": T0,
        "deployment": "ds",
        "provider": "deepseek",
        "requested_model": "auto",
        "model": "deepseek-v3.2",
        "served_model": "deepseek-chat",
        "hints": RouteHints(**hint_fields),
        "usage": Usage(8_500, 400, cache_read_tokens=8_000),
        "latency_s": 0.5,
        "outcome": "ok",
        "finish_reason": "stop",
    }
    if "cost" not in overrides:
        fields["price"] = V32
    fields.update(overrides)
    return LedgerRow(**fields)


# -- cost arithmetic per provider usage shape ------------------------------------------------------------


def _openai_usage(**details: Any) -> Any:
    prompt = SimpleNamespace(
        **{k: v for k, v in details.items() if k in ("cached_tokens", "cache_write_tokens")}
    )
    completion = SimpleNamespace(reasoning_tokens=details.get("reasoning_tokens", 0))
    return SimpleNamespace(
        prompt_tokens=details["prompt_tokens"],
        completion_tokens=details["completion_tokens"],
        prompt_tokens_details=prompt,
        completion_tokens_details=completion,
    )


def test_openai_usage_cached_tokens_are_part_of_prompt_tokens() -> None:
    # 10,000 prompt tokens of which 8,192 cached; 1,000 completion of which 600 reasoning.
    # gpt-5.4-mini: 0.75 in, 0.075 cached, 4.50 out.
    # uncached 1,808 x 0.75 = 1,356; cached 8,192 x 0.075 = 614.4; out 1,000 x 4.50 = 4,500 (per 1M)
    usage = decode_usage(
        _openai_usage(
            prompt_tokens=10_000, completion_tokens=1_000, cached_tokens=8_192, reasoning_tokens=600
        ),
        None,
        DIALECTS["openai"],
    )
    assert usage == Usage(10_000, 1_000, cache_read_tokens=8_192, reasoning_tokens=600)
    price = default_catalog().model("gpt-5.4-mini").price  # type: ignore[union-attr]
    assert price is not None
    cost = price.cost(usage)
    assert cost.uncached_input == D("0.001356")
    assert cost.cache_read == D("0.0006144")
    assert cost.output == D("0.0045")  # reasoning billed as output, once
    assert cost.total == D("0.0064704")


def test_openai_56_cache_writes_pay_the_write_fee_and_are_not_double_counted() -> None:
    # gpt-5.6-sol: 5.00 in, 0.50 read, 6.25 write (1.25x), 30 out. 4,000 prompt = 1,000 read +
    # 2,000 written + 1,000 plain; 100 out.
    # 1,000 x 5 + 1,000 x 0.5 + 2,000 x 6.25 + 100 x 30 = 5,000 + 500 + 12,500 + 3,000 = 21,000 / 1M
    usage = decode_usage(
        _openai_usage(
            prompt_tokens=4_000, completion_tokens=100, cached_tokens=1_000, cache_write_tokens=2_000
        ),
        None,
        DIALECTS["openai"],
    )
    price = default_catalog().model("gpt-5.6-sol").price  # type: ignore[union-attr]
    assert price is not None
    assert price.cost(usage).total == D("0.021")
    assert price.cost(usage).cache_write == D("0.0125")


def test_deepseek_hit_plus_miss_is_the_prompt() -> None:
    # The seed's code review, fully cached: 8,500 x 0.028 + 400 x 0.42 = 238 + 168 = 406 per 1M.
    raw = SimpleNamespace(
        prompt_tokens=8_500, prompt_cache_hit_tokens=8_500, prompt_cache_miss_tokens=0, completion_tokens=400
    )
    usage = decode_usage(raw, None, DIALECTS["deepseek"])
    assert usage == Usage(8_500, 400, cache_read_tokens=8_500)
    assert V32.cost(usage).total == D("0.000406")
    raw.prompt_cache_hit_tokens, raw.prompt_cache_miss_tokens = 0, 8_500
    assert V32.cost(decode_usage(raw, None, DIALECTS["deepseek"])).total == D("0.002548")


@pytest.mark.parametrize("dialect", ["vllm", "ollama"])
def test_self_hosted_openai_shapes(dialect: str) -> None:
    # vLLM reports cached_tokens only with --enable-prompt-tokens-details; Ollama never does.
    price = Price(input=D("0.05"), output=D("0.10"), cache_read=D("0.01"))
    shape = _openai_usage(
        prompt_tokens=2_000, completion_tokens=500, cached_tokens=1_024 if dialect == "vllm" else 0
    )
    usage = decode_usage(shape, None, DIALECTS[dialect])
    expected = {"vllm": D("976") * D("0.05") + D("1024") * D("0.01"), "ollama": D("2000") * D("0.05")}[
        dialect
    ]
    assert price.cost(usage).total == (expected + D(500) * D("0.10")) / D(1_000_000)


def test_llamacpp_timings_cache_n_plus_prompt_n() -> None:
    carrier = SimpleNamespace(timings={"cache_n": 3_000, "prompt_n": 200, "predicted_n": 50})
    usage = decode_usage(
        SimpleNamespace(prompt_tokens=200, completion_tokens=50), carrier, DIALECTS["llamacpp"]
    )
    assert usage == Usage(3_200, 50, cache_read_tokens=3_000)
    price = Price(input=D("0.10"), output=D("0.20"), cache_read=D("0.01"))
    assert price.cost(usage).total == (200 * D("0.10") + 3_000 * D("0.01") + 50 * D("0.20")) / D(1_000_000)


def anthropic_usage(raw: dict[str, Any]) -> Usage:
    """PROVIDERS.md section 1: Anthropic's `input_tokens` EXCLUDES cache reads and writes."""
    read = raw.get("cache_read_input_tokens", 0)
    written = raw.get("cache_creation_input_tokens", 0)
    one_hour = raw.get("cache_creation", {}).get("ephemeral_1h_input_tokens", 0)
    return Usage(raw["input_tokens"] + read + written, raw["output_tokens"], read, written, one_hour)


def test_anthropic_shape_reads_and_two_write_ttls() -> None:
    # Sonnet-like: 3 in, 0.30 read, 3.75 5m-write, 6 1h-write, 15 out.
    # 100 plain x 3 + 5,000 read x 0.3 + 1,500 5m x 3.75 + 500 1h x 6 + 200 out x 15
    # = 300 + 1,500 + 5,625 + 3,000 + 3,000 = 13,425 per 1M
    raw = {
        "input_tokens": 100,
        "output_tokens": 200,
        "cache_read_input_tokens": 5_000,
        "cache_creation_input_tokens": 2_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1_500, "ephemeral_1h_input_tokens": 500},
    }
    usage = anthropic_usage(raw)
    assert usage.input_tokens == 7_100 and usage.uncached_input_tokens == 100
    price = Price(
        input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write_5m=D("3.75"), cache_write_1h=D("6")
    )
    cost = price.cost(usage)
    assert cost.total == D("0.013425")
    assert cost.uncached_input + cost.cache_read + cost.cache_write + cost.output == cost.total


# -- rows -------------------------------------------------------------------------------------------------


def test_lazy_cost_equals_eager_cost_and_price_is_not_compared() -> None:
    lazy = make_row()
    facts = {k: v for k, v in _fields(lazy).items() if k not in ("cost", "price")}
    eager = LedgerRow(**facts, cost=V32.cost(lazy.usage))
    assert lazy.cost == V32.cost(lazy.usage) and lazy.cost is not None
    assert lazy == eager and lazy.priced and eager.priced
    assert LedgerRow(**facts).cost is None  # no price, no cost: unpriced
    assert "price=" not in repr(lazy) and "cost=Cost(" in repr(lazy)


def _fields(row: LedgerRow) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def test_rows_read_back_equal_from_the_compact_ledger() -> None:
    ledger = Ledger()
    rows = [
        make_row(),
        make_row(
            call_id="user-call-1",
            attempt=2,
            outcome="error",
            error="RateLimited",
            status_code=429,
            usage=Usage(),
            served_model=None,
            finish_reason=None,
        ),
        make_row(
            tags=("a", "b"), extra={"team": "pay", "n": [1, 2]}, labels={"arm": "b"}, ttft_s=0.25, stream=True
        ),
        make_row(cost=Cost(D("1"), D("0.5"), D("0"), D("2"))),  # explicit cost, no price
        make_row(usage=Usage(10, 5, estimated=True), outcome="cut", request_id="req_1"),
        make_row(model="qwen3-8b", provider="vllm", cost=None),
    ]
    for row in rows:
        ledger.record(row)
    back = list(ledger)
    assert back == rows
    assert [r.id for r in back] == [r.id for r in rows]
    assert back[2].hints.extra == {"team": "pay", "n": [1, 2]} and back[2].labels == {"arm": "b"}
    assert back[1].ttft_s is None and back[2].ttft_s == 0.25 and back[1].status_code == 429
    assert back[5].cost is None and not back[5].priced
    assert len(ledger) == 6


def test_rows_filters_and_group_by() -> None:
    ledger = Ledger()
    day = 86_400
    ledger.record(make_row(task="code_review", tags=("ci",), timestamp=T0))
    ledger.record(make_row(task="chat", timestamp=T0 + day))
    ledger.record(make_row(task="chat", timestamp=T0 + 2 * day, user="ann"))
    assert len(ledger.rows(task="chat")) == 2
    assert len(ledger.rows(tag="ci")) == 1
    assert len(ledger.rows(since=T0 + day)) == 2 and len(ledger.rows(until=T0 + day)) == 1
    assert len(ledger.rows(day="2026-11-19")) == 1
    assert ledger.group_by("user")["ann"].calls == 1
    assert ledger.total().cost == 3 * V32.cost(Usage(8_500, 400, cache_read_tokens=8_000)).total


def test_listeners_and_extend() -> None:
    ledger = Ledger()
    seen: list[LedgerRow] = []
    ledger.subscribe(seen.append)
    ledger.extend([make_row(), make_row()])  # loading: no notification
    assert seen == []
    ledger.record(make_row())
    assert len(seen) == 1
    ledger.unsubscribe(seen.append)
    ledger.record(make_row())
    assert len(seen) == 1 and len(ledger) == 4


def test_ledger_is_thread_safe() -> None:
    ledger = Ledger()

    def work() -> None:
        for _ in range(500):
            ledger.record(make_row())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = list(ledger)
    assert len(rows) == 4_000 and len({r.id for r in rows}) == 4_000


def test_router_rows_reconcile_with_the_emulator_bill(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    for model in ("gpt-5.4", "deepseek-v3.2", "qwen3-8b"):
        router.chat.completions.create(model=model, messages=USER)
    totals = router.ledger.total()
    bill = emu.bill.total()
    assert (totals.usage.input_tokens, totals.usage.output_tokens) == (bill.input_tokens, bill.output_tokens)
    assert totals.unpriced == 1  # qwen3-8b has no price: unpriced, never $0


# -- export and persistence ---------------------------------------------------------------------------


def test_jsonl_round_trip_and_csv(tmp_path: Path) -> None:
    rows = [make_row(tags=("x",), extra={"k": "v"}, labels={"arm": "a"}), make_row(cost=None, model="m")]
    path = tmp_path / "rows.jsonl"
    assert export_jsonl(rows, path) == 2
    assert read_jsonl(path) == rows
    out = io.StringIO()
    export_csv(rows, out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert table[0]["cost"] == str(rows[0].cost.total)  # type: ignore[union-attr]
    assert table[1]["cost"] == ""  # unpriced: empty, not 0
    assert json.loads(table[0]["tags"]) == ["x"]


def test_sqlite_store_keeps_rows_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    rows = [make_row(tags=("a",), extra={"team": "t"}, labels={"arm": "x"}, ttft_s=0.1), make_row(cost=None)]
    with SQLiteStore(path) as store:
        ledger = Ledger(store=store)
        for row in rows:
            ledger.record(row)
    back = SQLiteStore(path).rows()
    assert back == rows
    assert back[0].cost is not None and back[0].cost.total == D(
        "0.000532"
    )  # (500 x 0.28 + 8,000 x 0.028 + 400 x 0.42) / 1M
    assert SQLiteStore(path).rows(since=T0 + 1) == []


_WRITER = """
import sys, uuid
from decimal import Decimal
from llmroute.hinting import RouteHints
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.money.store import SQLiteStore
from llmroute.usage import Price, Usage

price = Price(input=Decimal("0.28"), output=Decimal("0.42"), cache_read=Decimal("0.028"))
path, n, tag, close = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "close"
ledger = Ledger(store=SQLiteStore(path, batch_size=97))
for i in range(n):
    hints = RouteHints(task="t", tags=(tag,), user="u")
    usage = Usage(1000 + i, 10, cache_read_tokens=i)
    ledger.record(LedgerRow(uuid.uuid4().hex, 1, 1795000000.0 + i, "ds", "deepseek", "auto", "deepseek-v3.2",
                            "deepseek-chat", hints, usage, price=price, latency_s=0.1, outcome="ok"))
if close:
    for listener in ledger._listeners:
        listener.__self__.close()
"""


def _write_in_process(path: Path, n: int, tag: str, close: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), str(n), tag, "close" if close else "exit"]
    )


def test_persistence_across_a_restart(tmp_path: Path) -> None:
    """A process records rows and exits without closing its store (the at-exit flush keeps them);
    this process reads them back exactly."""
    path = tmp_path / "ledger.db"
    assert _write_in_process(path, 1_000, "first", close=False).wait() == 0
    ledger = SQLiteStore(path).load()
    assert len(ledger) == 1_000
    rows = ledger.rows()
    assert rows[7].usage == Usage(1_007, 10, cache_read_tokens=7) and rows[7].hints.tags == ("first",)
    expected = sum((V32.cost(Usage(1_000 + i, 10, cache_read_tokens=i)).total for i in range(1_000)), D(0))
    assert ledger.total().cost == expected


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteStore(path).close()  # create it first, as an application's startup would
    writers = [_write_in_process(path, 700, f"p{n}", close=True) for n in range(3)]
    assert [w.wait() for w in writers] == [0, 0, 0]
    rows = SQLiteStore(path).rows()
    assert len(rows) == 2_100
    assert {t for r in rows for t in r.hints.tags} == {"p0", "p1", "p2"}


def test_full_queue_blocks_by_default(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "l.db", durability="queued", queue_size=2, batch_size=1)
    ledger = Ledger(store=store)
    for _ in range(300):
        ledger.record(make_row())  # waits for room instead of dropping
    store.close()
    assert store.written == 300 and store.lost == 0 and store.count() == 300


def test_full_queue_with_drop_loses_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(tmp_path / "l.db", durability="queued", queue_size=2, on_full="drop")
    gate = threading.Event()
    real = store._write_batch

    def stuck(batch: list[LedgerRow]) -> int:
        gate.wait()
        return real(batch)

    monkeypatch.setattr(store, "_write_batch", stuck)
    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("llmroute.money.store").addHandler(handler)
    ledger = Ledger(store=store)
    try:
        for _ in range(10):
            ledger.record(make_row())
        # The stuck writer holds at most one batch (at most 2 rows, all that was queued) and the
        # queue 2 more: at least 6 of 10 rows are lost, each one logged.
        assert store.lost >= 6
        assert len(errors) == store.lost and "LOST" in errors[0]
    finally:
        gate.set()
        logging.getLogger("llmroute.money.store").removeHandler(handler)
    with pytest.raises(StoreError, match="rows were lost"):
        store.flush()
    assert store.written + store.lost == 10
    with pytest.raises(StoreError):
        store.close()
    with pytest.raises(StoreError, match="closed"):
        store.put(make_row())


def test_failed_writes_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmroute.money.store as store_module

    monkeypatch.setattr("time.sleep", lambda s: None)  # the writer retries without waiting
    store = SQLiteStore(tmp_path / "l.db")
    monkeypatch.setattr(store_module, "_INSERT", "INSERT INTO missing_table VALUES (?)")
    store.put(make_row())
    with pytest.raises(StoreError, match="1 rows were lost"):
        store.flush()
    assert isinstance(store.last_error, Exception)
    with pytest.raises(StoreError):
        store.close()


def test_reading_a_missing_database_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no ledger database"):
        SQLiteStore.open_existing(tmp_path / "nope.db")
    assert isinstance(StoreError("x"), llmroute.LLMRouteError)


def test_writer_script_is_valid_python() -> None:
    compile(textwrap.dedent(_WRITER), "<writer>", "exec")
