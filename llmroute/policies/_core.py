"""What the built-in policies share: the fast `Pipeline`, per-request facts, estimates, memos.

Every built-in policy is written once, as `_step(ctx, candidates) -> (Step, kept)`: the exact
`Step` that `llmroute.policy.Chain` would record for it. `rank()` is derived from `_step`, so a
built-in behaves the same inside a plain `Chain` (next to user policies) as inside a `Pipeline`,
which calls `_step` directly and so skips building one `Choice` per candidate per policy.

Three things keep a decision in the microseconds:

- `facts(request)`: the request's needs and its prompt token count per tokenizer are computed once
  per request, however many policies and candidates ask (a memo of the last request per thread).
- `Memo`: a gate's verdict depends only on the candidate tuple and one small key (a sensitivity
  level, a set of needs, a task). Built-ins remember the resulting `Step` and kept tuple, keyed on
  the identity of the candidate tuple (the router passes the same tuple on every call) and return the
  very same kept tuple, so the next policy's memo hits too.
- Cost ranking uses per-target float coefficients (see `cost.py`), not one `Decimal` bill per target.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import Rejection
from ..money.estimate import DEFAULT_OUTPUT_TOKENS, CostEstimate, estimate_prompt_tokens
from ..policy import Chain, Choice, Policy, RouteContext, Step, Target
from ..usage import Usage

if TYPE_CHECKING:
    from ..catalog import ModelSpec
    from ..request import ChatRequest

__all__ = ["BuiltinPolicy", "Memo", "Pipeline", "RequestFacts", "StepResult", "estimate", "facts", "matches"]

Targets = tuple[Target, ...]
StepResult = tuple[Step, Targets]
"""What `_step` returns: the step and the kept targets in order."""
V = TypeVar("V")
_NO_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({})


# ---------------------------------------------------------------- per-request facts


class RequestFacts:
    """What every policy wants to know about one request, computed at most once.

    - `needs`: the capabilities a target must have (`ChatRequest.needs()`, plus `"reasoning"` when
      the request sets `reasoning_effort` to anything but `"none"`).
    - `prompt_tokens(target)`: `estimate.estimate_prompt_tokens` for that target, memoised per
      `(tokenizer, tokenizer_factor)`: the request is tokenised once per distinct tokenizer.
    """

    __slots__ = ("_needs", "_prompt", "max_tokens", "messages", "n_messages", "request")

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.max_tokens = request.max_output_tokens
        """The request's `max_completion_tokens` / `max_tokens`, or None."""
        self.messages = request.messages
        self.n_messages = len(request.messages)
        self._needs: frozenset[str] | None = None
        self._prompt: dict[tuple[str, float], tuple[int, bool]] = {}

    @property
    def needs(self) -> frozenset[str]:
        needs = self._needs
        if needs is None:
            request = self.request
            needs = request.needs()
            effort = request.body.get("reasoning_effort")
            if effort is not None and effort != "none":
                needs = needs | {"reasoning"}
            self._needs = needs
        return needs

    def prompt(self, target: Target) -> tuple[int, bool]:
        """Prompt tokens of the request on `target`, and whether the count is exact."""
        model = target.model
        key = (model.tokenizer, model.tokenizer_factor)
        found = self._prompt.get(key)
        if found is None:
            found = self._prompt[key] = estimate_prompt_tokens(self.request, target)
        return found

    def prompt_tokens(self, target: Target) -> int:
        return self.prompt(target)[0]


class _Last(threading.local):
    facts: RequestFacts | None = None


_last = _Last()


def facts(request: ChatRequest) -> RequestFacts:
    """The `RequestFacts` of `request`, shared by every policy that ranks it.

    One entry per thread is remembered: the last request seen, by identity, with its message list
    unchanged in identity and length. A decision asks many times about one request, then moves on.
    """
    last = _last.facts
    if (
        last is not None
        and last.request is request
        and last.messages is request.messages
        and last.n_messages == len(request.messages)
    ):
        return last
    last = _last.facts = RequestFacts(request)
    return last


def expected_output(request: ChatRequest, model: ModelSpec, output_tokens: int | None = None) -> int:
    """Output tokens as `estimate.estimate_cost` assumes them: `output_tokens` if given, else the
    request's max-tokens limit, else `DEFAULT_OUTPUT_TOKENS`, capped by the model's max output."""
    if output_tokens is not None:
        return output_tokens
    out = request.max_output_tokens or DEFAULT_OUTPUT_TOKENS
    if model.max_output is not None:
        out = min(out, model.max_output)
    return out


