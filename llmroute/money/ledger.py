"""The cost ledger: one row per attempt, every attempt a provider may have billed.

Rows are appended by the router after each attempt, success or failure (a 429 bills nothing but is
still recorded, with zero usage, so failure rates and retries are visible). Costs are `Decimal`,
broken down by token kind; a model without a price gives `cost=None` and shows as unpriced — never $0.
Thread-safe and asyncio-safe (appends take one lock for a few microseconds; no awaits inside).

Memory: the ledger does not keep the row objects it is given. `record` packs each row into typed
columns (numbers in `array`s, repeated strings, hints, labels and prices interned), about 250 bytes a
row instead of about 1.1 KB as objects; reading (`rows`, iteration, `total`, `group_by`) rebuilds
equal `LedgerRow` objects. A row built with `price=` instead of `cost=` computes its `Cost` when read,
so neither the row nor the ledger holds four `Decimal`s per attempt.

A row is appended whole: every value is converted and checked before the first column changes, so a
row that cannot be kept (a number no column can hold) raises and leaves the ledger as it was.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, Protocol, cast

from ..hinting import RouteHints
from ..usage import Cost, FinishReason, Price, Usage

__all__ = ["Ledger", "LedgerRow", "Outcome", "RowSink", "Totals", "row_field"]

Outcome = Literal["ok", "truncated", "error", "cut", "rejected"]
"""`ok`: answered and complete; `truncated`: answered but cut (length, content filter);
`error`: the attempt failed; `cut`: a stream ended before the provider finished."""

_ids = itertools.count(1)
_NO_LABELS: Mapping[str, str] = MappingProxyType({})
_LAZY: Any = object()
"""Marks a row whose `cost` is computed from its `price` when read."""


@dataclass(frozen=True, slots=True, init=False)
class LedgerRow:
    """One attempt at one deployment.

    Give either `cost` (computed already) or `price` (the model's price: `cost` is then computed from
    `price` and `usage` each time it is read, exactly as `price.cost(usage)`; if both are given, `cost`
    wins and `price` is dropped). `price` takes no part in equality: a row equals another with the
    same facts and the same cost however it was built.
    """

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
    labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)
    """Labels the policy attached to this target (an A/B arm, a prefix fingerprint...)."""
    id: int = 0
    price: Price | None = field(default=None, compare=False, repr=False)
    """The price `cost` is computed from when read; None on rows given an explicit `cost`."""

    def __init__(
        self,
        call_id: str,
        attempt: int,
        timestamp: float,
        deployment: str,
        provider: str,
        requested_model: str,
        model: str,
        served_model: str | None,
        hints: RouteHints,
        usage: Usage,
        cost: Cost | None = _LAZY,
        latency_s: float = 0.0,
        outcome: Outcome = "ok",
        ttft_s: float | None = None,
        stream: bool = False,
        finish_reason: FinishReason | None = None,
        error: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        id: int | None = None,
        price: Price | None = None,
    ) -> None:
        s = object.__setattr__
        s(self, "call_id", call_id)
        s(self, "attempt", attempt)
        s(self, "timestamp", timestamp)
        s(self, "deployment", deployment)
        s(self, "provider", provider)
        s(self, "requested_model", requested_model)
        s(self, "model", model)
        s(self, "served_model", served_model)
        s(self, "hints", hints)
        s(self, "usage", usage)
        if cost is _LAZY:
            if price is None:
                s(self, "cost", None)  # no price, no cost given: unpriced
            # else the slot stays empty and __getattr__ computes the cost from the price
        else:
            s(self, "cost", cost)
            price = None  # an explicit cost wins; `price` is set only on rows that compute their cost
        s(self, "latency_s", latency_s)
        s(self, "outcome", outcome)
        s(self, "ttft_s", ttft_s)
        s(self, "stream", stream)
        s(self, "finish_reason", finish_reason)
        s(self, "error", error)
        s(self, "status_code", status_code)
        s(self, "request_id", request_id)
        s(self, "labels", labels if labels else _NO_LABELS)
        s(self, "id", next(_ids) if id is None else id)
        s(self, "price", price)

    def __getattr__(self, name: str) -> Any:
        # Only reached when a slot is empty: `cost` of a row built with `price=`.
        if name == "cost":
            price = self.price
            return price.cost(self.usage) if price is not None else None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def priced(self) -> bool:
        return self.price is not None or self.cost is not None

    @property
    def billed(self) -> bool:
        """Whether the provider may have billed this attempt (it used tokens)."""
        return self.usage.total_tokens > 0

    @property
    def cost_total(self) -> Decimal | None:
        cost = self.cost
        return cost.total if cost is not None else None

    def as_dict(self) -> dict[str, Any]:
        """A flat, JSON-friendly dict (Decimals as strings). Contains no secrets.

        `LedgerRow.from_dict` rebuilds an equal row from it (hints, labels and exact Decimals kept;
        values of `hints.extra` that JSON cannot hold are kept as their `str`).
        """
        usage = self.usage
        cost = self.cost
        hints = self.hints
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
            "task": hints.task,
            "sensitivity": hints.sensitivity,
            "tags": list(hints.tags),
            "user": hints.user,
            "budget": hints.budget,
            "max_cost": str(hints.max_cost) if hints.max_cost is not None else None,
            "latency": hints.latency,
            "extra": {str(k): _jsonable(v) for k, v in hints.extra.items()},
            "input_tokens": usage.input_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "output_tokens": usage.output_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "usage_estimated": usage.estimated,
            "usage_raw": usage.raw,
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerRow:
        """The inverse of `as_dict` (rows read back from JSONL or a store)."""
        cost = None
        if data.get("cost") is not None:
            cost = Cost(
                uncached_input=Decimal(data["cost_uncached_input"]),
                cache_read=Decimal(data["cost_cache_read"]),
                cache_write=Decimal(data["cost_cache_write"]),
                output=Decimal(data["cost_output"]),
                currency=data.get("currency") or "USD",
            )
            if cost.total != Decimal(data["cost"]):
                raise ValueError(f"row {data.get('id')}: cost parts do not add up to the total")
        max_cost = data.get("max_cost")
        hints = RouteHints(
            task=data.get("task"),
            sensitivity=data.get("sensitivity"),
            tags=tuple(data.get("tags") or ()),
            user=data.get("user"),
            budget=data.get("budget"),
            max_cost=Decimal(max_cost) if max_cost is not None else None,
            latency=data.get("latency"),
            extra=dict(data.get("extra") or {}),
        )
        usage = Usage(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            cache_read_tokens=int(data.get("cache_read_tokens") or 0),
            cache_write_tokens=int(data.get("cache_write_tokens") or 0),
            cache_write_1h_tokens=int(data.get("cache_write_1h_tokens") or 0),
            reasoning_tokens=int(data.get("reasoning_tokens") or 0),
            estimated=bool(data.get("usage_estimated")),
            raw=data.get("usage_raw"),
        )
        ttft = data.get("ttft_s")
        status = data.get("status_code")
        return cls(
            call_id=str(data["call_id"]),
            attempt=int(data["attempt"]),
            timestamp=float(data["timestamp"]),
            deployment=str(data["deployment"]),
            provider=str(data["provider"]),
            requested_model=str(data["requested_model"]),
            model=str(data["model"]),
            served_model=data.get("served_model"),
            hints=hints,
            usage=usage,
            cost=cost,
            latency_s=float(data.get("latency_s") or 0.0),
            outcome=data["outcome"],
            ttft_s=float(ttft) if ttft is not None else None,
            stream=bool(data.get("stream")),
            finish_reason=data.get("finish_reason"),
            error=data.get("error"),
            status_code=int(status) if status is not None else None,
            request_id=data.get("request_id"),
            labels=dict(data.get("labels") or {}),
            id=int(data["id"]),
        )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


@dataclass(frozen=True, slots=True)
class Totals:
    """Aggregates over a set of rows. `cost` sums priced rows only; `unpriced` counts the billed rows
    without a price (their cost is unknown, never $0)."""

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
        row_cost = row.cost
        if row_cost is None:
            if row.usage.total_tokens:
                unpriced += 1
        else:
            cost += row_cost.total
    return Totals(attempts, len(calls), errors, usage, cost, unpriced)


class RowSink(Protocol):
    """Something that keeps rows elsewhere (`llmroute.money.store.SQLiteStore`)."""

    def attach(self, ledger: Ledger) -> None: ...


class _Interner:
    """Values that repeat across rows (names, hints, labels, prices), stored once, coded as ints."""

    __slots__ = ("by_id", "index", "values")

    def __init__(self) -> None:
        self.values: list[Any] = [None]
        self.index: dict[Any, int] = {None: 0}
        self.by_id: dict[int, int] = {}  # id() of a value kept in `values` -> its code

    def code_object(self, value: Any, key: Callable[[Any], Any]) -> int:
        """Code an unhashable value: by identity first, then by `key(value)` (a tuple tagged with its
        kind, so hints, labels and target signatures never collide)."""
        code = self.by_id.get(id(value))
        if code is not None:
            return code
        k = key(value)
        code = self.index.get(k)
        if code is None:
            code = self.index[k] = len(self.values)
            self.values.append(value)
            self.by_id[id(value)] = code  # safe: `value` is kept alive by `values`
        return code


def _hints_key(hints: RouteHints) -> Any:
    try:
        extra: Any = tuple(sorted(hints.extra.items())) if hints.extra else ()
        hash(extra)
    except TypeError:
        extra = ("id", id(hints))  # unhashable extras: one entry per hints object
    return (
        "hints",
        hints.task,
        hints.sensitivity,
        hints.tags,
        hints.user,
        hints.budget,
        hints.max_cost,
        hints.latency,
        extra,
    )


def _labels_key(labels: Mapping[str, str]) -> Any:
    return ("labels", *labels.items())


_NAN = math.nan
_STREAM, _ESTIMATED, _SUSPECT = 1, 2, 4
_INTS = 9  # id, attempt, six token counts, status code (-1: none)
_FLOATS = 3  # timestamp, latency, ttft (NaN: none)


class _Columns:
    """The ledger's rows, column by column.

    What repeats from row to row is interned: the "target signature" (deployment, provider, requested
    and catalog model, served model, outcome, finish reason, error, price object) is one code; hints
    and labels are one code each. Numbers go into two flat arrays, nine ints and three floats a row.
    """

    __slots__ = (
        "call_ids",
        "costs",
        "flags",
        "floats",
        "hints",
        "interner",
        "ints",
        "labels",
        "last_hints",
        "n",
        "odd_call_ids",
        "raws",
        "request_ids",
        "signature",
    )

    def __init__(self) -> None:
        self.n = 0
        self.ints = array("q")
        self.floats = array("d")
        self.flags = array("B")
        self.signature = array("I")
        self.hints = array("I")
        self.labels = array("I")
        self.call_ids = bytearray()
        self.odd_call_ids: dict[int, str] = {}
        self.raws: dict[int, str] = {}  # `Usage.raw` of suspect rows (rare)
        self.request_ids: list[str | None] = []
        self.costs: dict[int, Cost] = {}  # rows given an explicit Cost (no price to recompute from)
        self.interner = _Interner()
        self.last_hints: tuple[Any, int] = (None, 0)

    def append(self, row: LedgerRow) -> None:
        """Append one row whole, or raise and change nothing (every value is converted and checked
        before the first column is touched: a failing append cannot shift the columns)."""
        n = self.n
        usage = row.usage
        status = row.status_code
        ints = array(
            "q",
            (
                row.id,
                row.attempt,
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.cache_write_1h_tokens,
                usage.reasoning_tokens,
                -1 if status is None else status,
            ),
        )  # raises OverflowError/TypeError for a value a column cannot hold, before any change
        ttft = row.ttft_s
        floats = array("d", (row.timestamp, row.latency_s, _NAN if ttft is None else ttft))
        raw = usage.raw
        flags = (
            (_STREAM if row.stream else 0)
            | (_ESTIMATED if usage.estimated else 0)
            | (_SUSPECT if raw is not None else 0)
        )
        interner = self.interner
        price = row.price
        key = (
            row.deployment,
            row.provider,
            row.requested_model,
            row.model,
            row.served_model,
            row.outcome,
            row.finish_reason,
            row.error,
            id(price),
        )
        index = interner.index
        code = index.get(key)
        if code is None:  # keep `price` alive in the value, so its id() stays unique
            code = index[key] = len(interner.values)
            interner.values.append((*key[:-1], price))
        hints = row.hints
        last, hints_code = self.last_hints
        if hints is not last:  # attempts of one call share their hints object
            hints_code = interner.code_object(hints, _hints_key)
        labels = row.labels
        labels_code = interner.code_object(labels, _labels_key) if labels else 0
        cost = row.cost if price is None else None
        call_id = row.call_id
        packed = _pack_call_id(call_id) if isinstance(call_id, str) else None
        request_id = row.request_id
        # Nothing below can fail: the row goes in whole.
        self.ints.extend(ints)
        self.floats.extend(floats)
        self.flags.append(flags)
        self.signature.append(code)
        self.last_hints = (hints, hints_code)
        self.hints.append(hints_code)
        self.labels.append(labels_code)
        if cost is not None:
            self.costs[n] = cost
        if raw is not None:
            self.raws[n] = raw
        if packed is None:
            self.odd_call_ids[n] = call_id
            packed = _NO_ID
        self.call_ids += packed
        self.request_ids.append(request_id)
        self.n = n + 1

    def row(self, i: int) -> LedgerRow:
        values = self.interner.values
        ints = self.ints[_INTS * i : _INTS * i + _INTS]
        timestamp, latency, ttft = self.floats[_FLOATS * i : _FLOATS * i + _FLOATS]
        flags = self.flags[i]
        deployment, provider, requested, model, served, outcome, finish, error, price = values[
            self.signature[i]
        ]
        call_id = self.odd_call_ids.get(i)
        if call_id is None:
            call_id = self.call_ids[16 * i : 16 * i + 16].hex()
        status = ints[8]
        return LedgerRow(
            call_id,
            ints[1],
            timestamp,
            deployment,
            provider,
            requested,
            model,
            served,
            values[self.hints[i]],
            Usage(
                ints[2],
                ints[3],
                ints[4],
                ints[5],
                ints[6],
                ints[7],
                bool(flags & _ESTIMATED),
                self.raws.get(i) if flags & _SUSPECT else None,
            ),
            self.costs.get(i, _LAZY),
            latency,
            outcome,
            None if math.isnan(ttft) else ttft,
            bool(flags & _STREAM),
            finish,
            error,
            None if status < 0 else status,
            self.request_ids[i],
            values[self.labels[i]],
            ints[0],
            price,
        )

    def timestamp(self, i: int) -> float:
        return self.floats[_FLOATS * i]


_NO_ID = bytes(16)


def _pack_call_id(call_id: str) -> bytes | None:
    """32 lowercase hex digits (a uuid4().hex, what the router uses) as 16 bytes; else None."""
    if len(call_id) != 32:
        return None
    try:
        packed = bytes.fromhex(call_id)
    except ValueError:
        return None
    return packed if packed.hex() == call_id else None


class Ledger:
    """In-process record of every attempt. Share one between routers to pool their spend.

    `store`: also keep the rows elsewhere, e.g. `Ledger(store=SQLiteStore("ledger.db"))` (the store
    subscribes to this ledger; see `llmroute.money.store`). `rows`: rows to start with (not re-sent to
    listeners or the store).
    """

    def __init__(self, rows: Iterable[LedgerRow] = (), *, store: RowSink | None = None) -> None:
        self._columns = _Columns()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[LedgerRow], None]] = []
        self.extend(rows)
        if store is not None:
            store.attach(self)

    def record(self, row: LedgerRow) -> None:
        """Append a row, then call each listener with it (on the calling thread). A listener that
        raises does not keep the others from the row; the first error is raised after all ran.

        With a store in its default mode (`SQLiteStore(durability="commit")`) the row is durable when
        this returns (see `llmroute.money.store`)."""
        with self._lock:
            self._columns.append(row)  # whole, or raises with nothing appended
        failure: Exception | None = None
        for listener in self._listeners:
            try:
                listener(row)
            except Exception as e:  # every listener still sees the row (a budget after a store)
                failure = failure or e
        if failure is not None:
            raise failure

    def extend(self, rows: Iterable[LedgerRow], *, notify: bool = False) -> int:
        """Append many rows (loading a saved ledger); listeners are called only if `notify`."""
        count = 0
        for row in rows:
            if notify:
                self.record(row)
            else:
                with self._lock:
                    self._columns.append(row)
            count += 1
        return count

    def subscribe(self, listener: Callable[[LedgerRow], None]) -> None:
        """Call `listener(row)` after each row is recorded (exporters, budgets, dashboards)."""
        self._listeners = [*self._listeners, listener]

    def unsubscribe(self, listener: Callable[[LedgerRow], None]) -> None:
        self._listeners = [x for x in self._listeners if x != listener]  # bound methods: ==, not is

    def __len__(self) -> int:
        return self._columns.n

    def __iter__(self) -> Iterator[LedgerRow]:
        columns = self._columns
        n = columns.n  # rows appended later are not part of this pass
        return (columns.row(i) for i in range(n))

    def rows(
        self,
        where: Callable[[LedgerRow], bool] | None = None,
        *,
        since: float | dt.datetime | dt.date | None = None,
        until: float | dt.datetime | dt.date | None = None,
        **equals: Any,
    ) -> list[LedgerRow]:
        """Rows matching a predicate and/or field equalities, e.g. `rows(deployment="a")`.

        Fields of the hints can be matched by name too: `rows(task="code_review")`; `tag="x"` matches
        rows whose tags include "x"; `day="2026-11-23"` (UTC). `since` (inclusive) and `until`
        (exclusive) bound `timestamp` (epoch seconds, or a datetime/date: naive means UTC).
        """
        lo = -math.inf if since is None else to_epoch(since)
        hi = math.inf if until is None else to_epoch(until)
        columns = self._columns
        n = columns.n
        selected = []
        for i in range(n):
            if not lo <= columns.timestamp(i) < hi:
                continue
            row = columns.row(i)
            if where is not None and not where(row):
                continue
            if equals and not all(_matches(row, k, v) for k, v in equals.items()):
                continue
            selected.append(row)
        return selected

    def total(self, where: Callable[[LedgerRow], bool] | None = None, **equals: Any) -> Totals:
        """Totals over the matching rows (all rows by default)."""
        return _totals(self.rows(where, **equals))

    def group_by(self, key: str | Callable[[LedgerRow], Any]) -> dict[Any, Totals]:
        """Totals per value of a field (`"model"`, `"deployment"`, `"task"`, `"day"`...) or of a function."""
        groups: dict[Any, list[LedgerRow]] = defaultdict(list)
        getter = key if callable(key) else (lambda row: row_field(row, key))
        for row in self:
            groups[getter(row)].append(row)
        return {k: _totals(v) for k, v in groups.items()}

    def clear(self) -> None:
        with self._lock:
            self._columns = _Columns()


_HINT_FIELDS = frozenset({"task", "sensitivity", "user", "budget", "latency", "tags", "max_cost"})


def row_field(row: LedgerRow, name: str) -> Any:
    """A row's value for a report field: its own fields, hint fields (`task`, `user`, `tags`...),
    `day` / `week` / `month` (UTC, of `timestamp`), or `label:NAME`."""
    if name in _HINT_FIELDS:
        return getattr(row.hints, name)
    if name in ("day", "week", "month", "hour"):
        return period_label(row.timestamp, name)
    if name.startswith("label:"):
        return row.labels.get(name[6:])
    return getattr(row, name)


_field = row_field  # the name this module used before


def _matches(row: LedgerRow, name: str, value: Any) -> bool:
    if name == "tag":
        return value in row.hints.tags
    return cast(bool, row_field(row, name) == value)


def period_label(timestamp: float, unit: str) -> str:
    """`2026-11-23` (day), `2026-W48` (ISO week), `2026-11` (month), `2026-11-23T14` (hour); UTC."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    if unit == "day":
        return moment.strftime("%Y-%m-%d")
    if unit == "month":
        return moment.strftime("%Y-%m")
    if unit == "hour":
        return moment.strftime("%Y-%m-%dT%H")
    if unit == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"unknown period {unit!r}; use day, week, month or hour")


def to_epoch(value: float | dt.datetime | dt.date) -> float:
    """Epoch seconds from a number, a datetime (naive = UTC) or a date (its UTC midnight)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    return float(value)
