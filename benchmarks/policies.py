"""Policy ranking cost: 50 candidates through the default chain, beside one emulator round trip.

    python benchmarks/policies.py [--iterations 20000] [--calls 300]

Builds 50 targets from the shipped catalog's rows (every model, cycled, on deployments with mixed
jurisdictions: cloud, CN, self-hosted), a realistic code-review request (a ~1,500-token static system
prompt and a ~600-token diff) with `sensitivity="pii"`, and times `policy.decide(ctx)` with
`time.perf_counter_ns`. Each iteration gets a new `ChatRequest` object (same messages), so the
per-request memo of token counts starts cold every time, as in real traffic; the tokenizer's own memo
of the static prompt text stays warm, as it does in a running process. Between timed calls the chain
observes a ledger row (as the router does after each attempt), so `Cheapest` refreshes its history
incrementally inside the timed region.

Printed: median and p99 per decision for
  - the 5-policy chain of the issue, `Residency | Capabilities | ContextWindow | TaskType | Cheapest`
    (built with `|`, i.e. a `Pipeline`),
  - `default_chain(...)` (Residency | Capabilities | ContextWindow | MaxCost | Cheapest | TaskType),
  - the same 5 policies in a plain core `Chain` (each policy through `rank()` and `Choice` objects),
  - the default chain when every call carries a fresh user message (tokenised on every call),
and the median wall time of one in-process emulator round trip through `llmroute.Router`.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence

import llmroute
from llmroute.catalog import Deployment, default_catalog
from llmroute.hinting import RouteHints
from llmroute.money.ledger import Ledger, LedgerRow
from llmroute.policies import (
    Capabilities,
    Cheapest,
    ContextWindow,
    Residency,
    TaskType,
    default_chain,
)
from llmroute.policy import Chain, Policy, RouteContext, Target
from llmroute.request import ChatRequest
from llmroute.routing.health import Health
from llmroute.tokens import TokenizerFallbackWarning, encoder_for
from llmroute.usage import Usage

RESIDENCY = {
    "public": ["*"],
    "internal": ["*"],
    "pii": ["US", "EU", "self-hosted"],
    "phi": ["self-hosted"],
}
TASKS = {
    "code_review": ["deepseek-v3.2", "gpt-5.4"],
    "architecture": ["gpt-5.4"],
    "interactive_coding": [["gpt-5.4-mini", "deepseek-v4-flash"]],
}
_VOCAB = (
    "the function returns a value when the input list is empty and the cache key depends on user id so each "
    "request misses while the retry loop holds a lock during network calls which blocks other threads"
)
WORDS = _VOCAB.split()


def targets(n: int = 50) -> tuple[Target, ...]:
    """`n` targets over the catalog's models; every 5th on a self-hosted endpoint, every 7th in the EU."""
    catalog = default_catalog()
    models = list(catalog.models())
    out = []
    for i in range(n):
        model = models[i % len(models)]
        provider = catalog.provider(model.provider)
        assert provider is not None
        jurisdiction = "self-hosted" if i % 5 == 4 else "EU" if i % 7 == 6 else None
        deployment = Deployment(f"d{i}-{model.id}", model=model.id, jurisdiction=jurisdiction)
        out.append(Target(deployment, model, provider, model.api_name, deployment.name))
    return tuple(out)


def text(words: int, offset: int = 0) -> str:
    return " ".join(WORDS[(offset + i * 7) % len(WORDS)] for i in range(words))


SYSTEM = "You are a senior code reviewer. Rules: " + text(1_500)
DIFF = "Review this diff:\n" + text(600, offset=3)


def request(user: str = DIFF) -> ChatRequest:
    return ChatRequest.from_kwargs(
        {
            "model": "auto",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "max_completion_tokens": 800,
        },
        RouteHints(task="code_review", sensitivity="pii", user="u-1"),
    )


def rows(candidates: Sequence[Target]) -> list[LedgerRow]:
    """Ledger rows for the chain to observe between timed calls (rotating over the candidates)."""
    hints = RouteHints(task="code_review")
    return [
        LedgerRow(
            call_id=f"c{i}",
            attempt=1,
            timestamp=0.0,
            deployment=t.deployment.name,
            provider=t.provider.name,
            requested_model="auto",
            model=t.model.id,
            served_model=None,
            hints=hints,
            usage=Usage(2_400, 300 + i % 200, cache_read_tokens=1_500),
            cost=None,
            latency_s=1.0,
            outcome="ok",
        )
        for i, t in enumerate(candidates)
    ]


