"""The catalog: shipped data, strict validation of user rows, lookups by any name."""

import pytest

from llmroute.catalog import Catalog, Deployment, Secret, default_catalog, model_from_row
from llmroute.errors import ConfigurationError, MissingAPIKey

SEED_MODELS = (
    "deepseek-v4-flash",
    "deepseek-v4-pro",
    "deepseek-v3.2",
    "gpt-5.5",
    "gpt-5.4",
    "gpt-5.4-pro",
    "claude-opus-4.8",
)


def test_shipped_catalog_has_the_seed_models_with_sources() -> None:
    catalog = default_catalog()
    for model_id in SEED_MODELS:
        model = catalog.model(model_id)
        assert model is not None, model_id
        assert model.price is not None and model.price.source and model.price.as_of is not None
    assert catalog.provider("deepseek") is not None
    assert catalog.provider("deepseek").jurisdiction == "CN"  # type: ignore[union-attr]


def test_lookup_by_alias_and_api_name() -> None:
    catalog = default_catalog()
    model = catalog.model("gpt-5.4")
    assert model is not None
    for name in model.names():
        assert catalog.model(name) is model


def test_user_rows_override_shipped_rows() -> None:
    row = model_from_row({"id": "gpt-5.4", "provider": "openai", "price": {"input": "1", "output": "2"}})
    catalog = default_catalog().with_rows([row])
    assert catalog.model("gpt-5.4") is row
    assert default_catalog().model("gpt-5.4") is not row


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "m", "provider": "openai", "price": {"input": "-1", "output": "1"}}, "input"),
        ({"id": "m", "provider": "openai", "price": {"input": "nan", "output": "1"}}, "input"),
        ({"id": "m", "provider": "openai", "price": {"input": "1"}}, "output"),
        ({"id": "m", "provider": "openai", "price": {"input": "1", "output": "1", "inptu": "1"}}, "inptu"),
        ({"id": "m", "provider": "openai", "context_window": -5}, "context_window"),
        ({"id": "m", "provider": "openai", "capabilities": ["telepathy"]}, "telepathy"),
        ({"id": "m", "provider": "openai", "colour": "red"}, "colour"),
        ({"provider": "openai"}, "id"),
    ],
)
def test_bad_rows_are_rejected_naming_the_field(row: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        model_from_row(row)


def test_model_with_unknown_provider_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="unknown provider"):
        Catalog.from_data({"model": [{"id": "m", "provider": "nowhere"}]})


def test_secret_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-canary-0123456789abcdef"
    deployment = Deployment("d", model="gpt-5.4", api_key=canary)
    assert canary not in repr(deployment) and canary not in str(deployment)
    assert canary not in repr(Secret(canary)) and canary not in f"{Secret(canary)}"


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = default_catalog().provider("openai")
    with pytest.raises(MissingAPIKey, match="OPENAI_API_KEY"):
        Deployment("d", model="gpt-5.4").resolve_key(provider)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert Deployment("d", model="gpt-5.4").resolve_key(provider) == "sk-from-env"
    assert Deployment("local", model="llama", dialect="ollama").resolve_key(None) is None


def test_wildcard_patterns() -> None:
    deployment = Deployment("openai", model="gpt-*|o3*")
    assert deployment.wildcard
    assert (
        deployment.matches("gpt-5.4") and deployment.matches("o3-mini") and not deployment.matches("claude-x")
    )
