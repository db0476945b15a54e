"""Router configuration from a TOML file or from the environment.

```toml
[router]
policy = "requested"                 # a built-in policy by name, or [[router.policy]] tables (below)
fallbacks = ["deepseek-v3.2"]        # tried in order after the requested model

[router.retry]
attempts = 4                         # per target (default 4: the SDK makes 3)
max_retry_after = 60.0               # seconds; a longer Retry-After moves to the next target
switch_after = 2.0                   # with another target left, waits longer than this move on
deadline = 300.0                     # seconds across all attempts, waits and targets (default 300)

[[deployment]]
name = "openai"
model = "gpt-5.4"                    # a catalog id or alias, a raw API name, or patterns "gpt-*|o3*"
provider = "openai"                  # optional when the catalog knows the model
api_key_env = "OPENAI_API_KEY"       # optional: the provider's variable by default
# base_url, dialect, jurisdiction, weight, headers, timeout, tags

[[model]]                            # catalog rows: add models or override shipped ones
id = "my-model"
provider = "vllm"
price = { input = "0.10", output = "0.20", source = "our GPU bill", as_of = "2026-11-01" }

[[provider]]                         # provider rows: add your own endpoints' families
name = "local"
dialect = "vllm"
base_url = "http://localhost:8000/v1"
jurisdiction = "self-hosted"
```

Keys are checked strictly: a misspelt key is an error naming it, not a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenacity import stop_after_attempt

from ..catalog import Deployment, _check_keys, default_catalog, model_from_row, provider_from_row
from ..errors import ConfigurationError
from ..policy import Policy, Requested
from .engine import DEFAULT_DEADLINE_S, RetryPolicy

__all__ = ["env_config", "load_config"]

_DEPLOYMENT_KEYS = (
    "name",
    "model",
    "provider",
    "base_url",
    "api_key",
    "api_key_env",
    "dialect",
    "jurisdiction",
    "weight",
    "headers",
    "timeout",
    "max_in_flight",
    "rpm",
    "tpm",
    "tags",
)
_RETRY_KEYS = ("attempts", "max_retry_after", "switch_after", "deadline")


def _policy(spec: Any, fallbacks: list[str]) -> Policy:
    """`policy = "requested"`, a name with the router's fallbacks; or `[[router.policy]]` tables
    (`name` plus the policy's options) composed in order. See `llmroute.policies.from_spec`."""
    from ..policies import from_spec

    if spec == "requested" or spec is None:
        return Requested(fallbacks)
    try:
        return from_spec(spec)
    except ConfigurationError as e:
        raise ConfigurationError(f"router.policy: {e}") from e
    except TypeError as e:
        raise ConfigurationError(f"router.policy: bad options: {e}") from e


def _retry(where: str, row: Mapping[str, Any]) -> RetryPolicy:
    _check_keys(where, row, _RETRY_KEYS, ())
    attempts = row.get("attempts", 4)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigurationError(f"{where}.attempts: expected a positive integer, got {attempts!r}")
    numbers: dict[str, float | None] = {}
    for key in ("max_retry_after", "switch_after", "deadline"):
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ConfigurationError(f"{where}.{key}: expected a non-negative number, got {value!r}")
        numbers[key] = float(value) if value is not None else None
    return RetryPolicy(
        stop=stop_after_attempt(attempts),
        max_retry_after=numbers["max_retry_after"] if numbers["max_retry_after"] is not None else 60.0,
        switch_after=numbers["switch_after"] if numbers["switch_after"] is not None else 2.0,
        deadline=numbers["deadline"] if numbers["deadline"] is not None else DEFAULT_DEADLINE_S,
    )


def deployment_from_row(row: Mapping[str, Any], where: str = "deployment") -> Deployment:
    _check_keys(where, row, _DEPLOYMENT_KEYS, ("name", "model"))
    kwargs = dict(row)
    if "tags" in kwargs:
        kwargs["tags"] = tuple(kwargs["tags"])
    try:
        return Deployment(**kwargs)
    except TypeError as e:
        raise ConfigurationError(f"{where} {row.get('name')!r}: {e}") from e


def load_config(path: str | Path) -> dict[str, Any]:
    """Parse a config file into `Router(...)` keyword arguments."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigurationError(f"config file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{path}: invalid TOML: {e}") from e
    return config_from_data(data, str(path))


def config_from_data(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    _check_keys(where, data, ("router", "deployment", "model", "provider"), ("deployment",))
    router = data.get("router", {})
    _check_keys(f"{where}: [router]", router, ("policy", "fallbacks", "retry"), ())
    fallbacks = router.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) for f in fallbacks):
        raise ConfigurationError(f"{where}: router.fallbacks must be a list of model names")
    kwargs: dict[str, Any] = {
        "deployments": [
            deployment_from_row(row, f"{where}: deployment[{i}]") for i, row in enumerate(data["deployment"])
        ],
        "models": [model_from_row(row, f"{where}: model") for row in data.get("model", ())],
        "providers": [provider_from_row(row, f"{where}: provider") for row in data.get("provider", ())],
        "policy": _policy(router.get("policy", "requested"), fallbacks),
        "fallbacks": fallbacks,
    }
    if "retry" in router:
        kwargs["retry"] = _retry(f"{where}: router.retry", router["retry"])
    return kwargs


ENV_PROVIDERS = ("openai", "anthropic", "deepseek")


def env_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`Router(...)` keyword arguments for the providers whose API keys are set in the environment.

    Each becomes a wildcard deployment named after the provider that serves its model family
    (`gpt-*`, `o3*`, `claude-*`, `deepseek-*`, ...); `*_BASE_URL` overrides its endpoint.
    """
    env = os.environ if environ is None else environ
    config_path = env.get("LLMROUTE_CONFIG")
    if config_path:
        return load_config(config_path)
    catalog = default_catalog()
    deployments = []
    for name in ENV_PROVIDERS:
        provider = catalog.provider(name)
        if provider is None or not provider.api_key_env or not env.get(provider.api_key_env):
            continue
        base_url = env.get(provider.base_url_env) if provider.base_url_env else None
        deployments.append(
            Deployment(
                name=name,
                model="|".join(provider.model_patterns),
                provider=name,
                base_url=base_url or None,
                api_key=env[provider.api_key_env],
            )
        )
    if not deployments:
        wanted = ", ".join(
            p.api_key_env for p in (catalog.provider(n) for n in ENV_PROVIDERS) if p and p.api_key_env
        )
        raise ConfigurationError(
            f"no provider is configured: set LLMROUTE_CONFIG to a config file, or one of {wanted}"
        )
    return {"deployments": deployments}
