"""Policies by name, for configuration files, and the recommended composition."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..policy import Policy, Requested
from ._core import Pipeline
from .budget import Budget
from .cost import Cheapest
from .gates import Capabilities, ContextWindow, MaxCost
from .latency import Fastest
from .ordering import Prefer, Split, TaskType, Tier
from .residency import Residency

__all__ = ["by_name", "default_chain", "from_spec", "names", "register"]

PolicyFactory = Callable[..., Policy]


def default_chain(
    residency: Residency | Mapping[str, Iterable[str] | str] | None = None,
    tasks: TaskType | Mapping[str, Iterable[Tier] | str] | None = None,
    *,
    default_level: str = "internal",
    default_models: Iterable[Tier] | str = (),
    cheapest: Cheapest | None = None,
    margin: float = 0.05,
) -> Pipeline:
    """The recommended composition: gates first, then preferences, the strongest last.

    `Residency | Capabilities | ContextWindow | MaxCost | Cheapest | TaskType`

    ```python
    policy = default_chain(
        {"public": ["*"], "internal": ["*"], "pii": ["US", "EU", "self-hosted"]},
        {"code_review": ["deepseek-v3.2"], "architecture": ["gpt-5.4"]},
    )
    router = Router(deployments, policy=policy)
    ```

    - `residency`: a `Residency` or its allow table (with `default_level` for unlabelled calls);
      `None` leaves it out (no sensitivity rules).
    - `tasks`: a `TaskType` or its table (with `default_models` for other tasks); `None` leaves it
      out, and the cheapest allowed target goes first.
    - `cheapest`: a configured `Cheapest` (priors, explain); `margin`: `ContextWindow`'s margin.

    Each preference is a stable sort, so the LAST one decides and earlier ones break its ties:
    `TaskType`'s listed models go first in table order, and every other target follows cheapest
    first. `model=` is not consulted; add `| Requested(fallbacks)` to honour it.
    """
    policies: list[Policy] = []
    if residency is not None:
        policies.append(
            residency if isinstance(residency, Residency) else Residency(residency, default=default_level)
        )
    policies += [Capabilities(), ContextWindow(margin=margin), MaxCost(), cheapest or Cheapest()]
    if tasks is not None:
        policies.append(tasks if isinstance(tasks, TaskType) else TaskType(tasks, default=default_models))
    return Pipeline(*policies)


def _prefer(names: Sequence[Tier] = ()) -> Prefer:
    if isinstance(names, str):
        names = [names]
    return Prefer(*names)


def _requested(fallbacks: Sequence[str] = ()) -> Requested:
    return Requested(fallbacks)


def _cache_affinity(**options: Any) -> Policy:
    from .affinity import CacheAffinity  # imported on first use: it needs the tokenizer

    return CacheAffinity(**options)


def _prefix_label(**options: Any) -> Policy:
    from .affinity import PrefixLabel

    return PrefixLabel(**options)


_REGISTRY: dict[str, PolicyFactory] = {
    "cache_affinity": _cache_affinity,
    "prefix_label": _prefix_label,
    "budget": Budget,
    "capabilities": Capabilities,
    "cheapest": Cheapest,
    "context_window": ContextWindow,
    "default": default_chain,
    "fastest": Fastest,
    "max_cost": MaxCost,
    "prefer": _prefer,
    "requested": _requested,
    "residency": Residency,
    "split": Split,
    "task_type": TaskType,
}


def _key(name: str) -> str:
    """`"ContextWindow"`, `"context-window"` and `"context_window"` all name the same policy."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return snake.replace("-", "_").replace(" ", "_").lower()


def register(name: str, factory: PolicyFactory, *, replace: bool = False) -> None:
    """Make `factory(**options)` available as `by_name(name, **options)` (and in config files).

    `factory` is usually a `Policy` subclass. Registering a taken name raises `ConfigurationError`
    unless `replace=True`.
    """
    key = _key(name)
    if not key or not callable(factory):
        raise ConfigurationError(f"register: need a name and a callable, got {name!r}, {factory!r}")
    if key in _REGISTRY and not replace:
        raise ConfigurationError(f"policy {key!r} is already registered (pass replace=True to override)")
    _REGISTRY[key] = factory


def names() -> list[str]:
    """The registered policy names."""
    return sorted(_REGISTRY)


def by_name(name: str, /, **options: Any) -> Policy:
    """A policy from its registered name and keyword options.

    `by_name("residency", allow={"pii": ["US", "EU"], "internal": ["*"]})`,
    `by_name("task_type", table={...}, default=[...])`, `by_name("prefer", names=["gpt-5.4"])`,
    `by_name("requested", fallbacks=["deepseek-v3.2"])`. Names are case- and separator-insensitive
    (`"ContextWindow"`, `"context-window"`). Unknown names and bad options raise
    `ConfigurationError` naming them.
    """
    if not isinstance(name, str):
        raise ConfigurationError(f"policy name must be a string, got {name!r}")
    factory = _REGISTRY.get(_key(name))
    if factory is None:
        raise ConfigurationError(f"unknown policy {name!r}; known: {', '.join(names())}")
    try:
        policy = factory(**options)
    except TypeError as e:
        raise ConfigurationError(f"policy {name!r}: bad options {sorted(options)}: {e}") from e
    if not isinstance(policy, Policy):
        raise ConfigurationError(
            f"policy {name!r}: the factory returned {type(policy).__name__}, not a Policy"
        )
    return policy


def from_spec(spec: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]) -> Policy:
    """A policy from configuration data: a name, a table `{"name": ..., **options}`, or a list of
    those, composed in order into a `Pipeline`.

    ```toml
    [[router.policy]]
    name = "residency"
    allow = { public = ["*"], internal = ["*"], pii = ["US", "EU", "self-hosted"] }

    [[router.policy]]
    name = "cheapest"
    ```
    """
    if isinstance(spec, str):
        return by_name(spec)
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if name is None:
            raise ConfigurationError(f"policy table without a 'name': {dict(spec)!r}")
        return by_name(name, **options)
    if isinstance(spec, Sequence) and spec:
        return Pipeline(*(from_spec(item) for item in spec))
    raise ConfigurationError(
        f"expected a policy name, a table with a 'name', or a list of them; got {spec!r}"
    )
