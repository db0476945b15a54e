"""Reports, dated prices, what-if repricing and workload estimates — the seed analyses' tables
reproduced exactly from the catalog's prices."""

from __future__ import annotations

import datetime as dt
import json
import runpy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from test_ledger import GPT54, T0, V32, make_row

from llmroute.catalog import default_catalog
from llmroute.errors import ConfigurationError
from llmroute.money.pricing import PriceChange, PriceTable, load_price_changes, money
from llmroute.money.reports import breakdown, build_report, percentile, served_model_drift, summarize
from llmroute.money.whatif import (
    TaskLoad,
    Workload,
    estimate_workload,
    load_workload,
    narrate,
    reprice,
    reroute,
    same_tokenizer,
)
from llmroute.usage import Price, Usage

D = Decimal
ROOT = Path(__file__).resolve().parents[1]


# -- reports ------------------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None


def test_stats_count_calls_failures_fallbacks_and_truncation() -> None:
    # call A: 429 on gpt, then answered by ds (a fallback); call B: answered but cut by length;
    # call C: every attempt failed; call D: a stream cut mid-answer.
    rows = [
        make_row(
            call_id="a",
            attempt=1,
            deployment="gpt",
            model="gpt-5.4",
            provider="openai",
            outcome="error",
            usage=Usage(),
            price=GPT54,
            latency_s=0.1,
        ),
        make_row(call_id="a", attempt=2, latency_s=1.0),
        make_row(call_id="b", outcome="truncated", finish_reason="length", latency_s=2.0),
        make_row(call_id="c", outcome="error", usage=Usage(), latency_s=0.2),
        make_row(call_id="d", outcome="cut", latency_s=3.0, usage=Usage(100, 10, estimated=True)),
    ]
    total = summarize(rows)
    assert (total.attempts, total.calls, total.retries, total.errors) == (5, 4, 1, 2)
    assert (total.failed_calls, total.fallbacks, total.truncated) == (1, 1, 2)
    assert total.failure_rate == 2 / 5 and total.call_failure_rate == 1 / 4 and total.fallback_rate == 1 / 4
    assert (total.latency_p50, total.latency_p95) == (2.0, 3.0)  # answered attempts: 1.0, 2.0, 3.0
    assert total.usage.estimated
    per_deployment = {s.key: s for s in breakdown(rows, "deployment")}
    assert per_deployment["gpt"].fallbacks == 1 and per_deployment["gpt"].cost == 0
    assert per_deployment["ds"].calls == 4


def test_unpriced_rows_show_as_unpriced_never_zero() -> None:
    rows = [make_row(model="qwen3-8b", cost=None), make_row(model="qwen3-8b", cost=None), make_row()]
    by_model = {s.key: s for s in breakdown(rows, "model")}
    qwen = by_model["qwen3-8b"]
    assert qwen.cost_or_none is None and qwen.unpriced == 2 and qwen.cost_per_call is None
    assert money(qwen.cost_or_none) == "unpriced"
    assert qwen.as_dict()["cost"] is None
    total = summarize(rows)
    assert total.cost_or_none == V32.cost(rows[2].usage).total and total.unpriced == 2
    assert money(total.cost_or_none, total.unpriced) == "$0.000532 + 2 unpriced"
    failed = summarize([make_row(cost=None, usage=Usage(), outcome="error")])
    assert failed.unpriced == 0 and failed.cost_or_none == 0  # billed nothing: a real zero


def test_breakdowns_by_tag_day_user_and_several_fields() -> None:
    rows = [
        make_row(tags=("ci", "nightly"), user="ann", timestamp=T0),
        make_row(tags=("ci",), timestamp=T0 + 86_400),
        make_row(timestamp=T0 + 86_400, model="gpt-5.4", price=GPT54),
    ]
    by_tag = {s.key: s.attempts for s in breakdown(rows, "tag")}
    assert by_tag == {"ci": 2, "nightly": 1, "(none)": 1}
    assert {s.key for s in breakdown(rows, "day")} == {"2026-11-18", "2026-11-19"}
    assert {s.key: s.attempts for s in breakdown(rows, "user")} == {"ann": 1, "(none)": 2}
    keys = {s.key for s in breakdown(rows, ("day", "model"))}
    assert ("2026-11-19", "gpt-5.4") in keys and len(keys) == 3
    report = build_report(rows, ("model", "day+model"))
    assert report.groups["model"][0].key == "gpt-5.4"  # most expensive first
    assert json.loads(json.dumps(report.as_dict()))["total"]["attempts"] == 3


def test_cache_hit_share_and_token_kinds() -> None:
    rows = [
        make_row(usage=Usage(1_000, 10, cache_read_tokens=750, reasoning_tokens=4)),
        make_row(usage=Usage(1_000, 10)),
    ]
    stats = summarize(rows)
    assert stats.cache_hit_share == 0.375 and stats.usage.reasoning_tokens == 4


