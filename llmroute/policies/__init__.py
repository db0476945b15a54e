"""Built-in routing policies: gates that remove targets, preferences that order them.

```python
from llmroute import Router
from llmroute.policies import Capabilities, Cheapest, ContextWindow, Residency, TaskType

policy = (
    Residency({"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]})
    | Capabilities()
    | ContextWindow()
    | Cheapest()
    | TaskType({"code_review": ["deepseek-v3.2"], "architecture": ["gpt-5.4"]})
)
router = Router(deployments, policy=policy)
```

Gates (`Residency`, `Capabilities`, `ContextWindow`, `MaxCost`, and `Budget`'s limit) only remove
targets, each with a reason; a call no target survives fails with `NoRoute` naming, for every
target, the gate that removed it. Put them first.

Preferences (`Prefer`, `TaskType`, `Cheapest`, `Fastest`, `Split`, and `Budget` near its limit)
only reorder, and they are stable: targets a preference does not distinguish keep the order the
previous policy gave them. So in a chain **the last preference decides and the earlier ones break its
ties**, like sorting by a secondary key first and the primary key last:

- `Cheapest() | TaskType(table)`: the task's listed models in table order, then every other target
  cheapest first. (A tier `[["a", "b"], "c"]` in the table: the cheaper of a and b, then c.)
- `TaskType(table) | Cheapest()`: cheapest first; the table only breaks exact cost ties.
- `... | Split(arms)` last: the user's arm first, whatever came before.

`default_chain(...)` builds the recommended order. Composing built-ins with `|` gives a
`Pipeline`: a `Chain` that runs built-ins on a fast path with identical results (ranking 50
candidates through the default chain takes microseconds; see `benchmarks/policies.py`).
Config files name policies through `by_name` / `from_spec`; `register` adds your own.
"""

from __future__ import annotations

from typing import Any

from ._core import BuiltinPolicy, Pipeline, RequestFacts, estimate, facts, matches
from .budget import Budget, SpendView
from .cascade import Cascade, escalation_rate
from .cost import Cheapest
from .gates import Capabilities, ContextWindow, MaxCost, undescribed
from .latency import Fastest
from .ordering import Prefer, Split, TaskType, bucket
from .registry import by_name, default_chain, from_spec, names, register
from .residency import Residency
from .shadow import Shadow, ShadowComparison, shadow_report


def __getattr__(name: str) -> Any:
    """`CacheAffinity` and `PrefixLabel` are imported on first use (they need the tokenizer)."""
    if name in ("CacheAffinity", "PrefixLabel"):
        from . import affinity

        return getattr(affinity, name)
    raise AttributeError(f"module 'llmroute.policies' has no attribute {name!r}")


__all__ = [
    "Budget",
    "BuiltinPolicy",
    "CacheAffinity",
    "Capabilities",
    "Cascade",
    "Cheapest",
    "ContextWindow",
    "Fastest",
    "MaxCost",
    "Pipeline",
    "Prefer",
    "PrefixLabel",
    "RequestFacts",
    "Residency",
    "Shadow",
    "ShadowComparison",
    "SpendView",
    "Split",
    "TaskType",
    "bucket",
    "by_name",
    "default_chain",
    "escalation_rate",
    "estimate",
    "facts",
    "from_spec",
    "matches",
    "names",
    "register",
    "shadow_report",
    "undescribed",
]
