"""`Fastest`: the quickest targets first, for interactive calls."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import ConfigurationError
from ..policy import RouteContext
from ._core import BuiltinPolicy, Memo, StepResult, Targets, make_step, matches, passthrough

__all__ = ["Fastest"]


class Fastest(BuiltinPolicy):
    """Preference: the lowest observed latency first, for `latency="interactive"` calls.

    ```python
    policy = Residency(...) | Cheapest() | Fastest(priors={"gpt-5.4-mini": 0.4, "deepseek-v3.2": 1.2})
    router.chat.completions.create(model="auto", messages=..., stream=True,
                                   route={"latency": "interactive"})
    ```

    The measure is the router's live `Health` of each target (an EWMA over real attempts): time to
    first token for streaming calls, full latency otherwise. A target not measured yet uses its prior
    (`priors`: model id / alias / deployment name -> seconds; the catalog has no speed field), and
    one with neither goes after the measured ones, in its current order ("not measured yet").
    Failures do not count here; cooldowns remove failing targets.

    Calls without `latency="interactive"` keep their order unless `always=True`.
    """

    def __init__(self, *, priors: Mapping[str, float] | None = None, always: bool = False) -> None:
        self.priors = dict(priors or {})
        for name, seconds in self.priors.items():
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
                raise ConfigurationError(
                    f"Fastest: prior for {name!r} must be a non-negative number of seconds"
                )
        self.always = always
        self._memo: Memo[StepResult] = Memo()
        self._prior_memo: Memo[tuple[float | None, ...]] = Memo()

    def _priors(self, candidates: Targets) -> tuple[float | None, ...]:
        found = self._prior_memo.get(candidates, None)
        if found is None:
            found = self._prior_memo.put(
                candidates,
                None,
                tuple(
                    next((float(s) for name, s in self.priors.items() if matches(t, name)), None)
                    for t in candidates
                ),
            )
        return found

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        if not self.always and ctx.hints.latency != "interactive":
            return passthrough(self._memo, self.name, candidates, "not an interactive call")
        priors = self._priors(candidates)
        stream = ctx.request.stream
        what = "time to first token" if stream else "latency"
        health = ctx.health
        keys: list[float] = []
        reasons: list[str] = []
        for target, prior in zip(candidates, priors, strict=True):
            observed = None
            if health is not None:
                state = health.get(target.name)
                observed = state.ttft_s if stream else state.latency_s
            if observed is not None:
                keys.append(observed)
                reasons.append(f"{what} ~{observed:.3g}s (observed)")
            elif prior is not None:
                keys.append(prior)
                reasons.append(f"{what} ~{prior:.3g}s (prior)")
            else:
                keys.append(math.inf)
                reasons.append(f"{what} not measured yet")
        order = sorted(range(len(candidates)), key=keys.__getitem__)
        return make_step(self.name, [candidates[i] for i in order], [reasons[i] for i in order])
