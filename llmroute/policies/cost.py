"""`Cheapest`: rank by expected cost, learning cache hits and answer lengths from the ledger."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigurationError
from ..money.estimate import DEFAULT_OUTPUT_TOKENS, CostEstimate
from ..money.ledger import LedgerRow
from ..policy import RouteContext, Step, Target
from ..request import ChatRequest
from ._core import BuiltinPolicy, Memo, StepResult, Targets, estimate, facts, money

__all__ = ["Cheapest"]

_MILLION = 1_000_000.0
_INF = math.inf
_UNPRICED = "unpriced: ranked last"
_COSTLIER = "est. costlier"
_NO_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({})


def _explain(cost: float) -> str:
    if cost < 1.0:
        return "est. $%.6f" % cost if cost >= 0.000001 or cost == 0 else "est. <$0.000001"  # noqa: UP031
    return _UNPRICED if cost == _INF else f"est. {money(cost)}"


class _Rates:
    """A target's prices as floats per token, and what else the ranking needs of it."""

    __slots__ = (
        "cache_read",
        "dep",
        "input",
        "lc_cache_read",
        "lc_input",
        "lc_output",
        "max_output",
        "model",
        "output",
        "threshold",
        "tier",
        "tokenizer",
    )

    def __init__(self, target: Target) -> None:
        model = target.model
        price = model.price
        self.dep = target.deployment.name
        self.model = model.id
        self.tier = -model.quality_tier
        self.max_output = model.max_output
        self.tokenizer = (model.tokenizer, model.tokenizer_factor)
        if price is None:
            self.input = self.cache_read = self.output = _INF
            self.lc_input = self.lc_cache_read = self.lc_output = _INF
            self.threshold = _INF
            return
        self.input = float(price.input) / _MILLION
        self.output = float(price.output) / _MILLION
        self.cache_read = float(price.cache_read) / _MILLION if price.cache_read is not None else self.input
        self.threshold = float(price.long_context_threshold) if price.long_context_threshold else _INF
        lc_in = price.long_context_input
        lc_out = price.long_context_output
        self.lc_input = float(lc_in) / _MILLION if lc_in is not None else self.input
        self.lc_output = float(lc_out) / _MILLION if lc_out is not None else self.output
        self.lc_cache_read = self.cache_read if price.cache_read is not None else self.lc_input


class _Entry:
    """Coefficients of one candidate tuple for one (task, max tokens): cost_i = p * a_i + b_i."""

    __slots__ = (
        "a",
        "b",
        "by_dep",
        "by_model",
        "by_tier",
        "epoch",
        "groups",
        "last_explain",
        "last_kept",
        "last_order",
        "last_tail",
        "max_tokens",
        "min_threshold",
        "n_priced",
        "names",
        "pos",
        "priced",
        "rates",
        "task",
        "tiers",
    )

    def __init__(self, candidates: Targets, task: str | None, max_tokens: int | None) -> None:
        self.task = task
        self.max_tokens = max_tokens
        self.rates = [_Rates(t) for t in candidates]
        self.names = [t.name for t in candidates]
        self.tiers = [r.tier for r in self.rates]
        self.priced = [t.model.price is not None for t in candidates]
        self.n_priced = sum(self.priced)
        self.by_tier = sorted(range(len(candidates)), key=self.tiers.__getitem__)  # stable: best tier first
        self.min_threshold = min((r.threshold for r in self.rates), default=_INF)
        reps: dict[tuple[str, float], Target] = {}
        for t in candidates:
            reps.setdefault((t.model.tokenizer, t.model.tokenizer_factor), t)
        self.groups = tuple(reps.values())
        self.by_dep: dict[str, list[int]] = {}
        self.by_model: dict[str, list[int]] = {}
        for i, r in enumerate(self.rates):
            self.by_dep.setdefault(r.dep, []).append(i)
            self.by_model.setdefault(r.model, []).append(i)
        self.a: list[float] = [0.0] * len(candidates)
        self.b: list[float] = [0.0] * len(candidates)
        self.epoch = -1
        self.pos = 0
        self.last_order: list[int] = []
        self.last_kept: Targets = ()
        self.last_tail: tuple[tuple[str, str], ...] = ()
        self.last_explain = -1


