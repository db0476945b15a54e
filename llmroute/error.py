"""The pre-1.0 `openai.error` module, for code written as `import llmroute as openai`:
`except openai.error.RateLimitError:` catches what the router raises for the same failure.

Each name is the `openai` exception class that llmroute's errors are instances of (see
`llmroute.errors`), or, where one 0.x name covered several failures, a tuple of them: usable in
`except` and `isinstance`, not for raising.

| 0.x name | catches |
|---|---|
| `OpenAIError` | every SDK and provider error (`openai.OpenAIError`) |
| `APIError` | a failed call (`openai.APIError`, including `AllTargetsFailed`) |
| `Timeout` | `openai.APITimeoutError` |
| `APIConnectionError` | `openai.APIConnectionError` |
| `InvalidRequestError` | 400, 404, 409, 422, and `InvalidRequest` (raised before sending) |
| `AuthenticationError` | 401, and `MissingAPIKey` |
| `PermissionError` | 403 |
| `RateLimitError` | 429 |
| `ServiceUnavailableError` | 5xx |
| `TryAgain` | 503 / 529 overloaded (`Overloaded`) |
| `InvalidAPIType` | `ConfigurationError` |
"""

from __future__ import annotations

import openai

from .errors import ConfigurationError, InvalidRequest, MissingAPIKey, Overloaded

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "InvalidAPIType",
    "InvalidRequestError",
    "OpenAIError",
    "PermissionError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "TryAgain",
]

OpenAIError = openai.OpenAIError
APIError = openai.APIError
Timeout = openai.APITimeoutError
APIConnectionError = openai.APIConnectionError
InvalidRequestError = (
    openai.BadRequestError,
    openai.NotFoundError,
    openai.ConflictError,
    openai.UnprocessableEntityError,
    InvalidRequest,
)
AuthenticationError = (openai.AuthenticationError, MissingAPIKey)
PermissionError = openai.PermissionDeniedError  # the 0.x name, shadowing the builtin here only
RateLimitError = openai.RateLimitError
ServiceUnavailableError = openai.InternalServerError
TryAgain = Overloaded
InvalidAPIType = ConfigurationError
