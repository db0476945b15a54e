"""The catalog: models, providers and deployments as data.

`ModelSpec` rows (prices, context window, jurisdiction via the provider, capabilities) ship in
`llmroute/data/catalog.toml`; users add or override rows in code or in the config file.
A `Deployment` is one model on one concrete endpoint with its credentials.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import inspect
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, MissingAPIKey
from .usage import Price

__all__ = ["Catalog", "Deployment", "ModelSpec", "ProviderSpec", "Secret", "default_catalog"]

DIALECTS = frozenset({"openai", "deepseek", "vllm", "ollama", "llamacpp", "anthropic"})
CAPABILITIES = frozenset({"tools", "vision", "json", "json_schema", "reasoning", "streaming"})


class Secret:
    """An API key that never shows itself in a repr, str, log line or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider family: its wire dialect, default endpoint, key variable and jurisdiction."""

    name: str
    dialect: str
    base_url: str
    api_key_env: str | None = None
    base_url_env: str | None = None
    jurisdiction: str = "unknown"
    model_patterns: tuple[str, ...] = ()

    def serves(self, api_name: str) -> bool:
        return any(fnmatch.fnmatchcase(api_name, pattern) for pattern in self.model_patterns)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model as the catalog knows it. `price is None` means unpriced (never $0)."""

    id: str
    provider: str
    api_name: str
    aliases: tuple[str, ...] = ()
    context_window: int | None = None
    max_output: int | None = None
    capabilities: frozenset[str] = frozenset()
    quality_tier: int = 2
    tokenizer: str = "o200k_base"
    tokenizer_factor: float = 1.0
    cache_min_tokens: int | None = None
    price: Price | None = None
    released: dt.date | None = None
    retired: dt.date | None = None

    @property
    def priced(self) -> bool:
        return self.price is not None

    def names(self) -> Iterator[str]:
        yield self.id
        yield self.api_name
        yield from self.aliases


_CLIENT_FIELDS = {"client": False, "async_client": True, "http_client": False, "async_http_client": True}
_CLIENT_SWAP = {
    "client": "async_client",
    "async_client": "client",
    "http_client": "async_http_client",
    "async_http_client": "http_client",
}


def _is_async_client(value: Any) -> bool:
    """Whether an injected SDK or HTTP client is an async one (its close is a coroutine)."""
    kind = type(value)
    close = getattr(kind, "aclose", None) or getattr(kind, "close", None)
    return inspect.iscoroutinefunction(close)


