"""A code-review bot whose long instructions are cached by every provider, on the offline emulator.

    python examples/code_review_bot.py

The bot sends the same review guidelines (a few thousand tokens) and tools with every diff. Laid out
by `llmroute.prefix.PromptLayout` (tools sorted, guidelines first, the volatile request context in the
user turn, Anthropic breakpoints placed for it), the guidelines are read from the provider's cache on
every call after the first. The script reviews 20 diffs on each of OpenAI, DeepSeek and Anthropic
(emulated, with each provider's caching rules), then prints, from the ledger, the share of the
cacheable tokens that hit and what caching saved; and the linter's verdict on a naive prompt.
"""

from __future__ import annotations

import random
import warnings

import llmroute
from llmroute.policies import CacheAffinity
from llmroute.prefix import PromptLayout, cache_report, lint_prompt
from llmroute.testing import Emulator

GUIDELINES = "\n".join(
    [
        "You review pull requests for a payments service. Be precise, kind and brief.",
        "Comment only on real problems; use the tools to comment on lines or to approve.",
        *(
            f"- Rule {n}: {rule}"
            for n, rule in enumerate(
                [
                    f"flag {area} changes that lack a test, and name the missing test."
                    for area in ("error handling", "validation", "retries", "refunds", "currency", "logging")
                ]
                * 20,
                1,
            )
        ),
        "Answer with a one-line summary, then the comments, most severe first.",
    ]
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "post_comment",
            "description": "Comment on one line of the diff.",
            "parameters": {
                "type": "object",
                "properties": {"line": {"type": "integer"}, "body": {"type": "string"}},
                "required": ["line", "body"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "approve",
            "description": "Approve the pull request.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
]
REQUEST_ID = "7f3a9c1e-5b2d-4a6f-8e0c-1b2c3d4e5f6a"
MODELS = {"openai": "gpt-5.4-mini", "deepseek": "deepseek-v3.2", "anthropic": "claude-sonnet-4.6"}


def diff(rng: random.Random) -> str:
    lines = [
        f"+    total = amount_{rng.randint(0, 99)} * rate  # line {i}" for i in range(rng.randint(5, 40))
    ]
    return "--- a/payments/fees.py\n+++ b/payments/fees.py\n" + "\n".join(lines)


def main() -> None:
    warnings.simplefilter("ignore")  # the approximate-tokenizer notice when tiktoken's files are absent
    emu = Emulator(seed=7)
    http = emu.http_client()
    router = llmroute.Router(
        [
            llmroute.Deployment(p, model=m, base_url=emu.base_url(p), api_key="sk-test", http_client=http)
            for p, m in MODELS.items()
        ],
        policy=llmroute.Requested() | CacheAffinity(),  # labels every call with its prefix fingerprint
    )
    layout = PromptLayout(system=GUIDELINES, tools=TOOLS)
    rng = random.Random(1)
    for provider, model in MODELS.items():
        for n in range(20):
            kwargs = layout.render(
                [],
                f"Review this diff:\n{diff(rng)}",
                context=f"Pull request #{1000 + n}, opened 2026-11-23T10:{n:02d}:00Z by dev{n}",
                provider=provider,
                model=model,
            )
            router.chat.completions.create(model=model, max_tokens=60, **kwargs)

    report = cache_report(router.ledger, by=("provider",))
    print(f"Guidelines + tools: {layout.stable_tokens('gpt-5.4')} tokens, fingerprint {layout.fingerprint}\n")
    print(report.format())
    total = report.total
    print(
        f"\n{total.calls} reviews: {total.hit_share:.1%} of the cacheable tokens hit the cache; "
        f"caching saved ${float(total.saved or 0):.4f} of ${float(total.uncached_cost or 0):.4f} "
        f"({float((total.saved or 0) / (total.uncached_cost or 1)):.0%})."
    )

    naive = [
        {
            "role": "system",
            "content": f"Now: 2026-11-23T10:00:00Z. Request {REQUEST_ID}.\n{GUIDELINES}",
        },
        {"role": "user", "content": "Review this diff: ..."},
    ]
    print("\nThe linter on a naive prompt (timestamp and request id first):")
    for finding in lint_prompt(naive, TOOLS, model="gpt-5.4-mini"):
        print(f"  {finding}")
    router.close()


if __name__ == "__main__":
    main()
