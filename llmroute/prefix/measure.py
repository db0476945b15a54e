"""The measured hit rate: per prefix fingerprint and per deployment, what was cacheable, what hit,
and the money caching saved.

```python
report = cache_report(router.ledger)
print(report.format())
report.total.hit_share, report.total.saved
```

Rows need the `prefix` / `prefix_tokens` labels that `PrefixLabel` or `CacheAffinity` attach.

- **cacheable tokens** of an attempt: the stable part (`prefix_tokens`) when the same deployment
  served the same prefix before within its provider's cache lifetime and that part reaches the
  model's minimum cacheable length; 0 for a cold start. When a provider read more than that from
  its cache (a conversation's history), what it read counts as cacheable too. Rows without labels
  count what hit as cacheable (nothing more is known).
- **hit share**: cached / cacheable tokens.
- **saved**: what the attempts would have cost with no caching at all (every input token at the
  input rate, no cache writes) minus what they cost, with the catalog's prices. Anthropic's cache
  writes cost more than plain input, so a prefix written and never read saves a negative amount.
  Unpriced models give `None`, never $0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..money.ledger import LedgerRow
from ..usage import Usage
from .affinity import CACHE_LIFETIMES, DEFAULT_LIFETIME
from .layout import min_cache_tokens

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..money.ledger import Ledger

__all__ = ["CacheReport", "CacheStats", "cache_report"]

GROUP_FIELDS = frozenset({"prefix", "deployment", "provider", "model"})


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Cache figures of one group of billed attempts (see the module docstring)."""

    prefix: str | None = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None
    calls: int = 0
    input_tokens: int = 0
    cacheable_tokens: int = 0
    cached_tokens: int = 0
    written_tokens: int = 0
    cost: Decimal | None = Decimal(0)
    uncached_cost: Decimal | None = Decimal(0)

    @property
    def hit_share(self) -> float:
        """Cached tokens as a share of the cacheable ones."""
        return min(1.0, self.cached_tokens / self.cacheable_tokens) if self.cacheable_tokens else 0.0

    @property
    def saved(self) -> Decimal | None:
        """What caching saved against no caching (None when a row is unpriced)."""
        if self.cost is None or self.uncached_cost is None:
            return None
        return self.uncached_cost - self.cost

    def as_dict(self) -> dict[str, Any]:
        saved = self.saved
        return {
            "prefix": self.prefix,
            "deployment": self.deployment,
            "provider": self.provider,
            "model": self.model,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "cacheable_tokens": self.cacheable_tokens,
            "cached_tokens": self.cached_tokens,
            "written_tokens": self.written_tokens,
            "hit_share": self.hit_share,
            "cost": str(self.cost) if self.cost is not None else None,
            "uncached_cost": str(self.uncached_cost) if self.uncached_cost is not None else None,
            "saved": str(saved) if saved is not None else None,
        }


@dataclass(slots=True)
class CacheReport:
    """`cache_report`'s result: one `CacheStats` per group (most saved first) and the total."""

    by: tuple[str, ...]
    rows: list[CacheStats] = field(default_factory=list)
    total: CacheStats = field(default_factory=CacheStats)

    def format(self) -> str:
        """A plain-text table."""
        header = [*self.by, "calls", "input", "cacheable", "cached", "hit", "saved"]
        lines = [
            [
                *[_cell(getattr(r, f)) for f in self.by],
                str(r.calls),
                f"{r.input_tokens:,}",
                f"{r.cacheable_tokens:,}",
                f"{r.cached_tokens:,}",
                f"{r.hit_share:.1%}",
                _money(r.saved),
            ]
            for r in [*self.rows, self.total]
        ]
        lines[-1][0] = "total"
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=True)]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        out.append("  ".join("-" * w for w in widths))
        out.extend(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
        )
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"by": list(self.by), "rows": [r.as_dict() for r in self.rows], "total": self.total.as_dict()}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text[:12] if len(text) == 16 and all(c in "0123456789abcdef" for c in text) else text


def _money(value: Decimal | None) -> str:
    if value is None:
        return "unpriced"
    number = float(value)
    return f"${number:,.2f}" if abs(number) >= 1 else f"${number:.6f}"


