"""Routing policies: the decision of where each call goes, and why.

A policy is an object with one pure, synchronous method, `rank(ctx)`, that looks at the request, its
hints and the candidate targets, and returns the candidates it keeps, in order, each with a reason
(`target.keep("...")`), and optionally the ones it removes with a reason (`target.drop("...")`).
Candidates it does not mention are removed. Policies compose with `|` (or `Chain`): each one ranks
what the previous one kept, so gates (which only drop) go first and preferences (which reorder) after.

```python
class NoChinaForPII(Policy):
    def rank(self, ctx):
        for t in ctx.candidates:
            if ctx.hints.sensitivity == "pii" and t.jurisdiction == "CN":
                yield t.drop("PII may not leave US/EU")
            else:
                yield t.keep("allowed")

router = Router(deployments, policy=NoChinaForPII() | Requested())
```

The decision trace (every step's kept and dropped targets) is on `response.route.decision`.
A request no candidate survives fails with `NoRoute` before any network call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NoRoute, Rejection
from .hinting import RouteHints
from .target import Choice, Target

if TYPE_CHECKING:
    from .money.ledger import Ledger
    from .request import ChatRequest
    from .routing.health import Health

__all__ = ["Chain", "Choice", "Decision", "Policy", "Requested", "RouteContext", "Step", "Target"]


@dataclass(frozen=True, slots=True)
class Step:
    """What one policy did: the targets it kept (in order, with reasons) and the ones it dropped."""

    policy: str
    kept: tuple[tuple[str, str], ...]
    dropped: tuple[Rejection, ...]
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The ranked targets and the trace of how they were chosen."""

    targets: tuple[Target, ...]
    steps: tuple[Step, ...]
    shadow: Target | None = None
    """A candidate a `Shadow` policy picked to be asked too, in the background (not in `targets`)."""

    def labels_for(self, target: Target) -> Mapping[str, str]:
        """The labels every step attached to `target` (later steps win on the same key)."""
        merged: dict[str, str] = {}
        for step in self.steps:
            labels = step.labels.get(target.name)
            if labels:
                merged.update(labels)
        return merged

    def reasons(self) -> dict[str, list[str]]:
        """For each kept target, the reasons every step gave."""
        out: dict[str, list[str]] = {t.name: [] for t in self.targets}
        for step in self.steps:
            for name, reason in step.kept:
                if name in out and reason:
                    out[name].append(f"{step.policy}: {reason}")
        return out


@dataclass(frozen=True, slots=True)
class RouteContext:
    """Everything a policy may look at. Read-only.

    - `request`: the validated call; `hints`: its route hints.
    - `candidates`: the targets still in the running, in the order the previous step left them.
    - `requested`: the targets that match the `model=` the caller named (empty for `"auto"`).
    - `health`: live observations per target (failures, latency); `ledger`: spend so far.
    """

    request: ChatRequest
    hints: RouteHints
    candidates: tuple[Target, ...]
    requested: tuple[Target, ...] = ()
    health: Health | None = None
    ledger: Ledger | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_candidates(self, candidates: tuple[Target, ...]) -> RouteContext:
        return RouteContext(
            self.request, self.hints, candidates, self.requested, self.health, self.ledger, self.extra
        )


