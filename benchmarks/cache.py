"""Prompt caching on a realistic workload: a naive prompt layout against `llmroute.prefix.PromptLayout`.

    python benchmarks/cache.py [--calls 200] [--quick]

The workload is a code-review bot: a ~4,000-token system prompt of review guidelines, five tools, and
a different diff (200-1,200 tokens) on every call, through `llmroute.Router` on the in-process
emulator, which implements each provider's caching rules (PROVIDERS.md section 2): OpenAI (1,024-token
minimum, 128-token increments), DeepSeek (64-token units) and Anthropic (explicit `cache_control`
breakpoints, 1,024-token minimum for Sonnet).

Two layouts of the same content:

- naive: the current time and a request id first in the system prompt, the tools in a random order
  each call, and (for Anthropic) a `cache_control` breakpoint at the end of the system prompt, as a
  user who read the caching docs would put it;
- helper: `PromptLayout(system=guidelines, tools=tools).render([], diff, context=time_and_id,
  provider=...)`: tools sorted, the stable part first, the volatile context in the user turn,
  breakpoints placed by the helper.

"Theoretically cacheable" tokens of a call are the tokens of its static content (tools + guidelines,
as the provider counts them) on every call but the provider's first (a cold cache cannot hit). The
same count is the denominator for both layouts; a call's hits count up to its cacheable tokens (what
it read beyond them, the common start of the volatile turn, does not). Printed per provider and
layout: cacheable tokens, cached tokens, the hit share (target: >= 95% with the helper), the bill,
and what caching saved against no caching (`llmroute.prefix.cache_report`).

Then two more measurements:

- cache affinity: 4 vLLM replicas (separate emulators, separate caches), 40 prefixes (tenants) of
  ~1,500 tokens, 8 calls each, interleaved; `WeightedRandom` balancing against `CacheAffinity` with
  its balancer;
- the cost of `CacheAffinity.rank` per decision (its fingerprint memo warm, as in a running process).
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import llmroute
from llmroute.policies import CacheAffinity, PrefixLabel
from llmroute.policy import RouteContext
from llmroute.prefix import PromptLayout, cache_report, lint_sequence
from llmroute.routing.balance import Balancer, WeightedRandom
from llmroute.testing import Emulator
from llmroute.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, encoder_for

PROVIDERS = (
    ("openai", "gpt-5.4-mini"),
    ("deepseek", "deepseek-v3.2"),
    ("anthropic", "claude-sonnet-4.6"),
)
TARGET = 0.95

# ---------------------------------------------------------------- the workload

_AREAS = (
    "error handling",
    "input validation",
    "concurrency",
    "resource cleanup",
    "logging",
    "naming",
    "tests",
    "database access",
    "API compatibility",
    "security",
    "performance",
    "documentation",
)
_RULES = (
    "Flag any {area} change that is not covered by a test in the same pull request; name the missing test.",
    "When the {area} code swallows an exception, ask for it to be logged with its context or re-raised.",
    "Prefer small, named helper functions over long inline blocks when {area} logic exceeds twenty lines.",
    "Point out {area} code that duplicates an existing utility in the repository; name the utility to use.",
    "Ask for a comment when the {area} behaviour depends on an ordering or timing assumption not obvious.",
    "Reject {area} changes that widen a public interface without a note in the changelog.",
    "Check that every {area} path that allocates a resource also releases it, including the error paths.",
    "Mention, once and briefly, style issues in {area} code that the formatter would not fix on its own.",
    "If a {area} change touches money amounts, insist on decimal arithmetic and explicit rounding modes.",
    "Ask for the {area} behaviour under retries to be idempotent, and for the test that proves it.",
    "Do not comment on {area} code the diff does not change, unless the change makes it wrong.",
    "When a {area} change adds a configuration option, ask for its default and its documentation.",
    "Call out {area} code that reads global state or the clock directly instead of taking it as an argument.",
)


def guidelines() -> str:
    """About 4,000 tokens of review guidelines (deterministic)."""
    lines = [
        "You are a senior engineer reviewing pull requests for a payments company.",
        "Review the diff the user sends. Be precise, kind and brief. Comment only on real problems.",
        "Use the tools to post comments on specific lines, to request changes, to suggest patches,",
        "to run the test suite, or to approve. Never approve a diff that breaks a rule below.",
        "",
    ]
    for n, area in enumerate(_AREAS, 1):
        lines.append(f"## {n}. {area.capitalize()}")
        lines.extend(f"- {rule.format(area=area)}" for rule in _RULES)
        lines.append(f"- Typical {area} defects in this codebase: see the incident reviews tagged '{area}'.")
        lines.append("")
    lines.append("Answer with a short summary first, then the line comments, most severe first.")
    return "\n".join(lines)


def tools() -> list[dict[str, Any]]:
    def fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }

    line = {"type": "integer", "description": "Line number in the new file."}
    path = {"type": "string", "description": "Path of the file, relative to the repository root."}
    return [
        fn(
            "post_comment",
            "Post a review comment on one line.",
            {
                "path": path,
                "line": line,
                "body": {"type": "string", "description": "The comment, in Markdown."},
            },
            ["path", "line", "body"],
        ),
        fn(
            "request_changes",
            "Request changes on the pull request with a summary.",
            {"summary": {"type": "string", "description": "Why the change cannot be merged yet."}},
            ["summary"],
        ),
        fn(
            "suggest_patch",
            "Suggest a replacement for a range of lines.",
            {
                "path": path,
                "start": line,
                "end": line,
                "replacement": {"type": "string", "description": "The new lines."},
            },
            ["path", "start", "end", "replacement"],
        ),
        fn(
            "run_tests",
            "Run the test suite on the pull request's head commit.",
            {"filter": {"type": "string", "description": "A pytest -k expression; empty for all."}},
            [],
        ),
        fn(
            "approve",
            "Approve the pull request.",
            {"note": {"type": "string", "description": "Optional."}},
            [],
        ),
    ]


def diff(rng: random.Random) -> str:
    """A unified diff of 200 to 1,200 tokens."""
    names = ("payments/ledger.py", "payments/refunds.py", "api/handlers.py", "core/retry.py", "db/models.py")
    words = (
        "amount",
        "currency",
        "account",
        "retry",
        "timeout",
        "refund",
        "balance",
        "limit",
        "user",
        "batch",
    )
    out = [f"--- a/{(f := rng.choice(names))}", f"+++ b/{f}"]
    for _ in range(rng.randint(2, 9)):
        start = rng.randint(1, 400)
        out.append(f"@@ -{start},7 +{start},8 @@ def {rng.choice(words)}_{rng.choice(words)}(self):")
        for _ in range(rng.randint(4, 10)):
            a, b = rng.choice(words), rng.choice(words)
            sign = rng.choice(" +-")
            out.append(f"{sign}    {a}_{b} = self.{b}({a}, {rng.randint(0, 999)})")
    return "\n".join(out)


@dataclass
class Call:
    diff: str
    moment: str
    request_id: str


def workload(calls: int, seed: int) -> list[Call]:
    rng = random.Random(seed)
    start = 1_795_000_000
    return [
        Call(
            diff(rng),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 7 * i)),
            str(uuid.UUID(int=rng.getrandbits(128))),
        )
        for i in range(calls)
    ]


# ---------------------------------------------------------------- the two layouts


def naive_kwargs(
    call: Call, provider: str, rng: random.Random, text: str, tool_list: list[Any]
) -> dict[str, Any]:
    shuffled = list(tool_list)
    rng.shuffle(shuffled)
    system = f"Current time: {call.moment}\nRequest id: {call.request_id}\n\n{text}"
    content: Any = system
    if provider == "anthropic":
        content = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    return {
        "messages": [
            {"role": "system", "content": content},
            {"role": "user", "content": f"Review this diff:\n{call.diff}"},
        ],
        "tools": shuffled,
    }


def helper_kwargs(call: Call, provider: str, model: str, layout: PromptLayout) -> dict[str, Any]:
    return layout.render(
        [],
        f"Review this diff:\n{call.diff}",
        context=f"Current time: {call.moment}\nRequest id: {call.request_id}",
        provider=provider,
        model=model,
    )


# ---------------------------------------------------------------- running


@dataclass
class Run:
    provider: str
    layout: str
    calls: int
    input_tokens: int
    cached: list[int]
    dynamic: list[int]
    prompt: list[int]
    cost: Decimal
    saved: Decimal | None
    requests: list[dict[str, Any]]


def run(
    provider: str, model: str, name: str, calls: list[Call], make: Callable[[Call], dict[str, Any]]
) -> Run:
    emu = Emulator(seed=3)
    deployment = llmroute.Deployment(
        provider,
        model=model,
        base_url=emu.base_url(provider),
        api_key="sk-bench",
        http_client=emu.http_client(),
    )
    router = llmroute.Router([deployment], policy=llmroute.Requested() | PrefixLabel())
    enc = encoder_for(model)
    cached, dynamic, prompt, requests = [], [], [], []
    with router:
        for call in calls:
            kwargs = make(call)
            reply = router.chat.completions.create(model=model, max_tokens=40, **kwargs)
            usage = reply.route.usage
            cached.append(usage.cache_read_tokens)
            prompt.append(usage.input_tokens)
            turn = kwargs["messages"][-1]["content"]
            dynamic.append(MESSAGE_OVERHEAD + enc.count("user") + enc.count(turn) + REPLY_PRIMING)
            requests.append({"model": model, **kwargs})
    report = cache_report(router.ledger)
    return Run(
        provider,
        name,
        len(calls),
        sum(prompt),
        cached,
        dynamic,
        prompt,
        router.ledger.total().cost,
        report.total.saved,
        requests,
    )


def share(run: Run, cacheable: list[int]) -> float:
    """Cacheable tokens that hit, call by call: what a call read beyond its static content (the
    common start of the volatile turn) does not count."""
    total = sum(cacheable)
    hit = sum(min(c, k) for c, k in zip(run.cached[1:], cacheable, strict=True))
    return hit / total if total else 0.0


def money(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"${float(value):.4f}"


def table(rows: list[list[str]], header: list[str], text_columns: int = 2) -> None:
    """Print an aligned table; the first `text_columns` columns are left-aligned, the rest right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        cells = [
            str(c).ljust(w) if i < text_columns else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        print("  ".join(cells))


def layouts(calls: int, seed: int) -> list[tuple[str, float]]:
    work = workload(calls, seed)
    text, tool_list = guidelines(), tools()
    layout = PromptLayout(system=text, tools=tool_list)
    print(
        f"workload: {calls} code reviews per provider; stable part ~{layout.stable_tokens('gpt-5.4')} tokens,"
    )
    sizes = [encoder_for("gpt-5.4").count(c.diff) for c in work]
    print(
        f"diffs {min(sizes)}-{max(sizes)} tokens (median {int(statistics.median(sizes))}); output 40 tokens\n"
    )
    rows: list[list[str]] = []
    shares: list[tuple[str, float]] = []
    naive_requests: list[dict[str, Any]] = []
    for provider, model in PROVIDERS:
        rng = random.Random(seed)
        naive = run(
            provider,
            model,
            "naive",
            work,
            functools.partial(naive_kwargs, provider=provider, rng=rng, text=text, tool_list=tool_list),
        )
        helper = run(
            provider,
            model,
            "helper",
            work,
            functools.partial(helper_kwargs, provider=provider, model=model, layout=layout),
        )
        # The static content of call i as the provider counts it: the helper's prompt minus its new turn.
        cacheable = [p - d for p, d in zip(helper.prompt[1:], helper.dynamic[1:], strict=True)]
        for r in (naive, helper):
            s = share(r, cacheable)
            rows.append(
                [
                    provider,
                    r.layout,
                    f"{r.calls}",
                    f"{sum(cacheable):,}",
                    f"{sum(r.cached[1:]):,}",
                    f"{s:.1%}",
                    money(r.cost),
                    money(r.saved),
                ]
            )
            if r.layout == "helper":
                shares.append((provider, s))
        if provider == "openai":
            naive_requests = naive.requests[:12]
    table(
        rows, ["provider", "layout", "calls", "cacheable", "cached", "hit share", "bill", "saved vs no cache"]
    )
    print("\nThe linter on the naive layout's first 12 requests (llmroute lint-prompt):")
    report = lint_sequence(naive_requests)
    for finding in report.findings[:6]:
        print(f"  {finding}")
    return shares


# ---------------------------------------------------------------- affinity


def affinity(prefixes: int, calls_each: int, seed: int) -> None:
    print(
        f"\nCache affinity: 4 vLLM replicas, {prefixes} prefixes (~1,500 tokens), {calls_each} calls each, "
        "interleaved"
    )
    rng = random.Random(seed)
    order = [p for p in range(prefixes) for _ in range(calls_each)]
    rng.shuffle(order)
    tenants = [
        PromptLayout(
            system=f"Tenant {p}: "
            + " ".join(f"policy clause {p}-{k} applies to every reply." for k in range(180))
        )
        for p in range(prefixes)
    ]
    rows = []
    for name in ("WeightedRandom", "CacheAffinity"):
        emus = [Emulator(seed=k, vllm_prompt_details=True) for k in range(4)]
        deployments = [
            llmroute.Deployment(
                f"vllm-{k}",
                model="qwen3-8b",
                provider="vllm",
                base_url=e.base_url("vllm"),
                http_client=e.http_client(),
            )
            for k, e in enumerate(emus)
        ]
        balancer: Balancer = WeightedRandom(seed=seed)
        policy: llmroute.Policy = llmroute.Requested() | PrefixLabel()
        if name == "CacheAffinity":
            policy = llmroute.Requested() | CacheAffinity()
        router = llmroute.Router(deployments, policy=policy, balancer=balancer)
        with router:
            for i, p in enumerate(order):
                router.chat.completions.create(
                    model="qwen3-8b", max_tokens=5, **tenants[p].render([], f"Question {i}?")
                )
        report = cache_report(router.ledger, by=("deployment",))
        total = report.total
        cold = sum(1 for r in router.ledger if r.usage.cache_read_tokens == 0)
        share = total.cached_tokens / total.input_tokens
        rows.append([name, f"{total.calls}", f"{cold}", f"{total.cached_tokens:,}", f"{share:.1%}"])
    table(rows, ["balancing", "calls", "cold misses", "cached", "cached / input"], text_columns=1)


def rank_cost(iterations: int) -> None:
    from llmroute.hinting import RouteHints
    from llmroute.money.ledger import LedgerRow
    from llmroute.request import ChatRequest
    from llmroute.usage import Usage

    layout = PromptLayout(system=guidelines(), tools=tools())
    emu = Emulator()
    deployments = [
        llmroute.Deployment(f"d{k}", model="qwen3-8b", provider="vllm", base_url=emu.base_url("vllm"))
        for k in range(10)
    ]
    router = llmroute.Router(deployments)
    targets = router._core.candidates(())
    labels = {"prefix": layout.fingerprint, "prefix_tokens": "3900"}
    print(
        f"\nCacheAffinity decision over {len(targets)} candidates (10 deployments of one model), "
        f"{iterations} decisions, a new request each:"
    )
    for state in ("cold", "warm"):
        policy = CacheAffinity()
        if state == "warm":  # d3 served the prefix twice: warm, with a measured hit share
            for t in (time.time() - 1, time.time()):
                policy.observe(
                    LedgerRow(
                        "c",
                        1,
                        t,
                        "d3",
                        "vllm",
                        "qwen3-8b",
                        "qwen3-8b",
                        None,
                        RouteHints(),
                        Usage(4000, 5, 3900),
                        None,
                        labels=labels,
                    )
                )
        kwargs = layout.render([], "Review: +x = 2")
        samples = []
        for _ in range(iterations):
            request = ChatRequest.from_kwargs({"model": "qwen3-8b", **kwargs}, RouteHints())
            ctx = RouteContext(request, request.hints, targets)
            t0 = time.perf_counter_ns()
            decision = policy.decide(ctx)
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
        first = decision.targets[0].name
        print(
            f"  {state} prefix: median {samples[len(samples) // 2] / 1000:.1f} us, "
            f"p99 {samples[int(len(samples) * 0.99)] / 1000:.1f} us; first choice {first}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per provider and layout (default 200)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="40 calls, fewer affinity prefixes")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the approximate tokenizer's notice, when tiktoken's files are absent
    calls = 40 if args.quick else args.calls
    enc = encoder_for("gpt-5.4")
    print(f"tokenizer: {enc.name}{'' if enc.exact else ' (approximate: tiktoken files not cached)'}")
    shares = layouts(calls, args.seed)
    affinity(10 if args.quick else 40, 4 if args.quick else 8, args.seed)
    rank_cost(2_000 if args.quick else 20_000)
    print("\nsummary (helper layout, share of theoretically cacheable tokens that hit; target >= 95%):")
    ok = True
    for provider, s in shares:
        status = "ok" if s >= TARGET else "MISSED"
        ok = ok and s >= TARGET
        print(f"  {provider:<10} {s:.1%}  {status}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
