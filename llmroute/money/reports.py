"""Reports over ledger rows: totals and breakdowns by any field, and served-model drift.

```python
report = build_report(ledger, by=("model", "task", "day"))
report.total.cost, report.total.cache_hit_share, report.total.latency_p95
for stats in report.groups["model"]: print(stats.key, money(stats.cost_or_none, stats.unpriced))
report.drift          # deployments whose provider answered with another model version over time
```

Definitions (per group of rows):
- `attempts`: rows; `calls`: distinct call ids; `retries`: attempts - calls.
- `errors`: attempts with outcome "error"; `failure_rate` = errors / attempts;
  `failed_calls`: calls whose last attempt (anywhere) failed; `call_failure_rate` = failed_calls / calls.
- `fallbacks`: calls whose attempts went to more than one deployment; `fallback_rate` = fallbacks / calls.
- `truncated`: attempts with outcome "truncated" (length, content filter) or "cut" (a stream that ended
  early).
- token kinds: the sum of `Usage` (input includes cache reads and writes; output includes reasoning);
  `cache_hit_share` = cache-read tokens / input tokens.
- `cost`: the sum over priced rows; `unpriced`: billed rows (tokens > 0) without a price. A group of
  only unpriced rows has `cost_or_none` None and shows "unpriced", never $0; `cost_per_call` is None
  when any row is unpriced.
- latency percentiles (p50, p95, p99): nearest rank over attempts that got an answer (not "error").
- `tag` groups: a row counts in each of its tags ("(none)" without tags), so tag groups can overlap.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..usage import Usage
from .ledger import LedgerRow, row_field

__all__ = [
    "DEFAULT_BREAKDOWNS",
    "Drift",
    "Report",
    "ServedVersion",
    "Stats",
    "breakdown",
    "build_report",
    "percentile",
    "served_model_drift",
    "summarize",
]

DEFAULT_BREAKDOWNS = ("model", "provider", "deployment", "task", "tag", "user", "day")
NONE_KEY = "(none)"
_ZERO = Decimal(0)


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class Stats:
    """Figures for one group of rows (see the module docstring for each definition)."""

    key: Any
    attempts: int = 0
    calls: int = 0
    errors: int = 0
    failed_calls: int = 0
    fallbacks: int = 0
    truncated: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = _ZERO
    priced: int = 0
    unpriced: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    first: float | None = None
    last: float | None = None

    @property
    def cost_or_none(self) -> Decimal | None:
        """The cost, or None when every billed row is unpriced (show "unpriced", not $0)."""
        return None if self.unpriced and not self.priced else self.cost

    @property
    def retries(self) -> int:
        return self.attempts - self.calls

    @property
    def cache_hit_share(self) -> float:
        total = self.usage.input_tokens
        return self.usage.cache_read_tokens / total if total else 0.0

    @property
    def failure_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    @property
    def call_failure_rate(self) -> float:
        return self.failed_calls / self.calls if self.calls else 0.0

    @property
    def fallback_rate(self) -> float:
        return self.fallbacks / self.calls if self.calls else 0.0

    @property
    def cost_per_call(self) -> Decimal | None:
        if self.unpriced or not self.calls:
            return None
        return self.cost / self.calls

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (Decimals as strings, None for unpriced)."""
        usage = self.usage
        cost = self.cost_or_none
        per_call = self.cost_per_call
        return {
            "key": self.key if not isinstance(self.key, tuple) else list(self.key),
            "attempts": self.attempts,
            "calls": self.calls,
            "retries": self.retries,
            "errors": self.errors,
            "failure_rate": self.failure_rate,
            "failed_calls": self.failed_calls,
            "call_failure_rate": self.call_failure_rate,
            "fallbacks": self.fallbacks,
            "fallback_rate": self.fallback_rate,
            "truncated": self.truncated,
            "input_tokens": usage.input_tokens,
            "uncached_input_tokens": usage.uncached_input_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": usage.estimated,
            "cache_hit_share": self.cache_hit_share,
            "cost": str(cost) if cost is not None else None,
            "unpriced": self.unpriced,
            "cost_per_call": str(per_call) if per_call is not None else None,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "latency_p99": self.latency_p99,
            "first": self.first,
            "last": self.last,
        }


@dataclass(slots=True)
class _CallFacts:
    deployments: set[str] = field(default_factory=set)
    last_key: tuple[float, int] = (-math.inf, -1)
    failed: bool = False


def _call_facts(rows: Iterable[LedgerRow]) -> dict[str, _CallFacts]:
    calls: dict[str, _CallFacts] = defaultdict(_CallFacts)
    for row in rows:
        facts = calls[row.call_id]
        facts.deployments.add(row.deployment)
        key = (row.timestamp, row.attempt)
        if key >= facts.last_key:
            facts.last_key = key
            facts.failed = row.outcome == "error"
    return calls


