"""Prices that change over time: a `PriceTable` answers "what did this model cost on that day?".

The catalog holds one `Price` per model: the current one. A `PriceTable` starts from a catalog and
adds dated rows, each in force from its `effective` date (UTC midnight, or an exact datetime) until the
next row for the same model. A catalog price is in force from the beginning of time unless a dated
row says otherwise, so a replay of old ledger rows uses the price of their day:

```python
table = PriceTable(default_catalog()).with_prices([
    PriceChange("deepseek-v4-pro", effective="2026-08-16",
                price=Price(input=Decimal("1.32"), output=Decimal("3.96"), source="DeepSeek, peak")),
])
table.price_at("deepseek-v4-pro", row.timestamp)   # the price in force when the row was recorded
table.reprice(rows)                                # each row's cost at its own date's price
```

Price files (`llmroute prices --prices FILE`) are TOML:

```toml
[[price]]
model = "deepseek-v4-pro"
effective = "2026-08-16"              # or "2026-08-16T00:00:00+08:00"
input = "1.32"
output = "3.96"
cache_read = "0.044"
source = "https://api-docs.deepseek.com/quick_start/pricing"
as_of = "2026-11-23"
```
"""

from __future__ import annotations

import bisect
import datetime as dt
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog, ModelSpec, price_from_row
from ..errors import ConfigurationError
from ..usage import Cost, Price
from .ledger import to_epoch

if TYPE_CHECKING:
    from .ledger import LedgerRow

__all__ = ["PriceChange", "PricePeriod", "PriceTable", "load_price_changes", "money"]

_BEGINNING = float("-inf")


@dataclass(frozen=True, slots=True)
class PriceChange:
    """`price` is in force for `model` (an id, API name or alias) from `effective` on.

    `effective` is a date (its UTC midnight), a datetime (naive means UTC), epoch seconds, or an ISO
    string of either. `price=None` marks the model unpriced from then on (e.g. a free preview ended
    and no new price is known).
    """

    model: str
    effective: dt.date | dt.datetime | float | str
    price: Price | None

    @property
    def since(self) -> float:
        """`effective` as epoch seconds."""
        value = self.effective
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            except ValueError as e:
                raise ConfigurationError(
                    f"price change for {self.model!r}: not an ISO date: {value!r}"
                ) from e
        return to_epoch(value)


@dataclass(frozen=True, slots=True)
class PricePeriod:
    """One row of a model's price history: `price` from `since` (epoch seconds) until the next row."""

    model: str
    since: float
    price: Price | None
    origin: str
    """"catalog" for the catalog's current price, "change" for a dated row."""

    @property
    def since_label(self) -> str:
        if self.since == _BEGINNING:
            return "-"
        moment = dt.datetime.fromtimestamp(self.since, dt.UTC)
        return moment.strftime("%Y-%m-%d") if moment.time() == dt.time() else moment.isoformat()


