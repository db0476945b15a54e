"""The public surface is curated; this guards it against accidental change."""

import subprocess
import sys

import llmroute

EXPECTED = {
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
}


def test_exported_members() -> None:
    assert set(llmroute.__all__) == EXPECTED
    for name in llmroute.__all__:
        assert getattr(llmroute, name) is not None, name


def test_hints_is_the_context_manager() -> None:
    import llmroute.hinting  # importing the module must not shadow the function

    with llmroute.hints(task="x") as current:
        assert current.task == "x"


def test_import_is_lazy() -> None:
    code = "import sys, llmroute; print(sorted(m for m in ('openai', 'anthropic', 'tiktoken') if m in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
