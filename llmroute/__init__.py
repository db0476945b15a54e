"""llmroute: one OpenAI-compatible client for many LLM providers, routing each call by policy.

```python
import llmroute

router = llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4")])
reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "Hi"}])
print(reply.choices[0].message.content, reply.route.cost)
```

Names are imported lazily: `import llmroute` is cheap, and `openai`, `anthropic`, `tiktoken` and the
price data load only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AllTargetsFailed",
    "AsyncRouter",
    "BudgetExceeded",
    "Catalog",
    "Chain",
    "ChatCompletion",
    "ChatRequest",
    "Choice",
    "ConfigurationError",
    "Cost",
    "Decision",
    "Deployment",
    "InvalidRequest",
    "LLMRouteError",
    "Ledger",
    "LedgerRow",
    "MissingAPIKey",
    "ModelSpec",
    "NoRoute",
    "Policy",
    "Price",
    "ProviderError",
    "ProviderSpec",
    "Requested",
    "RetryPolicy",
    "RouteContext",
    "RouteHints",
    "RouteInfo",
    "RoutedChatCompletion",
    "Router",
    "StreamInterrupted",
    "Target",
    "UnknownModel",
    "Usage",
    "__version__",
    "errors",
    "hints",
]

_LAZY = {
    "AllTargetsFailed": "errors",
    "BudgetExceeded": "errors",
    "ConfigurationError": "errors",
    "InvalidRequest": "errors",
    "LLMRouteError": "errors",
    "MissingAPIKey": "errors",
    "NoRoute": "errors",
    "ProviderError": "errors",
    "StreamInterrupted": "errors",
    "UnknownModel": "errors",
    "AsyncRouter": "router",
    "Router": "router",
    "Catalog": "catalog",
    "Deployment": "catalog",
    "ModelSpec": "catalog",
    "ProviderSpec": "catalog",
    "Chain": "policy",
    "Choice": "policy",
    "Decision": "policy",
    "Policy": "policy",
    "Requested": "policy",
    "RouteContext": "policy",
    "Target": "policy",
    "ChatCompletion": "legacy",
    "ChatRequest": "request",
    "Cost": "usage",
    "Price": "usage",
    "Usage": "usage",
    "Ledger": "ledger",
    "LedgerRow": "ledger",
    "RetryPolicy": "engine",
    "RouteHints": "hinting",
    "RouteInfo": "response",
    "RoutedChatCompletion": "response",
}

if TYPE_CHECKING:
    from . import errors
    from .catalog import Catalog, Deployment, ModelSpec, ProviderSpec
    from .engine import RetryPolicy
    from .errors import (
        AllTargetsFailed,
        BudgetExceeded,
        ConfigurationError,
        InvalidRequest,
        LLMRouteError,
        MissingAPIKey,
        NoRoute,
        ProviderError,
        StreamInterrupted,
        UnknownModel,
    )
    from .hinting import RouteHints, hints
    from .ledger import Ledger, LedgerRow
    from .legacy import ChatCompletion
    from .policy import Chain, Choice, Decision, Policy, Requested, RouteContext, Target
    from .request import ChatRequest
    from .response import RoutedChatCompletion, RouteInfo
    from .router import AsyncRouter, Router
    from .usage import Cost, Price, Usage


def __getattr__(name: str) -> Any:
    if name == "hints":
        return importlib.import_module(".hinting", __name__).hints
    if name == "errors":
        return importlib.import_module(".errors", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
