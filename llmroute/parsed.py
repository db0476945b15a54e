"""What `chat.completions.parse(...)` returns (loaded with the first `parse` call: a generic pydantic
model costs milliseconds to build, which `import llmroute` should not pay)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx2
from openai.types.chat import ParsedChatCompletion
from pydantic import PrivateAttr

from .response import RoutedChatCompletion, RouteInfo, _Routed

__all__ = ["RoutedParsedChatCompletion"]

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
