"""`Budget`: keep calls within spending limits, and spend carefully near them."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from ..errors import ConfigurationError
from ..hinting import RouteHints
from ..policy import RouteContext, Target
from ._core import BuiltinPolicy, Memo, StepResult, Targets, estimate, make_step, money, passthrough

__all__ = ["Budget", "SpendView", "request_scopes", "target_scopes"]

GLOBAL = ""
"""The scope of the global budget."""

_Room = tuple[str, Decimal, Decimal | None]
"""A scope with a limit: (scope, remaining, limit)."""


@runtime_checkable
class SpendView(Protocol):
    """What `Budget` needs to know of spending: per scope, the limit and what is left of it.

    Scopes are named as `llmroute.money.budget` names them: `""` (global), `"budget:NAME"` (the `budget`
    hint), `"task:X"`, `"user:X"`, `"tag:X"`, `"extra:KEY=VALUE"`, `"model:X"`, `"provider:X"`,
    `"deployment:X"`. `None` means "no limit on this scope". `remaining` may be negative (or zero)
    once a limit is spent.
    """

    def remaining(self, scope: str) -> Decimal | None: ...

    def limit(self, scope: str) -> Decimal | None: ...


def _scope_name(scope: str) -> str:
    return "the global budget" if scope == GLOBAL else f"budget {scope!r}"


def request_scopes(hints: RouteHints) -> list[str]:
    """The scopes a call with these hints is charged to, whatever the target."""
    scopes = [GLOBAL]
    if hints.budget:
        scopes.append(f"budget:{hints.budget}")
    if hints.task:
        scopes.append(f"task:{hints.task}")
    if hints.user:
        scopes.append(f"user:{hints.user}")
    scopes.extend(f"tag:{tag}" for tag in hints.tags)
    scopes.extend(
        f"extra:{key}={value}" for key, value in hints.extra.items() if isinstance(value, str | int)
    )
    return scopes


def target_scopes(target: Target) -> list[str]:
    """The scopes an attempt at `target` is charged to, on top of the request's."""
    model = target.model
    scopes = [f"model:{model.id}"]
    if target.api_name != model.id:
        scopes.append(f"model:{target.api_name}")
    scopes.append(f"provider:{target.provider.name}")
    scopes.append(f"deployment:{target.deployment.name}")
    return scopes


class Budget(BuiltinPolicy):
    """Gate and preference: never cross a budget; near its limit, prefer cheaper models.

    ```python
    class Limits:  # anything with these two methods is a SpendView, e.g. llmroute.money.budget.Budgets
        def limit(self, scope):
            return {"": Decimal("100"), "budget:team-a": Decimal("5")}.get(scope)

        def remaining(self, scope):
            return {"": Decimal("80"), "budget:team-a": Decimal("0.50")}.get(scope)

    policy = Residency(...) | Cheapest() | TaskType(...) | Budget(Limits())
    router.chat.completions.create(model="auto", messages=..., route={"budget": "team-a"})
    ```

    The scopes that apply to a call on a target are the global scope `""`, the request's
    (`"budget:NAME"` for the `budget` hint, `"task:X"`, `"user:X"`, `"tag:X"`, `"extra:K=V"`) and,
    with `per_target=True` (the default), the target's (`"model:X"`, `"provider:X"`,
    `"deployment:X"`); a scope the view returns `None` for has no limit. Then:

    - gate: a target whose estimated cost exceeds what remains of any of its scopes is removed
      ("est. $0.031000 exceeds the $0.020000 left of budget 'budget:team-a'"). When none is left the
      call fails with `NoRoute` naming this gate, before anything is sent.
    - preference: when what remains of any applicable scope is below `threshold` of its limit
      (default 20%), the kept targets are re-sorted cheapest first (stable; unpriced last),
      overriding the order of the preferences before it. Otherwise the order is kept.

    The estimate is `estimate.estimate_cost` (max tokens or the default output, no cache hits: an
    upper bound for cached prompts). Unpriced targets cannot be charged: `unpriced="keep"` (the
    default) keeps them, `"drop"` removes them whenever a limit applies to them. Each scope is read
    once per decision; per-target scopes cost one read per distinct model, provider and deployment.
    """

    def __init__(
        self,
        spend: SpendView,
        *,
        threshold: float = 0.2,
        unpriced: Literal["keep", "drop"] = "keep",
        per_target: bool = True,
    ) -> None:
        if not isinstance(spend, SpendView):
            raise ConfigurationError("Budget: spend must have remaining(scope) and limit(scope) methods")
        if not (isinstance(threshold, int | float) and 0.0 <= threshold <= 1.0):
            raise ConfigurationError(f"Budget: threshold must be a share in [0, 1], got {threshold!r}")
        if unpriced not in ("keep", "drop"):
            raise ConfigurationError(f"Budget: unpriced must be 'keep' or 'drop', got {unpriced!r}")
        self.spend = spend
        self.threshold = Decimal(str(threshold))
        self.unpriced = unpriced
        self.per_target = per_target
        self._memo: Memo[StepResult] = Memo()

    def _near(self, room: _Room) -> bool:
        _, remaining, limit = room
        return remaining <= 0 or (limit is not None and (limit <= 0 or remaining / limit < self.threshold))

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        read: dict[str, _Room | None] = {}

        def look(scope: str) -> _Room | None:
            if scope not in read:
                remaining = self.spend.remaining(scope)
                limit = self.spend.limit(scope) if remaining is not None else None
                read[scope] = (
                    None
                    if remaining is None
                    else (scope, Decimal(remaining), None if limit is None else Decimal(limit))
                )
            return read[scope]

        shared = [room for room in map(look, request_scopes(ctx.hints)) if room is not None]
        kept: list[tuple[Decimal | None, Target, str]] = []
        dropped: list[tuple[Target, str]] = []
        near: _Room | None = next((room for room in shared if self._near(room)), None)
        for target in candidates:
            rooms = shared
            if self.per_target:
                own = [room for room in map(look, target_scopes(target)) if room is not None]
                rooms = shared + own if own else shared
            if not rooms:
                kept.append((None, target, "no budget limit"))
                continue
            cost = estimate(ctx.request, target).cost
            if cost is None:
                if self.unpriced == "keep":
                    kept.append((None, target, "unpriced: not charged to any budget"))
                else:
                    dropped.append((target, "unpriced: cannot be charged to a budget"))
                continue
            over = next((room for room in rooms if cost > room[1]), None)
            if over is not None:
                scope, remaining, _ = over
                left = money(remaining) if remaining > 0 else "nothing"
                dropped.append(
                    (target, f"est. {money(cost)} exceeds the {left} left of {_scope_name(scope)}")
                )
                continue
            kept.append((cost, target, f"est. {money(cost)} within budget"))
            if near is None:
                near = next((room for room in rooms if self._near(room)), None)
        if not read or all(room is None for room in read.values()):
            return passthrough(self._memo, self.name, candidates, "no budget limit")
        if near is not None and kept:
            scope, remaining, limit = near
            share = (
                f"{remaining / limit:.0%}" if limit is not None and limit > 0 and remaining > 0 else "none"
            )
            why = f"{_scope_name(scope)} has {share} left: cheapest first"
            kept.sort(key=lambda item: (item[0] is None, item[0] or 0))
            kept = [(cost, target, f"{reason}; {why}") for cost, target, reason in kept]
        return make_step(self.name, [t for _, t, _ in kept], [r for _, _, r in kept], dropped)
