"""Every error llmroute raises, in one tree.

```
Exception
└── LLMRouteError
    ├── ConfigurationError (ValueError)        bad config file, catalog row, price, deployment
    │   └── MissingAPIKey                       no key given and the environment variable is unset
    ├── InvalidRequest (openai.BadRequestError, ValueError, TypeError)  bad call arguments, before any call
    │   └── UnknownModel (openai.NotFoundError, LookupError)  model= names nothing known; lists what is known
    ├── NoRoute                                 the policy removed every candidate; names each gate
    │   └── NoCapacity (openai.RateLimitError)   every target stayed rate limited past the deadline
    ├── BudgetExceeded                          a hard budget would be crossed
    └── ProviderError (openai.APIError)         one attempt at one deployment failed
        ├── ProviderStatusError (openai.APIStatusError)
        │   ├── BadRequest (openai.BadRequestError)              400
        │   │   └── ContextWindowExceeded                        400 whose body says the prompt is too long
        │   ├── AuthenticationFailed (openai.AuthenticationError) 401
        │   ├── PaymentRequired                                  402 (insufficient balance, billing)
        │   ├── PermissionDenied (openai.PermissionDeniedError)  403
        │   ├── ModelNotFound (openai.NotFoundError)             404
        │   ├── Conflict (openai.ConflictError)                  409
        │   ├── RequestTooLarge                                  413
        │   ├── UnprocessableRequest (openai.UnprocessableEntityError) 422
        │   ├── RateLimited (openai.RateLimitError)              429
        │   │   └── QuotaExhausted                               429 insufficient_quota: retrying won't help
        │   └── ServerError (openai.InternalServerError)         5xx
        │       └── Overloaded                                   529 / 503 overloaded
        ├── ProviderConnectionError (openai.APIConnectionError)
        │   └── ProviderTimeout (openai.APITimeoutError)
        ├── AnswerRejected                                       a cascade's check rejected the answer
        ├── MalformedResponse                                    not a valid response (bad JSON, no choices)
        ├── StreamInterrupted                                    a stream ended without finishing
        │   └── StreamStalled (ProviderTimeout)                  ... because it stopped making progress
        └── TruncatedResponse                                    an answer was cut, and the policy says raise
AllTargetsFailed (LLMRouteError, ExceptionGroup, openai.APIError)  every target failed; holds each error
```

Provider errors are instances of the matching `openai` exception classes, so existing
`except openai.RateLimitError:` code keeps working whichever provider served the call. They carry the
real provider response (`response`, `status_code`, `request_id`, `body`), never an invented one, and
llmroute's own facts: `provider`, `deployment`, `model`, `retryable` and `retry_after` (seconds the
provider asked us to wait, if it said). API keys never appear in messages: adapters redact them.
Pickling (a worker pool sending an error to its parent) carries what the error prints and no more:
credential headers redacted, no request body, the response's content replaced by the redacted `body`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx2
import openai

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "AllTargetsFailed",
    "AnswerRejected",
    "AuthenticationFailed",
    "BadRequest",
    "BudgetExceeded",
    "ConfigurationError",
    "Conflict",
    "ContextWindowExceeded",
    "InvalidRequest",
    "MalformedResponse",
    "LLMRouteError",
    "MissingAPIKey",
    "ModelNotFound",
    "NoCapacity",
    "NoRoute",
    "Overloaded",
    "PaymentRequired",
    "PermissionDenied",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderStatusError",
    "ProviderTimeout",
    "QuotaExhausted",
    "RateLimited",
    "Rejection",
    "RequestTooLarge",
    "Retryability",
    "ServerError",
    "StreamInterrupted",
    "StreamStalled",
    "TruncatedResponse",
    "UnknownModel",
    "UnprocessableRequest",
]


class Retryability(StrEnum):
    """What a failed attempt means for the rest of the call."""

    RETRY = "retry"
    """Transient: the same deployment may succeed if tried again (429, 5xx, timeouts, resets)."""
    NEXT_TARGET = "next_target"
    """This deployment cannot serve the call (401, 403, 404, 402, quota); another one may."""
    FATAL = "fatal"
    """The request itself is wrong (400, 422); no other deployment would accept it either."""


class LLMRouteError(Exception):
    """Base class of every llmroute error."""


class ConfigurationError(LLMRouteError, ValueError):
    """The router's configuration (file, catalog row, price, deployment) is invalid."""