_PATTERN_CHARS = frozenset("*?[|")
"""Characters that make a deployment's `model` a pattern (`Deployment.wildcard`)."""


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Deployment:
    """A model served at a concrete endpoint with its credentials.

    - `name`: unique; `model=` may name it directly.
    - `model`: a catalog model id or alias, or a raw API model name, or an fnmatch pattern such as
      `"gpt-*"` (a wildcard deployment serves any requested model name that matches it).
    - `provider`: a catalog provider name (defaults to the model's provider); sets the dialect,
      default `base_url`, key variable and jurisdiction, each of which can be overridden here.
    - `api_key`: the key, or None to read `api_key_env` (the provider's variable by default) when the
      client is first built. Self-hosted dialects need no key.
    - `max_in_flight`, `rpm`, `tpm`: client-side limits (calls at once, requests and tokens per
      minute); the router stays under them instead of discovering them through 429s.
    - `client` / `async_client`: inject ready-made SDK clients (tests, custom transports).
    - `http_client` / `async_http_client`: inject `httpx2` clients the SDK clients should use.
    """

    name: str
    model: str
    provider: str | None = None
    base_url: str | None = None
    api_key: Secret | str | None = None
    api_key_env: str | None = None
    dialect: str | None = None
    jurisdiction: str | None = None
    weight: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    max_in_flight: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    client: Any = None
    async_client: Any = None
    http_client: Any = None
    async_http_client: Any = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError(f"deployment name must be a non-empty string, got {self.name!r}")
        if not self.model or not isinstance(self.model, str):
            raise ConfigurationError(f"deployment {self.name!r}: model must be a non-empty string")
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", Secret(self.api_key))
        if self.dialect is not None and self.dialect not in DIALECTS:
            raise ConfigurationError(
                f"deployment {self.name!r}: unknown dialect {self.dialect!r}; known: {sorted(DIALECTS)}"
            )
        if not (self.weight >= 0):
            raise ConfigurationError(f"deployment {self.name!r}: weight must be >= 0")
        for name, wants_async in _CLIENT_FIELDS.items():
            value = getattr(self, name)
            if value is not None and _is_async_client(value) != wants_async:
                raise ConfigurationError(
                    f"deployment {self.name!r}: {name}= got {'an async' if not wants_async else 'a sync'} "
                    f"client ({type(value).__name__}); pass it as {_CLIENT_SWAP[name]}= instead"
                )
        for limit in ("max_in_flight", "rpm", "tpm"):
            value = getattr(self, limit)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigurationError(f"deployment {self.name!r}: {limit} must be a positive integer")

    def __repr__(self) -> str:
        return (
            f"Deployment(name={self.name!r}, model={self.model!r}, provider={self.provider!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def wildcard(self) -> bool:
        """Whether `model` is a pattern (`"gpt-*"`, or alternatives `"gpt-*|o3*"`) rather than a name."""
        return not _PATTERN_CHARS.isdisjoint(self.model)  # per candidate per call: a C-level test

    def matches(self, api_name: str) -> bool:
        """Whether this wildcard deployment serves the API model name `api_name`."""
        return any(fnmatch.fnmatchcase(api_name, pattern) for pattern in self.model.split("|"))

    def resolve_key(self, provider: ProviderSpec | None) -> str | None:
        """The API key: given, else from the environment variable. Raises `MissingAPIKey`."""
        if isinstance(self.api_key, Secret) and self.api_key:
            return self.api_key.get()
        env = self.api_key_env or (provider.api_key_env if provider else None)
        value = os.environ.get(env) if env else None
        if value:
            return value
        dialect = self.dialect or (provider.dialect if provider else "openai")
        if dialect in {"vllm", "ollama", "llamacpp"}:
            return None
        raise MissingAPIKey(self.name, env)


def _decimal(where: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ConfigurationError(f"{where}: expected a number (as a string), got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as e:
        raise ConfigurationError(f"{where}: not a number: {value!r}") from e
    if not number.is_finite() or number < 0:
        raise ConfigurationError(f"{where}: must be a finite non-negative number, got {value!r}")
    return number


def _date(where: str, value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as e:
        raise ConfigurationError(f"{where}: not an ISO date: {value!r}") from e


def _check_keys(where: str, row: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str]) -> None:
    allowed_set = set(allowed)
    unknown = sorted(set(row) - allowed_set)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed_set)}")
    missing = [k for k in required if k not in row]
    if missing:
        raise ConfigurationError(f"{where}: missing key(s) {missing}")


_PRICE_KEYS = (
    "currency",
    "input",
    "output",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "reasoning",
    "long_context_threshold",
    "long_context_input",
    "long_context_output",
    "source",
    "as_of",
)


def price_from_row(where: str, row: Mapping[str, Any]) -> Price:
    """Build a `Price` from a TOML/dict row (USD per 1M tokens), validating every field."""
    _check_keys(where, row, _PRICE_KEYS, ("input", "output"))
    optional = {
        key: _decimal(f"{where}.{key}", row[key])
        for key in (
            "cache_read",
            "cache_write_5m",
            "cache_write_1h",
            "reasoning",
            "long_context_input",
            "long_context_output",
        )
        if key in row
    }
    threshold = row.get("long_context_threshold")
    if threshold is not None and (not isinstance(threshold, int) or threshold <= 0):
        raise ConfigurationError(f"{where}.long_context_threshold: expected a positive integer")
    return Price(
        input=_decimal(f"{where}.input", row["input"]),
        output=_decimal(f"{where}.output", row["output"]),
        long_context_threshold=threshold,
        currency=str(row.get("currency", "USD")),
        source=str(row.get("source", "")),
        as_of=_date(f"{where}.as_of", row.get("as_of")),
        **optional,
    )


_MODEL_KEYS = (
    "id",
    "provider",
    "api_name",
    "aliases",
    "context_window",
    "max_output",
    "capabilities",
    "quality_tier",
    "tokenizer",
    "tokenizer_factor",
    "cache_min_tokens",
    "price",
    "released",
    "retired",
)


def model_from_row(row: Mapping[str, Any], where: str = "model") -> ModelSpec:
    """Build a `ModelSpec` from a TOML/dict row, validating every field."""
    _check_keys(where, row, _MODEL_KEYS, ("id", "provider"))
    model_id = row["id"]
    where = f"{where} {model_id!r}"
    capabilities = frozenset(row.get("capabilities", ()))
    unknown = capabilities - CAPABILITIES
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}"
        )
    for key in ("context_window", "max_output", "cache_min_tokens"):
        value = row.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigurationError(f"{where}.{key}: expected a positive integer, got {value!r}")
    factor = row.get("tokenizer_factor", 1.0)
    if not isinstance(factor, int | float) or not (0 < factor < 10):
        raise ConfigurationError(f"{where}.tokenizer_factor: expected a number between 0 and 10")
    price = row.get("price")
    return ModelSpec(
        id=str(model_id),
        provider=str(row["provider"]),
        api_name=str(row.get("api_name", model_id)),
        aliases=tuple(row.get("aliases", ())),
        context_window=row.get("context_window"),
        max_output=row.get("max_output"),
        capabilities=capabilities,
        quality_tier=int(row.get("quality_tier", 2)),
        tokenizer=str(row.get("tokenizer", "o200k_base")),
        tokenizer_factor=float(factor),
        cache_min_tokens=row.get("cache_min_tokens"),
        price=price_from_row(f"{where}.price", price) if price is not None else None,
        released=_date(f"{where}.released", row.get("released")),
        retired=_date(f"{where}.retired", row.get("retired")),
    )