def test_served_model_drift() -> None:
    rows = [
        make_row(served_model="deepseek-chat-v3.2-0901", timestamp=T0),
        make_row(served_model="deepseek-chat-v3.2-0901", timestamp=T0 + 10),
        make_row(served_model="deepseek-chat-v3.2-1115", timestamp=T0 + 20),
        make_row(served_model=None, timestamp=T0 + 25, outcome="error"),
        make_row(deployment="gpt", served_model="gpt-5.4-2026-03-05", timestamp=T0),
    ]
    drift = {d.deployment: d for d in served_model_drift(rows)}
    assert drift["ds"].drifted and not drift["gpt"].drifted
    assert [v.served_model for v in drift["ds"].versions] == [
        "deepseek-chat-v3.2-0901",
        "deepseek-chat-v3.2-1115",
    ]
    assert drift["ds"].changes == ((T0 + 20, "deepseek-chat-v3.2-0901", "deepseek-chat-v3.2-1115"),)
    assert [d.deployment for d in served_model_drift(rows, only_drifted=True)] == ["ds"]


# -- prices over time ------------------------------------------------------------------------------------


NEW_PRO = Price(input=D("1.32"), output=D("3.96"), cache_read=D("0.044"), source="DeepSeek peak")


def test_price_table_uses_the_price_in_force_at_each_row() -> None:
    table = PriceTable(default_catalog(), [PriceChange("deepseek-v4-pro", "2026-08-16", NEW_PRO)])
    before = dt.datetime(2026, 8, 15, 23, 59, tzinfo=dt.UTC)
    after = dt.date(2026, 8, 16)
    old = table.price_at("deepseek-v4-pro", before)
    assert old is not None and old.input == D("0.44")
    assert table.price_at("deepseek-v4-pro", after) == NEW_PRO
    assert [p.origin for p in table.history("deepseek-v4-pro")] == ["catalog", "change"]
    usage = Usage(1_000_000, 1_000_000)
    rows = [
        make_row(model="deepseek-v4-pro", usage=usage, timestamp=before.timestamp(), cost=None),
        make_row(
            model="deepseek-v4-pro", usage=usage, timestamp=dt.datetime(2026, 9, 1, tzinfo=dt.UTC).timestamp()
        ),
    ]
    replayed = table.reprice(rows)
    assert [r.cost.total for r in replayed] == [D("1.31"), D("5.28")]  # type: ignore[union-attr]
    assert table.price_at("deepseek-chat", after) == default_catalog().model("deepseek-v3.2").price  # type: ignore[union-attr]
    assert table.price_at("no-such-model") is None


def test_a_model_can_become_unpriced_and_changes_cannot_collide() -> None:
    table = PriceTable(default_catalog()).with_prices([PriceChange("gpt-5.4", "2027-01-01", None)])
    assert table.price_at("gpt-5.4", dt.date(2027, 1, 2)) is None
    with pytest.raises(ConfigurationError):
        table.with_prices([PriceChange("gpt-5.4", "2027-01-01T00:00:00+00:00", GPT54)])
    with pytest.raises(ConfigurationError):
        PriceChange("gpt-5.4", "not a date", GPT54).since  # noqa: B018


def test_price_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nmodel = "deepseek-v4-pro"\neffective = 2026-08-16\ninput = "1.32"\noutput = "3.96"\n'
        'source = "DeepSeek"\n\n[[price]]\nmodel = "gpt-5.4"\neffective = "2027-01-01"\nunpriced = true\n'
    )
    changes = load_price_changes(path)
    assert changes[0].price is not None and changes[0].price.input == D("1.32") and changes[1].price is None
    path.write_text('[[price]]\nmodel = "x"\neffective = "2026-01-01"\ninput = "1"\noutput = "1"\ntypo = 1\n')
    with pytest.raises(ConfigurationError, match="typo"):
        load_price_changes(path)


def test_money_never_shows_zero_for_a_small_cost() -> None:
    assert money(D("0.406")) == "$0.41" and money(D("2.548")) == "$2.55" and money(D("2150")) == "$2,150.00"
    assert money(D("0.000406")) == "$0.000406" and money(D("0.0012345")) == "$0.00123"
    assert money(None) == "unpriced" and money(D("-1.005")) == "-$1.01" and money(D(0)) == "$0.00"


# -- what-if ------------------------------------------------------------------------------------------


def _review_rows(n: int, model: str = "gpt-5.4") -> list:  # type: ignore[type-arg]
    price = default_catalog().model(model).price  # type: ignore[union-attr]
    return [
        make_row(
            model=model,
            provider="openai",
            deployment="gpt",
            task="code_review",
            usage=Usage(8_500, 400),
            price=price,
        )
        for _ in range(n)
    ]


