"""`Shadow`: send a sample of calls to a candidate model too, in the background, and compare."""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..policy import Choice, Policy, RouteContext
from ._core import matches

__all__ = ["Shadow", "ShadowComparison", "shadow_report"]


class Shadow(Policy):
    """For a sample of calls, also ask `candidate` — in the background, after the caller has its
    answer, which is never changed — and record its answer's cost and latency in the ledger beside
    the primary's (labels `shadow=candidate`, `shadow_of=<call id>`): the "parallel run before
    switching" step of a migration. `shadow_report(ledger)` compares the two.

    ```python
    router = Router(deployments, policy=Residency(...) | Shadow("deepseek-v3.2", sample=0.1) | Requested())
    ```

    Put it after the gates: a candidate a gate removed is never shadowed (a PII call does not go to
    a forbidden provider in the background either). It keeps every candidate in its order.
    """

    def __init__(self, candidate: str, sample: float = 0.1, seed: int | None = None) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError("sample must be between 0 and 1")
        self.candidate = candidate
        self.sample = sample
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        with self._lock:
            sampled = self._random.random() < self.sample
        shadow = None
        if sampled:
            shadow = next((t for t in ctx.candidates if matches(t, self.candidate)), None)
        return [
            t.keep("shadow candidate", shadow="candidate") if t is shadow else t.keep()
            for t in ctx.candidates
        ]


@dataclass(frozen=True, slots=True)
class ShadowComparison:
    """The primary and the shadow candidate over the calls that were shadowed."""

    primary_model: str
    candidate_model: str
    calls: int
    primary_cost: Decimal | None
    candidate_cost: Decimal | None
    primary_latency_p50_s: float
    candidate_latency_p50_s: float
    candidate_failures: int


def shadow_report(rows: Iterable[Any]) -> list[ShadowComparison]:
    """Pair every shadow row with its primary call's answering row, per (primary, candidate) model."""
    rows = list(rows)
    answered = {r.call_id: r for r in rows if r.outcome in ("ok", "truncated") and "shadow" not in r.labels}
    pairs: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
    for row in rows:
        if row.labels.get("shadow") == "candidate":
            primary = answered.get(row.labels.get("shadow_of", ""))
            if primary is not None:
                pairs.setdefault((primary.model, row.model), []).append((primary, row))
    out = []
    for (primary_model, candidate_model), items in sorted(pairs.items()):
        out.append(
            ShadowComparison(
                primary_model,
                candidate_model,
                len(items),
                _sum(p.cost for p, _ in items),
                _sum(c.cost for _, c in items),
                statistics.median(p.latency_s for p, _ in items),
                statistics.median(c.latency_s for _, c in items),
                sum(1 for _, c in items if c.outcome == "error"),
            )
        )
    return out


def _sum(costs: Iterable[Any]) -> Decimal | None:
    total = Decimal(0)
    for cost in costs:
        if cost is None:
            return None
        total += cost.total
    return total
