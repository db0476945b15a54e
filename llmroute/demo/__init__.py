"""`llmroute demo`: a 10-developer team's month of LLM traffic in seconds, against the built-in emulator.

```
llmroute demo [--scale S | --calls N] [--seed N] [--html report.html] [--ledger month.db] [--json]
              [--no-progress]
llmroute demo --live            # the same workload, tiny, on the real providers (needs the API keys)
```

The workload is the seed analyses' (500 code reviews, 200 debugging sessions, 1,000 documentation
files and 2,000 chat queries a month, with their token sizes), scaled by `--scale` with the same
proportions; some calls carry personal data. Four deployments (OpenAI GPT-5.4, DeepSeek V3.2 in
China, Anthropic Claude Sonnet 4.6, a self-hosted Qwen coder with its own price row) are routed by a
policy built from `llmroute.policies`, while the emulator injects rate limits, an OpenAI outage
and truncated answers. The report says where calls went and why, what the residency gate
kept from DeepSeek (checked in the emulator's request log), the faults survived, the truncation
verdicts, the cache hit share and the bill against the most expensive model, with a what-if line.

Exit codes: 0 every call answered and no personal data reached China; 1 otherwise; 2 `--live`
without the API keys (or a bad option).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import stop_after_attempt, wait_random_exponential

from ..catalog import Catalog
from ..router import Router
from ..routing.cooldown import Cooldowns
from ..routing.engine import RetryPolicy
from ..truncation import TruncationPolicy
from .fleet import (
    LIVE_KEYS,
    ONPREM,
    CountingStore,
    Incidents,
    build_policy,
    emulated_deployments,
    live_deployments,
    missing_keys,
)
from .runner import Outcome, run_jobs
from .summary import Summary, WireRequest, summarize_run
from .workload import FULL_MONTH, TASKS, Job, build_jobs

__all__ = ["DEFAULT_SCALE", "LIVE_SCALE", "TASKS", "Summary", "run_demo"]

DEFAULT_SCALE = 0.5
"""The share of the month the demo runs by default: 1,850 calls, about 15 s on two cores."""
LIVE_SCALE = 0.002
"""`--live`'s default: 8 calls (at least one per task), a few cents."""

TRUNCATION = TruncationPolicy(length="retry_larger", content_filter="fallback", suspected="fallback")
"""What the demo does with cut answers: a length cut is asked again with room; a filtered or silently
cut answer is asked again on the next deployment."""


def _scale(scale: float | None, calls: int | None, live: bool) -> float:
    if calls is not None:
        return calls / FULL_MONTH
    if scale is not None:
        return scale
    return LIVE_SCALE if live else DEFAULT_SCALE


@dataclass(slots=True)
class _Run:
    outcomes: list[Outcome]
    elapsed: float
    catalog: Catalog
    policy: str
    wire: list[WireRequest]
    """Every request as it left for a provider."""
    cooldowns: Mapping[tuple[str, str], int]
    incidents: list[str] = field(default_factory=list)


def _emulated(jobs: list[Job], seed: int, progress: bool) -> _Run:
    from ..testing import Emulator

    emu = Emulator(seed=seed)
    store = CountingStore()
    router = Router(
        emulated_deployments(emu),
        models=[ONPREM],
        policy=build_policy(),
        # A month in seconds: waits and cooldowns shrink with it.
        retry=RetryPolicy(
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.01, max=0.05),
            switch_after=0.5,
        ),
        cooldowns=Cooldowns(store, min_samples=5, base_s=0.02, max_s=0.2, rate_limit_s=0.002),
        truncation=TRUNCATION,
    )
    incidents = Incidents()
    phase: list[tuple[bool, bool] | None] = [None]
    changes = itertools.count(1)

    def before(job: Job) -> None:  # switch the emulator's faults when the month enters another phase
        now = incidents.phase(job.at)
        if now != phase[0]:
            phase[0] = now
            incidents.apply(emu, now, seed * 7919 + next(changes))

    try:
        outcomes, elapsed = run_jobs(router, jobs, before=before, progress=progress)
    finally:
        router.close()
    wire = [WireRequest(r.provider, json.dumps(r.body), r.status, r.fault) for r in emu.requests]
    return _Run(
        outcomes, elapsed, router.catalog, router.policy.name, wire, store.opened, incidents.describe()
    )


