"""The demo's deployments, routing policy, and the month's incidents.

Four deployments: OpenAI GPT-5.4 (US), DeepSeek V3.2 (its API processes data in mainland China,
jurisdiction `CN`), Anthropic Claude Sonnet 4.6 (US), and a self-hosted Qwen coder on vLLM priced by
the team's own price row. The policy is built from `llmroute.policies` only:

    Residency (PII/PHI never to CN) | Capabilities | ContextWindow | Cheapest | TaskType(seed table)

The seed's routing function is the `TaskType` table (cheap work to DeepSeek, hard work to GPT-5.4,
Claude as the strong fallback); `Cheapest` before it is the default order of every target a list does
not name. Incidents follow the seed's warnings: DeepSeek rate-limits at peak hours and its content
filter cuts some answers (some silently), and OpenAI has an outage (a stretch of 503s).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..catalog import Deployment, ModelSpec
from ..policies import Capabilities, Cheapest, ContextWindow, Residency, TaskType
from ..policy import Policy
from ..routing.cooldown import CooldownState, MemoryStore
from ..usage import Price
from .workload import DAY, MONTH_START, month_label

if TYPE_CHECKING:
    from ..testing import Emulator

__all__ = [
    "CHEAP",
    "LIVE_KEYS",
    "MODELS",
    "ONPREM",
    "SEED_TABLE",
    "STRONG",
    "CountingStore",
    "Incidents",
    "build_policy",
    "emulated_deployments",
    "live_deployments",
    "missing_keys",
]

MODELS = {
    "openai": "gpt-5.4",
    "deepseek": "deepseek-v3.2",
    "anthropic": "claude-sonnet-4.6",
    "onprem": "qwen3-coder-32b",
}
"""Deployment name -> model."""

ONPREM = ModelSpec(
    id="qwen3-coder-32b",
    provider="vllm",
    api_name="qwen3-coder-32b",
    context_window=131_072,
    capabilities=frozenset({"tools", "streaming", "json"}),
    quality_tier=2,
    price=Price(
        input=Decimal("0.10"),
        output=Decimal("0.50"),
        source="the team's price row: one GPU at about $2.50/h, amortised",
    ),
)
"""The self-hosted model: not in the catalog, so the team adds its row with its own price."""

NOT_CN = ["US", "EU", "self-hosted"]
CHEAP = ["deepseek-v3.2", "gpt-5.4"]
"""The seed's cheap tasks: DeepSeek first, GPT-5.4 as the fallback."""
STRONG = ["gpt-5.4", "claude-sonnet-4.6", "deepseek-v3.2"]
"""The seed's hard tasks: GPT-5.4 first, then Claude, then DeepSeek."""
SEED_TABLE = {
    "code_review": CHEAP,
    "documentation": CHEAP,
    "test_writing": CHEAP,
    "refactoring": CHEAP,
    "architecture": STRONG,
    "complex_debugging": STRONG,
    "algorithm_design": STRONG,
    "interactive_coding": STRONG,
}
"""The seed analyses' `route_llm_request` as a `TaskType` table; other tasks take `CHEAP`."""


def build_policy() -> Policy:
    """Residency | Capabilities | ContextWindow | Cheapest | TaskType (| PrefixLabel when available)."""
    residency = Residency(
        {"public": ["*"], "internal": ["*"], "pii": NOT_CN, "phi": NOT_CN, "restricted": NOT_CN},
        default="internal",
    )
    policy: Policy = (
        residency | Capabilities() | ContextWindow() | Cheapest() | TaskType(SEED_TABLE, default=CHEAP)
    )
    from ..policies.affinity import PrefixLabel  # labels rows with the prompt prefix, for the cache report

    return policy | PrefixLabel()


# -- deployments ---------------------------------------------------------------------------------------


def emulated_deployments(emu: Emulator) -> list[Deployment]:
    """The four deployments on the built-in emulator (in-process: no sockets, no keys)."""
    http = emu.http_client()
    key = "demo-key-not-a-secret"
    return [
        Deployment(
            "openai", model=MODELS["openai"], base_url=emu.base_url("openai"), api_key=key, http_client=http
        ),
        Deployment(
            "deepseek",
            model=MODELS["deepseek"],
            base_url=emu.base_url("deepseek"),
            api_key=key,
            http_client=http,
        ),
        Deployment(
            "anthropic",
            model=MODELS["anthropic"],
            base_url=emu.base_url("anthropic"),
            api_key=key,
            http_client=http,
        ),
        Deployment(
            "onprem", model=MODELS["onprem"], provider="vllm", base_url=emu.base_url("vllm"), http_client=http
        ),
    ]


LIVE_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY")