class PriceTable:
    """A catalog's prices plus dated changes. Immutable; `with_prices` returns a new table."""

    def __init__(self, catalog: Catalog, changes: Iterable[PriceChange] = ()) -> None:
        self.catalog = catalog
        self._changes = tuple(changes)
        history: dict[str, list[PricePeriod]] = {}
        for model in catalog.models():
            history[model.id] = [PricePeriod(model.id, _BEGINNING, model.price, "catalog")]
        for change in self._changes:
            spec = catalog.model(change.model)
            model_id = spec.id if spec is not None else change.model
            periods = history.setdefault(model_id, [])
            periods.append(PricePeriod(model_id, change.since, change.price, "change"))
        for model_id, periods in history.items():
            periods.sort(key=lambda p: p.since)
            if len({p.since for p in periods}) != len(periods):
                raise ConfigurationError(f"two prices for {model_id!r} take effect at the same moment")
        self._history = history
        self._starts = {k: [p.since for p in v] for k, v in history.items()}

    def with_prices(self, changes: Iterable[PriceChange]) -> PriceTable:
        """A new table with these dated rows added."""
        return PriceTable(self.catalog, [*self._changes, *changes])

    def model_id(self, name: str) -> str:
        spec = self.catalog.model(name)
        return spec.id if spec is not None else name

    def history(self, model: str) -> Sequence[PricePeriod]:
        """A model's price rows, oldest first."""
        return tuple(self._history.get(self.model_id(model), ()))

    def periods(self) -> Iterator[PricePeriod]:
        """Every price row of every model."""
        for periods in self._history.values():
            yield from periods

    def price_at(self, model: str, when: float | dt.datetime | dt.date | None = None) -> Price | None:
        """The price in force for `model` at `when` (now if None); None if unpriced or unknown."""
        model_id = self.model_id(model)
        starts = self._starts.get(model_id)
        if not starts:
            return None
        moment = to_epoch(when) if when is not None else dt.datetime.now(dt.UTC).timestamp()
        index = bisect.bisect_right(starts, moment) - 1
        if index < 0:  # before the first dated row of a model the catalog does not price
            return None
        return self._history[model_id][index].price

    def spec_at(self, model: str, when: float | dt.datetime | dt.date | None = None) -> ModelSpec | None:
        """The catalog row of `model` with the price in force at `when`."""
        spec = self.catalog.model(model)
        if spec is None:
            return None
        return replace(spec, price=self.price_at(spec.id, when))

    def cost(self, row: LedgerRow) -> Cost | None:
        """The cost of `row` at the price in force when it was recorded (None: unpriced)."""
        price = self.price_at(row.model, row.timestamp)
        return price.cost(row.usage) if price is not None else None

    def reprice(self, rows: Iterable[LedgerRow]) -> list[LedgerRow]:
        """Copies of `rows` whose cost is computed from this table at each row's own time."""
        out = []
        for row in rows:
            price = self.price_at(row.model, row.timestamp)
            out.append(replace(row, cost=price.cost(row.usage) if price is not None else None, price=price))
        return out


def price_change_from_row(row: Mapping[str, Any], where: str = "price") -> PriceChange:
    """A `PriceChange` from a TOML/dict row: `model`, `effective`, then the `Price` keys."""
    data = dict(row)
    try:
        model = data.pop("model")
        effective = data.pop("effective")
    except KeyError as e:
        raise ConfigurationError(f"{where}: missing key {e.args[0]!r}") from e
    if not isinstance(model, str) or not model:
        raise ConfigurationError(f"{where}: model must be a non-empty string")
    if isinstance(effective, dt.datetime | dt.date):
        effective = effective.isoformat()
    unpriced = data.pop("unpriced", False)
    price = None if unpriced else price_from_row(f"{where} {model!r}", data)
    change = PriceChange(model, str(effective), price)
    change.since  # noqa: B018 - validates the date now, not at first use
    return change


def load_price_changes(path: str | Path) -> list[PriceChange]:
    """Dated price rows from a TOML file of `[[price]]` tables."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationError(f"{path}: {e}") from e
    unknown = sorted(set(data) - {"price", "schema"})
    if unknown:
        raise ConfigurationError(f"{path}: unknown top-level key(s) {unknown}; expected [[price]] tables")
    return [price_change_from_row(r, f"{path}: price") for r in data.get("price", ())]


def money(value: Decimal | None, unpriced: int = 0, currency: str = "USD") -> str:
    """`$1,234.57`; `unpriced` for None (never `$0`). Amounts under a cent keep three significant
    digits (`$0.000406`) rather than showing as `$0.00`. Rounds half up, like a bill; `unpriced` > 0
    appends how many billed rows had no price (`$2.55 + 3 unpriced`)."""
    if value is None:
        return "unpriced"
    symbol = "$" if currency == "USD" else f"{currency} "
    size = abs(value)
    if size == 0 or size >= _CENT:
        body = f"{size.quantize(_CENT, rounding=ROUND_HALF_UP):,}"
    else:
        body = f"{size.quantize(Decimal(1).scaleb(size.adjusted() - 2), rounding=ROUND_HALF_UP):f}"
    text = ("-" if value < 0 else "") + symbol + body
    return text + (f" + {unpriced} unpriced" if unpriced else "")


_CENT = Decimal("0.01")