def estimate(
    request: ChatRequest, target: Target, *, output_tokens: int | None = None, cache_read_share: float = 0.0
) -> CostEstimate:
    """`estimate.estimate_cost`, exactly, but with the prompt counted once per request (`facts`)."""
    prompt, exact = facts(request).prompt(target)
    output = expected_output(request, target.model, output_tokens)
    price = target.model.price
    cached = int(prompt * min(max(cache_read_share, 0.0), 1.0))
    cost = price.cost(Usage(prompt, output, cache_read_tokens=cached)).total if price else None
    return CostEstimate(prompt, output, cost, exact)


def money(value: Decimal | float) -> str:
    """An estimated cost for a reason string: `$1.25`, `$0.012346`, `$0.000041` (to the micro-dollar)."""
    number = float(value)
    if number >= 1:
        return f"${number:,.2f}"
    if number >= 0.000001 or number == 0:
        return "$%.6f" % number  # noqa: UP031  # the fastest way to format a float
    return "<$0.000001"


# ---------------------------------------------------------------- names


def matches(target: Target, name: str) -> bool:
    """Whether `name` designates `target`: its deployment name, its target name, or any of its
    model's names (catalog id, API name, aliases)."""
    if name in (target.deployment.name, target.name, target.api_name):
        return True
    model = target.model
    return name in (model.id, model.api_name) or name in model.aliases


# ---------------------------------------------------------------- memo


class Memo(Generic[V]):
    """A small cache keyed on the identity of a candidate tuple plus a hashable key.

    Each entry holds the tuple itself, so its `id` cannot be reused while the entry lives. Bounded:
    when full it is emptied (the working set of a router is a handful of tuples and keys).
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, size: int = 256) -> None:
        self._entries: dict[tuple[int, Any], tuple[Targets, V]] = {}
        self._size = size

    def get(self, candidates: Targets, key: Any) -> V | None:
        entry = self._entries.get((id(candidates), key))
        if entry is not None and entry[0] is candidates:
            return entry[1]
        return None

    def put(self, candidates: Targets, key: Any, value: V) -> V:
        entries = self._entries
        if len(entries) >= self._size:
            entries.clear()
        entries[(id(candidates), key)] = (candidates, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


# ---------------------------------------------------------------- steps


def make_step(
    name: str,
    kept: Sequence[Target],
    reasons: Sequence[str] | str,
    dropped: Iterable[tuple[Target, str]] = (),
    labels: Mapping[str, str] | None = None,
) -> tuple[Step, Targets]:
    """The `Step` `llmroute.policy.Chain` would record, and the kept tuple.

    `reasons` is one reason per kept target, or one reason for all; `labels` go on every kept target.
    """
    kept_tuple = kept if isinstance(kept, tuple) else tuple(kept)
    names = [t.name for t in kept_tuple]
    if isinstance(reasons, str):
        pairs = tuple([(n, reasons) for n in names])
    else:
        pairs = tuple(zip(names, reasons, strict=True))
    rejections = tuple([Rejection(t.name, name, reason) for t, reason in dropped])
    step_labels = dict.fromkeys(names, labels) if labels else _NO_LABELS
    return Step(name, pairs, rejections, step_labels), kept_tuple


class BuiltinPolicy(Policy):
    """Base of the built-in policies: one `_step` implementation serves both `step` (the fast path
    every `Chain` takes) and `rank` (for code that calls a policy's `rank` directly).

    A subclass that overrides `rank` is run through its `rank`, like any user policy.
    """

    @abstractmethod
    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        """This policy's `Step` over `candidates` (which replace `ctx.candidates`), and the kept
        targets in order. Pure."""

    def step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        if type(self).rank is not BuiltinPolicy.rank:
            return super().step(ctx, candidates)
        return self._step(ctx, candidates)

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        step, kept = self._step(ctx, ctx.candidates)
        labels = step.labels
        choices = [
            target.keep(reason, **labels.get(name, {}))
            for target, (name, reason) in zip(kept, step.kept, strict=True)
        ]
        if step.dropped:
            by_name = {t.name: t for t in ctx.candidates}
            choices.extend(by_name[r.deployment].drop(r.reason) for r in step.dropped)
        return choices

    def __or__(self, other: Policy) -> Pipeline:
        return Pipeline(self, other)


class Pipeline(Chain):
    """A `Chain` of policies (what `|` on built-ins builds). Every `Chain` runs the built-ins on
    their fast path through `Policy.step`; this name stays for configuration and readability."""

    def __or__(self, other: Policy) -> Pipeline:
        return Pipeline(self, other)


def passthrough(memo: Memo[StepResult], name: str, candidates: Targets, reason: str) -> StepResult:
    """Keep every candidate, in order, with one `reason`; memoised on the candidate tuple."""
    key = ("=", reason)
    found = memo.get(candidates, key)
    if found is None:
        found = memo.put(candidates, key, make_step(name, candidates, reason))
    return found