class _Acc:
    __slots__ = (
        "cacheable",
        "cached",
        "calls",
        "cost",
        "deployment",
        "input",
        "model",
        "prefix",
        "provider",
        "uncached",
        "written",
    )

    def __init__(self) -> None:
        self.calls = self.input = self.cacheable = self.cached = self.written = 0
        self.cost: Decimal | None = Decimal(0)
        self.uncached: Decimal | None = Decimal(0)
        self.prefix: str | None = None
        self.deployment: str | None = None
        self.provider: str | None = None
        self.model: str | None = None

    def add(self, row: LedgerRow, cacheable: int, uncached: Decimal | None) -> None:
        usage = row.usage
        self.calls += 1
        self.input += usage.input_tokens
        self.cacheable += cacheable
        self.cached += usage.cache_read_tokens
        self.written += usage.cache_write_tokens
        cost = row.cost
        self.cost = self.cost + cost.total if self.cost is not None and cost is not None else None
        self.uncached = (
            self.uncached + uncached if self.uncached is not None and uncached is not None else None
        )

    def stats(self, keys: Mapping[str, Any]) -> CacheStats:
        return CacheStats(
            prefix=keys.get("prefix"),
            deployment=keys.get("deployment"),
            provider=keys.get("provider"),
            model=keys.get("model"),
            calls=self.calls,
            input_tokens=self.input,
            cacheable_tokens=self.cacheable,
            cached_tokens=self.cached,
            written_tokens=self.written,
            cost=self.cost,
            uncached_cost=self.uncached,
        )


def cache_report(
    source: Ledger | Iterable[LedgerRow],
    *,
    by: Sequence[str] = ("prefix", "deployment"),
    catalog: Catalog | None = None,
    lifetimes: Mapping[str, float] | None = None,
) -> CacheReport:
    """Cacheable tokens, cached tokens, hit share and money saved per group of billed attempts.

    `by`: any of `prefix`, `deployment`, `provider`, `model` (default: per prefix and deployment).
    `catalog`: prices and minimum cacheable lengths (default: the shipped catalog); `lifetimes`:
    seconds a provider keeps a prefix (default `CACHE_LIFETIMES`).
    """
    from ..catalog import default_catalog

    fields = tuple(by)
    unknown = sorted(set(fields) - GROUP_FIELDS)
    if unknown:
        raise ValueError(f"cannot group by {unknown}; use {sorted(GROUP_FIELDS)}")
    catalog = catalog if catalog is not None else default_catalog()
    life = {**CACHE_LIFETIMES, **(lifetimes or {})}
    rows = sorted((r for r in source if r.usage.input_tokens > 0), key=lambda r: (r.timestamp, r.id))
    last: dict[tuple[str | None, str], tuple[float, float]] = {}  # (prefix, deployment) -> (time, lifetime)
    minimums: dict[tuple[str, str], int] = {}
    groups: dict[tuple[Any, ...], _Acc] = {}
    total = _Acc()
    for row in rows:
        usage = row.usage
        prefix = row.labels.get("prefix") or None
        key = (prefix, row.deployment)
        lifetime = life.get(row.provider, DEFAULT_LIFETIME)
        if usage.cache_write_1h_tokens:
            lifetime = max(lifetime, 3600.0)
        seen = last.get(key)
        warm = seen is not None and row.timestamp - seen[0] <= seen[1]
        last[key] = (row.timestamp, max(lifetime, seen[1]) if seen is not None else lifetime)
        cacheable = 0
        if warm and prefix is not None:
            stable = _int(row.labels.get("prefix_tokens"))
            mkey = (row.model, row.provider)
            minimum = minimums.get(mkey)
            if minimum is None:
                minimum = minimums[mkey] = min_cache_tokens(catalog.model(row.model), row.provider)
            if stable >= minimum:
                cacheable = stable
        cacheable = min(max(cacheable, usage.cache_read_tokens), usage.input_tokens)
        spec = catalog.model(row.model)
        price = spec.price if spec is not None else None
        uncached = (
            price.cost(
                Usage(usage.input_tokens, usage.output_tokens, reasoning_tokens=usage.reasoning_tokens)
            ).total
            if price is not None
            else None
        )
        values = {
            "prefix": prefix,
            "deployment": row.deployment,
            "provider": row.provider,
            "model": row.model,
        }
        group_key = tuple(values[f] for f in fields)
        acc = groups.get(group_key)
        if acc is None:
            acc = groups[group_key] = _Acc()
        acc.add(row, cacheable, uncached)
        total.add(row, cacheable, uncached)
    report = CacheReport(fields)
    report.rows = [acc.stats(dict(zip(fields, k, strict=True))) for k, acc in groups.items()]
    report.rows.sort(key=lambda s: (-(s.saved or Decimal(0)), -s.calls))
    report.total = total.stats({})
    return report


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