def _live(jobs: list[Job], env: Mapping[str, str], progress: bool) -> _Run:
    import httpx2

    from ..catalog import default_catalog

    wire: list[WireRequest] = []
    bases: list[tuple[str, str]] = []  # (base URL, provider), longest first

    def record(request: Any) -> None:  # every request as it leaves, for the gate check
        url = str(request.url)
        provider = next((p for base, p in bases if url.startswith(base)), request.url.host)
        body = request.content.decode("utf-8", "replace") if request.content else ""
        wire.append(WireRequest(provider, body))

    http = httpx2.Client(event_hooks={"request": [record]}, timeout=120.0)
    deployments = live_deployments(env, http)
    catalog = default_catalog()
    for d in deployments:
        spec = catalog.provider(d.provider or d.name)
        base = d.base_url or (spec.base_url if spec is not None else None)
        if base:
            bases.append((base.rstrip("/"), d.provider or d.name))
    bases.sort(key=lambda b: -len(b[0]))
    store = CountingStore()
    router = Router(
        deployments, models=[ONPREM], policy=build_policy(), cooldowns=Cooldowns(store), truncation=TRUNCATION
    )
    try:
        outcomes, elapsed = run_jobs(router, jobs, progress=progress)
    finally:
        router.close()
        http.close()
    return _Run(outcomes, elapsed, router.catalog, router.policy.name, wire, store.opened)


def run_demo(
    *,
    scale: float | None = None,
    calls: int | None = None,
    seed: int = 7,
    html: str | None = None,
    as_json: bool = False,
    live: bool = False,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
    ledger: str | None = None,
) -> int:
    """Run the demo and print its report (or, with `as_json`, its summary as JSON); with `html`,
    also write the report page there; with `ledger`, save the month's ledger rows (timestamped over
    the month, as the report shows them) to that new SQLite file, for `llmroute report` / `whatif`.
    Returns the process exit code (see the module docstring)."""
    env = os.environ if env is None else env
    if live:
        missing = missing_keys(env)
        if missing:
            print(
                f"llmroute demo --live: missing {', '.join(missing)}. --live sends the demo's workload "
                f"to the real providers and needs all of {', '.join(LIVE_KEYS)} (VLLM_BASE_URL adds a "
                "self-hosted model). Without --live, the demo runs on the built-in emulator: no keys.",
                file=sys.stderr,
            )
            return 2
    share = _scale(scale, calls, live)
    if share <= 0:
        print("llmroute demo: --scale and --calls must be positive", file=sys.stderr)
        return 2
    from ..tokens import APPROX, TokenizerFallbackWarning, forced_encoding

    if ledger is not None and os.path.exists(ledger):
        print(f"llmroute demo: {ledger} already exists; give a new file for --ledger", file=sys.stderr)
        return 1
    try:  # fail before the run, not after it
        page = open(html, "w", encoding="utf-8") if html else None  # noqa: SIM115 (written at the end)
    except OSError as e:
        print(f"llmroute demo: cannot write {html}: {e}", file=sys.stderr)
        return 1
    # On the emulator every count (the workload's sizes, the router's estimates, the emulator's usage)
    # uses the fixed approximate estimator: the figures do not depend on which tiktoken files exist.
    fixed = contextlib.nullcontext() if live else forced_encoding(APPROX)
    try:
        with warnings.catch_warnings(), fixed:
            warnings.simplefilter("ignore", TokenizerFallbackWarning)  # --live: approximate estimates
            jobs, helper, stable = build_jobs(share, seed, live=live)
            if live:
                print(
                    f"llmroute demo --live: {len(jobs)} calls to the real providers (this costs money).",
                    file=sys.stderr,
                )
                done = _live(jobs, env, progress)
            else:
                done = _emulated(jobs, seed, progress)
            summary, _, whatifs = summarize_run(
                done.outcomes,
                done.wire,
                done.catalog,
                done.cooldowns,
                mode="live" if live else "emulated",
                scale=share,
                elapsed=done.elapsed,
                prompt_layout=helper,
                policy=done.policy,
                stable_tokens=stable,
                incidents=done.incidents,
            )
            month = [r for o in done.outcomes for r in (o.rows if live else o.month_rows())]
            if page is not None:
                from .page import render_page

                page.write(render_page(summary, month, whatifs))
    finally:
        if page is not None:
            page.close()
    if ledger is not None:
        from ..errors import LLMRouteError

        try:
            _save_ledger(ledger, month)
        except (OSError, LLMRouteError) as e:
            print(f"llmroute demo: cannot write the ledger {ledger}: {e}", file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        from .render import print_report

        print_report(summary)
        if html:
            print(f"\nHTML report written to {html}")
        if ledger:
            print(
                f"Ledger ({len(month):,} rows) written to {ledger}: try `llmroute report --db {ledger}` "
                f"and `llmroute whatif --db {ledger} --model deepseek-v3.2`"
            )
    return 0 if summary.ok else 1


def _save_ledger(path: str, rows: list[Any]) -> None:
    from ..money.store import SQLiteStore

    store = SQLiteStore(path)
    try:
        for row in rows:
            store.put(row)
    finally:
        store.close()