class MissingAPIKey(ConfigurationError):
    """A deployment needs an API key and none was given or found in its environment variable."""

    def __init__(self, deployment: str, env_var: str | None) -> None:
        where = f"set the environment variable {env_var}" if env_var else "pass api_key="
        super().__init__(f"deployment {deployment!r} has no API key: {where}")
        self.deployment = deployment
        self.env_var = env_var


LOCAL_HEADER = "x-llmroute-local"
"""Set on the response of an error llmroute made itself, with no HTTP exchange (`InvalidRequest`)."""

LOCAL_URL = "llmroute://local/chat/completions"
"""The URL of the request such an error names: nothing was sent anywhere."""


def _local_answer(
    error: openai.APIStatusError, status: int, message: str, param: str, code: str | None
) -> None:
    """Give a locally raised error the attributes of the `openai` status error it also is: a
    response built here (status, an OpenAI-shaped error body, the `x-llmroute-local` header), no
    network involved."""
    body = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    request = httpx2.Request("POST", LOCAL_URL)
    error.message = message
    error.request = request
    error.body = body
    error.code, error.param, error.type = code, param, "invalid_request_error"
    error.response = httpx2.Response(
        status, headers={LOCAL_HEADER: "true"}, json={"error": body}, request=request
    )
    error.status_code = status
    error.request_id = None


class InvalidRequest(LLMRouteError, openai.BadRequestError, ValueError, TypeError):
    """A call's arguments are invalid. Raised before any network call.

    An `openai.BadRequestError` (status 400, `param` naming the argument, `type`
    "invalid_request_error", as OpenAI answers a bad argument), so `except openai.BadRequestError:`
    handlers catch it. Its `response` was built locally: nothing was sent, and the response carries
    the header `x-llmroute-local: true` (`local` is True). Also a `ValueError` and a `TypeError`, so
    code written for the OpenAI SDK's own local checks (a `TypeError` for a wrong keyword) keeps
    catching it.
    """

    local = True
    """Raised by llmroute before any network call; `response` was built locally."""

    def __init__(self, argument: str, message: str) -> None:
        # A caller's lone surrogate quoted in the message is escaped: the message is always printable.
        text = f"{argument}: {message}".encode("utf-8", "backslashreplace").decode("utf-8")
        argument = argument.encode("utf-8", "backslashreplace").decode("utf-8")
        Exception.__init__(self, text)
        _local_answer(self, 400, text, argument, None)
        self.argument = argument


class UnknownModel(InvalidRequest, openai.NotFoundError, LookupError):  # type: ignore[misc]
    """`model=` names no deployment, catalog model, alias or served provider family.

    Status 404 and code "model_not_found", as OpenAI answers an unknown model, so it is an
    `openai.NotFoundError` too (and, as every `InvalidRequest`, an `openai.BadRequestError`)."""

    def __init__(self, model: str, known: Sequence[str]) -> None:
        shown = ", ".join(sorted(known)[:40]) or "(none configured)"
        more = f" and {len(known) - 40} more" if len(known) > 40 else ""
        super().__init__("model", f"unknown model {model!r}; known: {shown}{more}")
        _local_answer(self, 404, str(self), "model", "model_not_found")
        self.model = model
        self.known = tuple(sorted(known))


class Rejection:
    """Why one policy removed one candidate deployment."""

    __slots__ = ("deployment", "policy", "reason")

    def __init__(self, deployment: str, policy: str, reason: str) -> None:
        self.deployment = deployment
        self.policy = policy
        self.reason = reason

    def __repr__(self) -> str:
        return f"Rejection({self.deployment!r}, policy={self.policy!r}, reason={self.reason!r})"


class NoRoute(LLMRouteError):
    """No candidate deployment may serve this request. Raised before any network call."""

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        lines = "; ".join(f"{r.deployment}: removed by {r.policy} ({r.reason})" for r in rejections)
        super().__init__(f"no deployment may serve this request: {lines or 'no candidates'}")
        self.rejections = tuple(rejections)


