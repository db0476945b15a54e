"""Cache-aware routing policies: prefix labels on the ledger, and affinity to the deployment that is warm.

```python
affinity = CacheAffinity()
router = Router(deployments, policy=Cheapest() | affinity, balancer=affinity.balancer())
```

- `PrefixLabel`: labels every attempt with its stable part's fingerprint (`prefix=...`) and that
  part's size in tokens (`prefix_tokens=...`), so the ledger can say, per prefix and per deployment,
  how much was cacheable and how much hit (`llmroute.prefix.cache_report`). Keeps the order.
- `CacheAffinity`: the same labels, and a preference: the deployment that served the same prefix
  within its provider's cache lifetime goes first among the deployments of its model (and, with
  `across_models=True`, before a cheaper-looking model, when its expected cost with the expected
  cache hits is lower). It learns from `observe(row)`: every ledger row the router records.
  `expected_hit_share(prefix, deployment)` exposes what it learned to cost policies.
- `affinity.balancer()`: deployments of one model are ordered by the router's balancer after the
  policy; this balancer keeps the affinity's order for groups it had an opinion on and asks another
  balancer (`WeightedRandom` by default) for the rest.

`rank` costs a few dictionary lookups: the fingerprint is memoised on the identity of the tool dicts
and system strings (a `PromptLayout` hands over the same objects every call), history is kept per
prefix, and token counts are only needed when `across_models` compares costs.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ..money.ledger import LedgerRow
from ..policy import RouteContext, Step, Target
from ..prefix._canon import StablePart, stable_part
from ..prefix.affinity import CACHE_LIFETIMES, DEFAULT_LIFETIME, EXTENDED_RETENTION
from ..prefix.layout import min_cache_tokens
from ..tokens import encoder_for, prompt_segments
from ._core import BuiltinPolicy, Memo, StepResult, Targets, passthrough

if TYPE_CHECKING:
    from ..request import ChatRequest

__all__ = ["CacheAffinity", "PrefixLabel"]

_ALPHA = 0.3  # weight of the newest observation in the expected hit share
_NO_LABELS: Mapping[str, Mapping[str, str]] = MappingProxyType({})


class _Stable:
    """Per-prefix facts shared by both policies: labels and stable token counts per tokenizer."""

    def __init__(self) -> None:
        self._labels: dict[tuple[str, str, float], Mapping[str, str]] = {}
        self._tokens: dict[tuple[str, str, float], int] = {}
        self._lock = threading.Lock()

    def part(self, request: ChatRequest) -> StablePart:
        return stable_part(request.messages, request.body.get("tools"), request.body)

    def tokens(self, request: ChatRequest, part: StablePart, target: Target) -> int:
        model = target.model
        key = (part.fingerprint, model.tokenizer, model.tokenizer_factor)
        found = self._tokens.get(key)
        if found is None:
            enc = encoder_for(target.api_name, model.tokenizer, warn=False)
            segments = prompt_segments(request.messages[: part.messages], request.body.get("tools"))[:-1]
            count = sum(s if isinstance(s, int) else enc.count(s) for s in segments)
            found = round(count * model.tokenizer_factor)
            with self._lock:
                if len(self._tokens) > 65_536:
                    self._tokens.clear()
                self._tokens[key] = found
        return found

    def step_labels(
        self, request: ChatRequest, part: StablePart, candidates: Sequence[Target]
    ) -> Mapping[str, Mapping[str, str]]:
        """`{target name: labels}` for a `Step`."""
        return {t.name: self.labels(request, part, t) for t in candidates}

    def labels(self, request: ChatRequest, part: StablePart, target: Target) -> Mapping[str, str]:
        model = target.model
        key = (part.fingerprint, model.tokenizer, model.tokenizer_factor)
        found = self._labels.get(key)
        if found is None:
            found = {"prefix": part.fingerprint, "prefix_tokens": str(self.tokens(request, part, target))}
            with self._lock:
                if len(self._labels) > 65_536:
                    self._labels.clear()
                self._labels[key] = found
        return found


class PrefixLabel(BuiltinPolicy):
    """Labels every candidate with `prefix=<fingerprint>` and `prefix_tokens=<n>`; keeps the order.

    Put it anywhere in a chain (`Requested() | PrefixLabel()`); `CacheAffinity` labels as well.
    """

    def __init__(self) -> None:
        self._stable = _Stable()
        self._memo: Memo[StepResult] = Memo()

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        part = self._stable.part(ctx.request)
        key = part.fingerprint if not part.empty else None
        found = self._memo.get(candidates, key)
        if found is None:
            labels = self._stable.step_labels(ctx.request, part, candidates) if key else _NO_LABELS
            pairs = tuple([(t.name, "") for t in candidates])
            found = self._memo.put(candidates, key, (Step(self.name, pairs, (), labels), candidates))
        return found


@dataclass(slots=True)
class _Seen:
    """What one deployment did with one prefix."""

    last: float
    lifetime: float
    share: float = 0.0
    warm_calls: int = 0
    read: int = 0
    input: int = 0


class CacheAffinity(BuiltinPolicy):
    """Preference: the deployment that holds this request's prefix in its cache goes first.

    - Among deployments of one model (replicas, keys, regions), a warm one (it served this prefix
      within its provider's cache lifetime, `lifetimes`) goes first; several warm ones by expected
      hit share. With `cold="hash"`, deployments cold for a prefix are ordered by a hash of the prefix
      (rendezvous hashing), so processes that share no state still agree where a prefix goes.
    - With `across_models=True`, the warm target with the lowest expected cost moves to the front
      when that beats the cost of the target ranked first (its own expected hits counted too).
      Expected cost: prompt tokens x (hit share x cache-read price + the rest x input price) +
      expected output x output price. Off by default: a request for one model stays on it.
    - Expected hit share of (prefix, deployment): an exponentially weighted mean of cache reads /
      input tokens over the calls that found it warm; before any such call, the stable part's share
      of the prompt when it reaches the model's minimum cacheable length.

    The ledger labels (`prefix`, `prefix_tokens`) are attached to every kept target. Put it after
    the gates and the cost preference: `... | Cheapest() | CacheAffinity()`, and give the router
    `balancer=affinity.balancer()` so a balancer does not undo its order among one model's
    deployments.
    """

    def __init__(
        self,
        *,
        across_models: bool = False,
        cold: Literal["balancer", "hash"] = "balancer",
        lifetimes: Mapping[str, float] | None = None,
        max_prefixes: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cold not in ("balancer", "hash"):
            raise ValueError(f"cold must be 'balancer' or 'hash', got {cold!r}")
        self.across_models = across_models
        self.cold = cold
        self.lifetimes: dict[str, float] = {**CACHE_LIFETIMES, **(lifetimes or {})}
        self.max_prefixes = max_prefixes
        self.clock = clock
        self._stable = _Stable()
        self._seen: OrderedDict[str, dict[str, _Seen]] = OrderedDict()
        self._retained: set[str] = set()  # prefixes sent with prompt_cache_retention="24h"
        self._lock = threading.Lock()
        self._memo: Memo[StepResult] = Memo()
        self._warm_memo: Memo[StepResult] = Memo(1024)

    def __repr__(self) -> str:
        return (
            f"CacheAffinity(across_models={self.across_models}, cold={self.cold!r}, "
            f"prefixes={len(self._seen)})"
        )

    # -- history ----------------------------------------------------------------------------------

    def observe(self, outcome: Any) -> None:
        """Learn from one ledger row: which deployment served which prefix, when, and how much hit."""
        if not isinstance(outcome, LedgerRow):
            return
        row = outcome
        prefix = row.labels.get("prefix")
        usage = row.usage
        if not prefix or usage.input_tokens <= 0:
            return
        lifetime = self.lifetimes.get(row.provider, DEFAULT_LIFETIME)
        if prefix in self._retained and row.provider == "openai":
            lifetime = max(lifetime, EXTENDED_RETENTION)
        if usage.cache_write_1h_tokens:
            lifetime = max(lifetime, 3600.0)
        with self._lock:
            per = self._seen.get(prefix)
            if per is None:
                per = self._seen[prefix] = {}
                if len(self._seen) > self.max_prefixes:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(prefix)
            seen = per.get(row.deployment)
            if seen is None:
                seen = per[row.deployment] = _Seen(row.timestamp, lifetime)
            else:
                if row.timestamp - seen.last <= seen.lifetime:  # it found the prefix warm
                    share = usage.cache_read_tokens / usage.input_tokens
                    seen.share = share if not seen.warm_calls else seen.share + _ALPHA * (share - seen.share)
                    seen.warm_calls += 1
                seen.last = max(seen.last, row.timestamp)
                seen.lifetime = max(seen.lifetime, lifetime)  # a 1h entry outlives the reads after it
            seen.read += usage.cache_read_tokens
            seen.input += usage.input_tokens

    def warm(self, rows: Iterable[LedgerRow]) -> CacheAffinity:
        """Learn from rows recorded before this policy was attached (e.g. `warm(ledger)`). Returns self."""
        for row in rows:
            self.observe(row)
        return self

    def forget(self) -> None:
        """Drop everything learned."""
        with self._lock:
            self._seen.clear()
            self._retained.clear()

    def expected_hit_share(
        self, prefix: str, deployment: str, *, now: float | None = None, prior: float = 0.5
    ) -> float:
        """The expected share of the prompt read from `deployment`'s cache for `prefix`: 0 when it
        never served it or its cache lifetime has passed; `prior` when it is warm but no call has
        measured a hit yet (`rank` uses the stable part's share of the prompt instead)."""
        seen = self._seen.get(prefix, {}).get(deployment)
        if seen is None or (self.clock() if now is None else now) - seen.last > seen.lifetime:
            return 0.0
        return seen.share if seen.warm_calls else prior

    def hit_shares(self, prefix: str, *, now: float | None = None) -> dict[str, float]:
        """`expected_hit_share` for every deployment warm for `prefix`."""
        moment = self.clock() if now is None else now
        with self._lock:  # observe() may add a deployment meanwhile
            seen_by = list(self._seen.get(prefix, {}).items())
        return {
            name: (seen.share if seen.warm_calls else 0.5)
            for name, seen in seen_by
            if moment - seen.last <= seen.lifetime
        }

    # -- ranking ----------------------------------------------------------------------------------

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        request = ctx.request
        stable = self._stable
        part = stable.part(request)
        if part.empty:
            return passthrough(self._memo, self.name, candidates, "no stable prefix")
        prefix = part.fingerprint
        if request.body.get("prompt_cache_retention") == "24h" and prefix not in self._retained:
            with self._lock:
                if len(self._retained) >= self.max_prefixes:
                    self._retained.clear()
                self._retained.add(prefix)
        per = self._seen.get(prefix)
        shares: dict[int, float] = {}
        if per:
            now = self.clock()
            for i, t in enumerate(candidates):
                seen = per.get(t.deployment.name)
                if seen is not None and now - seen.last <= seen.lifetime:
                    share = seen.share if seen.warm_calls else self._prior(request, part, t)
                    if share > 0:
                        shares[i] = share
        if not shares and self.cold == "balancer":  # the common cold case: one memoised step per prefix
            found = self._memo.get(candidates, prefix)
            if found is None:
                pairs = tuple([(t.name, "cold prefix") for t in candidates])
                labels = stable.step_labels(request, part, candidates)
                found = self._memo.put(candidates, prefix, (Step(self.name, pairs, (), labels), candidates))
            return found
        memo_key = None
        if not self.across_models:  # the order depends only on which are warm, and how warm
            memo_key = (prefix, *[(i, round(share * 100)) for i, share in shares.items()])
            memoised = self._warm_memo.get(candidates, memo_key)
            if memoised is not None:
                return memoised
        order = list(range(len(candidates)))
        reasons = dict.fromkeys(order, "cold prefix")
        for i, share in shares.items():
            reasons[i] = f"warm prefix, expected hit {share:.0%}"
        self._regroup(candidates, order, shares, prefix)
        if self.across_models and shares:
            self._cheaper_warm(request, candidates, order, shares, reasons)
        kept = tuple([candidates[i] for i in order])
        pairs = tuple([(candidates[i].name, reasons[i]) for i in order])
        result = (Step(self.name, pairs, (), stable.step_labels(request, part, kept)), kept)
        if memo_key is not None:
            self._warm_memo.put(candidates, memo_key, result)
        return result

    def _prior(self, request: ChatRequest, part: StablePart, target: Target) -> float:
        from ._core import facts

        stable = self._stable.tokens(request, part, target)
        if stable < min_cache_tokens(target.model, target.provider.name):
            return 0.0
        prompt = facts(request).prompt_tokens(target)
        return min(1.0, stable / prompt) if prompt else 0.0

    def _regroup(
        self,
        candidates: Sequence[Target],
        order: list[int],
        shares: Mapping[int, float],
        prefix: str,
    ) -> None:
        """Within each model's deployments: warm first (by expected share), then cold ones (in the
        given order, or by rendezvous hash with `cold="hash"`); each model keeps its positions."""
        groups: dict[str, list[int]] = {}
        for i in order:
            groups.setdefault(candidates[i].model.id, []).append(i)
        for members in groups.values():
            if len(members) < 2:
                continue
            warm = sorted((i for i in members if i in shares), key=lambda i: -shares[i])
            cold = [i for i in members if i not in shares]
            if not warm and self.cold != "hash":
                continue
            if self.cold == "hash":
                cold.sort(key=lambda i: _rendezvous(prefix, candidates[i].deployment.name), reverse=True)
            for slot, i in zip(sorted(members), warm + cold, strict=True):
                order[slot] = i

    def _cheaper_warm(
        self,
        request: ChatRequest,
        candidates: Sequence[Target],
        order: list[int],
        shares: Mapping[int, float],
        reasons: dict[int, str],
    ) -> None:
        head = order[0]
        best, best_cost = -1, math.inf
        for i in shares:
            cost = _expected_cost(request, candidates[i], shares[i])
            if cost < best_cost:
                best, best_cost = i, cost
        if best < 0 or best == head:
            return
        head_cost = _expected_cost(request, candidates[head], shares.get(head, 0.0))
        if best_cost < head_cost:
            order.remove(best)
            order.insert(0, best)
            reasons[best] = (
                f"warm prefix, expected hit {shares[best]:.0%}: est. ${best_cost:.6f} "
                f"vs ${head_cost:.6f} on {candidates[head].name}"
            )


def _expected_cost(request: ChatRequest, target: Target, share: float) -> float:
    from ._core import expected_output, facts

    price = target.model.price
    if price is None:
        return math.inf
    prompt = facts(request).prompt_tokens(target)
    read = float(price.cache_read if price.cache_read is not None else price.input)
    rate = (1.0 - share) * float(price.input) + share * read
    return (prompt * rate + expected_output(request, target.model) * float(price.output)) / 1_000_000


def _rendezvous(prefix: str, name: str) -> int:
    digest = hashlib.blake2b(f"{prefix}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