class Cheapest(BuiltinPolicy):
    """Preference: the lowest expected cost per call first.

    ```python
    policy = Residency(...) | Capabilities() | ContextWindow() | Cheapest(cache_prior=0.3)
    reply.route.decision.reasons()["ds"]  # [..., "Cheapest: est. $0.000412"]
    ```

    The expected cost of a target is `estimate.estimate_cost(request, target, output_tokens=...,
    cache_read_share=...)` with:

    - prompt tokens under the target's tokenizer (counted once per request and tokenizer);
    - the expected cache-hit share: cache-read tokens / input tokens over the rows observed for that
      deployment and the same `task` hint, else `cache_prior` (default 0);
    - the expected output tokens: the mean `output_tokens` of the `ok` rows observed for that task
      and model, capped by the request's max tokens; else the request's max tokens; else
      `output_prior`; always capped by the model's max output.

    History is what the policy has observed: the router calls `observe(row)` with every ledger row,
    and `warm(ledger)` feeds rows recorded before (a shared or reloaded ledger). Statistics are kept
    per (task, deployment) and (task, model) and updated incrementally; a decision never scans the
    ledger. Costs are compared in floating point (they are estimates, not bills).

    Unpriced targets go last, in their current order. Equal costs are broken by higher
    `quality_tier`, then by the current order (the sort is stable).

    Reasons carry the estimated cost of the first `explain` targets (default 8: a call rarely tries
    more); the others say "est. costlier". Formatting 50 costs would take longer than ranking them.
    """

    def __init__(
        self, *, cache_prior: float = 0.0, output_prior: int = DEFAULT_OUTPUT_TOKENS, explain: int = 8
    ) -> None:
        if not (isinstance(cache_prior, int | float) and 0.0 <= cache_prior <= 1.0):
            raise ConfigurationError(f"Cheapest: cache_prior must be a share in [0, 1], got {cache_prior!r}")
        if isinstance(output_prior, bool) or not isinstance(output_prior, int) or output_prior < 0:
            raise ConfigurationError(
                f"Cheapest: output_prior must be a non-negative integer, got {output_prior!r}"
            )
        if isinstance(explain, bool) or not isinstance(explain, int) or explain < 0:
            raise ConfigurationError(f"Cheapest: explain must be a non-negative integer, got {explain!r}")
        self.cache_prior = float(cache_prior)
        self.output_prior = output_prior
        self.explain = explain
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, str], list[int]] = {}  # (task, deployment) -> [read, input]
        self._output: dict[tuple[str | None, str], list[int]] = {}  # (task, model) -> [sum, count]
        self._share: dict[tuple[str | None, str], float] = {}
        self._mean: dict[tuple[str | None, str], float] = {}
        self._log: dict[str | None, list[tuple[bool, str]]] = {}  # task -> changes (is_deployment, name)
        self._epoch = 0
        self._memo: Memo[_Entry] = Memo()

    # -- history ----------------------------------------------------------------------------------

    def observe(self, outcome: Any) -> None:
        """Learn from one ledger row (the router calls this after every attempt)."""
        if not isinstance(outcome, LedgerRow):
            return
        row = outcome
        task = row.hints.task
        usage = row.usage
        with self._lock:
            log = self._log.setdefault(task, [])
            if usage.input_tokens > 0:
                key = (task, row.deployment)
                sums = self._cache.setdefault(key, [0, 0])
                sums[0] += usage.cache_read_tokens
                sums[1] += usage.input_tokens
                self._share[key] = sums[0] / sums[1]
                log.append((True, row.deployment))
            if row.outcome == "ok":
                key = (task, row.model)
                sums = self._output.setdefault(key, [0, 0])
                sums[0] += usage.output_tokens
                sums[1] += 1
                self._mean[key] = sums[0] / sums[1]
                log.append((False, row.model))
            if len(log) > 4096:  # entries that lag behind start over
                self._log = {}
                self._epoch += 1

    def warm(self, rows: Iterable[LedgerRow]) -> Cheapest:
        """Learn from rows recorded before this policy was attached (e.g. `warm(ledger)`). Returns self."""
        for row in rows:
            self.observe(row)
        return self

    def cache_share(self, task: str | None, deployment: str) -> float:
        """The expected cache-hit share of prompts for `task` on `deployment`."""
        return self._share.get((task, deployment), self.cache_prior)

    def output_tokens(self, request: ChatRequest, target: Target) -> int:
        """The expected output tokens of `request` on `target` (see the class docstring)."""
        return self._output_for(
            request.hints.task, request.max_output_tokens, target.model.id, target.model.max_output
        )

    def _output_for(
        self, task: str | None, max_tokens: int | None, model: str, max_output: int | None
    ) -> int:
        mean = self._mean.get((task, model))
        if mean is not None:
            out = round(mean) if max_tokens is None else min(round(mean), max_tokens)
        else:
            out = max_tokens if max_tokens is not None else self.output_prior
        return out if max_output is None else min(out, max_output)

    def estimate(self, request: ChatRequest, target: Target) -> CostEstimate:
        """The exact (`Decimal`) estimate this policy ranks `target` by, for `request`."""
        return estimate(
            request,
            target,
            output_tokens=self.output_tokens(request, target),
            cache_read_share=self.cache_share(request.hints.task, target.deployment.name),
        )

    # -- ranking ----------------------------------------------------------------------------------

    def _coefficients(self, entry: _Entry, indices: Iterable[int]) -> None:
        task = entry.task
        a, b = entry.a, entry.b
        for i in indices:
            r = entry.rates[i]
            if r.input == _INF:
                a[i], b[i] = 0.0, _INF
                continue
            share = self._share.get((task, r.dep), self.cache_prior)
            out = self._output_for(task, entry.max_tokens, r.model, r.max_output)
            a[i] = (1.0 - share) * r.input + share * r.cache_read
            b[i] = out * r.output

    def _refresh(self, entry: _Entry) -> None:
        """Bring the coefficients up to date with the history, touching only what changed."""
        log = self._log.get(entry.task)
        if entry.epoch == self._epoch and (log is None or len(log) == entry.pos):
            return  # nothing observed for this task since the last refresh
        with self._lock:
            log = self._log.get(entry.task)
            end = len(log) if log is not None else 0
            if entry.epoch != self._epoch:
                self._coefficients(entry, range(len(entry.rates)))
            elif log is not None:
                changed: set[int] = set()
                for is_deployment, name in log[entry.pos : end]:
                    changed.update((entry.by_dep if is_deployment else entry.by_model).get(name, ()))
                self._coefficients(entry, changed)
            entry.epoch = self._epoch
            entry.pos = end

    def _slow_cost(self, entry: _Entry, i: int, p: float) -> float:
        """cost_i(p) when a long-context rate may apply."""
        r = entry.rates[i]
        if p <= r.threshold:
            return p * entry.a[i] + entry.b[i]
        share = self._share.get((entry.task, r.dep), self.cache_prior)
        out = self._output_for(entry.task, entry.max_tokens, r.model, r.max_output)
        return p * ((1.0 - share) * r.lc_input + share * r.lc_cache_read) + out * r.lc_output

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        request = ctx.request
        task = ctx.hints.task
        request_facts = facts(request)
        max_tokens = request_facts.max_tokens
        key = (task, max_tokens)
        entry = self._memo.get(candidates, key)
        if entry is None:
            entry = self._memo.put(candidates, key, _Entry(candidates, task, max_tokens))
        if entry.epoch != self._epoch or entry.pos != len(self._log.get(task, ())):
            self._refresh(entry)
        groups = entry.groups
        if len(groups) == 1:
            p = float(request_facts.prompt_tokens(groups[0]))
            if p <= entry.min_threshold:
                costs = [p * a + b for a, b in zip(entry.a, entry.b, strict=False)]  # same length
            else:
                costs = [self._slow_cost(entry, i, p) for i in range(len(candidates))]
        else:
            prompts = {
                (t.model.tokenizer, t.model.tokenizer_factor): float(request_facts.prompt_tokens(t))
                for t in groups
            }
            costs = [self._slow_cost(entry, i, prompts[r.tokenizer]) for i, r in enumerate(entry.rates)]
        # Candidates pre-sorted by quality tier, then a stable sort by cost: equal costs keep the
        # better tier first, then the current order.
        order = sorted(entry.by_tier, key=costs.__getitem__)
        explain = self.explain
        names = entry.names
        if order == entry.last_order and explain == entry.last_explain:
            kept, tail = entry.last_kept, entry.last_tail
        else:
            kept = entry.last_kept = tuple([candidates[i] for i in order])
            priced = entry.n_priced
            tail = entry.last_tail = tuple(
                [
                    (names[i], _COSTLIER if n < priced else _UNPRICED)
                    for n, i in enumerate(order)
                    if n >= explain
                ]
            )
            entry.last_order = order
            entry.last_explain = explain
        head = tuple([(names[i], _explain(costs[i])) for i in order[:explain]])
        return Step(self.name, head + tail, (), _NO_LABELS), kept

    def __repr__(self) -> str:
        return f"Cheapest(cache_prior={self.cache_prior}, output_prior={self.output_prior})"