class NoCapacity(NoRoute, openai.RateLimitError):
    """No attempt could be made in time: every candidate stayed rate limited (a provider's 429 pause,
    its rate-limit headers, or the deployment's own `rpm`/`tpm`/`max_in_flight`) longer than the
    call's deadline or queue timeout allowed. An `openai.RateLimitError` too, so SDK code catching
    that keeps working; its `response` is built here, not received: a 429 marked
    `x-llmroute-local: true`, whose `retry-after` says when the first target reopens (if known).
    `rejections` lists each target's state."""

    def __init__(
        self,
        rejections: Sequence[Rejection],
        retry_after: float | None = None,
        url: str | None = None,
    ) -> None:
        lines = "; ".join(f"{r.deployment}: {r.policy} ({r.reason})" for r in rejections)
        Exception.__init__(self, f"no deployment could take this call in time: {lines or 'no candidates'}")
        self.rejections = tuple(rejections)
        headers = {"x-llmroute-local": "true"}
        if retry_after is not None:
            headers["retry-after"] = f"{max(0.0, retry_after):.3f}"
        request = httpx2.Request("POST", url or "http://llmroute.local/chat/completions")
        self.message = str(self.args[0])
        self.request = request
        self.response = httpx2.Response(429, headers=headers, request=request)
        self.status_code = 429
        self.request_id = None
        self.body = None
        self.code = self.param = None
        self.type = "no_capacity"
        self.retry_after = retry_after


class BudgetExceeded(LLMRouteError):
    """A call would cross a hard budget limit."""

    def __init__(self, scope: str, spent: Any, limit: Any, estimate: Any = None) -> None:
        extra = f" + estimated {estimate}" if estimate is not None else ""
        super().__init__(f"budget {scope!r} exceeded: spent {spent}{extra} of limit {limit}")
        self.scope = scope
        self.spent = spent
        self.limit = limit
        self.estimate = estimate


class ProviderError(LLMRouteError, openai.APIError):
    """One attempt at one deployment failed."""

    retryable: Retryability
    retry_after: float | None
    provider: str
    deployment: str
    model: str
    status_code: int | None  # narrowed to int by ProviderStatusError
    request_id: str | None
    response: httpx2.Response | None

    def __init__(
        self,
        message: str,
        *,
        request: httpx2.Request,
        response: httpx2.Response | None = None,
        body: object | None = None,
        provider: str = "",
        deployment: str = "",
        model: str = "",
        retryable: Retryability = Retryability.RETRY,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.request = request
        self.response = response
        self.body = body
        self.status_code = response.status_code if response is not None else None
        self.request_id = request_id
        self.code = self.param = self.type = None
        if isinstance(body, dict):
            code, param, kind = body.get("code"), body.get("param"), body.get("type")
            self.code = str(code) if code is not None else None
            self.param = param if isinstance(param, str) else None
            self.type = kind if isinstance(kind, str) else None
        self.provider = provider
        self.deployment = deployment
        self.model = model
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"[{self.deployment or self.provider}{' ' + self.model if self.model else ''}]"
        status = f" (status {self.status_code})" if self.status_code is not None else ""
        return f"{where}{status} {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle what the error prints, nothing more secret: the request and response travel with
        their credential headers redacted, without the request body, and the response's content is
        the (already redacted) `body`; key-shaped strings are redacted (`scrub`). Never calls
        openai's `__init__`."""
        state = {k: _scrubbed(v) for k, v in self.__dict__.items()}
        request = state.get("request")
        if isinstance(self.response, httpx2.Response):
            state["response"] = _redacted_response(self.response, request, state.get("body"))
        return (_rebuild, (type(self), state, tuple(_scrubbed(a) for a in self.args)))


def _rebuild(cls: type[ProviderError], state: dict[str, Any], args: tuple[Any, ...]) -> ProviderError:
    obj = cls.__new__(cls)
    Exception.__init__(obj, *args)
    obj.__dict__.update(state)
    return obj


_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
    }
)
_SECRET_PARAMS = frozenset({"key", "api_key", "api-key", "apikey", "token", "access_token"})
_KEY_SHAPES = re.compile(r"(?i)(bearer\s+)[^\s\"',]+|\b(sk-|sk_)[A-Za-z0-9_\-]{8,}")