def test_reprice_on_another_model_keeps_token_kinds() -> None:
    """1,000 seed code reviews recorded on GPT-5.4 ($27.25) repriced on DeepSeek V3.2 without cache
    hits: 8,500 x 0.28 + 400 x 0.42 = 2,548 per 1M tokens a review -> $2.548."""
    rows = _review_rows(1_000)
    result = reprice(rows, "deepseek-v3.2")
    assert (result.actual, result.hypothetical, result.savings) == (D("27.25"), D("2.548"), D("24.702"))
    assert result.moved == 1_000 and result.estimate
    assert result.notes == ("token counts are gpt-5.4's; deepseek-v3.2 tokenizes differently",)


def test_cache_reads_use_the_other_models_cache_rate_only_if_it_has_one() -> None:
    # 8,000 of 8,500 input tokens were cache hits on DeepSeek V3.2.
    row = make_row(usage=Usage(8_500, 400, cache_read_tokens=8_000))
    # GPT-5.5 lists 0.50 cached: 500 x 10 + 8,000 x 0.5 + 400 x 30 = 5,000 + 4,000 + 12,000 = 21,000 / 1M.
    on_55 = reprice([row], "gpt-5.5")
    assert on_55.hypothetical == D("0.021")
    assert any("openai's cache" in n for n in on_55.notes)
    # GPT-5.4 lists no cache price: all 8,500 at 2.50 + 400 x 15 = 21,250 + 6,000 = 27,250 / 1M.
    on_54 = reprice([row], "gpt-5.4")
    assert on_54.hypothetical == D("0.02725")
    assert "gpt-5.4 lists no cache price: cached tokens billed at its input rate" in on_54.notes


def test_same_tokenizer_rule() -> None:
    catalog = default_catalog()
    gpt54, gpt55, ds = (catalog.model(n) for n in ("gpt-5.4", "gpt-5.5", "deepseek-v3.2"))
    assert gpt54 is not None and gpt55 is not None and ds is not None
    assert same_tokenizer(gpt54, gpt55) and not same_tokenizer(gpt54, ds) and not same_tokenizer(None, ds)
    same = reprice(_review_rows(2), "gpt-5.5")
    assert not same.estimate and same.notes == ()


def test_reroute_by_task_and_narrative() -> None:
    reviews = _review_rows(1_000)
    chats = [
        make_row(model="gpt-5.4", provider="openai", task="chat", usage=Usage(1_000_000, 0), price=GPT54)
    ]
    rows = reviews + chats  # 27.25 + 2.50
    routed = reroute(rows, {"code_review": "deepseek-v3.2"})
    assert routed.moved == 1_000 and routed.actual == D("29.75") and routed.hypothetical == D("5.048")
    assert routed.by_task["chat"] == (D("2.50"), D("2.50"))
    everything = reroute(rows, {"code_review": "deepseek-v3.2"}, default="deepseek-v3.2")
    assert everything.hypothetical == D("2.548") + D("0.28")
    text = narrate(rows, "deepseek-v3.2", tasks=["code_review"], period="This month")
    assert text == (
        "This month cost $29.75; on deepseek-v3.2 it would have cost about $2.83; "
        "routing code review calls there would have saved $24.70."
    )
    with pytest.raises(ConfigurationError, match="unknown model"):
        reprice(rows, "gpt-9")


def test_whatif_replays_dated_prices() -> None:
    table = PriceTable(
        default_catalog(),
        [PriceChange("deepseek-v3.2", "2026-01-01", V32), PriceChange("deepseek-v3.2", "2026-12-01", None)],
    )
    rows = _review_rows(1)
    assert reprice(rows, "deepseek-v3.2", prices=table).hypothetical == D("0.002548")
    late = [
        make_row(model="gpt-5.4", price=GPT54, timestamp=dt.datetime(2026, 12, 2, tzinfo=dt.UTC).timestamp())
    ]
    moved = reprice(late, "deepseek-v3.2", prices=table)
    assert moved.hypothetical_unpriced == 1 and moved.savings is None


# -- workload estimates: the seed analyses -------------------------------------------------------------


