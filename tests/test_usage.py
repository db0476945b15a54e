"""Cost arithmetic: exact Decimals, breakdowns that sum to the total, no silent zeros."""

from decimal import Decimal

import pytest

from llmroute.catalog import default_catalog
from llmroute.usage import Cost, Price, Usage

D = Decimal


def test_seed_code_review_costs_match_the_seed_tables() -> None:
    # Seed analysis: a code review of 8.5K input and 400 output tokens; 1,000 reviews cost
    # $2.55 on DeepSeek V3.2 without cache hits and $27.25 on GPT-5.4.
    catalog = default_catalog()
    v32 = catalog.model("deepseek-v3.2")
    gpt = catalog.model("gpt-5.4")
    assert v32 is not None and v32.price is not None and gpt is not None and gpt.price is not None
    review = Usage(input_tokens=8_500, output_tokens=400)
    assert v32.price.cost(review).total * 1000 == D("2.548")
    assert gpt.price.cost(review).total * 1000 == D("27.250")


def test_cache_reads_are_billed_at_the_cache_rate_and_not_twice() -> None:
    price = Price(input=D("0.28"), output=D("0.42"), cache_read=D("0.028"))
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cache_read_tokens=900_000)
    cost = price.cost(usage)
    assert cost.uncached_input == D("0.028")  # 100k uncached at 0.28/M
    assert cost.cache_read == D("0.0252")  # 900k at 0.028/M
    assert cost.total == cost.uncached_input + cost.cache_read + cost.cache_write + cost.output


def test_anthropic_style_writes_priced_per_ttl() -> None:
    price = Price(
        input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write_5m=D("3.75"), cache_write_1h=D("6")
    )
    usage = Usage(input_tokens=3_000, output_tokens=100, cache_write_tokens=2_000, cache_write_1h_tokens=500)
    cost = price.cost(usage)
    assert cost.uncached_input == D(1_000) * D(3) / D(1_000_000)
    assert cost.cache_write == (D(1_500) * D("3.75") + D(500) * D(6)) / D(1_000_000)
    assert cost.output == D(100) * D(15) / D(1_000_000)


def test_missing_cache_price_bills_cached_tokens_at_the_input_rate() -> None:
    price = Price(input=D("2.50"), output=D("15"))
    usage = Usage(input_tokens=2_048, output_tokens=0, cache_read_tokens=1_024)
    assert price.cost(usage).total == D(2_048) * D("2.50") / D(1_000_000)


def test_reasoning_tokens_are_output_unless_priced_apart() -> None:
    usage = Usage(input_tokens=0, output_tokens=1_000, reasoning_tokens=600)
    assert Price(input=D(1), output=D(10)).cost(usage).output == D("0.01")
    split = Price(input=D(1), output=D(10), reasoning=D(20)).cost(usage)
    assert split.output == (D(400) * 10 + D(600) * 20) / D(1_000_000)


def test_long_context_tier() -> None:
    price = Price(input=D(1), output=D(2), long_context_threshold=1_000, long_context_input=D(3))
    assert price.cost(Usage(input_tokens=1_000)).total == D(1_000) / D(1_000_000)
    assert price.cost(Usage(input_tokens=1_001)).total == D(3_003) / D(1_000_000)


@pytest.mark.parametrize("bad", [D(-1), D("NaN"), D("Infinity")])
def test_prices_must_be_finite_and_non_negative(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="input"):
        Price(input=bad, output=D(1))


def test_usage_and_cost_add() -> None:
    a = Usage(10, 5, cache_read_tokens=4, reasoning_tokens=1)
    b = Usage(1, 1, estimated=True)
    total = a + b
    assert (total.input_tokens, total.output_tokens, total.cache_read_tokens, total.estimated) == (
        11,
        6,
        4,
        True,
    )
    assert (Cost(D(1)) + Cost(output=D(2))).total == D(3)
    with pytest.raises(ValueError, match="EUR"):
        Cost(currency="USD") + Cost(currency="EUR")