def time_decide(
    policy: Policy,
    contexts: Sequence[RouteContext],
    observe: Sequence[LedgerRow],
    iterations: int,
    start: int = 0,
) -> list[int]:
    """`iterations` timed decisions over `contexts` (from `start`), observing one row before each."""
    samples = []
    clock = time.perf_counter_ns
    picked = itertools.islice(itertools.cycle(contexts), start, start + iterations)
    for ctx, row in zip(picked, itertools.cycle(observe)):
        policy.observe(row)
        begin = clock()
        policy.decide(ctx)
        samples.append(clock() - begin)
    return samples


def summary(samples: Sequence[int]) -> tuple[float, float]:
    """Median and p99, in microseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def round_trip(calls: int) -> list[int]:
    """Wall time of `router.chat.completions.create` against the in-process emulator."""
    from tenacity import wait_none

    from llmroute.testing import Emulator

    emu = Emulator(seed=0)
    client = emu.http_client()
    key = "sk-bench"
    deployments = [
        Deployment("gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=key, http_client=client),
        Deployment(
            "ds", model="deepseek-v3.2", base_url=emu.base_url("deepseek"), api_key=key, http_client=client
        ),
    ]
    router = llmroute.Router(deployments, retry=llmroute.RetryPolicy(wait=wait_none()))
    user = {"role": "user", "content": "[[emulator:tokens=20]] " + DIFF}
    messages = [{"role": "system", "content": SYSTEM}, user]
    samples = []
    with router:
        for i in range(calls + 20):
            begin = time.perf_counter_ns()
            router.chat.completions.create(model="gpt-5.4", messages=messages)
            if i >= 20:
                samples.append(time.perf_counter_ns() - begin)
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=4_000, help="timed decisions per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best round reported)")
    parser.add_argument("--calls", type=int, default=300, help="emulator round trips")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=TokenizerFallbackWarning)

    candidates = targets(50)
    health, ledger = Health(), Ledger()

    def contexts(make: Callable[[int], ChatRequest], n: int) -> list[RouteContext]:
        out = []
        for i in range(n):
            req = make(i)
            out.append(RouteContext(req, req.hints, candidates, (), health, ledger))
        return out

    total = args.iterations * args.rounds
    static = contexts(lambda i: request(), 1_000)
    fresh = contexts(lambda i: request(f"{DIFF}\n# change {i}: {text(40, offset=i)}"), total + 200)
    observe = rows(candidates)
    variants: list[tuple[str, Policy, Sequence[RouteContext], int]] = [
        (
            "Residency | Capabilities | ContextWindow | TaskType | Cheapest",
            Residency(RESIDENCY) | Capabilities() | ContextWindow() | TaskType(TASKS) | Cheapest(),
            static,
            args.iterations,
        ),
        (
            "default_chain (+ MaxCost; Cheapest | TaskType)",
            default_chain(RESIDENCY, TASKS),
            static,
            args.iterations,
        ),
        (
            "the same 5 policies in a plain core Chain",
            Chain(Residency(RESIDENCY), Capabilities(), ContextWindow(), TaskType(TASKS), Cheapest()),
            static,
            max(1, args.iterations // 10),
        ),
        (
            "default_chain, a new user message every call",
            default_chain(RESIDENCY, TASKS),
            fresh,
            args.iterations,
        ),
    ]
    enc = encoder_for("gpt-5.4", "o200k_base")
    tokens = sum(enc.count(m["content"]) for m in static[0].request.messages)
    survivors = len(variants[1][1].decide(static[0]).targets)
    print(
        f"50 candidates ({survivors} pass the gates for sensitivity='pii'), prompt ~{tokens:,} tokens "
        f"({'tiktoken' if enc.exact else 'approximate encoder'});\n"
        f"{args.rounds} interleaved rounds of {args.iterations:,} decisions (best round median, p99 of all)\n"
    )
    for _, policy, ctxs, _ in variants:  # warm up: memos, tokenizer memo of the static prompt
        for ctx in ctxs[:200]:
            policy.decide(ctx)
    medians: dict[str, list[float]] = {name: [] for name, *_ in variants}
    everything: dict[str, list[int]] = {name: [] for name, *_ in variants}
    for r in range(args.rounds):
        for name, policy, ctxs, n in variants:
            samples = time_decide(policy, ctxs, observe, n, start=200 + r * n)
            medians[name].append(summary(samples)[0])
            everything[name].extend(samples)
    width = max(len(name) for name, *_ in variants)
    print(f"{'policy.decide(ctx)':<{width}}  {'median':>9}  {'p99':>9}")
    for name, *_ in variants:
        print(f"{name:<{width}}  {min(medians[name]):>7.1f}µs  {summary(everything[name])[1]:>7.1f}µs")

    trip = summary(round_trip(args.calls))
    print(f"\n{'one emulator round trip through Router':<{width}}  {trip[0]:>7.1f}µs  {trip[1]:>7.1f}µs")
    best = min(medians[variants[1][0]])
    print(f"\ndefault chain: {best:.1f}µs per decision = {best / trip[0]:.1%} of a round trip (target: 20µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
