"""Gates that check a target can serve the request at all: `Capabilities`, `ContextWindow`, `MaxCost`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from ..catalog import CAPABILITIES, ModelSpec
from ..errors import ConfigurationError
from ..money.estimate import DEFAULT_OUTPUT_TOKENS
from ..policy import RouteContext, Target
from ._core import BuiltinPolicy, Memo, StepResult, Targets, estimate, facts, make_step, money, passthrough

__all__ = ["Capabilities", "ContextWindow", "MaxCost", "undescribed"]

_STAND_IN_CAPABILITIES = frozenset({"streaming"})


def undescribed(model: ModelSpec) -> bool:
    """Whether the catalog says nothing about `model`'s capabilities: no capability beyond streaming,
    no price and no context window. That is the stand-in row llmroute makes for a model name the
    catalog does not know (`catalog.unpriced_model`), or a bare `ModelSpec(id, provider, api_name)`."""
    return (
        model.price is None and model.context_window is None and model.capabilities <= _STAND_IN_CAPABILITIES
    )


class Capabilities(BuiltinPolicy):
    """Gate: remove targets whose model lacks a capability the request needs.

    ```python
    policy = Capabilities() | Cheapest()
    router.chat.completions.create(model="auto", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]}])  # deepseek-v3.2 (no "vision") is removed: "lacks vision (needs vision)"
    ```

    Needs come from the request (`ChatRequest.needs()`): `tools` (tools or functions given),
    `vision` (an image part), `json` / `json_schema` (`response_format`), `streaming`
    (`stream=True`), plus `reasoning` when `reasoning_effort` is set (to anything but `"none"`), and
    whatever you `require` on every call. They are checked against the catalog's `capabilities`.

    `strict_unknown=False` (the default) keeps *undescribed* models (see `undescribed`: the
    catalog does not know the model, so it cannot say what it lacks), with the reason
    "capabilities unknown". With `strict_unknown=True` they are held to their (empty) list and
    removed whenever the request needs anything beyond streaming.
    """

    def __init__(self, *, require: Iterable[str] = (), strict_unknown: bool = False) -> None:
        required = frozenset([require] if isinstance(require, str) else require)
        unknown = required - CAPABILITIES
        if unknown:
            raise ConfigurationError(
                f"Capabilities: unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}"
            )
        self.require = required
        self.strict_unknown = strict_unknown
        self._memo: Memo[StepResult] = Memo()

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        needs = facts(ctx.request).needs
        if self.require:
            needs = needs | self.require
        if not needs:
            return passthrough(self._memo, self.name, candidates, "needs nothing special")
        found = self._memo.get(candidates, needs)
        if found is not None:
            return found
        wanted = ", ".join(sorted(needs))
        kept: list[Target] = []
        reasons: list[str] = []
        dropped: list[tuple[Target, str]] = []
        for target in candidates:
            model = target.model
            missing = needs - model.capabilities
            if not missing:
                kept.append(target)
                reasons.append(f"has {wanted}")
            elif not self.strict_unknown and undescribed(model):
                kept.append(target)
                reasons.append(f"capabilities unknown (not in the catalog); needs {wanted}")
            else:
                dropped.append((target, f"{model.id} lacks {', '.join(sorted(missing))} (needs {wanted})"))
        step, kept_tuple = make_step(self.name, kept, reasons, dropped)
        return self._memo.put(candidates, needs, (step, candidates if not dropped else kept_tuple))


class _Bounds:
    """Of one candidate tuple: the smallest known window and max output (inf when none is known),
    one target per distinct tokenizer, and the step that keeps them all."""

    __slots__ = ("fits", "min_output", "min_window", "tokenizers")

    def __init__(self, name: str, candidates: Targets) -> None:
        windows = [t.model.context_window for t in candidates if t.model.context_window is not None]
        outputs = [t.model.max_output for t in candidates if t.model.max_output is not None]
        self.min_window: float = min(windows, default=math.inf)
        self.min_output: float = min(outputs, default=math.inf)
        self.tokenizers = tuple(
            {(t.model.tokenizer, t.model.tokenizer_factor): t for t in candidates}.values()
        )
        step, _ = make_step(name, candidates, "fits the context window")
        self.fits: StepResult = (step, candidates)


class ContextWindow(BuiltinPolicy):
    """Gate: the prompt and the answer must fit the model's context window.

    ```python
    policy = ContextWindow(margin=0.10) | Cheapest()
    # a 130,000-token prompt: gpt-5.4 (128,000 tokens) is removed,
    # "needs ~143,500 tokens (prompt ~130,000 +10% + 500 output), window 128,000"
    ```

    A target is kept when `ceil(prompt * (1 + margin)) + output <= model.context_window`, where
    `prompt` is `estimate.estimate_prompt_tokens` under the target's tokenizer (counted once per
    request and tokenizer), `margin` covers the estimator's error (default 5%), and `output` is the
    request's `max_completion_tokens` / `max_tokens`, else `default_output` (capped by the model's
    max output). Models with no known window are kept ("window unknown").

    With `check_max_output=True` (the default) a target is also removed when the request asks for
    more output tokens than the model's `max_output` (providers reject such calls with a 400).

    Long prompts and price: long-context surcharges (`Price.long_context_*`) are part of the cost
    estimate that `Cheapest` ranks by; the catalog has no "long-context efficient" field, so this
    gate does not reorder.
    """

    def __init__(
        self,
        *,
        margin: float = 0.05,
        default_output: int = DEFAULT_OUTPUT_TOKENS,
        check_max_output: bool = True,
    ) -> None:
        if not (isinstance(margin, int | float) and 0 <= margin < 1):
            raise ConfigurationError(f"ContextWindow: margin must be a fraction in [0, 1), got {margin!r}")
        if not isinstance(default_output, int) or isinstance(default_output, bool) or default_output < 0:
            raise ConfigurationError("ContextWindow: default_output must be a non-negative integer")
        self.margin = float(margin)
        self.default_output = default_output
        self.check_max_output = check_max_output
        self._memo: Memo[StepResult] = Memo()
        self._bounds: Memo[_Bounds] = Memo()

    def _limits(self, candidates: Targets) -> _Bounds:
        found = self._bounds.get(candidates, None)
        if found is None:
            found = self._bounds.put(candidates, None, _Bounds(self.name, candidates))
        return found

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        request_facts = facts(ctx.request)
        requested = request_facts.max_tokens
        margin = 1.0 + self.margin
        bounds = self._limits(candidates)
        # Fast path: the largest need (over the distinct tokenizers) fits the smallest window.
        tokenizers = bounds.tokenizers
        if len(tokenizers) == 1:
            worst = request_facts.prompt_tokens(tokenizers[0])
        else:
            worst = max([request_facts.prompt_tokens(t) for t in tokenizers], default=0)
        worst_need = math.ceil(worst * margin) + (requested if requested is not None else self.default_output)
        if worst_need <= bounds.min_window and (
            not self.check_max_output or requested is None or requested <= bounds.min_output
        ):
            return bounds.fits
        kept: list[Target] = []
        reasons: list[str] = []
        dropped: list[tuple[Target, str]] = []
        for target in candidates:
            model = target.model
            window = model.context_window
            if (
                self.check_max_output
                and requested is not None
                and model.max_output is not None
                and requested > model.max_output
            ):
                dropped.append(
                    (
                        target,
                        f"max tokens {requested:,} exceed {model.id}'s max output {model.max_output:,}",
                    )
                )
                continue
            if window is None:
                kept.append(target)
                reasons.append("window unknown")
                continue
            prompt = request_facts.prompt_tokens(target)
            output = requested if requested is not None else self.default_output
            if requested is None and model.max_output is not None:
                output = min(output, model.max_output)
            need = math.ceil(prompt * margin) + output
            if need <= window:
                kept.append(target)
                reasons.append(f"needs ~{need:,} of {window:,} tokens")
            else:
                dropped.append(
                    (
                        target,
                        f"needs ~{need:,} tokens (prompt ~{prompt:,} +{self.margin:.0%} "
                        f"+ {output:,} output), window {window:,}",
                    )
                )
        return make_step(self.name, kept, reasons, dropped)


class MaxCost(BuiltinPolicy):
    """Gate: remove targets whose estimated cost for this call exceeds the `max_cost` hint.

    ```python
    policy = MaxCost() | Cheapest()
    router.chat.completions.create(model="auto", messages=..., route={"max_cost": "0.01"})
    # gpt-5.4 removed: "est. $0.0135 > max_cost $0.01"
    ```

    The estimate is `estimate.estimate_cost` (prompt under the target's tokenizer; output = the
    request's max tokens, else `DEFAULT_OUTPUT_TOKENS`, capped by the model's max output; no cache
    hits assumed, so it is an upper bound for cached prompts). Without a `max_cost` hint every target
    is kept. Unpriced targets have no cost to compare: `unpriced="keep"` (the default) keeps them
    with the reason "unpriced"; `unpriced="drop"` treats an unknown cost as over the limit.
    """

    def __init__(self, *, unpriced: Literal["keep", "drop"] = "keep") -> None:
        if unpriced not in ("keep", "drop"):
            raise ConfigurationError(f"MaxCost: unpriced must be 'keep' or 'drop', got {unpriced!r}")
        self.unpriced = unpriced
        self._memo: Memo[StepResult] = Memo()

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        limit = ctx.hints.max_cost
        if limit is None:
            return passthrough(self._memo, self.name, candidates, "no max_cost hint")
        kept: list[Target] = []
        reasons: list[str] = []
        dropped: list[tuple[Target, str]] = []
        for target in candidates:
            cost = estimate(ctx.request, target).cost
            if cost is None:
                if self.unpriced == "keep":
                    kept.append(target)
                    reasons.append("unpriced: cost unknown, kept")
                else:
                    dropped.append((target, "unpriced: cost unknown"))
            elif cost <= limit:
                kept.append(target)
                reasons.append(f"est. {money(cost)} <= max_cost {money(Decimal(limit))}")
            else:
                dropped.append((target, f"est. {money(cost)} > max_cost {money(Decimal(limit))}"))
        return make_step(self.name, kept, reasons, dropped)
