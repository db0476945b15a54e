"""Preferences by name: `Prefer`, `TaskType`, and the A/B `Split`.

All three are stable partial orders: the targets they name move to the front in the order named,
and every other target keeps the order the previous policy left it in. That is what lets them
compose with `Cheapest` (see `llmroute.policies` on how preferences compose).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigurationError
from ..policy import RouteContext, Target
from ._core import BuiltinPolicy, Memo, StepResult, Targets, make_step, matches

__all__ = ["Prefer", "Split", "TaskType"]

Tier = str | Sequence[str]
"""One entry of a preference list: a name, or a list of names that are equally preferred."""


def _tiers(where: str, entries: Iterable[Tier] | str) -> tuple[tuple[str, ...], ...]:
    if isinstance(entries, str):
        entries = [entries]
    tiers: list[tuple[str, ...]] = []
    for entry in entries:
        names = (entry,) if isinstance(entry, str) else tuple(entry)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError(f"{where}: expected names or lists of names, got {entry!r}")
        tiers.append(names)
    return tuple(tiers)


class _Ranker:
    """Which tier of a preference list each target is in (memoised per target), and the reasons."""

    __slots__ = ("_ranks", "dropped", "reasons", "rest", "tiers")

    def __init__(self, tiers: tuple[tuple[str, ...], ...], why: str, rest: str | None) -> None:
        self.tiers = tiers
        self.reasons = tuple(
            f"{why}: {_nth(i + 1)} choice ({', '.join(tier)})" for i, tier in enumerate(tiers)
        )
        self.rest = rest
        self.dropped = f"{why}: not listed"
        self._ranks: dict[int, tuple[Target, int]] = {}

    def rank(self, target: Target) -> int:
        """The tier index of `target`; `len(tiers)` when no tier names it."""
        found = self._ranks.get(id(target))
        if found is not None and found[0] is target:
            return found[1]
        rank = next(
            (i for i, tier in enumerate(self.tiers) if any(matches(target, n) for n in tier)), len(self.tiers)
        )
        if len(self._ranks) >= 4096:
            self._ranks.clear()
        self._ranks[id(target)] = (target, rank)
        return rank

    def order(self, name: str, candidates: Targets, labels: Mapping[str, str] | None = None) -> StepResult:
        """Named targets first (tier by tier; within a tier in their current order), then the rest in
        their current order (or dropped when `rest` is None)."""
        ranks = [self.rank(t) for t in candidates]
        order = sorted(range(len(candidates)), key=ranks.__getitem__)
        listed = len(self.tiers)
        reasons = self.reasons
        kept: list[Target] = []
        why: list[str] = []
        dropped: list[tuple[Target, str]] = []
        for i in order:
            rank = ranks[i]
            if rank < listed:
                kept.append(candidates[i])
                why.append(reasons[rank])
            elif self.rest is not None:
                kept.append(candidates[i])
                why.append(self.rest)
            else:
                dropped.append((candidates[i], self.dropped))
        step, kept_tuple = make_step(name, kept, why, dropped, labels)
        return step, candidates if kept_tuple == candidates else kept_tuple


def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Prefer(BuiltinPolicy):
    """Preference: the named models or deployments first, in that order; the rest after, in their
    current order.

    ```python
    policy = Residency(...) | Prefer("gpt-5.4", "deepseek-v3.2")
    ```

    A name is a deployment name or any of a model's names (catalog id, API name, alias). A list in
    place of a name is a tier of equally preferred names, left in the order the previous policy gave
    them: `Prefer(["deepseek-v3.2", "deepseek-v4-flash"], "gpt-5.4")` after `Cheapest()` puts the
    cheaper of the two DeepSeek models first, then the other, then gpt-5.4.
    """

    def __init__(self, *names: Tier) -> None:
        self.tiers = _tiers("Prefer", names)
        self._ranker = _Ranker(self.tiers, "preferred", "not listed")
        self._memo: Memo[StepResult] = Memo()

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        found = self._memo.get(candidates, None)
        if found is None:
            found = self._memo.put(candidates, None, self._ranker.order(self.name, candidates))
        return found

    def __repr__(self) -> str:
        return f"Prefer{tuple(t[0] if len(t) == 1 else list(t) for t in self.tiers)!r}"


class TaskType(BuiltinPolicy):
    """Preference: per task (the `task` hint), an ordered list of models to use.

    ```python
    tasks = TaskType(
        {
            "code_review": ["deepseek-v3.2", "gpt-5.4"],
            "architecture": ["gpt-5.4"],
            "interactive_coding": [["gpt-5.4-mini", "deepseek-v4-flash"]],  # equally good
        },
        default=["deepseek-v3.2"],
    )
    ```

    The listed targets of the request's task (or `default` for an unlisted or missing task) go
    first, in list order; an entry may be a list of equally preferred names, which keep the order
    the previous policy gave them (put `Cheapest()` before `TaskType` to pick the cheapest of a
    tier). Names are deployment names or model ids / API names / aliases. Every other target follows
    in its current order, as a fallback; with `exclusive=True` they are removed instead ("not listed
    for code_review"), and so is everything for a task with an empty list.
    """

    def __init__(
        self,
        table: Mapping[str, Iterable[Tier] | str],
        *,
        default: Iterable[Tier] | str = (),
        exclusive: bool = False,
    ) -> None:
        if not isinstance(table, Mapping):
            raise ConfigurationError("TaskType: table must map task names to lists of models")
        self.table = {str(task): _tiers(f"TaskType: table[{task!r}]", v) for task, v in table.items()}
        self.default = _tiers("TaskType: default", default)
        self.exclusive = exclusive
        self._rankers: dict[str | None, _Ranker] = {}
        self._memo: Memo[StepResult] = Memo()

    def _ranker(self, task: str | None) -> _Ranker:
        ranker = self._rankers.get(task)
        if ranker is None:
            tiers = self.table.get(task) if task is not None else None
            why = (
                f"{task}"
                if tiers is not None
                else f"default for task {task!r}"
                if task
                else "default (no task)"
            )
            if tiers is None:
                tiers = self.default
            if len(self._rankers) >= 1024:
                self._rankers.clear()
            ranker = self._rankers[task] = _Ranker(
                tiers, why, None if self.exclusive else f"{why}: not listed"
            )
        return ranker

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        task = ctx.hints.task
        found = self._memo.get(candidates, task)
        if found is None:
            found = self._memo.put(candidates, task, self._ranker(task).order(self.name, candidates))
        return found

    def __repr__(self) -> str:
        return f"TaskType({len(self.table)} tasks, exclusive={self.exclusive})"


def bucket(value: str, salt: str = "") -> float:
    """A stable number in [0, 1) for `value` (blake2b, the same in every process and on every machine)."""
    digest = hashlib.blake2b(f"{salt}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Split(BuiltinPolicy):
    """Preference for A/B tests and gradual rollouts: a stable share of users per arm.

    ```python
    split = Split({"a": ["gpt-5.4"], "b": ["deepseek-v3.2"]}, weights={"a": 90, "b": 10})
    router = Router(deployments, policy=Residency(...) | split)
    reply = router.chat.completions.create(model="auto", messages=..., route={"user": "u-42"})
    reply.route.attempts[0].labels   # {"arm": "b"}: every ledger row of the call carries its arm
    ```

    - `arms`: arm -> the models (or deployments) it uses first, as in `Prefer` (tiers allowed).
    - `weights`: arm -> relative share (default: equal). Arms take consecutive slices of [0, 1) in
      the order given, so raising the weight of the LAST arm only moves users into it: a rollout
      from 10% to 20% keeps the first 10% where they were.
    - `key`: the hint that identifies who sticks to an arm: a `RouteHints` field (`"user"`, the
      default, `"task"`, `"budget"`...) or a key of `hints.extra` (`"session"`). The value is hashed
      with blake2b (with `salt`, to reshuffle for a new experiment), never Python's `hash`.
    - `label`: the label name recorded on ledger rows (default `"arm"`), so two splits can coexist.
    - `default_arm`: the arm for requests without the key; `None` (the default) leaves them unsplit
      (no label, order unchanged).

    The arm's models go first; the other targets follow in their current order as fallbacks.
    Every kept target carries the label, so fallback attempts are counted in the arm too.
    """

    def __init__(
        self,
        arms: Mapping[str, Iterable[Tier] | str],
        *,
        weights: Mapping[str, float] | None = None,
        key: str = "user",
        label: str = "arm",
        salt: str = "",
        default_arm: str | None = None,
    ) -> None:
        if not isinstance(arms, Mapping) or not arms:
            raise ConfigurationError("Split: arms must map at least one arm name to models")
        self.arms = {str(arm): _tiers(f"Split: arms[{arm!r}]", v) for arm, v in arms.items()}
        weights = dict(weights) if weights is not None else dict.fromkeys(self.arms, 1.0)
        unknown = sorted(set(weights) - set(self.arms))
        if unknown:
            raise ConfigurationError(f"Split: weights for unknown arms {unknown}; arms: {sorted(self.arms)}")
        for arm, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
                raise ConfigurationError(f"Split: weight of arm {arm!r} must be a non-negative number")
        total = float(sum(weights.get(arm, 0.0) for arm in self.arms))
        if total <= 0:
            raise ConfigurationError("Split: the weights must not all be zero")
        if default_arm is not None and default_arm not in self.arms:
            raise ConfigurationError(
                f"Split: default_arm {default_arm!r} is not an arm ({sorted(self.arms)})"
            )
        self.weights = {arm: float(weights.get(arm, 0.0)) for arm in self.arms}
        bounds: list[tuple[float, str]] = []
        edge = 0.0
        for arm in self.arms:
            edge += self.weights[arm] / total
            if self.weights[arm] > 0:
                bounds.append((edge, arm))
        self._bounds = tuple(bounds)
        self.key = key
        self.label = label
        self.salt = salt
        self.default_arm = default_arm
        self._rankers = {
            (arm, hinted): _Ranker(
                tiers,
                f"arm {arm!r}" if hinted else f"arm {arm!r} (default: no {key!r} hint)",
                f"arm {arm!r}: fallback" if hinted else f"arm {arm!r} (default): fallback",
            )
            for arm, tiers in self.arms.items()
            for hinted in (True, False)
        }
        self._memo: Memo[StepResult] = Memo()
        self._arm_of: dict[str, str] = {}

    def arm(self, value: str) -> str:
        """The arm a key value lands in (always the same one for the same value, salt and weights)."""
        found = self._arm_of.get(value)
        if found is None:
            point = bucket(value, self.salt)
            found = self._bounds[-1][1]
            for edge, arm in self._bounds:
                if point < edge:
                    found = arm
                    break
            if len(self._arm_of) >= 4096:
                self._arm_of.clear()
            self._arm_of[value] = found
        return found

    def _value(self, ctx: RouteContext) -> str | None:
        hints = ctx.hints
        key = self.key
        value = getattr(hints, key) if key in ("user", "task", "budget", "sensitivity", "latency") else None
        if value is None:
            value = hints.extra.get(key)
        return None if value is None else str(value)

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        value = self._value(ctx)
        arm = self.arm(value) if value is not None else self.default_arm
        memo_key = (arm, value is None)
        found = self._memo.get(candidates, memo_key)
        if found is not None:
            return found
        if arm is None:
            reason = f"no {self.key!r} hint: not split"
            result = make_step(self.name, candidates, reason)
            return self._memo.put(candidates, memo_key, (result[0], candidates))
        ranker = self._rankers[(arm, value is not None)]
        return self._memo.put(candidates, memo_key, ranker.order(self.name, candidates, {self.label: arm}))

    def __repr__(self) -> str:
        return f"Split({list(self.arms)!r}, weights={self.weights!r}, key={self.key!r})"