def summarize(rows: Iterable[LedgerRow], key: Any = "total", calls: Mapping[str, Any] | None = None) -> Stats:
    """The figures of one group of rows. `calls`: per-call facts over ALL rows (so a call's failure
    or fallback is seen even when the group holds only some of its attempts)."""
    rows = list(rows)
    facts = calls if calls is not None else _call_facts(rows)
    call_ids: set[str] = set()
    attempts = errors = truncated = priced = unpriced = 0
    usage = Usage()
    cost = _ZERO
    latencies: list[float] = []
    first = last = None
    for row in rows:
        attempts += 1
        call_ids.add(row.call_id)
        outcome = row.outcome
        if outcome == "error":
            errors += 1
        else:
            latencies.append(row.latency_s)
            if outcome in ("truncated", "cut"):
                truncated += 1
        usage = usage + row.usage
        row_cost = row.cost
        if row_cost is not None:
            cost += row_cost.total
            priced += 1
        elif row.usage.total_tokens:
            unpriced += 1
        ts = row.timestamp
        first = ts if first is None or ts < first else first
        last = ts if last is None or ts > last else last
    latencies.sort()
    failed = sum(1 for c in call_ids if facts[c].failed)
    fallbacks = sum(1 for c in call_ids if len(facts[c].deployments) > 1)
    return Stats(
        key=key,
        attempts=attempts,
        calls=len(call_ids),
        errors=errors,
        failed_calls=failed,
        fallbacks=fallbacks,
        truncated=truncated,
        usage=usage,
        cost=cost,
        priced=priced,
        unpriced=unpriced,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        latency_p99=percentile(latencies, 99),
        first=first,
        last=last,
    )


def _keys(row: LedgerRow, fields: Sequence[str]) -> list[Any]:
    """The group keys of a row: one, or one per tag when grouping by tag."""
    keys: list[tuple[Any, ...]] = [()]
    for name in fields:
        if name in ("tag", "tags"):
            values: Sequence[Any] = row.hints.tags or (NONE_KEY,)
        else:
            value = row_field(row, name)
            values = (NONE_KEY if value is None else value,)
        keys = [(*k, v) for k in keys for v in values]
    return [k[0] if len(k) == 1 else k for k in keys]


def breakdown(
    rows: Iterable[LedgerRow],
    by: str | Sequence[str] | Callable[[LedgerRow], Any],
    *,
    calls: Mapping[str, Any] | None = None,
) -> list[Stats]:
    """Stats per value of a field (`"model"`, `"task"`, `"tag"`, `"day"`, `"label:arm"`...), of
    several fields (`("model", "day")`: tuple keys), or of a function; most expensive first."""
    rows = list(rows)
    facts = calls if calls is not None else _call_facts(rows)
    groups: dict[Any, list[LedgerRow]] = defaultdict(list)
    if callable(by):
        for row in rows:
            groups[by(row)].append(row)
    else:
        fields = (by,) if isinstance(by, str) else tuple(by)
        for row in rows:
            for key in _keys(row, fields):
                groups[key].append(row)
    out = [summarize(group, key, facts) for key, group in groups.items()]
    out.sort(key=lambda s: (-s.cost, -s.attempts, str(s.key)))
    return out


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """One model version a deployment answered with."""

    served_model: str
    first_seen: float
    last_seen: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Drift:
    """The model versions (`served_model`) one deployment answered with, in the order first seen.

    `changes`: the moments the served model differed from the previous answer's."""

    deployment: str
    model: str
    versions: tuple[ServedVersion, ...]
    changes: tuple[tuple[float, str, str], ...]

    @property
    def drifted(self) -> bool:
        return len(self.versions) > 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "model": self.model,
            "drifted": self.drifted,
            "versions": [
                {
                    "served_model": v.served_model,
                    "first_seen": v.first_seen,
                    "last_seen": v.last_seen,
                    "attempts": v.attempts,
                }
                for v in self.versions
            ],
            "changes": [{"at": at, "from": a, "to": b} for at, a, b in self.changes],
        }


def served_model_drift(rows: Iterable[LedgerRow], *, only_drifted: bool = False) -> list[Drift]:
    """Per deployment, the served model versions over time (rows without `served_model` skipped)."""
    per: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        if row.served_model:
            per[row.deployment].append(row)
    out = []
    for deployment, group in sorted(per.items()):
        group.sort(key=lambda r: (r.timestamp, r.attempt))
        seen: dict[str, list[float]] = {}
        counts: dict[str, int] = defaultdict(int)
        changes: list[tuple[float, str, str]] = []
        previous: str | None = None
        for row in group:
            served = row.served_model or ""
            span = seen.setdefault(served, [row.timestamp, row.timestamp])
            span[1] = row.timestamp
            counts[served] += 1
            if previous is not None and served != previous:
                changes.append((row.timestamp, previous, served))
            previous = served
        versions = tuple(ServedVersion(s, span[0], span[1], counts[s]) for s, span in seen.items())
        drift = Drift(deployment, group[-1].model, versions, tuple(changes))
        if drift.drifted or not only_drifted:
            out.append(drift)
    return out


@dataclass(frozen=True, slots=True)
class Report:
    """Totals, breakdowns (field name -> stats, most expensive first) and served-model drift."""

    total: Stats
    groups: Mapping[str, list[Stats]]
    drift: list[Drift]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.as_dict(),
            "groups": {name: [s.as_dict() for s in stats] for name, stats in self.groups.items()},
            "drift": [d.as_dict() for d in self.drift],
        }


def build_report(rows: Iterable[LedgerRow], by: Sequence[str] = DEFAULT_BREAKDOWNS) -> Report:
    """Totals over `rows`, a breakdown per field in `by`, and served-model drift."""
    rows = list(rows)
    facts = _call_facts(rows)
    groups = {name: breakdown(rows, name.split("+") if "+" in name else name, calls=facts) for name in by}
    return Report(summarize(rows, "total", facts), groups, served_model_drift(rows))
