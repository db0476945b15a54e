"""Estimates before a call: prompt tokens and cost of a request on a target.

Policies (cheapest, context window, budget) and budget reservations use these; they never touch the
network. Prompt tokens come from `llmroute.tokens` under the target model's tokenizer, scaled by the
catalog's `tokenizer_factor` for models whose tokenizer is not tiktoken's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from ..usage import Usage

if TYPE_CHECKING:
    from ..request import ChatRequest
    from ..target import Target

__all__ = ["CostEstimate", "DEFAULT_OUTPUT_TOKENS", "estimate_cost", "estimate_prompt_tokens"]

DEFAULT_OUTPUT_TOKENS = 500
"""Expected output when the request sets no limit and nothing better is known."""


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """An estimated cost. `cost is None` when the target is unpriced; `exact_tokens` says whether
    the prompt was counted with the real tokenizer."""

    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    exact_tokens: bool


def estimate_prompt_tokens(request: ChatRequest, target: Target) -> tuple[int, bool]:
    """Prompt tokens of `request` on `target`, and whether the count is exact."""
    from .. import tokens

    model = target.model
    # Only an estimate (a reservation, a ranking): approximate counts are silent here.
    enc = tokens.encoder_for(target.api_name, model.tokenizer, warn=False)
    counter = enc.count
    count = 0
    for seg in tokens.prompt_segments(request.messages, request.body.get("tools")):
        count += seg if isinstance(seg, int) else counter(seg)
    if model.tokenizer_factor != 1.0:
        return round(count * model.tokenizer_factor), False
    return count, enc.exact


def estimate_cost(
    request: ChatRequest,
    target: Target,
    *,
    output_tokens: int | None = None,
    cache_read_share: float = 0.0,
) -> CostEstimate:
    """The expected cost of `request` on `target`.

    Output is `output_tokens` if given, else the request's max-tokens limit, else
    `DEFAULT_OUTPUT_TOKENS` (capped by the model's max output). `cache_read_share` is the expected
    share of the prompt served from the provider's cache.
    """
    prompt, exact = estimate_prompt_tokens(request, target)
    if output_tokens is None:
        output_tokens = request.max_output_tokens or DEFAULT_OUTPUT_TOKENS
        if target.model.max_output is not None:
            output_tokens = min(output_tokens, target.model.max_output)
    price = target.model.price
    cached = int(prompt * min(max(cache_read_share, 0.0), 1.0))
    cost = price.cost(Usage(prompt, output_tokens, cache_read_tokens=cached)).total if price else None
    return CostEstimate(prompt, output_tokens, cost, exact)
