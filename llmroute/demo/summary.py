"""The demo's findings, computed from the outcomes, the ledger rows and what went over the wire.

Everything here is plain data (`Summary.as_dict()` is the `--json` output); `render` prints it and
`page` draws it.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ..catalog import Catalog
from ..money.ledger import LedgerRow
from ..money.pricing import money
from ..money.whatif import Repricing, narrate, reprice
from .fleet import MODELS
from .runner import Outcome
from .workload import FULL_MONTH, PII_MARKER, TASKS

__all__ = ["Summary", "WireRequest", "summarize_run"]


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One request as it left for a provider (the emulator's request log, or `--live`'s hook)."""

    provider: str
    body: str
    status: int | None = None
    fault: str | None = None


@dataclass(slots=True)
class Summary:
    """The report's figures, section by section (see docs/demo.md for how to read them)."""

    mode: str
    scale: float
    calls: int
    attempts: int
    elapsed_s: float
    prompt_layout: str
    policy: str = ""
    """The router's policy, as its name (`Residency | Capabilities | ...`)."""
    stable_tokens: int = 0
    """Tokens of the code reviews' stable part (guidelines and instructions), laid out first."""
    workload: list[dict[str, Any]] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list)
    placement: dict[str, dict[str, int]] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    truncation: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    bill: dict[str, Any] = field(default_factory=dict)
    whatif: str = ""
    failed: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No call failed and nothing personal reached a provider in China."""
        return not self.failed and self.gate.get("sent_to_cn", 0) == 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        data: dict[str, Any] = json.loads(json.dumps(out, default=str))  # Decimals as strings
        return data


# -- routing ------------------------------------------------------------------------------------------


def _attempt_word(row: LedgerRow) -> str:
    if row.outcome == "error":
        name = row.error or "error"
        status = f" {row.status_code}" if row.status_code else ""
        return f"{name}{status}"
    if row.finish_reason == "content_filter":
        return "content filter"
    if row.finish_reason == "length":
        return "hit max_tokens"
    return "cut silently"


def _table_reason(reason: str) -> str:
    # "code_review: 2nd choice (gpt-5.4)" -> "seed table: 2nd choice";
    # "default for task 'chat': 1st choice (...)" -> "default list: 1st choice"
    head, _, rest = reason.partition(": ")
    rest = rest.split(" (")[0] if rest else head
    return f"default list: {rest}" if head.startswith("default") else f"seed table: {rest}"


def _cooled_ahead(outcome: Outcome) -> list[str]:
    """Deployments the policy ranked before the one that answered but that were cooling down."""
    decision, served = outcome.decision, outcome.deployment
    if decision is None or served is None:
        return []
    ranked = next((tuple(n for n, _ in s.kept) for s in decision.steps if s.policy == "TaskType"), ())
    ahead = set(ranked[: ranked.index(served)]) if served in ranked else set(ranked)
    return [
        r.deployment
        for s in decision.steps
        if s.policy == "Cooldown"
        for r in s.dropped
        if r.deployment in ahead
    ]


def _why(outcome: Outcome) -> str:
    """Why the call landed where it did, in the policy's and the engine's own words."""
    decision, served = outcome.decision, outcome.deployment
    if decision is None or served is None:
        return outcome.error or "failed"
    parts: list[str] = []
    for step in decision.steps:
        for rejection in step.dropped:
            if step.policy == "Residency":
                parts.append(f"Residency removed {rejection.deployment}: {rejection.reason.split(' (')[0]}")
            elif step.policy != "Cooldown":
                parts.append(f"{step.policy} removed {rejection.deployment}")
    parts.extend(f"{name} cooling down" for name in _cooled_ahead(outcome))
    earlier: dict[str, Counter[str]] = defaultdict(Counter)
    for row in outcome.rows:
        if row.deployment != served:
            earlier[row.deployment][_attempt_word(row)] += 1
    for deployment, words in earlier.items():
        what = ", ".join(f"{w} x{n}" if n > 1 else w for w, n in words.items())
        parts.append(f"after {deployment}: {what}")
    table = next((dict(s.kept).get(served, "") for s in decision.steps if s.policy == "TaskType"), "")
    if table:
        parts.append(_table_reason(table))
    return "; ".join(parts)


def _routing(outcomes: Sequence[Outcome]) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    groups: Counter[tuple[str, str, str, str]] = Counter()
    placement: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        served = o.deployment or "(failed)"
        groups[(o.job.task, "pii" if o.job.pii else "-", served, _why(o))] += 1
        placement[o.job.task][served] += 1
    order = {t.name: i for i, t in enumerate(TASKS)}
    ranked = sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1], -kv[1]))
    rows: list[dict[str, Any]] = [
        {"task": task, "data": data, "deployment": dep, "calls": n, "why": why}
        for (task, data, dep, why), n in ranked
    ]
    tasks = sorted(placement, key=lambda t: order.get(t, 99))
    return rows, {task: dict(placement[task].most_common()) for task in tasks}


# -- the hard gate ------------------------------------------------------------------------------------


def _gate(
    outcomes: Sequence[Outcome], rows: Sequence[LedgerRow], wire: Sequence[WireRequest], catalog: Catalog
) -> dict[str, Any]:
    def jurisdiction(provider: str) -> str:
        spec = catalog.provider(provider)
        return spec.jurisdiction if spec is not None else "unknown"

    pii_calls = [o for o in outcomes if o.job.pii]
    removed = sum(
        1
        for o in pii_calls
        if o.decision is not None and any(s.policy == "Residency" and s.dropped for s in o.decision.steps)
    )
    carrying: Counter[str] = Counter({r.provider: 0 for r in wire})
    for request in wire:
        if PII_MARKER in request.body:
            carrying[request.provider] += 1
    to_cn = sum(n for provider, n in carrying.items() if jurisdiction(provider) == "CN")
    cn_requests = sum(1 for r in wire if jurisdiction(r.provider) == "CN")
    ledger_cn = sum(1 for r in rows if r.hints.sensitivity == "pii" and jurisdiction(r.provider) == "CN")
    pii_rows = [r for r in rows if r.hints.sensitivity == "pii"]
    cheaper = reprice(pii_rows, MODELS["deepseek"], catalog=catalog) if pii_rows else None
    return {
        "pii_calls": len(pii_calls),
        "pii_by_task": dict(Counter(o.job.task for o in pii_calls)),
        "removed_by_residency": removed,
        "requests_with_pii": {f"{p} ({jurisdiction(p)})": n for p, n in carrying.most_common()},
        "requests_to_cn": cn_requests,
        "sent_to_cn": to_cn,
        "ledger_rows_to_cn": ledger_cn,
        "pii_cost": str(cheaper.actual) if cheaper else "0",
        "pii_cost_on_deepseek": str(cheaper.hypothetical) if cheaper else "0",
    }


# -- faults and truncation --------------------------------------------------------------------------


_FAULT_THEN = {
    "rate_limit": "waited its Retry-After and retried; after 3, the next deployment",
    "server_error": "retried, then the next deployment; a cooldown kept later calls away",
    "overloaded": "retried, then the next deployment",
    "content_filter": "re-asked on the next deployment",
    "silent_stop": "re-asked on the next deployment when detected (see 4.)",
}
_FAULT_NAMES = {
    "rate_limit": "rate limited (429, Retry-After)",
    "server_error": "outage (503)",
    "overloaded": "overloaded (503/529)",
    "content_filter": "content filter (finish_reason=content_filter)",
    "silent_stop": "silent stop (finish_reason=stop, cut mid-sentence)",
    "timeout": "timeout",
    "connection_reset": "connection reset",
}


def _faults(
    outcomes: Sequence[Outcome], wire: Sequence[WireRequest], cooldowns: Mapping[tuple[str, str], int]
) -> dict[str, Any]:
    kinds: Counter[tuple[str, str]] = Counter()
    for request in wire:
        if request.fault:
            kinds[(request.fault, request.provider)] += 1
        elif request.status is not None and request.status >= 400:
            kinds[(f"http_{request.status}", request.provider)] += 1
    retries = fallbacks = skipped = 0
    for o in outcomes:
        deployments = [r.deployment for r in o.rows]
        fallbacks += len(set(deployments)) > 1
        retries += sum(1 for a, b in itertools.pairwise(deployments) if a == b)
        skipped += bool(_cooled_ahead(o))
    return {
        "by_kind": [
            {
                "kind": _FAULT_NAMES.get(kind, kind),
                "provider": provider,
                "requests": n,
                "then": _FAULT_THEN.get(kind, "-"),
            }
            for (kind, provider), n in kinds.most_common()
        ],
        "faulty_requests": sum(kinds.values()),
        "retries": retries,
        "fallbacks": fallbacks,
        "cooldowns_opened": [
            {"deployment": name, "cause": cause, "times": n} for (name, cause), n in sorted(cooldowns.items())
        ],
        "calls_past_a_cooling_deployment": skipped,
        "failed_calls": sum(1 for o in outcomes if o.error),
    }


_ACTIONS = {
    "length": "retried on the same deployment with a larger max_tokens",
    "content_filter": "re-asked on the next deployment",
    "suspected": "re-asked on the next deployment",
    "stream_cut": "raised",
    "refusal": "returned, flagged",
}


def _truncation(
    outcomes: Sequence[Outcome], rows: Sequence[LedgerRow], wire: Sequence[WireRequest]
) -> dict[str, Any]:
    cut: Counter[str] = Counter()
    for row in rows:
        if row.outcome in ("truncated", "cut"):
            kind = {"length": "length", "content_filter": "content_filter"}.get(
                row.finish_reason or "", "suspected"
            )
            cut[kind] += 1
    final = Counter(o.verdict for o in outcomes if o.deployment is not None)
    reasons = Counter(r for o in outcomes for r in o.verdict_reasons if o.verdict != "complete")
    injected = Counter(r.fault for r in wire if r.fault in ("content_filter", "silent_stop"))
    return {
        "injected": dict(injected),
        "silent_stops_undetected": max(0, injected["silent_stop"] - cut["suspected"]),
        "cut_attempts": [
            {"verdict": kind, "attempts": n, "then": _ACTIONS.get(kind, "returned")}
            for kind, n in cut.most_common()
        ],
        "final_verdicts": dict(final.most_common()),
        "final_reasons": dict(reasons.most_common(5)),
    }


# -- cache and bill ----------------------------------------------------------------------------------


def _cache(rows: Sequence[LedgerRow], catalog: Catalog) -> dict[str, Any]:
    def share(selected: Iterable[LedgerRow]) -> tuple[float, int, int]:
        read = total = 0
        for r in selected:
            read += r.usage.cache_read_tokens
            total += r.usage.input_tokens
        return (read / total if total else 0.0), read, total

    overall, read, total = share(rows)
    by_task = {t.name: share(r for r in rows if r.hints.task == t.name)[0] for t in TASKS}
    out: dict[str, Any] = {
        "hit_share": overall,
        "cached_tokens": read,
        "input_tokens": total,
        "by_task": by_task,
    }
    try:
        from ..prefix import cache_report
    except ImportError:
        return out
    reviews = [r for r in rows if r.hints.task == "code_review"]
    report = cache_report(reviews, catalog=catalog)
    saved = cache_report(rows, catalog=catalog).total.saved
    out["code_review_cacheable_hit_share"] = report.total.hit_share
    out["code_review_cacheable_tokens"] = report.total.cacheable_tokens
    out["saved"] = str(saved) if saved is not None else None
    return out


def _bill(
    rows: Sequence[LedgerRow], catalog: Catalog, scale: float
) -> tuple[dict[str, Any], list[Repricing]]:
    whatifs = sorted(
        (reprice(rows, model, catalog=catalog) for model in MODELS.values() if catalog.model(model)),
        key=lambda w: w.hypothetical,
        reverse=True,
    )
    actual = whatifs[0].actual
    top = whatifs[0]
    per_deployment: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row.cost is not None:
            per_deployment[row.deployment] += row.cost.total
    return {
        "actual": str(actual),
        "by_deployment": {k: str(v) for k, v in sorted(per_deployment.items(), key=lambda kv: -kv[1])},
        "everything_on": {w.label: str(w.hypothetical) for w in whatifs},
        "estimates": {w.label: w.estimate for w in whatifs},
        "most_expensive_model": top.label,
        "most_expensive": str(top.hypothetical),
        "times_cheaper": float(top.hypothetical / actual) if actual else None,
        "full_month_actual": str(actual / Decimal(str(scale))) if scale else None,
        "full_month_most_expensive": str(top.hypothetical / Decimal(str(scale))) if scale else None,
        "full_month_calls": FULL_MONTH,
    }, whatifs


def summarize_run(
    outcomes: Sequence[Outcome],
    wire: Sequence[WireRequest],
    catalog: Catalog,
    cooldowns: Mapping[tuple[str, str], int],
    *,
    mode: str,
    scale: float,
    elapsed: float,
    prompt_layout: str,
    policy: str = "",
    stable_tokens: int = 0,
    incidents: Sequence[str] = (),
) -> tuple[Summary, list[LedgerRow], list[Repricing]]:
    """The summary, the month's ledger rows and the what-if repricings (for the HTML page)."""
    rows = [r for o in outcomes for r in o.rows]
    summary = Summary(
        mode=mode,
        scale=scale,
        calls=len(outcomes),
        attempts=len(rows),
        elapsed_s=round(elapsed, 2),
        prompt_layout=prompt_layout,
        policy=policy,
        stable_tokens=stable_tokens,
        incidents=list(incidents),
    )
    for task in TASKS:
        done = [o for o in outcomes if o.job.task == task.name]
        answered = [r for o in done for r in o.rows if r.outcome == "ok" and r.deployment == o.deployment]
        n = len(answered) or 1
        summary.workload.append(
            {
                "task": task.name,
                "calls": len(done),
                "pii": sum(1 for o in done if o.job.pii),
                "input_tokens": round(sum(r.usage.input_tokens for r in answered) / n),
                "output_tokens": round(sum(r.usage.output_tokens for r in answered) / n),
                "seed": task.sizes,
            }
        )
    summary.routing, summary.placement = _routing(outcomes)
    summary.gate = _gate(outcomes, rows, wire, catalog)
    summary.faults = _faults(outcomes, wire, cooldowns)
    summary.truncation = _truncation(outcomes, rows, wire)
    summary.cache = _cache(rows, catalog)
    summary.bill, whatifs = _bill(rows, catalog, scale)
    summary.failed = [o.error for o in outcomes if o.error]
    if rows:
        summary.whatif = narrate(
            rows,
            MODELS["deepseek"],
            tasks=["complex_debugging"],
            period="This month" if mode == "emulated" else "This run",
            catalog=catalog,
        )
    summary.bill["actual_money"] = money(Decimal(summary.bill["actual"]))
    return summary, rows, whatifs