class Policy(ABC):
    """Base class of routing policies. Subclass it and implement `rank`."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        """Return the kept candidates in preference order (`t.keep(reason)`), and optionally the
        removed ones (`t.drop(reason)`). Must be pure: no I/O, no waiting."""

    def observe(self, outcome: Any) -> None:  # noqa: B027  # optional hook, empty by default
        """Called after every attempt with its ledger row; adaptive policies learn here."""

    def step(self, ctx: RouteContext, candidates: tuple[Target, ...]) -> tuple[Step, tuple[Target, ...]]:
        """One step of a decision over `candidates` (which replace `ctx.candidates`): the `Step`
        for the trace and the kept targets in order. The default runs `rank`; a policy may override
        it with an equivalent faster path (the built-ins do)."""
        local = ctx if candidates is ctx.candidates else ctx.with_candidates(candidates)
        return _run(self, local)

    def decide(self, ctx: RouteContext) -> Decision:
        """Run this policy and turn its choices into a `Decision`. Raises `NoRoute` if none remain."""
        step, kept = self.step(ctx, ctx.candidates)
        if not kept:
            raise NoRoute(step.dropped)
        return Decision(kept, (step,))

    def __or__(self, other: Policy) -> Chain:
        return Chain(self, other)


def _run(policy: Policy, ctx: RouteContext) -> tuple[Step, tuple[Target, ...]]:
    kept: list[Target] = []
    kept_reasons: list[tuple[str, str]] = []
    dropped: list[Rejection] = []
    labels: dict[str, Mapping[str, str]] = {}
    seen: set[str] = set()
    name = policy.name
    for choice in policy.rank(ctx):
        target = choice.target
        if target.name in seen:
            continue
        seen.add(target.name)
        if choice.kept:
            kept.append(target)
            kept_reasons.append((target.name, choice.reason))
            if choice.labels:
                labels[target.name] = choice.labels
        else:
            dropped.append(Rejection(target.name, name, choice.reason))
    for target in ctx.candidates:
        if target.name not in seen:
            dropped.append(Rejection(target.name, name, "not kept"))
    return Step(name, tuple(kept_reasons), tuple(dropped), labels), tuple(kept)


class Chain(Policy):
    """Policies applied in order; each ranks what the previous one kept."""

    def __init__(self, *policies: Policy) -> None:
        flat: list[Policy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, Chain) else (policy,))
        self.policies: tuple[Policy, ...] = tuple(flat)

    @property
    def name(self) -> str:
        return " | ".join(p.name for p in self.policies)

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        decision = self.decide(ctx)
        return [t.keep() for t in decision.targets]

    def step(self, ctx: RouteContext, candidates: tuple[Target, ...]) -> tuple[Step, tuple[Target, ...]]:
        decision = self.decide(ctx if candidates is ctx.candidates else ctx.with_candidates(candidates))
        reasons = decision.reasons()
        kept = tuple((t.name, "; ".join(reasons[t.name])) for t in decision.targets)
        dropped = tuple(r for s in decision.steps for r in s.dropped)
        return Step(self.name, kept, dropped), decision.targets

    def decide(self, ctx: RouteContext) -> Decision:
        candidates = ctx.candidates
        steps: list[Step] = []
        rejections: list[Rejection] = []
        for policy in self.policies:
            step, kept = policy.step(ctx, candidates)
            steps.append(step)
            if step.dropped:
                rejections.extend(step.dropped)
            if not kept:
                raise NoRoute(rejections)
            candidates = kept
        return Decision(candidates, tuple(steps))

    def observe(self, outcome: Any) -> None:
        for policy in self.policies:
            policy.observe(outcome)


class Requested(Policy):
    """The default: the model the caller named, then the fallback models in order.

    With `model="auto"` every candidate is kept: deployments of named models in the order they
    were configured, then the models that wildcard deployments serve (`Router.from_env()`'s), the
    cheapest estimated cost first (unpriced last). Put a preference policy before this one to choose
    otherwise. `fallbacks` lists catalog model ids, aliases or deployment names tried after the
    requested model, in order.
    """

    def __init__(self, fallbacks: Sequence[str] = ()) -> None:
        self.fallbacks = tuple(fallbacks)
        self._auto: tuple[tuple[Target, ...], tuple[Step, tuple[Target, ...]]] | None = None

    def step(self, ctx: RouteContext, candidates: tuple[Target, ...]) -> tuple[Step, tuple[Target, ...]]:
        """`model="auto"` over named deployments only (the common case) without a `Choice` per
        candidate: every candidate kept, in the configured order; the same `Step` as `rank` gives.
        The answer depends on `candidates` alone, so the last one is kept for the same tuple (the
        router passes its own, unchanged, while its deployments are). Anything else: `rank`."""
        if ctx.request.model == "auto":
            last = self._auto
            if last is not None and last[0] is candidates:
                return last[1]
            seen: set[str] = set()
            kept: list[Target] = []
            for t in candidates:
                if t.deployment.wildcard:
                    break
                if t.name not in seen:
                    seen.add(t.name)
                    kept.append(t)
            else:
                reason = "model='auto': configured order"
                result = Step(self.name, tuple((t.name, reason) for t in kept), ()), tuple(kept)
                self._auto = (candidates, result)  # one assignment: safe across threads
                return result
        return super().step(ctx, candidates)

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        if ctx.request.model == "auto":
            named = [
                t.keep("model='auto': configured order") for t in ctx.candidates if not t.deployment.wildcard
            ]
            return named + _cheapest_first([t for t in ctx.candidates if t.deployment.wildcard], ctx)
        requested = {t.name for t in ctx.requested}
        choices = [t.keep(f"requested {ctx.request.model!r}") for t in ctx.candidates if t.name in requested]
        taken = set(requested)
        for fallback in self.fallbacks:
            for t in ctx.candidates:
                if t.name not in taken and fallback in (t.deployment.name, *t.model.names()):
                    choices.append(t.keep(f"fallback {fallback!r}"))
                    taken.add(t.name)
        return choices


def _cheapest_first(targets: list[Target], ctx: RouteContext) -> list[Choice]:
    """`model="auto"` over the models wildcard deployments serve: cheapest estimated cost first."""
    from .money.estimate import estimate_cost

    costs = [(estimate_cost(ctx.request, t).cost, i, t) for i, t in enumerate(targets)]
    priced = sorted((c for c in costs if c[0] is not None), key=lambda c: (c[0], c[1]))
    unpriced = [c for c in costs if c[0] is None]
    return [
        t.keep(f"model='auto': est. ${cost:.6f}" if cost is not None else "model='auto': unpriced")
        for cost, _, t in [*priced, *unpriced]
    ]