_PROVIDER_KEYS = (
    "name",
    "dialect",
    "base_url",
    "api_key_env",
    "base_url_env",
    "jurisdiction",
    "model_patterns",
)


def provider_from_row(row: Mapping[str, Any], where: str = "provider") -> ProviderSpec:
    _check_keys(where, row, _PROVIDER_KEYS, ("name", "dialect", "base_url"))
    if row["dialect"] not in DIALECTS:
        raise ConfigurationError(f"{where} {row['name']!r}: unknown dialect {row['dialect']!r}")
    return ProviderSpec(
        name=row["name"],
        dialect=row["dialect"],
        base_url=row["base_url"],
        api_key_env=row.get("api_key_env"),
        base_url_env=row.get("base_url_env"),
        jurisdiction=row.get("jurisdiction", "unknown"),
        model_patterns=tuple(row.get("model_patterns", ())),
    )


class Catalog:
    """Models and providers, looked up by any of a model's names. Later rows override earlier ones."""

    def __init__(self, models: Iterable[ModelSpec] = (), providers: Iterable[ProviderSpec] = ()) -> None:
        self._models: dict[str, ModelSpec] = {}
        self._names: dict[str, ModelSpec] = {}
        self._providers: dict[str, ProviderSpec] = {}
        for provider in providers:
            self._providers[provider.name] = provider
        for model in models:
            self._add(model)

    def _add(self, model: ModelSpec) -> None:
        old = self._models.get(model.id)
        if old is not None:
            for name in old.names():
                if self._names.get(name) is old:
                    del self._names[name]
        self._models[model.id] = model
        for name in model.names():
            self._names[name] = model

    def with_rows(self, models: Iterable[ModelSpec] = (), providers: Iterable[ProviderSpec] = ()) -> Catalog:
        """A new catalog with these rows added or overriding rows of the same id/name."""
        return Catalog([*self._models.values(), *models], [*self._providers.values(), *providers])

    def model(self, name: str) -> ModelSpec | None:
        """The model with this id, API name or alias."""
        return self._names.get(name)

    def provider(self, name: str) -> ProviderSpec | None:
        return self._providers.get(name)

    def provider_for(self, api_name: str) -> ProviderSpec | None:
        """The provider family whose model patterns match this API model name."""
        for provider in self._providers.values():
            if provider.serves(api_name):
                return provider
        return None

    def models(self) -> Sequence[ModelSpec]:
        return tuple(self._models.values())

    def providers(self) -> Sequence[ProviderSpec]:
        return tuple(self._providers.values())

    def names(self) -> set[str]:
        return set(self._names)

    def __len__(self) -> int:
        return len(self._models)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], where: str = "catalog") -> Catalog:
        """Build from a parsed TOML document with `[[provider]]` and `[[model]]` tables."""
        providers = [provider_from_row(r, f"{where}: provider") for r in data.get("provider", ())]
        models = [model_from_row(r, f"{where}: model") for r in data.get("model", ())]
        catalog = cls(models, providers)
        catalog.check()
        return catalog

    @classmethod
    def from_file(cls, path: str | Path) -> Catalog:
        with open(path, "rb") as f:
            import tomllib  # here, not at import: its regexes cost ~10 ms (compiled at its import)

            return cls.from_data(tomllib.load(f), str(path))

    def check(self) -> None:
        """Every model names a known provider."""
        for model in self._models.values():
            if model.provider not in self._providers:
                raise ConfigurationError(
                    f"model {model.id!r}: unknown provider {model.provider!r}; "
                    f"known: {sorted(self._providers)}"
                )


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with llmroute (loaded once, on first use)."""
    text = resources.files("llmroute").joinpath("data/catalog.toml").read_bytes()
    import tomllib

    return Catalog.from_data(tomllib.loads(text.decode("utf-8")), "llmroute/data/catalog.toml")


def unpriced_model(api_name: str, provider: str) -> ModelSpec:
    """A stand-in row for a model the catalog does not know: served, but unpriced."""
    return ModelSpec(id=api_name, provider=provider, api_name=api_name, capabilities=frozenset({"streaming"}))


def with_api_name(model: ModelSpec, api_name: str) -> ModelSpec:
    return replace(model, api_name=api_name)
