"""What the drop-in surface returns: the OpenAI SDK's own types, plus `.route`.

`RoutedChatCompletion` is an `openai.types.chat.ChatCompletion` subclass. Its routing information
lives in a private attribute exposed as `.route`, so `model_dump()`, `model_dump_json()` and
`to_dict()` give exactly the provider-shaped completion, and equality with a plain `ChatCompletion`
of the same content holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx2
from openai.types.chat import ChatCompletion, ParsedChatCompletion
from pydantic import PrivateAttr

from .usage import FinishReason, Usage

if TYPE_CHECKING:
    from .ledger import LedgerRow
    from .policy import Decision
    from .truncation import Verdict

__all__ = ["RouteInfo", "RoutedChatCompletion", "RoutedParsedChatCompletion"]


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


ContentT = TypeVar("ContentT")


class RoutedParsedChatCompletion(_Routed, ParsedChatCompletion[ContentT], Generic[ContentT]):
    """What `chat.completions.parse(...)` returns: the SDK's `ParsedChatCompletion`, plus `.route`."""

    _route: RouteInfo | None = PrivateAttr(default=None)
    _http_response: httpx2.Response | None = PrivateAttr(default=None)

    @classmethod
    def wrap(
        cls, parsed: ParsedChatCompletion[Any], routed: RoutedChatCompletion
    ) -> RoutedParsedChatCompletion[Any]:
        fields = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        result = cls.model_construct(_fields_set=parsed.model_fields_set, **fields)
        extra = parsed.model_extra
        if extra:
            result.__pydantic_extra__ = dict(extra)
        result._route = routed._route
        result._http_response = routed._http_response
        return result
