"""The cost ledger: one row per attempt, every attempt a provider may have billed.

Rows are appended by the router after each attempt, success or failure (a 429 bills nothing but is
still recorded, with zero usage, so failure rates and retries are visible). Costs are `Decimal`,
broken down by token kind; a model without a price gives `cost=None` and shows as unpriced — never $0.
Thread-safe and asyncio-safe (appends are a single locked list operation; no awaits inside).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .hinting import RouteHints
from .usage import Cost, FinishReason, Usage

__all__ = ["Ledger", "LedgerRow", "Outcome", "Totals"]

Outcome = Literal["ok", "truncated", "error", "cut"]
"""`ok`: answered and complete; `truncated`: answered but cut (length, content filter);
`error`: the attempt failed; `cut`: a stream ended before the provider finished."""

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One attempt at one deployment."""

    call_id: str
    attempt: int
    timestamp: float
    deployment: str
    provider: str
    requested_model: str
    model: str
    served_model: str | None
    hints: RouteHints
    usage: Usage
    cost: Cost | None
    latency_s: float
    outcome: Outcome
    ttft_s: float | None = None
    stream: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    status_code: int | None = None
    request_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the policy attached to this target (an A/B arm, a prefix fingerprint...)."""
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def priced(self) -> bool:
        return self.cost is not None

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict (Decimals as strings). Contains no secrets."""
        usage = self.usage
        cost = self.cost
        return {
            "id": self.id,
            "call_id": self.call_id,
            "attempt": self.attempt,
            "timestamp": self.timestamp,
            "deployment": self.deployment,
            "provider": self.provider,
            "requested_model": self.requested_model,
            "model": self.model,
            "served_model": self.served_model,
            "task": self.hints.task,
            "sensitivity": self.hints.sensitivity,
            "tags": list(self.hints.tags),
            "user": self.hints.user,
            "input_tokens": usage.input_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": usage.estimated,
            "cost": str(cost.total) if cost is not None else None,
            "cost_uncached_input": str(cost.uncached_input) if cost is not None else None,
            "cost_cache_read": str(cost.cache_read) if cost is not None else None,
            "cost_cache_write": str(cost.cache_write) if cost is not None else None,
            "cost_output": str(cost.output) if cost is not None else None,
            "currency": cost.currency if cost is not None else None,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "stream": self.stream,
            "outcome": self.outcome,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class Totals:
    """Aggregates over a set of rows. `cost` sums priced rows only; `unpriced` counts the others."""

    attempts: int = 0
    calls: int = 0
    errors: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    unpriced: int = 0

    @property
    def cache_hit_share(self) -> float:
        """Cache reads as a share of all input tokens."""
        total = self.usage.input_tokens
        return self.usage.cache_read_tokens / total if total else 0.0


def _totals(rows: Iterable[LedgerRow]) -> Totals:
    attempts = errors = unpriced = 0
    calls: set[str] = set()
    usage = Usage()
    cost = Decimal(0)
    for row in rows:
        attempts += 1
        calls.add(row.call_id)
        if row.outcome == "error":
            errors += 1
        usage = usage + row.usage
        if row.cost is None:
            if row.usage.total_tokens:
                unpriced += 1
        else:
            cost += row.cost.total
    return Totals(attempts, len(calls), errors, usage, cost, unpriced)


class Ledger:
    """In-process record of every attempt. Share one between routers to pool their spend."""

    def __init__(self) -> None:
        self._rows: list[LedgerRow] = []
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LedgerRow], None]] = []

    def record(self, row: LedgerRow) -> None:
        with self._lock:
            self._rows.append(row)
        for listener in self._listeners:
            listener(row)

    def subscribe(self, listener: Callable[[LedgerRow], None]) -> None:
        """Call `listener(row)` after each row is recorded (exporters, budgets, dashboards)."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[LedgerRow]:
        with self._lock:
            snapshot = list(self._rows)
        return iter(snapshot)

    def rows(self, where: Callable[[LedgerRow], bool] | None = None, **equals: Any) -> list[LedgerRow]:
        """Rows matching a predicate and/or field equalities, e.g. `rows(deployment="a")`.

        Fields of the hints can be matched by name too: `rows(task="code_review")`.
        """
        selected = []
        for row in self:
            if where is not None and not where(row):
                continue
            if equals and any(_field(row, k) != v for k, v in equals.items()):
                continue
            selected.append(row)
        return selected

    def total(self, where: Callable[[LedgerRow], bool] | None = None, **equals: Any) -> Totals:
        """Totals over the matching rows (all rows by default)."""
        return _totals(self.rows(where, **equals))

    def group_by(self, key: str | Callable[[LedgerRow], Any]) -> dict[Any, Totals]:
        """Totals per value of a field (`"model"`, `"deployment"`, `"task"`, ...) or of a function."""
        groups: dict[Any, list[LedgerRow]] = defaultdict(list)
        getter = key if callable(key) else (lambda row: _field(row, key))
        for row in self:
            groups[getter(row)].append(row)
        return {k: _totals(v) for k, v in groups.items()}

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


_HINT_FIELDS = frozenset({"task", "sensitivity", "user", "budget", "latency", "tags"})


def _field(row: LedgerRow, name: str) -> Any:
    if name in _HINT_FIELDS:
        return getattr(row.hints, name)
    if name == "day":
        return time.strftime("%Y-%m-%d", time.gmtime(row.timestamp))
    return getattr(row, name)
