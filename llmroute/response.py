"""What the drop-in surface returns: the OpenAI SDK's own types, plus `.route`.

`RoutedChatCompletion` is an `openai.types.chat.ChatCompletion` subclass. Its routing information
lives in a private attribute exposed as `.route`, so `model_dump()`, `model_dump_json()` and
`to_dict()` give exactly the provider-shaped completion, and equality with a plain `ChatCompletion`
of the same content holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar, cast

import httpx2
import pydantic
from openai._models import construct_type
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import PrivateAttr

from .usage import FinishReason, Usage

if TYPE_CHECKING:
    from .money.ledger import LedgerRow
    from .policy import Decision
    from .truncation import Verdict

__all__ = ["FastChunk", "RouteInfo", "RoutedChatCompletion", "build_model"]


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """How a call was routed and what it cost.

    - `deployment`, `provider`, `model`: where the answer came from (catalog model id).
    - `requested_model`: what the caller asked for; `served_model`: what the provider said it ran.
    - `attempts`: every attempt's ledger row, failed ones included, in order.
    - `decision`: the policy's ranked targets and the trace of each step's reasons.
    - `usage`: tokens of the successful attempt; `cost`: the whole call's cost over all attempts
      (`None` if any billed attempt was unpriced).
    - `finish_reason`: normalised ("unknown" for values the adapter does not know);
      `truncated`: the answer was cut (length, content filter, cut stream, suspected);
      `verdict`: the truncation detector's verdict with its reasons.
    """

    call_id: str
    deployment: str
    provider: str
    model: str
    requested_model: str
    served_model: str | None
    attempts: tuple[LedgerRow, ...]
    decision: Decision | None
    usage: Usage
    cost: Decimal | None
    finish_reason: FinishReason | None
    truncated: bool
    verdict: Verdict | None = None

    @property
    def fallbacks(self) -> int:
        """How many other deployments were tried before the one that answered."""
        return len({row.deployment for row in self.attempts}) - 1

    @property
    def retries(self) -> int:
        return len(self.attempts) - 1


def call_cost(rows: tuple[LedgerRow, ...]) -> Decimal | None:
    """The cost of a call over its attempts; None if a billed attempt has no price."""
    total = Decimal(0)
    for row in rows:
        if row.cost is None:
            if row.usage.total_tokens:
                return None
            continue
        total += row.cost.total
    return total


ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def build_model(cls: type[ModelT], data: object) -> ModelT:
    """Build a response model from JSON data: pydantic-core validation (2-6 us) where the SDK uses
    its pure-Python `construct_type` (about 50 us a chunk, 60 us a completion). Whatever validation
    rejects (an unknown finish_reason such as vLLM's "abort", a provider's odd field) is built
    exactly as the SDK builds it, so nothing the SDK accepts fails here."""
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError:
        return cast(ModelT, construct_type(type_=cls, value=data))


class _Routed:
    """`.route`, and equality by content with any `ChatCompletion` (routing info is not content)."""

    _route: RouteInfo | None

    @property
    def route(self) -> RouteInfo:
        if self._route is None:
            raise AttributeError("this completion was not produced by a router")
        return self._route

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChatCompletion) and isinstance(self, ChatCompletion):
            return self.model_dump() == other.model_dump()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class RoutedChatCompletion(_Routed, ChatCompletion):
    """A `ChatCompletion` that also says how it was routed (`.route`)."""

    _route: RouteInfo | None = PrivateAttr(default=None)
    _http_response: httpx2.Response | None = PrivateAttr(default=None)

    @classmethod
    def build(cls, *, response: httpx2.Response, data: object) -> RoutedChatCompletion:
        """How the SDK builds this type from a response (its `ModelBuilderProtocol`)."""
        return build_model(cls, data)


class FastChunk(ChatCompletionChunk):
    """Only a stream's `cast_to`: the SDK then builds each chunk with `build`, which returns a plain
    `ChatCompletionChunk` (never a `FastChunk`)."""

    @classmethod
    def build(cls, *, response: httpx2.Response, data: object) -> ChatCompletionChunk:
        try:
            return ChatCompletionChunk.model_validate(data)
        except pydantic.ValidationError:
            _check_chunk(data)  # lenient like the SDK, but never a chunk nothing can read
            return cast(ChatCompletionChunk, construct_type(type_=ChatCompletionChunk, value=data))


def _check_chunk(data: object) -> None:
    """Raise ValueError (a `MalformedResponse` once the adapter maps it) for a chunk whose
    `choices` is not a list of objects each with a `delta` object."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not all(
        isinstance(choice, dict) and isinstance(choice.get("delta"), dict) for choice in choices
    ):
        raise ValueError("a stream chunk without a list of choices, each with a delta")
