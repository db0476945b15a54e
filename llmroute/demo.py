"""`llmroute demo`: a month of a 10-developer team's traffic, in seconds, against the emulator.

The task mix and token sizes follow the seed analyses (500 code reviews, 200 debugging sessions,
1,000 documentation generations and 2,000 chat queries a month, scaled down in proportion). Some
calls carry PII and must never reach DeepSeek (data processed in mainland China). The emulator
injects rate limits, an outage of OpenAI and some truncated answers. No API key, no network.
"""

from __future__ import annotations

import random
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal

from tenacity import wait_random_exponential

from .catalog import Deployment, ModelSpec
from .cooldown import Cooldowns
from .engine import RetryPolicy
from .errors import LLMRouteError
from .ledger import Ledger, LedgerRow
from .policy import Choice, Policy, RouteContext
from .router import Router
from .usage import Price, Usage

__all__ = ["SeedRouting", "run_demo"]

# (task, share of calls, input tokens, output tokens, share marked PII) — seed analyses' team month.
WORKLOAD = (
    ("code_review", 500, 8_500, 400, 0.10),
    ("complex_debugging", 200, 6_000, 800, 0.25),
    ("documentation", 1_000, 3_000, 1_200, 0.0),
    ("chat", 2_000, 500, 200, 0.15),
)
SENSITIVE = frozenset({"pii", "phi", "restricted"})
CHEAP_TASKS = frozenset({"code_review", "documentation", "test_writing", "refactoring"})
HARD_TASKS = frozenset({"architecture", "complex_debugging", "algorithm_design", "interactive_coding"})


class SeedRouting(Policy):
    """The seed analyses' routing function as a policy.

    Sensitive data never goes to a provider in mainland China (a hard gate, fallbacks included);
    simple work goes to DeepSeek, hard work and sensitive work to GPT-5.4, self-hosted as fallback.
    """

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        sensitive = ctx.hints.sensitivity in SENSITIVE
        task = ctx.hints.task or ""
        kept = []
        for target in ctx.candidates:
            if sensitive and target.jurisdiction == "CN":
                yield target.drop(f"{ctx.hints.sensitivity} data may not be processed in CN")
            else:
                kept.append(target)

        def preference(target: object) -> int:
            model = getattr(target, "model", None)
            model_id = getattr(model, "id", "")
            if sensitive or task in HARD_TASKS:
                order = ["gpt-5.4", "qwen3-coder-32b", "deepseek-v3.2"]
            else:
                order = ["deepseek-v3.2", "gpt-5.4", "qwen3-coder-32b"]
            return order.index(model_id) if model_id in order else len(order)

        why = "sensitive: US/EU or self-hosted" if sensitive else (task or "default")
        for target in sorted(kept, key=preference):
            yield target.keep(why)


_VOCAB = (
    "the function returns a value when the input list is empty and the cache key depends on user id "
    "so each request misses while the retry loop holds a lock during network calls which blocks other "
    "threads parse config before start validate schema handle timeout close file descriptors release "
    "pool connections log errors with context measure latency per endpoint"
)
_WORDS = tuple(_VOCAB.split())


def _text(rng: random.Random, tokens: int) -> str:
    # About one token per short word; close enough for a demo's sizes.
    return " ".join(rng.choice(_WORDS) for _ in range(tokens))


def _workload(calls: int, seed: int) -> list[tuple[str, str | None, list[dict[str, str]]]]:
    rng = random.Random(seed)
    total = sum(n for _, n, *_ in WORKLOAD)
    review_rules = "You are a senior code reviewer. Rules: " + _text(random.Random(1), 4_000)
    jobs = []
    for task, monthly, input_tokens, output_tokens, pii_share in WORKLOAD:
        for _ in range(max(1, round(calls * monthly / total))):
            sensitivity = "pii" if rng.random() < pii_share else None
            directive = f"[[emulator:tokens={output_tokens}]]"
            if task == "code_review":
                messages = [
                    {"role": "system", "content": review_rules},
                    {
                        "role": "user",
                        "content": f"{directive} Review this diff: {_text(rng, input_tokens - 4_000)}",
                    },
                ]
            else:
                messages = [{"role": "user", "content": f"{directive} {task}: {_text(rng, input_tokens)}"}]
            jobs.append((task, sensitivity, messages))
    rng.shuffle(jobs)
    return jobs


def _reprice(rows: Iterable[LedgerRow], price: Price) -> Decimal:
    total = Decimal(0)
    for row in rows:
        if row.outcome != "error":
            total += price.cost(row.usage).total
    return total