def missing_keys(env: Mapping[str, str]) -> list[str]:
    """The API keys `--live` needs that are not set."""
    return [name for name in LIVE_KEYS if not env.get(name)]


def live_deployments(env: Mapping[str, str], http_client: Any) -> list[Deployment]:
    """The same deployments on the real providers (as `Router.from_env()` reads them: the keys and
    the `*_BASE_URL` overrides). The self-hosted one only when `VLLM_BASE_URL` is set
    (`VLLM_MODEL` names its model, `VLLM_API_KEY` its key if it has one)."""
    out = [
        Deployment(
            name,
            model=MODELS[name],
            api_key=env[f"{name.upper()}_API_KEY"],
            base_url=env.get(f"{name.upper()}_BASE_URL") or None,
            http_client=http_client,
        )
        for name in ("openai", "deepseek", "anthropic")
    ]
    if env.get("VLLM_BASE_URL"):
        out.append(
            Deployment(
                "onprem",
                model=MODELS["onprem"],
                provider="vllm",
                base_url=env["VLLM_BASE_URL"],
                api_key=env.get("VLLM_API_KEY") or None,
                http_client=http_client,
            )
        )
    return out


# -- incidents -------------------------------------------------------------------------------------------

RETRY_AFTER = 0.002
"""Seconds a 429 asks to wait. A month runs in seconds: a call every few milliseconds stands for one
every few minutes, so a provider's few seconds of Retry-After shrink to milliseconds with it."""


@dataclass(frozen=True, slots=True)
class Incidents:
    """What goes wrong during the month, by simulated time (seconds since the month's start).

    - DeepSeek answers 429 (with Retry-After) to `rate_limit` of requests, `peak_rate_limit` during
      peak hours (weekdays `peak_hours` UTC); its content filter cuts `filtered` of its answers, half
      of them with `finish_reason="content_filter"`, half silently (a `stop` mid-sentence).
    - OpenAI answers every request with a 503 during the outage.
    """

    outage: tuple[float, float] = (11 * DAY + 9 * 3600, 12 * DAY + 18 * 3600)  # Thu 12 Nov 09:00 - Fri 18:00
    peak_hours: tuple[int, int] = (14, 16)
    rate_limit: float = 0.02
    peak_rate_limit: float = 0.25
    filtered: float = 0.03

    def describe(self) -> list[str]:
        """One line per incident, for the report."""
        start, end = self.outage
        hours = f"weekdays {self.peak_hours[0]}-{self.peak_hours[1]}h UTC"
        return [
            f"OpenAI outage from {month_label(start)} to {month_label(end)} UTC: every request answered 503",
            f"DeepSeek rate limits (429 with Retry-After): {self.peak_rate_limit:.0%} of requests at peak "
            f"hours ({hours}), {self.rate_limit:.0%} otherwise",
            f"DeepSeek's content filter cuts {self.filtered:.0%} of its answers, half of them silently",
        ]

    def phase(self, at: float) -> tuple[bool, bool]:
        """(OpenAI is down, DeepSeek is at its peak) at simulated time `at`."""
        when = MONTH_START + dt.timedelta(seconds=at)
        peak = when.weekday() < 5 and self.peak_hours[0] <= when.hour < self.peak_hours[1]
        return self.outage[0] <= at < self.outage[1], peak

    def apply(self, emu: Emulator, phase: tuple[bool, bool], seed: int) -> None:
        """Install the faults of `phase` on `emu` (replacing the previous phase's)."""
        from ..testing import Fault

        down, peak = phase
        emu.clear_faults()
        emu.fault_rate(
            self.peak_rate_limit if peak else self.rate_limit,
            [Fault.rate_limit(retry_after=RETRY_AFTER)],
            provider="deepseek",
            seed=seed,
        )
        emu.fault_rate(
            self.filtered,
            [Fault.content_filter(after_tokens=40), Fault.silent_stop(after_tokens=30)],
            provider="deepseek",
            seed=seed + 1,
        )
        if down:
            emu.fault_rate(1.0, [Fault.server_error(503)], provider="openai", seed=seed + 3)


class CountingStore(MemoryStore):
    """Cooldown state in memory that also counts the cooldowns opened, per deployment and cause."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: Counter[tuple[str, str]] = Counter()

    def update(self, name: str, change: Callable[[CooldownState], None]) -> CooldownState:
        before = self.get(name)
        until, paused = (before.until, before.paused_until) if before is not None else (0.0, 0.0)
        state = super().update(name, change)
        if state.until > until:
            self.opened[(name, "circuit opened")] += 1
        if state.paused_until > paused:
            self.opened[(name, "rate limited")] += 1
        return state
