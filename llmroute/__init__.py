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
import sys
import types
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
    "Completion",
    "ConfigurationError",
    "Cost",
    "Decision",
    "Deployment",
    "Embedding",
    "InvalidRequest",
    "LLMRouteError",
    "Ledger",
    "LedgerRow",
    "MissingAPIKey",
    "Model",
    "ModelSpec",
    "NoRoute",
    "Policy",
    "Price",
    "ProviderError",
    "ProviderSpec",
    "Requested",
    "ResourceUnavailable",
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
    "error",
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
    "Completion": "legacy",
    "Embedding": "legacy",
    "Model": "legacy",
    "ResourceUnavailable": "_sdkclient",
    "ChatRequest": "request",
    "Cost": "usage",
    "Price": "usage",
    "Usage": "usage",
    "Ledger": "money.ledger",
    "LedgerRow": "money.ledger",
    "RetryPolicy": "routing.engine",
    "RouteHints": "hinting",
    "RouteInfo": "response",
    "RoutedChatCompletion": "response",
}

if TYPE_CHECKING:
    from . import error, errors
    from ._sdkclient import ResourceUnavailable
    from .catalog import Catalog, Deployment, ModelSpec, ProviderSpec
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
    from .legacy import ChatCompletion, Completion, Embedding, Model
    from .money.ledger import Ledger, LedgerRow
    from .policy import Chain, Choice, Decision, Policy, Requested, RouteContext, Target
    from .request import ChatRequest
    from .response import RoutedChatCompletion, RouteInfo
    from .router import AsyncRouter, Router
    from .routing.engine import RetryPolicy
    from .usage import Cost, Price, Usage


def __getattr__(name: str) -> Any:
    if name == "hints":
        return importlib.import_module(".hinting", __name__).hints
    if name in ("errors", "error"):
        return importlib.import_module(f".{name}", __name__)
    if name in _LEGACY_SETTINGS:
        return None  # not set: the default router is built from the environment
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


_LEGACY_SETTINGS = ("api_key", "api_base", "organization")
_LEGACY_REFUSED = ("api_type", "api_version", "api_key_path", "proxy", "requestssession", "verify_ssl_certs")


class _Module(types.ModuleType):
    """`import llmroute as openai; openai.api_key = ...`: the pre-1.0 module-level settings are
    honoured (they configure the default OpenAI deployment) or refused loudly, never ignored."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LEGACY_SETTINGS or name in _LEGACY_REFUSED:
            importlib.import_module(".legacy", __name__).configure(name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Module
