"""What would it have cost elsewhere? Repricing recorded rows on another model or routing table, and
estimating a workload that has not run yet.

```python
on_ds = reprice(ledger.rows(since=month_start), "deepseek-v3.2")
on_ds.actual, on_ds.hypothetical, on_ds.savings, on_ds.estimate, on_ds.notes
reroute(rows, {"code_review": "deepseek-v3.2"}).savings
narrate(rows, "deepseek-v3.2", tasks=["code_review"], period="This month")
# 'This month cost $27.25; on deepseek-v3.2 it would have cost $0.41; routing code review calls
#  there would have saved $26.84.'
```

Repricing keeps each row's token kinds: input, cache reads and writes, output and reasoning. Cache
reads are priced at the other model's cache rate only if it has one, else at its input rate; cache
writes likewise. Every attempt is repriced, failed ones included, as if the same attempts had happened
there. The figure is flagged as an estimate (`estimate=True`, with `notes` saying why) when the other
model's tokenizer differs (different provider, encoding or `tokenizer_factor`: token counts would
differ), when it lists no cache-read price but the rows had cache hits, when the rows' caching happened
under another provider's cache rules, when a row's model is not in the catalog, or when a row's usage
was itself estimated (a cut stream). `actual` is the recorded cost; with `prices=` (a `PriceTable`)
both sides use the price in force at each row's time.

Workload estimates (`Workload`, `estimate_workload`) compute a month of a described workload on each
model and routing table, exactly from the prices: cost is linear in the cached share of the input, so
`cache_share` may be any fraction and the result is still exact.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..catalog import Catalog, ModelSpec, default_catalog
from ..errors import ConfigurationError
from ..usage import Price, Usage
from .ledger import LedgerRow
from .pricing import PriceTable, money

__all__ = [
    "ModelEstimate",
    "Repricing",
    "RoutingEstimate",
    "TaskLoad",
    "Workload",
    "WorkloadEstimate",
    "estimate_workload",
    "load_workload",
    "narrate",
    "reprice",
    "reroute",
    "same_tokenizer",
]

_ZERO = Decimal(0)


def same_tokenizer(a: ModelSpec | None, b: ModelSpec) -> bool:
    """Whether token counts on `a` carry over to `b` unchanged: the same model, or the same provider
    with the same encoding and `tokenizer_factor` (vendors train their own tokenizers)."""
    if a is None:
        return False
    if a.id == b.id:
        return True
    return (
        a.provider == b.provider and a.tokenizer == b.tokenizer and a.tokenizer_factor == b.tokenizer_factor
    )


@dataclass(frozen=True, slots=True)
class Repricing:
    """Recorded cost versus the cost on another model or routing table.

    `actual` / `hypothetical` sum priced rows; `*_unpriced` count billed rows without a price on that
    side. `moved`: rows repriced on another model; the others keep their recorded cost.
    `savings`: actual - hypothetical over the moved rows (negative: it would have cost more), None
    when a moved row is unpriced on either side. `by_task`: task -> (actual, hypothetical)."""

    label: str
    rows: int
    moved: int
    actual: Decimal
    actual_unpriced: int
    hypothetical: Decimal
    hypothetical_unpriced: int
    estimate: bool
    notes: tuple[str, ...]
    savings: Decimal | None = None
    by_task: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        savings = self.savings
        return {
            "label": self.label,
            "rows": self.rows,
            "moved": self.moved,
            "actual": str(self.actual),
            "actual_unpriced": self.actual_unpriced,
            "hypothetical": str(self.hypothetical),
            "hypothetical_unpriced": self.hypothetical_unpriced,
            "savings": str(savings) if savings is not None else None,
            "estimate": self.estimate,
            "notes": list(self.notes),
            "by_task": {k: {"actual": str(a), "hypothetical": str(h)} for k, (a, h) in self.by_task.items()},
        }


def _resolve(catalog: Catalog, name: str) -> ModelSpec:
    spec = catalog.model(name)
    if spec is None:
        raise ConfigurationError(f"unknown model {name!r}: not in the catalog (see `llmroute prices`)")
    return spec


def _reprice(
    rows: Iterable[LedgerRow],
    choose: Callable[[LedgerRow], ModelSpec | None],
    label: str,
    catalog: Catalog,
    prices: PriceTable | None,
) -> Repricing:
    count = moved = actual_unpriced = hypo_unpriced = 0
    actual = hypothetical = _ZERO
    savings: Decimal | None = _ZERO
    notes: dict[str, None] = {}  # ordered set
    by_task: dict[str, list[Decimal]] = {}
    for row in rows:
        count += 1
        billed = row.usage.total_tokens > 0
        recorded = prices.cost(row) if prices is not None else row.cost
        if recorded is None:
            actual_unpriced += billed
            recorded_total = None
        else:
            recorded_total = recorded.total
            actual += recorded_total
        other = choose(row)
        if other is None or other.id == row.model:
            new_total = recorded_total
            if new_total is None:
                hypo_unpriced += billed
        else:
            moved += 1
            price: Price | None = (
                prices.price_at(other.id, row.timestamp) if prices is not None else other.price
            )
            if price is None:
                hypo_unpriced += billed
                new_total = None
                notes[f"{other.id} is unpriced"] = None
            else:
                new_total = price.cost(row.usage).total
            _flag(row, other, price, catalog, notes)
            if savings is not None and billed:
                if recorded_total is None or new_total is None:
                    savings = None
                else:
                    savings += recorded_total - new_total
        if new_total is not None:
            hypothetical += new_total
        task = row.hints.task or "(none)"
        pair = by_task.setdefault(task, [_ZERO, _ZERO])
        pair[0] += recorded_total or _ZERO
        pair[1] += new_total or _ZERO
    return Repricing(
        label,
        count,
        moved,
        actual,
        actual_unpriced,
        hypothetical,
        hypo_unpriced,
        bool(notes),
        tuple(notes),
        savings,
        {k: (v[0], v[1]) for k, v in by_task.items()},
    )


def _flag(
    row: LedgerRow, other: ModelSpec, price: Price | None, catalog: Catalog, notes: dict[str, None]
) -> None:
    usage = row.usage
    if not usage.total_tokens:
        return
    current = catalog.model(row.model)
    if current is None:
        notes[f"{row.model} is not in the catalog: its tokenizer and cache rules are unknown"] = None
    elif not same_tokenizer(current, other):
        notes[f"token counts are {current.id}'s; {other.id} tokenizes differently"] = None
    if usage.cache_read_tokens and price is not None and price.cache_read is None:
        notes[f"{other.id} lists no cache price: cached tokens billed at its input rate"] = None
    cached = usage.cache_read_tokens or usage.cache_write_tokens
    if cached and current is not None and current.provider != other.provider:
        notes[f"cache hits assume {other.provider}'s cache would have hit the same prefixes"] = None
    if usage.estimated:
        notes["some rows' usage was estimated (streams cut before the provider reported it)"] = None


def reprice(
    rows: Iterable[LedgerRow],
    model: str,
    *,
    catalog: Catalog | None = None,
    prices: PriceTable | None = None,
    where: Callable[[LedgerRow], bool] | None = None,
) -> Repricing:
    """Every row (or those `where` selects) as if it had run on `model`."""
    catalog = catalog if catalog is not None else (prices.catalog if prices else default_catalog())
    spec = _resolve(catalog, model)

    def choose(row: LedgerRow) -> ModelSpec | None:
        return spec if where is None or where(row) else None

    return _reprice(rows, choose, spec.id, catalog, prices)


def reroute(
    rows: Iterable[LedgerRow],
    routing: Mapping[str, str],
    *,
    default: str | None = None,
    catalog: Catalog | None = None,
    prices: PriceTable | None = None,
) -> Repricing:
    """Rows as if routed by `routing` (task -> model): a row whose task is in it moves to that model;
    other rows move to `default` if given (or a `"*"` key), else keep their recorded cost."""
    catalog = catalog if catalog is not None else (prices.catalog if prices else default_catalog())
    table = {task: _resolve(catalog, name) for task, name in routing.items() if task != "*"}
    fallback_name = default if default is not None else routing.get("*")
    fallback = _resolve(catalog, fallback_name) if fallback_name is not None else None

    def choose(row: LedgerRow) -> ModelSpec | None:
        return table.get(row.hints.task or "", fallback)

    label = ", ".join(f"{task} -> {spec.id}" for task, spec in table.items())
    if fallback is not None:
        label += f"{', ' if label else ''}* -> {fallback.id}"
    return _reprice(rows, choose, label, catalog, prices)


def _calls_phrase(task: str) -> str:
    return f"{task.replace('_', ' ')} calls"


def narrate(
    rows: Iterable[LedgerRow],
    model: str,
    *,
    tasks: Sequence[str] = (),
    period: str = "This period",
    catalog: Catalog | None = None,
    prices: PriceTable | None = None,
) -> str:
    """One paragraph: what the rows cost, what they would have cost on `model`, and what routing
    each of `tasks` there would have saved."""
    rows = list(rows)
    whole = reprice(rows, model, catalog=catalog, prices=prices)
    text = (
        f"{period} cost {money(whole.actual, whole.actual_unpriced)}; on {whole.label} it would have cost "
        f"{'about ' if whole.estimate else ''}{money(whole.hypothetical, whole.hypothetical_unpriced)}"
    )
    for task in tasks:
        moved = reroute(rows, {task: model}, catalog=catalog, prices=prices)
        savings = moved.savings
        if savings is None:
            text += f"; routing {_calls_phrase(task)} there: unknown (unpriced rows)"
        elif savings >= 0:
            text += f"; routing {_calls_phrase(task)} there would have saved {money(savings)}"
        else:
            text += f"; routing {_calls_phrase(task)} there would have cost {money(-savings)} more"
    return text + "."


# -- workloads -------------------------------------------------------------------------------------


def _dec(where: str, value: Any, *, share: bool = False) -> Decimal:
    if isinstance(value, bool):
        raise ConfigurationError(f"{where}: expected a number, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as e:
        raise ConfigurationError(f"{where}: not a number: {value!r}") from e
    if not number.is_finite() or number < 0 or (share and number > 1):
        raise ConfigurationError(f"{where}: expected {'a share from 0 to 1' if share else 'a number >= 0'}")
    return number


@dataclass(frozen=True, slots=True, init=False)
class TaskLoad:
    """One kind of request in a month: `requests` of `input_tokens` in and `output_tokens` out each.

    `cache_share`: the share of input tokens read from the provider's cache (0 to 1);
    `cache_write_share`: the share written to it (billed at cache-write rates where a model has them);
    `reasoning_tokens`: of the output, billed as output unless a model prices reasoning apart.
    Numbers may be given as int, str or Decimal (floats via their shortest repr). For a monthly token
    total, give `requests=1` and the totals."""

    task: str
    requests: Decimal
    input_tokens: int
    output_tokens: int
    cache_share: Decimal
    cache_write_share: Decimal
    reasoning_tokens: int

    def __init__(
        self,
        task: str,
        requests: Decimal | int | str | float,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_share: Decimal | int | str | float = 0,
        cache_write_share: Decimal | int | str | float = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        s = object.__setattr__
        where = f"workload task {task!r}"
        s(self, "task", task)
        s(self, "requests", _dec(f"{where}.requests", requests))
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("reasoning_tokens", reasoning_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{where}.{name}: expected a whole number >= 0, got {value!r}")
            s(self, name, value)
        s(self, "cache_share", _dec(f"{where}.cache_share", cache_share, share=True))
        s(self, "cache_write_share", _dec(f"{where}.cache_write_share", cache_write_share, share=True))
        if self.cache_share + self.cache_write_share > 1:
            raise ConfigurationError(f"{where}: cache_share + cache_write_share exceed 1")
        if reasoning_tokens > output_tokens:
            raise ConfigurationError(f"{where}: reasoning_tokens are part of output_tokens")

    def cost(self, price: Price) -> Decimal:
        """The month's cost of this task at `price`, exact.

        Per request, cost is linear in the cached and cache-written token counts (the input total, and
        so any long-context tier, is fixed), so with c(r, w) the cost when r of the input is read from
        cache and w written: c = c(0,0) + share * (c(all,0) - c(0,0)) + write_share * (c(0,all) - c(0,0)).
        """
        n, out, reasoning = self.input_tokens, self.output_tokens, self.reasoning_tokens
        base = price.cost(Usage(n, out, reasoning_tokens=reasoning)).total
        per_request = base
        if self.cache_share:
            cached = price.cost(Usage(n, out, cache_read_tokens=n, reasoning_tokens=reasoning)).total
            per_request += self.cache_share * (cached - base)
        if self.cache_write_share:
            written = price.cost(Usage(n, out, cache_write_tokens=n, reasoning_tokens=reasoning)).total
            per_request += self.cache_write_share * (written - base)
        return per_request * self.requests


@dataclass(frozen=True, slots=True)
class Workload:
    """A month of traffic described, not recorded: tasks, the models to compare, routing tables."""

    tasks: tuple[TaskLoad, ...]
    name: str = "workload"
    models: tuple[str, ...] = ()
    routings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], where: str = "workload") -> Workload:
        """From a parsed TOML/JSON document (see `load_workload`)."""
        unknown = sorted(set(data) - {"name", "task", "models", "routing", "schema"})
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {unknown}; allowed: name, task, models, routing"
            )
        tasks = []
        for row in data.get("task", ()):
            keys = {
                "name",
                "requests",
                "input_tokens",
                "output_tokens",
                "cache_share",
                "cache_write_share",
                "reasoning_tokens",
            }
            bad = sorted(set(row) - keys)
            if bad:
                raise ConfigurationError(f"{where}: task {row.get('name')!r}: unknown key(s) {bad}")
            missing = [k for k in ("name", "requests", "input_tokens", "output_tokens") if k not in row]
            if missing:
                raise ConfigurationError(f"{where}: task {row.get('name')!r}: missing key(s) {missing}")
            tasks.append(
                TaskLoad(
                    task=str(row["name"]),
                    requests=row["requests"],
                    input_tokens=row["input_tokens"],
                    output_tokens=row["output_tokens"],
                    cache_share=row.get("cache_share", _ZERO),
                    cache_write_share=row.get("cache_write_share", _ZERO),
                    reasoning_tokens=row.get("reasoning_tokens", 0),
                )
            )
        if not tasks:
            raise ConfigurationError(f"{where}: no [[task]] rows")
        routings = data.get("routing", {})
        if not isinstance(routings, Mapping) or not all(isinstance(v, Mapping) for v in routings.values()):
            raise ConfigurationError(f"{where}: routing must be tables of task = model, e.g. [routing.cheap]")
        return cls(
            tuple(tasks),
            str(data.get("name", where)),
            tuple(str(m) for m in data.get("models", ())),
            {str(k): {str(t): str(m) for t, m in v.items()} for k, v in routings.items()},
        )


def load_workload(path: str | Path) -> Workload:
    """A workload from a `.toml` or `.json` file:

    ```toml
    name = "code review bot"
    models = ["deepseek-v3.2", "gpt-5.4"]

    [[task]]
    name = "code_review"
    requests = 1000            # a month
    input_tokens = 8500        # each
    output_tokens = 400
    cache_share = 1.0          # share of input read from the provider cache

    [routing.cheap]            # task = model; "*" for every other task
    code_review = "deepseek-v3.2"
    "*" = "gpt-5.4"
    ```
    JSON takes the same keys (`"task": [...]`, `"routing": {"cheap": {...}}`).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"{path}: {e}") from e
    return Workload.from_data(data, str(path))


