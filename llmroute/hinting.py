"""Route hints: what the caller says about a request so the policy can decide where it goes.

Hints come from the `route=` argument of `create(...)` or from the `hints(...)` context manager, for
code that cannot change its call (a framework calling the client). Both merge: the innermost context
wins for each field it sets, the `route=` argument wins over every context, and tags accumulate.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .errors import InvalidRequest

__all__ = ["RouteHints", "current_hints", "hints"]

Latency = Literal["interactive", "standard", "batch"]


@dataclass(frozen=True, slots=True)
class RouteHints:
    """Facts about a request that routing policies use.

    - `task`: the kind of work ("code_review", "chat", ...), matched by task policies.
    - `sensitivity`: a data label ("public", "internal", "pii", "phi", "restricted", or your own),
      matched by the residency gate. Unlabelled requests get the gate's default.
    - `tags`: free labels for reports and budgets.
    - `user`: who the call is for (reports, budgets, sticky A/B splits).
    - `budget`: the name of a budget scope to charge.
    - `max_cost`: refuse targets whose estimated cost for this call exceeds this (in the price currency).
    - `latency`: "interactive" prefers fast models; "batch" tolerates slow ones.
    - `extra`: anything else your own policies read.
    """

    task: str | None = None
    sensitivity: str | None = None
    tags: tuple[str, ...] = ()
    user: str | None = None
    budget: str | None = None
    max_cost: Decimal | None = None
    latency: Latency | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, inner: RouteHints) -> RouteHints:
        """These hints overridden by the fields `inner` sets; tags and extra accumulate."""
        return RouteHints(
            task=inner.task if inner.task is not None else self.task,
            sensitivity=inner.sensitivity if inner.sensitivity is not None else self.sensitivity,
            tags=self.tags + tuple(t for t in inner.tags if t not in self.tags),
            user=inner.user if inner.user is not None else self.user,
            budget=inner.budget if inner.budget is not None else self.budget,
            max_cost=inner.max_cost if inner.max_cost is not None else self.max_cost,
            latency=inner.latency if inner.latency is not None else self.latency,
            extra={**self.extra, **inner.extra} if inner.extra else self.extra,
        )

    @classmethod
    def coerce(cls, value: RouteHints | Mapping[str, Any] | None) -> RouteHints:
        """Accept `RouteHints`, a plain dict of its fields, or None."""
        if value is None:
            return _EMPTY
        if isinstance(value, RouteHints):
            return value
        if not isinstance(value, Mapping):
            raise InvalidRequest("route", f"expected RouteHints or a dict, got {type(value).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        for key in value:
            if not isinstance(key, str):
                raise InvalidRequest("route", f"hint names are strings, got {type(key).__name__} {key!a}")
        unknown = sorted(set(value) - names)
        if unknown:
            raise InvalidRequest("route", f"unknown hint(s) {unknown}; known: {sorted(names)}")
        kwargs = dict(value)
        for name in ("task", "sensitivity", "user", "budget"):
            if kwargs.get(name) is not None:
                _text(f"route.{name}", kwargs[name])
        tags = kwargs.get("tags", ())
        if tags is None:
            tags = ()
        if isinstance(tags, str | bytes | Mapping) or not isinstance(tags, Iterable):
            raise InvalidRequest("route.tags", "expected a list of strings")
        kwargs["tags"] = tuple(tags)
        for i, tag in enumerate(kwargs["tags"]):
            _text(f"route.tags[{i}]", tag)
        if kwargs.get("max_cost") is not None:
            try:
                max_cost = Decimal(str(kwargs["max_cost"]))
            except ArithmeticError as e:
                raise InvalidRequest("route.max_cost", f"not a number: {kwargs['max_cost']!r}") from e
            if not max_cost.is_finite() or max_cost < 0:
                raise InvalidRequest("route.max_cost", "must be a finite non-negative number")
            kwargs["max_cost"] = max_cost
        if kwargs.get("latency") not in (None, "interactive", "standard", "batch"):
            raise InvalidRequest("route.latency", "expected 'interactive', 'standard' or 'batch'")
        extra = kwargs.get("extra", {})
        if not isinstance(extra, Mapping):
            raise InvalidRequest("route.extra", "expected a mapping")
        return cls(**kwargs)


def _text(where: str, value: Any) -> None:
    """A hint's text: a string that is valid Unicode (it reaches ledgers, stores and reports)."""
    if not isinstance(value, str):
        raise InvalidRequest(where, f"expected a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(where, "text that is not valid Unicode (a lone surrogate)") from None


_EMPTY = RouteHints()
_CURRENT: contextvars.ContextVar[RouteHints] = contextvars.ContextVar("llmroute_hints", default=_EMPTY)


def current_hints() -> RouteHints:
    """The hints set by enclosing `hints(...)` blocks in this thread or task."""
    return _CURRENT.get()


@contextmanager
def hints(route: RouteHints | Mapping[str, Any] | None = None, /, **fields: Any) -> Iterator[RouteHints]:
    """Set route hints for every call made inside the block (thread- and asyncio-task-local).

    ```python
    with llmroute.hints(task="code_review", sensitivity="pii"):
        client.chat.completions.create(model="auto", messages=...)
    ```
    """
    inner = RouteHints.coerce(route).merged(RouteHints.coerce(fields)) if fields else RouteHints.coerce(route)
    token = _CURRENT.set(_CURRENT.get().merged(inner))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)
