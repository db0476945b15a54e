"""Shared fixtures. The whole suite runs against the built-in emulator and may not reach the network:
any connection to an address other than loopback fails the test that made it."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import llmroute
from llmroute.testing import Emulator

CANARY_OPENAI = "sk-canary-openai-7f3a9c1e5b2d4a6f8e0c"
CANARY_DEEPSEEK = "sk-canary-deepseek-1b2c3d4e5f6a7b8c9d0e"
ALL_CANARIES = (
    "sk-canary-openai-7f3a9c1e5b2d4a6f8e0c",
    CANARY_DEEPSEEK,
    "sk-canary-openai-0f1e2d3c4b5a69788796a5b4",  # tests/test_secrets.py
    "sk-canary-deepseek-a1b2c3d4e5f60718293a4b5c",
    "sk-ant-canary-99887766554433221100ffeeddcc",
)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            if host == "localhost":
                return
        raise RuntimeError(f"test tried to reach the network: {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect_ex(self, address)


class _Canaries(logging.Handler):
    """Every log record of the whole session, at DEBUG, checked for canary keys at the end."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot format cannot leak either
            return
        if "canary" in text and any(canary in text for canary in ALL_CANARIES):
            self.leaks.append(text[:300])


_CANARY_LOG = _Canaries()


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(_CANARY_LOG)
    root.setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CANARY_LOG.leaks:
        session.exitstatus = 1
        print("\ncanary API keys appeared in log output:\n" + "\n".join(_CANARY_LOG.leaks[:5]))


@pytest.fixture
def emu() -> Emulator:
    return Emulator(seed=1)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "DEEPSEEK_API_KEY",
        "DEEPSEEK_BASE_URL",
        "LLMROUTE_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)


def deployments(emu: Emulator, *, asynchronous: bool = False) -> list[llmroute.Deployment]:
    """An OpenAI, a DeepSeek and a self-hosted vLLM deployment on the in-process emulator."""
    client = emu.async_http_client() if asynchronous else emu.http_client()
    transport = {"async_http_client": client} if asynchronous else {"http_client": client}
    return [
        llmroute.Deployment(
            "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, **transport
        ),
        llmroute.Deployment(
            "ds",
            model="deepseek-v3.2",
            base_url=emu.base_url("deepseek"),
            api_key=CANARY_DEEPSEEK,
            **transport,
        ),
        llmroute.Deployment(
            "local", model="qwen3-8b", provider="vllm", base_url=emu.base_url("vllm"), **transport
        ),
    ]


@pytest.fixture
def make_router(emu: Emulator) -> Iterator[Callable[..., llmroute.Router]]:
    made: list[llmroute.Router] = []

    def make(**kwargs: Any) -> llmroute.Router:
        kwargs.setdefault("retry", llmroute.RetryPolicy(wait=_no_wait()))
        router = llmroute.Router(kwargs.pop("deployments", None) or deployments(emu), **kwargs)
        made.append(router)
        return router

    yield make
    for router in made:
        router.close()


@pytest.fixture
def make_async_router(emu: Emulator) -> Callable[..., llmroute.AsyncRouter]:
    def make(**kwargs: Any) -> llmroute.AsyncRouter:
        kwargs.setdefault("retry", llmroute.RetryPolicy(wait=_no_wait()))
        return llmroute.AsyncRouter(
            kwargs.pop("deployments", None) or deployments(emu, asynchronous=True), **kwargs
        )

    return make


def _no_wait() -> Any:
    from tenacity import wait_none

    return wait_none()


USER = [{"role": "user", "content": "Say something about routing."}]


def reconcile_ledger(ledger: llmroute.Ledger, emu: Emulator) -> None:
    """The ledger's tokens equal the emulator's bill, kind by kind."""
    totals = ledger.total()
    bill = emu.bill.total()
    assert totals.usage.input_tokens == bill.input_tokens
    assert totals.usage.output_tokens == bill.output_tokens
    assert totals.usage.cache_read_tokens == bill.cached_tokens
    assert totals.usage.cache_write_tokens == bill.cache_write_tokens
    assert totals.usage.reasoning_tokens == bill.reasoning_tokens
