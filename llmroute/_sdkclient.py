"""What makes a router an `openai.OpenAI` / `openai.AsyncOpenAI`: frameworks that check
`isinstance(client, OpenAI)` (instructor, the Agents SDK) or reach for `client.beta`,
`client.with_raw_response`, `client.base_url` (LangChain, the Agents SDK) accept a router as it is.

- `chat.completions` (and `beta.chat.completions`, `with_raw_response.chat.completions`) are routed.
- Every other resource of the SDK client (`models`, `embeddings`, `responses`, `completions`,
  `files`, `batches`...) goes to one designated OpenAI-compatible deployment, with that
  deployment's own key and base URL: `Router(..., default_deployment="name")`, by default the first
  deployment of an OpenAI-compatible dialect. `embeddings.create`, `completions.create` and
  `responses.create` (also through `with_raw_response`) record ledger rows (priced from the
  catalog when it has the model, else unpriced). With no such deployment, touching one of them
  raises `ResourceUnavailable`.
- The SDK client underneath is built with a placeholder key and an HTTP client whose transport
  refuses every request (`NotRouted`): nothing is ever sent with the placeholder.
- The SDK client's options are accepted by `Router(...)`: `timeout` and `max_retries` (per target,
  under llmroute's retry policy), `default_headers` and `default_query` (added to every routed call
  and to the designated deployment's calls). Connection settings (`api_key`, `base_url`,
  `http_client`, `organization`, ...) belong on a `Deployment` and are refused here.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx2
import openai
from tenacity import stop_after_attempt

from .errors import ConfigurationError
from .usage import Usage

if TYPE_CHECKING:
    from .catalog import Deployment
    from .routing.core import RouterCore

__all__ = ["NotRouted", "ResourceUnavailable", "client_options"]

PLACEHOLDER_KEY = "llmroute-placeholder-never-sent"
"""The `api_key` the SDK client underneath a router is built with. Its transport refuses every
request, so this value never leaves the process."""

_NO_BASE_URL = "http://llmroute.invalid/v1"
_OPENAI_DIALECTS = frozenset({"openai", "deepseek", "vllm", "ollama", "llamacpp"})
_ROUTED = frozenset({"chat", "beta", "with_raw_response", "with_streaming_response"})
_METERED = frozenset({"embeddings", "completions", "responses"})

_ACCEPTED = ("timeout", "max_retries", "default_headers", "default_query", "default_deployment")
_ON_DEPLOYMENT = (
    "api_key",
    "base_url",
    "organization",
    "project",
    "http_client",
    "websocket_base_url",
    "webhook_secret",
    "admin_api_key",
    "provider",
    "workload_identity",
    "data_residency",
)


class ResourceUnavailable(ConfigurationError):
    """A resource other than chat completions was used on a router with no OpenAI-compatible
    deployment to send it to."""

    def __init__(self, resource: str) -> None:
        self.resource = resource
        super().__init__(
            f"router.{resource} is not routed: it goes to one OpenAI-compatible deployment, and this "
            f"router has none. Add a deployment with an OpenAI-compatible dialect (openai, deepseek, "
            f"vllm, ollama, llamacpp) or name one with Router(..., default_deployment='name')"
        )


class NotRouted(ConfigurationError):
    """A request reached the SDK client underneath a router without going through a routed
    resource (a low-level `router.get/post(...)`); it is refused, never sent."""


def client_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the SDK client's options out of a router's keyword arguments (in place)."""
    for name in _ON_DEPLOYMENT:
        if name in kwargs:
            raise ConfigurationError(
                f"Router({name}=...): connection settings belong on each Deployment "
                f"(Deployment(..., {name}=...)); the router's own SDK client never sends a request"
            )
    return {name: kwargs.pop(name) for name in _ACCEPTED if name in kwargs}