def _money(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"${value:,.2f}"


def run_demo(calls: int = 400, seed: int = 7, out: object = None) -> int:
    """Run the demo workload and print the report. Returns the process exit code."""
    from .testing import Emulator, Fault
    from .tokens import TokenizerFallbackWarning

    write = print if out is None else getattr(out, "write_line", print)
    warnings.filterwarnings("ignore", category=TokenizerFallbackWarning)
    emu = Emulator(seed=seed)
    key = "demo-key-not-secret"
    deployments = [
        Deployment(
            "openai",
            model="gpt-5.4",
            base_url=emu.base_url("openai"),
            api_key=key,
            http_client=emu.http_client(),
        ),
        Deployment(
            "deepseek",
            model="deepseek-v3.2",
            base_url=emu.base_url("deepseek"),
            api_key=key,
            http_client=emu.http_client(),
        ),
        Deployment(
            "onprem",
            model="qwen3-coder-32b",
            provider="vllm",
            base_url=emu.base_url("vllm"),
            http_client=emu.http_client(),
        ),
    ]
    onprem_model = ModelSpec(
        id="qwen3-coder-32b",
        provider="vllm",
        api_name="qwen3-coder-32b",
        context_window=131_072,
        capabilities=frozenset({"tools", "streaming"}),
        quality_tier=2,
        price=Price(input=Decimal("0.05"), output=Decimal("0.10"), source="demo: amortised GPU cost"),
    )
    ledger = Ledger()
    router = Router(
        deployments,
        models=[onprem_model],
        policy=SeedRouting(),
        ledger=ledger,
        retry=RetryPolicy(wait=wait_random_exponential(multiplier=0.01, max=0.05), switch_after=0.5),
        # A month in seconds: cooldowns scaled down with it.
        cooldowns=Cooldowns(base_s=0.05, max_s=0.5, rate_limit_s=0.02),
    )
    emu.fault_rate(0.06, [Fault.rate_limit(retry_after=0.02)], provider="deepseek", seed=seed)
    emu.fault_rate(
        0.03,
        [Fault.content_filter(after_tokens=40), Fault.silent_stop(after_tokens=30)],
        provider="deepseek",
        seed=seed + 1,
    )
    jobs = _workload(calls, seed)
    outage = range(len(jobs) // 3, len(jobs) // 3 + max(5, len(jobs) // 10))
    started = time.perf_counter()
    failed: Counter[str] = Counter()
    truncated = 0
    by_task: dict[str, Counter[str]] = defaultdict(Counter)
    pii_served: Counter[str] = Counter()
    for i, (task, sensitivity, messages) in enumerate(jobs):
        if i == outage.start:
            emu.inject(Fault.server_error(503), provider="openai", times=10_000)
        if i == outage.stop:
            emu.clear_faults()
            emu.fault_rate(0.06, [Fault.rate_limit(retry_after=0.02)], provider="deepseek", seed=seed)
        try:
            reply = router.chat.completions.create(
                model="auto", messages=messages, route={"task": task, "sensitivity": sensitivity}
            )
        except LLMRouteError as e:
            failed[type(e).__name__] += 1
            continue
        by_task[task][reply.route.deployment] += 1
        if sensitivity:
            pii_served[reply.route.deployment] += 1
        truncated += reply.route.truncated
        if sys.stderr.isatty():
            print(f"\r  {i + 1}/{len(jobs)} calls", end="", file=sys.stderr)
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty():
        print(file=sys.stderr)
    _report(write, router, ledger, jobs, by_task, pii_served, failed, truncated, elapsed)
    return 0 if not failed else 1


def _report(
    write: object,
    router: Router,
    ledger: Ledger,
    jobs: list[tuple[str, str | None, list[dict[str, str]]]],
    by_task: dict[str, Counter[str]],
    pii_served: Counter[str],
    failed: Counter[str],
    truncated: int,
    elapsed: float,
) -> None:
    out = write if callable(write) else print
    rows = list(ledger)
    totals = ledger.total()
    out(f"llmroute demo: {len(jobs)} calls ({totals.attempts} attempts) in {elapsed:.1f}s (emulated)\n")
    out("Where calls went (SeedRouting: cheap tasks to DeepSeek, hard and sensitive ones to GPT-5.4):")
    for task, counts in sorted(by_task.items()):
        spread = ", ".join(f"{dep} {n}" for dep, n in counts.most_common())
        out(f"  {task:<18} {spread}")
    pii_total = sum(n for _, s, _ in jobs if s for n in [1])
    out(
        f"\nHard gate: {pii_total} PII calls; served by {dict(pii_served) or '-'}; sent to DeepSeek (CN): "
        f"{sum(1 for r in rows if r.hints.sensitivity and r.provider == 'deepseek')}"
    )
    errors = Counter(r.error for r in rows if r.error)
    out(
        f"Faults survived: {dict(errors) or 'none'}; calls that failed anyway: {dict(failed) or 0}; "
        f"truncated answers flagged: {truncated}"
    )
    per_dep = ledger.group_by("deployment")
    shares = ", ".join(f"{dep} {t.cache_hit_share:.0%}" for dep, t in sorted(per_dep.items()))
    out(f"Cache hit share of input tokens: {shares}")
    catalog = router.catalog
    gpt = catalog.model("gpt-5.4")
    ds = catalog.model("deepseek-v3.2")
    actual = totals.cost
    out(
        f"\nThe bill: {_money(actual)}"
        + (f" (+{totals.unpriced} unpriced attempts)" if totals.unpriced else "")
    )
    if gpt is not None and gpt.price is not None:
        everything = _reprice(rows, gpt.price)
        ratio = f", {everything / actual:.1f}x more" if actual else ""
        out(f"Everything on gpt-5.4 would have cost {_money(everything)}{ratio}")
    if ds is not None and ds.price is not None:
        whatif = _money(_reprice(rows, ds.price))
        out(f"What if: everything on deepseek-v3.2 (ignoring the PII gate) would have cost {whatif}")
    usage: Usage = totals.usage
    out(
        f"Tokens: {usage.input_tokens:,} in ({usage.cache_read_tokens:,} cached), {usage.output_tokens:,} out"
    )