@dataclass(frozen=True, slots=True)
class ModelEstimate:
    """A workload's month on one model: per task and in total (None: the model is unpriced)."""

    model: str
    per_task: Mapping[str, Decimal | None]
    total: Decimal | None


@dataclass(frozen=True, slots=True)
class RoutingEstimate:
    """A workload's month under one routing table: each task's model and cost, and the total."""

    name: str
    per_task: Mapping[str, tuple[str, Decimal | None]]
    total: Decimal | None


@dataclass(frozen=True, slots=True)
class WorkloadEstimate:
    workload: Workload
    models: tuple[ModelEstimate, ...]
    routings: tuple[RoutingEstimate, ...]

    def as_dict(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return str(value) if value is not None else None

        return {
            "workload": self.workload.name,
            "tasks": [
                {
                    "name": t.task,
                    "requests": str(t.requests),
                    "input_tokens": t.input_tokens,
                    "output_tokens": t.output_tokens,
                    "cache_share": str(t.cache_share),
                }
                for t in self.workload.tasks
            ],
            "models": [
                {
                    "model": m.model,
                    "total": text(m.total),
                    "per_task": {k: text(v) for k, v in m.per_task.items()},
                }
                for m in self.models
            ],
            "routings": [
                {
                    "name": r.name,
                    "total": text(r.total),
                    "per_task": {k: {"model": mod, "cost": text(c)} for k, (mod, c) in r.per_task.items()},
                }
                for r in self.routings
            ],
        }


def estimate_workload(
    workload: Workload,
    models: Sequence[str] | None = None,
    routings: Mapping[str, Mapping[str, str]] | None = None,
    *,
    catalog: Catalog | None = None,
) -> WorkloadEstimate:
    """The workload's monthly cost on each model and under each routing table (defaults: the
    workload's own `models` and `routings`)."""
    catalog = catalog if catalog is not None else default_catalog()
    names = list(models if models else workload.models)
    tables = dict(routings if routings is not None else workload.routings)
    per_model = []
    for name in names:
        spec = _resolve(catalog, name)
        costs = {t.task: (t.cost(spec.price) if spec.price is not None else None) for t in workload.tasks}
        per_model.append(ModelEstimate(spec.id, costs, _sum(costs.values())))
    per_routing = []
    for table_name, table in tables.items():
        chosen: dict[str, tuple[str, Decimal | None]] = {}
        for load in workload.tasks:
            model_name = table.get(load.task, table.get("*"))
            if model_name is None:
                raise ConfigurationError(
                    f"routing {table_name!r} names no model for task {load.task!r} (add it, or a '*' row)"
                )
            spec = _resolve(catalog, model_name)
            chosen[load.task] = (spec.id, load.cost(spec.price) if spec.price is not None else None)
        per_routing.append(RoutingEstimate(table_name, chosen, _sum(c for _, c in chosen.values())))
    return WorkloadEstimate(workload, tuple(per_model), tuple(per_routing))


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    total = _ZERO
    for value in values:
        if value is None:
            return None
        total += value
    return total