def test_seed_001_code_review_table() -> None:
    """Seed 001, "Code review and PR analysis costs", per 1,000 reviews of 8,500 input and 400 output
    tokens, with the catalog's DeepSeek V3.2 prices 0.28 (miss) / 0.028 (hit) / 0.42 (out) per 1M:

    - cache hit: the seed's input column ($0.24) is every input token at the hit rate, so the cache
      share is 1.0: 8.5M x 0.028 = $0.238, 0.4M x 0.42 = $0.168, total $0.406 -> "$0.41" in cents.
      Exactly $0.410 cannot come out of these prices: it would need 2.142 x s = 2.138, s = 1069/1071
      of the input cached, 8,484.13 tokens a review — not a whole number. The prices give $0.406.
    - cache miss: 8.5M x 0.28 = $2.38 + $0.168 = $2.548 -> "$2.55".
    - GPT-5.4 (2.50 / 15.00, no cache price): 8.5M x 2.5 = $21.25 + 0.4M x 15 = $6.00 -> $27.25 exactly.

    The seed's next row ("Monthly cost (5K reviews)": $2.04 / $12.74 / $136.25) adds its rounded
    output cost: 5 x (0.238 + 0.168) = $2.03 from the prices; $12.74 and $136.25 agree.
    """
    hit = Workload((TaskLoad("code_review", 1_000, 8_500, 400, cache_share=D(1)),))
    miss = Workload((TaskLoad("code_review", 1_000, 8_500, 400),))
    with_hits = estimate_workload(hit, ["deepseek-v3.2", "gpt-5.4"]).models
    without = estimate_workload(miss, ["deepseek-v3.2", "gpt-5.4"]).models
    assert with_hits[0].total == D("0.406") and money(with_hits[0].total) == "$0.41"
    assert without[0].total == D("2.548") and money(without[0].total) == "$2.55"
    assert with_hits[1].total == without[1].total == D("27.25")  # no cache price: cache share changes nothing
    monthly = estimate_workload(
        Workload((TaskLoad("code_review", 5_000, 8_500, 400, cache_share=D(1)),)), ["deepseek-v3.2"]
    ).models[0]
    assert monthly.total == D("2.030")


def test_seed_000_support_pipeline() -> None:
    """Seed 000: 80M input and 45M output tokens a month. GPT-5.5 at $10 / $30: $800 + $1,350 =
    $2,150; DeepSeek V4-Pro at $0.44 / $0.87: $35.20 + $39.15 = $74.35."""
    month = Workload((TaskLoad("support", 1, 80_000_000, 45_000_000),))
    gpt, pro = estimate_workload(month, ["gpt-5.5", "deepseek-v4-pro"]).models
    assert (gpt.total, pro.total) == (D("2150"), D("74.35"))


def test_fractional_cache_share_is_exact() -> None:
    # 30% of 8,500 = 2,550 tokens: not needed to be whole; cost is linear in the cached share.
    load = TaskLoad("r", 1, 8_500, 400, cache_share=D("0.3"))
    assert load.cost(V32) == D("0.002548") + D("0.3") * (D("0.000406") - D("0.002548"))


def test_routing_tables_and_workload_files(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        'name = "team"\nmodels = ["gpt-5.4"]\n'
        '[[task]]\nname = "code_review"\nrequests = 1000\ninput_tokens = 8500\noutput_tokens = 400\n'
        "cache_share = 1\n"
        '[[task]]\nname = "debug"\nrequests = 100\ninput_tokens = 3000\noutput_tokens = 1500\n'
        '[routing.cheap]\ncode_review = "deepseek-v3.2"\n"*" = "gpt-5.4"\n'
    )
    workload = load_workload(path)
    result = estimate_workload(workload)
    debug_on_54 = D("100") * (3_000 * D("2.5") + 1_500 * D(15)) / D(1_000_000)  # $3.00
    assert result.models[0].total == D("27.25") + debug_on_54
    cheap = result.routings[0]
    assert (
        cheap.per_task["code_review"] == ("deepseek-v3.2", D("0.406"))
        and cheap.total == D("0.406") + debug_on_54
    )
    as_json = tmp_path / "w.json"
    as_json.write_text(
        json.dumps({"task": [{"name": "x", "requests": 1, "input_tokens": 1, "output_tokens": 1}]})
    )
    assert load_workload(as_json).tasks[0].task == "x"
    with pytest.raises(ConfigurationError, match="names no model"):
        estimate_workload(workload, routings={"bad": {"code_review": "gpt-5.4"}})
    bad: dict[str, Any]
    for bad in (
        {"task": []},
        {"task": [{"name": "x"}]},
        {"tasks": []},
        {"task": [{"name": "x", "requests": 1, "input_tokens": 1, "output_tokens": 1, "cache_share": 2}]},
    ):
        with pytest.raises(ConfigurationError):
            Workload.from_data(bad)
    assert json.loads(json.dumps(result.as_dict()))["routings"][0]["name"] == "cheap"


def test_shipped_example_reproduces_the_seed_tables(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "estimate_workload.py"), run_name="__main__")
    out = capsys.readouterr().out
    for figure in ("$0.41", "$2.55", "$27.25", "$2,150.00", "$74.35"):
        assert figure in out, figure
    workload = load_workload(ROOT / "examples" / "seed_workload.toml")
    assert {t.task for t in workload.tasks} >= {"code_review"}
