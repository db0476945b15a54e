"""Prompt-prefix caching: lay prompts out so provider caches hit, lint what breaks them, route to
the deployment whose cache is warm, and measure the hit rate from the ledger.

```python
from llmroute.prefix import CacheAffinity, PromptLayout, cache_report, lint_prompt

layout = PromptLayout(system=GUIDELINES, tools=TOOLS)           # stable parts first, canonical
affinity = CacheAffinity()                                       # labels + cache-aware routing
router = Router(deployments, policy=Cheapest() | affinity, balancer=affinity.balancer())
router.chat.completions.create(model="auto", **layout.render([], diff, context=f"Now: {now}"))
print(cache_report(router.ledger).format())                      # cacheable, cached, hit, saved
```

- `layout`: `PromptLayout`, `Document`, `Example`, `Conversation`; provider hints (`cache_hints`).
- `lint`: `lint_prompt`, `lint_sequence`, and `main` for `llmroute lint-prompt FILE`.
- `affinity`: `PrefixLabel`, `CacheAffinity`, `prefix_fingerprint`.
- `measure`: `cache_report`.
- `warmup`: `warm_up`, one cheap call that writes a long static prefix before a batch.

See docs/caching.md.
"""

from __future__ import annotations

from .affinity import CACHE_LIFETIMES, CacheAffinity, PrefixLabel, prefix_fingerprint
from .layout import Conversation, Document, Example, PromptLayout, cache_hints, min_cache_tokens
from .lint import Finding, PrefixBreak, SequenceReport, lint_prompt, lint_sequence, main
from .measure import CacheReport, CacheStats, cache_report
from .warmup import awarm_up, warm_up, warm_up_kwargs

__all__ = [
    "CACHE_LIFETIMES",
    "CacheAffinity",
    "CacheReport",
    "CacheStats",
    "Conversation",
    "Document",
    "Example",
    "Finding",
    "PrefixBreak",
    "PrefixLabel",
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
