"""Two configuration traps, caught (used by `RouterCore`):

- `Router(policy=..., fallbacks=[...])`: only the default policy (`Requested(fallbacks)`) reads the
  router's `fallbacks`; a custom policy never sees them. Refused with `ConfigurationError` unless
  the policy contains a `Requested` with those same fallbacks.
- A policy that does not keep the requested model first (a chain without `Requested`, or one that
  re-ranks after it) routes `model="deepseek-v3.2"` wherever it likes. When a call's requested
  model was neither placed first nor removed by a step with a reason (a gate, a cooldown), the
  decision trace gets a `ModelNotFollowed` step naming the model the policy chose instead, and the
  `llmroute.router` logger warns once per router and requested model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from .errors import ConfigurationError
from .policy import Chain, Decision, Policy, Requested, Step
from .target import Target

__all__ = ["STEP", "check_fallbacks", "IgnoredModelNotes"]

STEP = "ModelNotFollowed"
"""The name of the trace step added when the policy did not follow `model=`."""
log = logging.getLogger("llmroute.router")


def _members(policy: Policy) -> tuple[Policy, ...]:
    return policy.policies if isinstance(policy, Chain) else (policy,)


def check_fallbacks(policy: Policy | None, fallbacks: Sequence[str] | None) -> tuple[str, ...]:
    """The fallbacks the router uses to find wildcard targets: `fallbacks` (None: none), or the ones
    of a `Requested` in `policy`. Raises `ConfigurationError` when `fallbacks` is not a list of
    names (a lone string would be read letter by letter) or would be ignored."""
    if fallbacks is None:
        fallbacks = ()
    if isinstance(fallbacks, str | bytes) or not isinstance(fallbacks, Iterable):
        raise ConfigurationError(
            f"fallbacks must be a list of model or deployment names, got {type(fallbacks).__name__}"
            + (f": write fallbacks=[{fallbacks!r}]" if isinstance(fallbacks, str) else "")
        )
    given = tuple(fallbacks)
    wrong = [f for f in given if not isinstance(f, str)]
    if wrong:
        raise ConfigurationError(
            f"fallbacks must be model or deployment names (str), got {type(wrong[0]).__name__}"
        )
    if policy is None:
        return given
    inner = [m.fallbacks for m in _members(policy) if isinstance(m, Requested)]
    if given and given not in inner:
        raise ConfigurationError(
            f"fallbacks={list(given)} is only read by the default policy, and policy={policy.name!r} "
            f"is given: it would be ignored. Put the fallbacks in the policy, e.g. "
            f"policy=... | Requested({list(given)}), and drop fallbacks="
        )
    return given or next((f for f in inner if f), ())


class IgnoredModelNotes:
    """Adds the `ModelNotFollowed` trace step and logs the once-per-model warning."""

    def __init__(self) -> None:
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def check(self, decision: Decision, requested: tuple[Target, ...], model: str, policy: str) -> Decision:
        if not requested or not decision.targets:
            return decision
        wanted = {t.name for t in requested}
        first = decision.targets[0]
        if first.name in wanted:
            return decision
        removed = {r.deployment for s in decision.steps for r in s.dropped if r.reason != "not kept"}
        if wanted <= removed:  # every requested target was ruled out, each with its reason
            return decision
        ranked = [i for i, t in enumerate(decision.targets, 1) if t.name in wanted]
        where = f"ranked it #{ranked[0]}" if ranked else "did not rank it"
        why = (
            f"model={model!r} not followed: policy {policy} {where} and chose {first.name} "
            f"({first.model.id}); end the policy with Requested() to honour model="
        )
        step = Step(STEP, tuple((t.name, why if t is first else "") for t in decision.targets), ())
        with self._lock:
            warn = model not in self._warned
            self._warned.add(model)
        if warn:
            log.warning("llmroute: %s (said once per model)", why)
        return Decision(decision.targets, (*decision.steps, step), decision.shadow)
