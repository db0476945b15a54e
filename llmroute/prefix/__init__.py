"""Prompt-prefix caching: lay prompts out so provider caches hit, lint what breaks them, route to
the deployment whose cache is warm, and measure the hit rate from the ledger.

```python
from llmroute.policies import CacheAffinity
from llmroute.prefix import PromptLayout, cache_report, lint_prompt

layout = PromptLayout(system=GUIDELINES, tools=TOOLS)           # stable parts first, canonical
affinity = CacheAffinity()                                       # labels + cache-aware routing
router = Router(deployments, policy=Cheapest() | affinity, balancer=affinity.balancer())
router.chat.completions.create(model="auto", **layout.render([], diff, context=f"Now: {now}"))
print(cache_report(router.ledger).format())                      # cacheable, cached, hit, saved
```

- `layout`: `PromptLayout`, `Document`, `Example`, `Conversation`; provider hints (`cache_hints`).
- `lint`: `lint_prompt`, `lint_sequence`, and `main` for `llmroute lint-prompt FILE`.
- `affinity`: `prefix_fingerprint` and each provider's cache lifetime. The policies built on them,
  `PrefixLabel` and `CacheAffinity`, live in `llmroute.policies` (still importable from here).
- `measure`: `cache_report`.
- `warmup`: `warm_up`, one cheap call that writes a long static prefix before a batch.

See docs/caching.md.
"""

from __future__ import annotations

from typing import Any

from .affinity import CACHE_LIFETIMES, prefix_fingerprint
from .layout import Conversation, Document, Example, PromptLayout, cache_hints, min_cache_tokens
from .lint import Finding, PrefixBreak, SequenceReport, lint_prompt, lint_sequence, main
from .measure import CacheReport, CacheStats, cache_report
from .warmup import awarm_up, warm_up, warm_up_kwargs

__all__ = [
    "CACHE_LIFETIMES",
    "CacheReport",
    "CacheStats",
    "Conversation",
    "Document",
    "Example",
    "Finding",
    "PrefixBreak",
    "PromptLayout",
    "SequenceReport",
    "awarm_up",
    "cache_hints",
    "cache_report",
    "lint_prompt",
    "lint_sequence",
    "main",
    "min_cache_tokens",
    "prefix_fingerprint",
    "warm_up",
    "warm_up_kwargs",
]


def __getattr__(name: str) -> Any:
    """`CacheAffinity` and `PrefixLabel` are policies: they live in `llmroute.policies.affinity`."""
    if name in ("CacheAffinity", "PrefixLabel"):
        from ..policies import affinity

        return getattr(affinity, name)
    raise AttributeError(f"module 'llmroute.prefix' has no attribute {name!r}")
