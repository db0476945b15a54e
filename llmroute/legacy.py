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

The module-level settings are honoured: `openai.api_key = ...` and `openai.organization = ...`
configure the default OpenAI deployment (the other providers' variables still add theirs);
`openai.api_base = ...` sends every call to that server, as before 1.0 (one deployment serving any
model name). Setting one while `LLMROUTE_CONFIG` names a config file, or after
`set_default_router(...)`, raises `ConfigurationError`; so do the settings llmroute has no place for
(`api_type` other than "open_ai", `api_version`, `proxy`, `api_key_path`, `requestssession`,
`verify_ssl_certs`). The default async router is one per event loop (each `asyncio.run` gets its
own), and a forked child drops the parent's default routers.

`Completion`, `Embedding` and `Model` are served by the router's default OpenAI-compatible
deployment (see `Router(default_deployment=...)`); `Embedding.create` and `Completion.create`
record ledger rows.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, InvalidRequest

if TYPE_CHECKING:
    from .response import RouteInfo
    from .router import AsyncRouter, Router

__all__ = [
    "ChatCompletion",
    "Completion",
    "Embedding",
    "LegacyObject",
    "Model",
    "configure",
    "reset_default_router",
    "set_default_router",
]

_lock = threading.Lock()
_router: Router | None = None
_async_router: AsyncRouter | None = None  # set explicitly: used on every loop
_async_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRouter] = (
    weakref.WeakKeyDictionary()
)
_explicit = False
SETTINGS = ("api_key", "api_base", "organization")
_settings: dict[str, str | None] = dict.fromkeys(SETTINGS)
REFUSED = ("api_type", "api_version", "api_key_path", "proxy", "requestssession", "verify_ssl_certs")

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


def configure(name: str, value: Any) -> None:
    """A module-level setting (`llmroute.api_key = ...`): honoured, or refused loudly."""
    global _router
    if name in REFUSED:
        if value is None or (name == "api_type" and value in ("open_ai", "openai")):
            return
        raise ConfigurationError(
            f"llmroute.{name} is not supported: llmroute routes across providers; describe the endpoint "
            f"as a Deployment (in the file named by LLMROUTE_CONFIG, or Router([...]))"
        )
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"llmroute.{name} must be a string or None, got {type(value).__name__}")
    with _lock:
        if value is not None and _explicit:
            raise ConfigurationError(
                f"llmroute.{name} was set after set_default_router(...): configure that router's "
                f"deployments instead"
            )
        if value is not None and os.environ.get("LLMROUTE_CONFIG"):
            raise ConfigurationError(
                f"llmroute.{name} was set while LLMROUTE_CONFIG names a config file; set it there "
                f"(api_key / base_url of the OpenAI deployment)"
            )
        _settings[name] = value
        _router = None
        _async_routers.clear()


def _deployments() -> list[Any]:
    """The default router's deployments when a module-level setting is in use."""
    from .catalog import Deployment, default_catalog
    from .routing.config import env_config

    key, base, org = (_settings[name] for name in SETTINGS)
    headers = {"OpenAI-Organization": org} if org else {}
    if base is not None:  # pre-1.0: every call went to api_base
        return [
            Deployment("openai", model="*", provider="openai", base_url=base, api_key=key, headers=headers)
        ]
    try:
        others = [d for d in env_config()["deployments"] if d.name != "openai"]
    except ConfigurationError:
        others = []
    provider = default_catalog().provider("openai")
    patterns = "|".join(provider.model_patterns) if provider is not None else "*"
    return [Deployment("openai", model=patterns, provider="openai", api_key=key, headers=headers), *others]


def _build(cls: Any) -> Any:
    if all(value is None for value in _settings.values()):
        return cls.from_env()
    return cls(_deployments())


def default_router() -> Router:
    global _router
    with _lock:
        if _router is None:
            from .router import Router

            _router = _build(Router)
        return _router


