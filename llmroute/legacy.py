"""The pre-1.0 module-level style: `llmroute.ChatCompletion.create(...)`.

`openai` itself removed `openai.ChatCompletion.create` (it now raises `APIRemovedInV1`). Code still
written that way works against llmroute by changing the import:

```python
import llmroute as openai
response = openai.ChatCompletion.create(model="gpt-5.4", messages=[...])
print(response["choices"][0]["message"]["content"])   # dict style, as before 1.0
print(response.choices[0].message.content)            # attribute style too
```

Calls go through a default router built on first use from the config file named by
`LLMROUTE_CONFIG`, or else from the SDKs' environment variables (`OPENAI_API_KEY` /
`OPENAI_BASE_URL`, `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`, `DEEPSEEK_API_KEY` /
`DEEPSEEK_BASE_URL`). Answers are `LegacyObject`s: dicts with attribute access, like the old
`OpenAIObject`, with `.route` attached.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .response import RouteInfo
    from .router import AsyncRouter, Router

__all__ = ["ChatCompletion", "LegacyObject", "reset_default_router", "set_default_router"]

_lock = threading.Lock()
_router: Router | None = None
_async_router: AsyncRouter | None = None

# Pre-1.0 per-call settings that have no place in a routed call.
_CREDENTIAL_ARGS = ("api_key", "api_base", "api_type", "api_version", "organization")


class LegacyObject(dict[str, Any]):
    """A dict whose keys are also attributes, recursively (the pre-1.0 `OpenAIObject`)."""

    route: RouteInfo | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @classmethod
    def wrap(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        if isinstance(value, list):
            return [cls.wrap(v) for v in value]
        return value

    def to_dict_recursive(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain


def _plain(value: Any) -> Any:  # returns plain dicts/lists all the way down
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _legacy(model: Any) -> LegacyObject:
    obj: LegacyObject = LegacyObject.wrap(model.model_dump(mode="json", exclude_unset=True))
    obj.route = getattr(model, "_route", None)
    return obj


def _translate(kwargs: dict[str, Any]) -> dict[str, Any]:
    for name in _CREDENTIAL_ARGS:
        if kwargs.get(name) is not None:
            raise InvalidRequest(
                name,
                "per-call credentials are not supported; configure deployments in the file named by "
                "LLMROUTE_CONFIG or through the provider's environment variables",
            )
        kwargs.pop(name, None)
    if "request_timeout" in kwargs:
        kwargs["timeout"] = kwargs.pop("request_timeout")
    for name in ("engine", "deployment_id"):
        if name in kwargs:
            value = kwargs.pop(name)
            kwargs.setdefault("model", value)
    return kwargs


def default_router() -> Router:
    global _router
    with _lock:
        if _router is None:
            from .router import Router

            _router = Router.from_env()
        return _router


def default_async_router() -> AsyncRouter:
    global _async_router
    with _lock:
        if _async_router is None:
            from .router import AsyncRouter

            _async_router = AsyncRouter.from_env()
        return _async_router


def set_default_router(router: Router | None = None, async_router: AsyncRouter | None = None) -> None:
    """Use these routers for `ChatCompletion.create` / `acreate` instead of building from the environment."""
    global _router, _async_router
    with _lock:
        _router, _async_router = router, async_router


def reset_default_router() -> None:
    """Forget the default routers; the next call builds them again from the environment."""
    set_default_router(None, None)


class ChatCompletion:
    """`openai.ChatCompletion` as it was before openai 1.0, served by a router."""

    @classmethod
    def create(cls, **kwargs: Any) -> Any:
        response = default_router().chat.completions.create(**_translate(kwargs))
        if kwargs.get("stream"):
            return _legacy_chunks(response)
        return _legacy(response)

    @classmethod
    async def acreate(cls, **kwargs: Any) -> Any:
        response = await default_async_router().chat.completions.create(**_translate(kwargs))
        if kwargs.get("stream"):
            return _alegacy_chunks(response)
        return _legacy(response)


def _legacy_chunks(stream: Any) -> Iterator[LegacyObject]:
    with stream:
        for chunk in stream:
            yield _legacy(chunk)


async def _alegacy_chunks(stream: Any) -> AsyncIterator[LegacyObject]:
    async with stream:
        async for chunk in stream:
            yield _legacy(chunk)
