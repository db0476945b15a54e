"""Estimate the seed analyses' workloads on several models, without sending a single request.

    python examples/estimate_workload.py

Prints the seed tables as the catalog's prices give them: a code review of 8,500 input and 400 output
tokens, 1,000 reviews: $0.41 on DeepSeek V3.2 with cache hits, $2.55 without, $27.25 on GPT-5.4; and
80M input + 45M output tokens a month: $2,150.00 on GPT-5.5, $74.35 on DeepSeek V4-Pro. Then a whole
team's month (examples/seed_workload.toml) per model and under the seed's routing table. The same
file works from the command line: `llmroute estimate examples/seed_workload.toml`.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from llmroute.money.pricing import money
from llmroute.money.whatif import TaskLoad, Workload, estimate_workload, load_workload

REVIEWS_CACHED = Workload(
    (TaskLoad("code_review", 1_000, 8_500, 400, cache_share=Decimal(1)),), "1,000 reviews"
)
REVIEWS = Workload((TaskLoad("code_review", 1_000, 8_500, 400),), "1,000 reviews, no cache hits")
SUPPORT = Workload((TaskLoad("support", 1, 80_000_000, 45_000_000),), "80M in + 45M out a month")


def main() -> None:
    cached = estimate_workload(REVIEWS_CACHED, ["deepseek-v3.2"]).models[0]
    uncached, gpt = estimate_workload(REVIEWS, ["deepseek-v3.2", "gpt-5.4"]).models
    print("Code review, 8,500 in / 400 out, per 1,000 reviews")
    for label, estimate in (
        ("DeepSeek V3.2 (cache hit)", cached),
        ("DeepSeek V3.2 (cache miss)", uncached),
        ("GPT-5.4", gpt),
    ):
        exact = "unpriced" if estimate.total is None else f"${estimate.total.normalize()}"
        print(f"  {label:<26}  {money(estimate.total):>10}   exact: {exact}")
    print()
    print("Support pipeline, 80M input and 45M output tokens a month")
    for model in estimate_workload(SUPPORT, ["gpt-5.5", "deepseek-v4-pro"]).models:
        print(f"  {model.model:<26}  {money(model.total):>10}")
    print()
    team = load_workload(Path(__file__).with_name("seed_workload.toml"))
    result = estimate_workload(team)
    print(team.name)
    for model in result.models:
        print(f"  everything on {model.model:<14}  {money(model.total):>10}")
    for routing in result.routings:
        where = ", ".join(f"{task} -> {model}" for task, (model, _) in routing.per_task.items())
        print(f"  routing {routing.name!r:<20}  {money(routing.total):>10}   ({where})")


if __name__ == "__main__":
    main()