def default_async_router() -> AsyncRouter:
    """The explicitly set async router, else one per running event loop (an async router's
    connections belong to the loop that opened them; each `asyncio.run` gets its own)."""
    loop = asyncio.get_running_loop()
    with _lock:
        if _async_router is not None:
            return _async_router
        router = _async_routers.get(loop)
        if router is None:
            from .router import AsyncRouter

            router = _build(AsyncRouter)
            _async_routers[loop] = router
        return router


def set_default_router(router: Router | None = None, async_router: AsyncRouter | None = None) -> None:
    """Use these routers for `ChatCompletion.create` / `acreate` instead of building from the environment."""
    global _router, _async_router, _explicit
    with _lock:
        _router, _async_router = router, async_router
        _async_routers.clear()
        _explicit = router is not None or async_router is not None


def reset_default_router() -> None:
    """Forget the default routers; the next call builds them again from the environment."""
    set_default_router(None, None)


def _forget_in_child() -> None:
    """After a fork, the child drops the default routers built from the environment and builds its
    own on first use; routers set with `set_default_router` are kept (a router resets its own
    connections and locks in a child, `llmroute._fork`, so the child's calls land in the ledger and
    store the application chose). Module-level settings are kept."""
    global _lock, _router
    _lock = threading.Lock()
    if not _explicit:
        _router = None
    _async_routers.clear()


os.register_at_fork(after_in_child=_forget_in_child)


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


class _Resource:
    """A pre-1.0 resource class served by the default router's default deployment."""

    _attribute: str

    @classmethod
    def _call(cls, method: str, kwargs: dict[str, Any]) -> Any:
        resource = getattr(default_router(), cls._attribute)
        return _legacy(getattr(resource, method)(**_translate(kwargs)))

    @classmethod
    async def _acall(cls, method: str, kwargs: dict[str, Any]) -> Any:
        resource = getattr(default_async_router(), cls._attribute)
        return _legacy(await getattr(resource, method)(**_translate(kwargs)))


class Completion(_Resource):
    """`openai.Completion` (text completions), sent to the default OpenAI-compatible deployment."""

    _attribute = "completions"

    @classmethod
    def create(cls, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return _legacy_chunks(default_router().completions.create(**_translate(kwargs)))
        return cls._call("create", kwargs)

    @classmethod
    async def acreate(cls, **kwargs: Any) -> Any:
        if kwargs.get("stream"):
            return _alegacy_chunks(await default_async_router().completions.create(**_translate(kwargs)))
        return await cls._acall("create", kwargs)


class Embedding(_Resource):
    """`openai.Embedding`, sent to the default OpenAI-compatible deployment."""

    _attribute = "embeddings"

    @classmethod
    def create(cls, **kwargs: Any) -> Any:
        kwargs.setdefault("encoding_format", "float")  # 0.x returned lists of floats
        return cls._call("create", kwargs)

    @classmethod
    async def acreate(cls, **kwargs: Any) -> Any:
        kwargs.setdefault("encoding_format", "float")
        return await cls._acall("create", kwargs)


class Model(_Resource):
    """`openai.Model`: `list()` and `retrieve(id)` from the default OpenAI-compatible deployment."""

    _attribute = "models"

    @classmethod
    def list(cls, **kwargs: Any) -> Any:
        page = default_router().models.list(**_translate(kwargs))
        return LegacyObject.wrap({"object": "list", "data": [m.model_dump(mode="json") for m in page.data]})

    @classmethod
    def retrieve(cls, id: str, **kwargs: Any) -> Any:
        return _legacy(default_router().models.retrieve(id, **_translate(kwargs)))

    @classmethod
    async def alist(cls, **kwargs: Any) -> Any:
        page = await default_async_router().models.list(**_translate(kwargs))
        return LegacyObject.wrap({"object": "list", "data": [m.model_dump(mode="json") for m in page.data]})