def scrub(text: str) -> str:
    """`text` with key-shaped strings redacted (`Bearer ...`, `sk-...`): the last line of defence
    for what an error carries out of the process (its pickle), after the adapters' own `redact`."""
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, httpx2.Request):
        return _redacted_request(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def _redacted_headers(headers: Any) -> list[tuple[str, str]]:
    return [
        (name, "[redacted]" if name.lower() in _SECRET_HEADERS else scrub(value))
        for name, value in headers.multi_items()
    ]


def _redacted_request(request: httpx2.Request) -> httpx2.Request:
    url = request.url
    if url.query:
        params = [
            (k, "[redacted]" if k.lower() in _SECRET_PARAMS else v) for k, v in url.params.multi_items()
        ]
        url = url.copy_with(params=params)
    headers = [(k, v) for k, v in _redacted_headers(request.headers) if k.lower() != "content-length"]
    return httpx2.Request(request.method, url, headers=headers)


def _redacted_response(response: httpx2.Response, request: Any, body: Any) -> httpx2.Response:
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode("utf-8", "backslashreplace")
    else:
        try:
            content = json.dumps(body).encode()
        except (TypeError, ValueError):
            content = scrub(str(body)).encode("utf-8", "backslashreplace")
    headers = [(k, v) for k, v in _redacted_headers(response.headers) if k.lower() != "content-length"]
    if not isinstance(request, httpx2.Request):
        try:
            request = _redacted_request(response.request)
        except RuntimeError:  # a response built without a request
            request = None
    return httpx2.Response(response.status_code, headers=headers, content=content, request=request)


class ProviderStatusError(ProviderError, openai.APIStatusError):
    """The provider answered with an error status."""

    response: httpx2.Response
    status_code: int


class BadRequest(ProviderStatusError, openai.BadRequestError):  # type: ignore[misc]
    """400: the provider rejected the request."""


class ContextWindowExceeded(BadRequest):
    """400: the prompt and requested output do not fit the model's context window."""


class AuthenticationFailed(ProviderStatusError, openai.AuthenticationError):  # type: ignore[misc]
    """401: the API key was refused."""


class PaymentRequired(ProviderStatusError):
    """402: the account has no balance or a billing problem."""


class PermissionDenied(ProviderStatusError, openai.PermissionDeniedError):  # type: ignore[misc]
    """403: the key may not use this model or endpoint."""


class ModelNotFound(ProviderStatusError, openai.NotFoundError):  # type: ignore[misc]
    """404: the model or endpoint does not exist at this deployment."""


class Conflict(ProviderStatusError, openai.ConflictError):  # type: ignore[misc]
    """409: a transient conflict at the provider."""


class RequestTooLarge(ProviderStatusError):
    """413: the request body is too large for the provider."""


class UnprocessableRequest(ProviderStatusError, openai.UnprocessableEntityError):  # type: ignore[misc]
    """422: the provider could not process the request."""


class RateLimited(ProviderStatusError, openai.RateLimitError):  # type: ignore[misc]
    """429: too many requests; `retry_after` says how long the provider asked to wait."""


class QuotaExhausted(RateLimited):
    """429 with `insufficient_quota`: the account's quota is spent; retrying will not help."""


class ServerError(ProviderStatusError, openai.InternalServerError):
    """5xx: the provider failed."""


class Overloaded(ServerError):
    """529 or 503 overloaded: the provider is shedding load."""


class ProviderConnectionError(ProviderError, openai.APIConnectionError):
    """The connection failed or was reset before a complete answer arrived."""


class ProviderTimeout(ProviderConnectionError, openai.APITimeoutError):
    """The provider did not answer in time."""


class StreamInterrupted(ProviderError):
    """A stream ended (or broke) before the provider said it was finished.

    `partial_text` holds what had arrived; the attempt is still in the ledger.
    """

    partial_text: str = ""


class StreamStalled(StreamInterrupted, ProviderTimeout):
    """A stream stopped making content progress within its time bound (keep-alive comments and
    trickled bytes are not progress): a `StreamInterrupted` with the partial text that is also a
    `ProviderTimeout` (`openai.APITimeoutError`)."""


class MalformedResponse(ProviderError):
    """The provider answered with something that is not a valid response (not JSON, no choices,
    wrong types). Retryable: proxies and overloaded gateways produce these."""


class AnswerRejected(ProviderError):
    """A cascade's check rejected the answer; the router asks the next target."""

    completion: Any = None


class TruncatedResponse(ProviderError):
    """An answer was cut (length, content filter, refusal, or suspected silent truncation) and the
    router's `TruncationPolicy` says so loudly. `completion` holds the answer as it came, `verdict`
    the detector's reasons."""

    completion: Any = None
    verdict: Any = None

    @classmethod
    def of(cls, done: Any, verdict: Any, target: Any) -> TruncatedResponse:
        request = request_for(target, done.http_response)
        reasons = "; ".join(verdict.reasons) or verdict.kind
        error = cls(
            f"the answer was truncated ({verdict.kind}: {reasons})",
            request=request,
            provider=target.provider.name,
            deployment=target.deployment.name,
            model=target.model.id,
            retryable=Retryability.NEXT_TARGET,
            request_id=done.request_id,
        )
        error.completion = done.completion
        error.verdict = verdict
        return error


def request_for(target: Any, response: httpx2.Response | None = None) -> httpx2.Request:
    """The request an error about `target` names: the response's own, or, when the failure had no
    HTTP exchange (a stream that simply stopped, an answer judged afterwards), the target's endpoint."""
    if response is not None:
        return response.request
    return httpx2.Request(
        "POST", f"{target.deployment.base_url or target.provider.base_url}/chat/completions"
    )


_STATUS_CLASSES: dict[int, type[ProviderStatusError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    402: PaymentRequired,
    403: PermissionDenied,
    404: ModelNotFound,
    409: Conflict,
    413: RequestTooLarge,
    422: UnprocessableRequest,
    429: RateLimited,
    529: Overloaded,
}

_CONTEXT_MARKERS = (
    "context length",
    "context_length",
    "context window",
    "too many tokens",
    "prompt is too long",
)


def status_error_class(status: int, body: object | None) -> type[ProviderStatusError]:
    """The error class for an HTTP error status and its decoded body."""
    text = str(body).lower() if body is not None else ""
    if status == 429 and "insufficient_quota" in text:
        return QuotaExhausted
    if status == 400 and any(marker in text for marker in _CONTEXT_MARKERS):
        return ContextWindowExceeded
    if status == 503 and "overload" in text:
        return Overloaded
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    return ProviderStatusError


def default_retryability(error_class: type[ProviderError]) -> Retryability:
    """Which failures are transient, which are the target's, which are fatal (by error class)."""
    if issubclass(error_class, QuotaExhausted | PaymentRequired | AuthenticationFailed | PermissionDenied):
        return Retryability.NEXT_TARGET
    if issubclass(error_class, ModelNotFound | RequestTooLarge | ContextWindowExceeded):
        return Retryability.NEXT_TARGET
    if issubclass(error_class, BadRequest | UnprocessableRequest):
        return Retryability.FATAL
    return Retryability.RETRY


class AllTargetsFailed(LLMRouteError, ExceptionGroup[ProviderError], openai.APIError):  # type: ignore[override]
    """Every target in the chain failed. An `ExceptionGroup` of each attempt's error.

    It is also an `openai.APIError`, and when every attempt failed the same way (all rate limited, say)
    an instance of that `openai` class too, carrying the last attempt's response.
    """

    def __new__(cls, message: str, errors: Sequence[ProviderError]) -> Self:
        return super().__new__(cls, message, list(errors))

    def __init__(self, message: str, errors: Sequence[ProviderError]) -> None:
        last = errors[-1]
        # `message` is ExceptionGroup's own read-only attribute and already holds `message`.
        self.request = last.request
        self.body = last.body
        self.code, self.param, self.type = last.code, last.param, last.type
        self.response = last.response
        self.status_code = last.status_code
        self.request_id = last.request_id

    def derive(self, excs: Sequence[ProviderError]) -> AllTargetsFailed:  # type: ignore[override]
        return AllTargetsFailed(self.message, excs)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its message and its errors (each redacted by its own `__reduce__`); the
        request and response it shows are the last error's, rebuilt from it."""
        return (_rebuild_group, (scrub(self.message), list(self.exceptions)))

    @classmethod
    def of(cls, errors: Sequence[ProviderError]) -> AllTargetsFailed:
        """Build the group, typed as the common `openai` class of the errors when they share one."""
        summary = "; ".join(str(e) for e in errors)
        message = f"all {len(errors)} attempts failed: {summary}"
        kinds = {type(e) for e in errors}
        group_class: type[AllTargetsFailed] = cls
        if len(kinds) == 1:
            group_class = _group_class(kinds.pop())
        return group_class(message, errors)


_GROUP_CLASSES: dict[type[ProviderError], type[AllTargetsFailed]] = {}


def _rebuild_group(message: str, errors: list[ProviderError]) -> AllTargetsFailed:
    kinds = {type(e) for e in errors}
    group_class = _group_class(kinds.pop()) if len(kinds) == 1 else AllTargetsFailed
    return group_class(message, errors)


def _group_class(kind: type[ProviderError]) -> type[AllTargetsFailed]:
    openai_bases = tuple(
        base for base in kind.__mro__ if base.__module__.startswith("openai") and base is not openai.APIError
    )
    if not openai_bases:
        return AllTargetsFailed
    leaf = openai_bases[0]
    cached = _GROUP_CLASSES.get(kind)
    if cached is None:
        cached = type(f"AllTargetsFailed[{leaf.__name__}]", (AllTargetsFailed, leaf), {})
        _GROUP_CLASSES[kind] = cached
    return cached


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (of 6+ characters) in `text`."""
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text