class _Refuse(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        raise NotRouted(
            f"{request.method} {request.url.path} was not routed: use router.chat.completions, or a "
            f"resource the router sends to its default deployment (router.models, router.embeddings...)"
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.handle_request(request)


def designated(core: RouterCore, name: str | None) -> Deployment | None:
    """The deployment that serves the resources other than chat completions."""
    if name is not None:
        deployment = core.deployments.get(name)
        if deployment is None:
            raise ConfigurationError(
                f"default_deployment={name!r} is not one of this router's deployments "
                f"({', '.join(core.deployments)})"
            )
        if _dialect(core, deployment) not in _OPENAI_DIALECTS:
            raise ConfigurationError(
                f"default_deployment={name!r} is not OpenAI-compatible; it cannot serve the SDK's "
                f"other resources"
            )
        return deployment
    for deployment in core.deployments.values():
        if _dialect(core, deployment) in _OPENAI_DIALECTS:
            return deployment
    return None


def _dialect(core: RouterCore, deployment: Deployment) -> str:
    return deployment.dialect or core._providers[deployment.name].dialect


def _base_url(core: RouterCore, deployment: Deployment | None) -> str:
    if deployment is None:
        return _NO_BASE_URL
    provider = core._providers[deployment.name]
    url = deployment.base_url
    if url is None and provider.base_url_env:
        url = os.environ.get(provider.base_url_env) or None
    return url or provider.base_url or _NO_BASE_URL


def init_client(router: Any, base: type[Any], options: dict[str, Any]) -> None:
    """Initialise the SDK client half of `router` (an instance of `base`'s subclass)."""
    core: RouterCore = router._core
    deployment = designated(core, options.get("default_deployment"))
    max_retries = options.get("max_retries")
    if max_retries is not None:
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError("max_retries must be an integer >= 0")
        core.retry = core.retry.with_stop(stop_after_attempt(max_retries + 1))
    timeout = options.get("timeout")
    if timeout is not None:
        core.default_timeout = timeout
    sync = base is openai.OpenAI
    http = httpx2.Client(transport=_Refuse()) if sync else httpx2.AsyncClient(transport=_Refuse())
    sdk: dict[str, Any] = {
        "api_key": PLACEHOLDER_KEY,
        "base_url": _base_url(core, deployment),
        "http_client": http,
        "default_headers": options.get("default_headers"),
        "default_query": options.get("default_query"),
    }
    if max_retries is not None:
        sdk["max_retries"] = max_retries
    if timeout is not None:
        sdk["timeout"] = timeout
    base.__init__(router, **sdk)
    router._llmroute_designated = deployment
    router._llmroute_delegates = {}


def copy_options(clone: Any, timeout: float | None, max_retries: int | None, options: dict[str, Any]) -> None:
    """The SDK client half of `router.with_options(...)` / `router.copy(...)` on `clone`."""
    headers = options.pop("default_headers", None)
    set_headers = options.pop("set_default_headers", None)
    query = options.pop("default_query", None)
    set_query = options.pop("set_default_query", None)
    if options:
        raise ConfigurationError(
            f"with_options({', '.join(sorted(options))}=...): a router copy takes timeout, max_retries, "
            f"default_headers and default_query; connection settings belong on each Deployment"
        )
    if max_retries is not None:
        clone.max_retries = max_retries
    if timeout is not None:
        clone.timeout = timeout
    clone._custom_headers = (
        dict(set_headers)
        if set_headers is not None
        else {
            **clone._custom_headers,
            **(headers or {}),
        }
    )
    clone._custom_query = (
        dict(set_query) if set_query is not None else {**clone._custom_query, **(query or {})}
    )


def call_defaults(router: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The router's `default_headers` / `default_query` under a routed call's own ones."""
    for name, defaults in (
        ("extra_headers", getattr(router, "_custom_headers", None)),
        ("extra_query", getattr(router, "_custom_query", None)),
    ):
        given = kwargs.get(name)
        if defaults and (given is None or isinstance(given, Mapping)):  # else: validation names it
            kwargs[name] = {**defaults, **(given or {})}
    return kwargs


def _delegate(router: Any, resource: str) -> Any:
    """The designated deployment's SDK client (its own key and URL), with the router's options."""
    deployment: Deployment | None = router._llmroute_designated
    if deployment is None:
        raise ResourceUnavailable(resource)
    key = (router.max_retries, repr(router.timeout))
    client = router._llmroute_delegates.get(key)
    if client is None:
        core: RouterCore = router._core
        target = core._target(deployment, core._spec_of(deployment))
        adapter: Any = core.adapter(target)
        sdk = adapter.sync_client() if isinstance(router, openai.OpenAI) else adapter.async_client()
        client = sdk.with_options(
            max_retries=router.max_retries,
            timeout=router.timeout,
            default_headers=router._custom_headers or None,
            default_query=router._custom_query or None,
        )
        router._llmroute_delegates[key] = client
    return client


def _resource(name: str) -> property:
    def get(self: Any) -> Any:
        value = getattr(_delegate(self, name), name)
        if name in _METERED:
            return _Metered(value, self, name)
        return value

    get.__name__ = name
    get.__doc__ = f"`{name}` of the router's default OpenAI-compatible deployment (not routed)."
    return property(get)


def _usage(result: Any) -> Usage:
    usage = getattr(result, "usage", None)
    if usage is None:
        return Usage()
    prompt = getattr(usage, "prompt_tokens", None)
    if prompt is None:
        prompt = getattr(usage, "input_tokens", 0) or 0
    output = getattr(usage, "completion_tokens", None)
    if output is None:
        output = getattr(usage, "output_tokens", 0) or 0
    details = getattr(usage, "prompt_tokens_details", None) or getattr(usage, "input_tokens_details", None)
    cached = getattr(details, "cached_tokens", 0) or 0 if details is not None else 0
    return Usage(int(prompt), int(output), cache_read_tokens=int(cached))


def _record(router: Any, kwargs: Mapping[str, Any], started: float, result: Any, error: Any) -> None:
    from .hinting import RouteHints
    from .money.ledger import LedgerRow
    from .routing.core import new_call_id

    core: RouterCore = router._core
    deployment: Deployment = router._llmroute_designated
    requested = str(kwargs.get("model") or deployment.model)
    spec = core.catalog.model(requested)
    usage = _usage(result) if error is None else Usage()
    status = getattr(error, "status_code", None)
    core.ledger.record(
        LedgerRow(
            call_id=new_call_id(),
            attempt=1,
            timestamp=time.time(),
            deployment=deployment.name,
            provider=core._providers[deployment.name].name,
            requested_model=requested,
            model=spec.id if spec is not None else requested,
            served_model=getattr(result, "model", None) if error is None else None,
            hints=RouteHints(),
            usage=usage,
            price=spec.price if spec is not None else None,
            latency_s=time.perf_counter() - started,
            outcome="ok" if error is None else "error",
            error=type(error).__name__ if error is not None else None,
            status_code=status if isinstance(status, int) else None,
            request_id=getattr(result, "_request_id", None) if error is None else None,
        )
    )


class _Metered:
    """A billable resource of the designated deployment whose `create` records a ledger row."""

    def __init__(self, resource: Any, router: Any, name: str, raw: bool = False) -> None:
        self._resource = resource
        self._router = router
        self._name = name
        self._raw = raw  # a `with_raw_response` resource: `create` returns the response; parse it

    @property
    def with_raw_response(self) -> _Metered:
        return _Metered(self._resource.with_raw_response, self._router, self._name, raw=True)

    def _answer(self, result: Any) -> Any:
        return result.parse() if self._raw else result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resource, name)

    def __dir__(self) -> list[str]:
        return dir(self._resource)

    @property
    def create(self) -> Callable[..., Any]:
        create = self._resource.create
        router = self._router
        if isinstance(router, openai.AsyncOpenAI):

            @functools.wraps(create)
            async def acreate(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await create(*args, **kwargs)
                except openai.APIError as e:
                    _record(router, kwargs, started, None, e)
                    raise
                if not kwargs.get("stream"):
                    _record(router, kwargs, started, self._answer(result), None)
                return result

            return acreate

        @functools.wraps(create)
        def screate(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = create(*args, **kwargs)
            except openai.APIError as e:
                _record(router, kwargs, started, None, e)
                raise
            if not kwargs.get("stream"):
                _record(router, kwargs, started, self._answer(result), None)
            return result

        return screate


class _Beta:
    """`router.beta`: `beta.chat` is the routed chat; the rest is the default deployment's."""

    def __init__(self, router: Any) -> None:
        self._router = router
        self.chat = router.chat

    def __getattr__(self, name: str) -> Any:
        return getattr(_delegate(self._router, "beta").beta, name)


class _RootWrapper:
    """`router.with_raw_response` / `router.with_streaming_response`."""

    def __init__(self, router: Any, kind: str) -> None:
        self._router = router
        self._kind = kind
        completions = getattr(router.chat.completions, kind)
        self.chat = _Namespace(completions=completions)
        self.beta = _Namespace(chat=self.chat)

    def __getattr__(self, name: str) -> Any:
        value = getattr(getattr(_delegate(self._router, name), self._kind), name)
        if name in _METERED and self._kind == "with_raw_response":
            return _Metered(value, self._router, name, raw=True)
        return value


class _Namespace:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def _copy(self: Any, **options: Any) -> Any:
    """`client.copy(...)` / `with_options(...)`: a router copy; see `Router.with_options`."""
    return self.with_options(**options)


def install(cls: type[Any], base: type[Any]) -> None:
    """Give the router class `cls` (a subclass of `base`, `openai.OpenAI` or `AsyncOpenAI`) the
    routed and delegated resources, replacing the SDK's cached properties."""
    for name, value in list(vars(base).items()):
        if isinstance(value, functools.cached_property) and name not in _ROUTED:
            setattr(cls, name, _resource(name))
    cls.beta = property(_Beta)
    cls.with_raw_response = property(lambda self: _RootWrapper(self, "with_raw_response"))
    cls.with_streaming_response = property(lambda self: _RootWrapper(self, "with_streaming_response"))
    cls.copy = _copy
