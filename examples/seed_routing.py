"""The seed routing function, as configuration: Residency + TaskType + a default. Runs offline.

The function it replaces (from the seed analyses)::

    def route_llm_request(task_type, sensitivity, context_length):
        if sensitivity in ("restricted", "pii", "phi"):
            return "gpt-5.4"
        if task_type in ("code_review", "documentation", "test_writing", "refactoring"):
            return "deepseek-v3.2"
        if task_type in ("architecture", "complex_debugging", "algorithm_design"):
            return "gpt-5.4"
        if task_type == "interactive_coding":
            return "gpt-5.4"
        return "deepseek-v3.2"

Five requests go through a router on the in-process emulator (no keys, no network); for each the
script prints where it went, the estimated and the billed cost, and why (`decision.reasons()`).
"""

from __future__ import annotations

import warnings
from decimal import Decimal

import llmroute
from llmroute.policies import Capabilities, ContextWindow, Residency, TaskType, estimate
from llmroute.request import ChatRequest
from llmroute.testing import Emulator
from llmroute.tokens import TokenizerFallbackWarning
from llmroute.usage import Price

warnings.filterwarnings("ignore", category=TokenizerFallbackWarning)  # offline: approximate token counts

# ---------------------------------------------------------------- the configuration

NOT_CN = ["US", "EU", "self-hosted"]  # DeepSeek's API processes data in mainland China ("CN")
CHEAP = ["deepseek-v3.2", "gpt-5.4"]  # first choice, then the fallback
STRONG = ["gpt-5.4", "deepseek-v3.2"]

policy = (
    Residency(
        {"public": ["*"], "internal": ["*"], "pii": NOT_CN, "phi": NOT_CN, "restricted": NOT_CN},
        default="internal",
    )
    | Capabilities()
    | ContextWindow()
    | TaskType(
        {
            "code_review": CHEAP,
            "documentation": CHEAP,
            "test_writing": CHEAP,
            "refactoring": CHEAP,
            "architecture": STRONG,
            "complex_debugging": STRONG,
            "algorithm_design": STRONG,
            "interactive_coding": STRONG,
        },
        default=CHEAP,
    )
)

# ---------------------------------------------------------------- deployments on the emulator

emu = Emulator(seed=4)  # in production: leave out base_url and http_client, set the API keys
client = emu.http_client()
router = llmroute.Router(
    [
        llmroute.Deployment(
            "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key="sk-x", http_client=client
        ),
        llmroute.Deployment(
            "deepseek",
            model="deepseek-v3.2",
            base_url=emu.base_url("deepseek"),
            api_key="sk-x",
            http_client=client,
        ),
        llmroute.Deployment(
            "onprem",
            model="qwen3-coder-32b",
            provider="vllm",
            base_url=emu.base_url("vllm"),
            http_client=client,
        ),
    ],
    models=[
        llmroute.ModelSpec(
            "qwen3-coder-32b",
            "vllm",
            "qwen3-coder-32b",
            context_window=131_072,
            capabilities=frozenset({"tools", "streaming"}),
            price=Price(input=Decimal("0.05"), output=Decimal("0.10"), source="our GPU bill, amortised"),
        )
    ],
    policy=policy,
)

# ---------------------------------------------------------------- five requests

VOCAB = "the handler retries the request when the cache misses and the lock is held by another worker"


def text(words: int, answer: int) -> str:
    """A prompt of about `words` tokens; the emulator answers it with exactly `answer` tokens."""
    words_list = VOCAB.split()
    return f"[[emulator:tokens={answer}]] " + " ".join(words_list[i % len(words_list)] for i in range(words))


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/architecture-diagram.png"}}
REQUESTS = [  # (title, route hints, user content, max_tokens)
    ("code review", {"task": "code_review"}, text(3_000, 400), 400),
    ("architecture question", {"task": "architecture"}, text(1_500, 1_200), 1_200),
    (
        "code review of a diff with customer emails",
        {"task": "code_review", "sensitivity": "pii"},
        text(3_000, 400),
        400,
    ),
    ("untagged chat question", {}, text(200, 200), 200),
    (
        "code review of a screenshot",
        {"task": "code_review"},
        [{"type": "text", "text": text(300, 400)}, IMAGE],
        400,
    ),
]


def main() -> None:
    print("Seed routing as configuration: Residency + Capabilities + ContextWindow + TaskType\n")
    for title, route, content, max_tokens in REQUESTS:
        kwargs = {
            "model": "auto",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
        }
        reply = router.chat.completions.create(**kwargs, route=route)
        info = reply.route
        served = next(t for t in info.decision.targets if t.name == info.deployment)
        planned = estimate(ChatRequest.from_kwargs(kwargs, llmroute.RouteHints.coerce(route)), served)
        print(f"{title} {route or '(no hints)'}")
        print(
            f"  -> {info.deployment} ({info.model}); estimated ${planned.cost:.6f} "
            f"({planned.input_tokens:,} in + {planned.output_tokens:,} out), billed ${info.cost:.6f} "
            f"({info.usage.input_tokens:,} in + {info.usage.output_tokens:,} out)"
        )
        print(f"  fallbacks: {[t.name for t in info.decision.targets[1:]] or 'none'}")
        for step in info.decision.steps:
            for removed in step.dropped:
                print(f"  removed {removed.deployment}: {removed.policy}: {removed.reason}")
        print(f"  why {info.deployment}: {'; '.join(info.decision.reasons()[info.deployment])}\n")
    total = router.ledger.total()
    print(f"{total.calls} calls, {total.attempts} attempts, billed ${total.cost:.6f}")
    deepseek_pii = [r for r in router.ledger.rows() if r.provider == "deepseek" and r.hints.sensitivity]
    assert not deepseek_pii, "sensitive data reached DeepSeek"


if __name__ == "__main__":
    main()
