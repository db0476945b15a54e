"""Hostile-argument fuzz of every entry point: any input gives a success or a typed error.

Hypothesis draws arguments for every keyword the installed SDK's `Completions.create` accepts (the
list is read from its signature), route hints, `extra_headers` / `extra_body` / `extra_query`, the
SDK's `omit` / `NOT_GIVEN`, and hostile values (lone surrogates, NaN and infinities, sets, objects,
non-string keys, huge integers, bytes). Each drawn call goes through one entry point: sync and async
`create` (streaming or not), `parse`, the `stream()` helper (sync and async) and the legacy
`llmroute.ChatCompletion.create`. The property, for every case:

- the outcome is a success or an `LLMRouteError` that is also an `openai.APIError`;
- an `InvalidRequest` is an `openai.BadRequestError`, and the emulator received nothing;
- no deployment's in-flight slot (`max_in_flight=1`) and no budget reservation is left behind.

Profiles (`LLMROUTE_FUZZ`): `quick` (the default, in `nox -s tests`: 40 cases per entry point) and
`long` (`nox -s fuzz`: 3,000 per entry point, 21,000 in all, about two minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pytest
from conftest import ALL_CANARIES, CANARY_DEEPSEEK, CANARY_OPENAI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import llmroute
from llmroute.legacy import reset_default_router, set_default_router
from llmroute.money.budget import Budget, Budgets
from llmroute.routing.cooldown import Cooldowns
from llmroute.stream import AsyncRoutedStream, RoutedStream
from llmroute.testing import Emulator

settings.register_profile(
    "quick",
    max_examples=40,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
PROFILE = settings.get_profile(os.environ.get("LLMROUTE_FUZZ", "quick"))

CANARY_ANTHROPIC = ALL_CANARIES[4]
MODELS = ["gpt-5.4", "deepseek-v3.2", "qwen3-8b", "claude-sonnet-4.6"]


def sdk_arguments() -> list[str]:
    from openai.resources.chat.completions import Completions

    return [n for n in inspect.signature(Completions.create).parameters if n != "self"]


# -- values -----------------------------------------------------------------------------------------


class Opaque:
    """An object no JSON encoder knows."""


class Answer(BaseModel):
    city: str
    degrees: int


surrogate_text = st.builds(
    lambda a, s, b: a + s + b,
    st.text(max_size=3),
    st.sampled_from(["\ud800", "\udfff", "\udc80"]),
    st.text(max_size=3),
)
hostile_scalars = st.one_of(
    surrogate_text,
    st.sampled_from(
        [math.nan, math.inf, -math.inf, 10**30, -(2**70), b"bytes", Opaque(), {1, 2}, frozenset({"a"})]
    ),
    st.sampled_from([openai.omit, openai.NOT_GIVEN, openai.Omit(), openai.NotGiven()]),
    st.complex_numbers(max_magnitude=5, allow_nan=False, allow_infinity=False),
    st.builds(Decimal, st.integers(-5, 5)),
)
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3),
    st.text(max_size=6),
    st.sampled_from(["auto", "low", "json_schema", "text"]),
)
scalars = st.one_of(plain_scalars, plain_scalars, hostile_scalars)
keys = st.one_of(
    st.text(max_size=6),
    st.text(max_size=6),
    surrogate_text,
    st.integers(0, 3),
    st.none(),
    st.tuples(st.integers()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(keys, inner, max_size=3),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
    ),
    max_leaves=6,
)

text = st.one_of(st.text(min_size=1, max_size=12), surrogate_text)
content = st.one_of(
    text,
    st.lists(
        st.one_of(
            st.fixed_dictionaries({"type": st.just("text"), "text": text}),
            st.fixed_dictionaries(
                {
                    "type": st.just("image_url"),
                    "image_url": st.fixed_dictionaries({"url": st.just("https://example.invalid/a.png")}),
                }
            ),
            values,
        ),
        max_size=2,
    ),
    values,
)
good_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system"]), "content": st.text(min_size=1, max_size=20)}
)
message = st.one_of(
    good_message,
    good_message,
    st.fixed_dictionaries(
        {"role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "developer"]), values)},
        optional={"content": content, "name": values, "tool_call_id": values, "tool_calls": values},
    ),
)
good_messages = st.lists(good_message, min_size=1, max_size=2)
messages = st.one_of(
    good_messages, good_messages, good_messages, st.lists(message, min_size=1, max_size=3), values
)

tool = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.sampled_from(["get_weather", "f"])},
                optional={
                    "parameters": st.one_of(st.just({"type": "object", "properties": {}}), values),
                    "description": text,
                },
            ),
        }
    ),
    values,
)

# What a caller would plausibly pass for each argument, beside hostile values.
LIKELY: dict[str, st.SearchStrategy[Any]] = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "frequency_penalty": st.floats(-2, 2),
    "presence_penalty": st.floats(-2, 2),
    "max_tokens": st.integers(-1, 64),
    "max_completion_tokens": st.integers(-1, 64),
    "n": st.integers(0, 2),
    "seed": st.integers(-(2**63), 2**63),
    "stop": st.one_of(text, st.lists(text, max_size=5)),
    "stream": st.booleans(),
    "stream_options": st.just({"include_usage": True}),
    "tools": st.lists(tool, max_size=2),
    "tool_choice": st.sampled_from(["auto", "none", "required", "sometimes"]),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "yaml"}, Answer]),
    "metadata": st.dictionaries(keys, values, max_size=2),
    "logit_bias": st.dictionaries(
        keys, st.one_of(st.integers(-100, 100), st.sampled_from([math.inf, math.nan])), max_size=2
    ),
    "user": text,
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(-1, 21),
    "reasoning_effort": st.sampled_from(["low", "none", "high"]),
    "extra_headers": st.dictionaries(
        st.one_of(st.sampled_from(["X-A", "X-Trace"]), keys),
        st.one_of(st.sampled_from(["v", "é", " x", "a\r\nb"]), values),
        max_size=2,
    ),
    "extra_body": st.dictionaries(keys, values, max_size=2),
    "extra_query": st.dictionaries(keys, values, max_size=2),
    "timeout": st.one_of(st.floats(-1, 30), st.integers(0, 30)),
}

route = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "task": st.one_of(text, values),
            "tags": st.one_of(st.lists(text, max_size=2), values),
            "max_cost": st.one_of(st.floats(), st.text(max_size=3), values),
            "latency": st.one_of(st.sampled_from(["interactive", "batch"]), values),
            "user": st.one_of(text, values),
        },
    ),
    st.dictionaries(keys, values, max_size=2),
    values,
)


def argument(name: str) -> st.SearchStrategy[Any]:
    likely = LIKELY.get(name)
    return values if likely is None else st.one_of(likely, likely, likely, values)


@st.composite
def calls(draw: st.DrawFn, *, with_stream: bool = True) -> dict[str, Any]:
    """Keyword arguments for one call: model and messages, then any of the SDK's other arguments."""
    kwargs: dict[str, Any] = {
        "model": draw(
            st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), st.sampled_from(MODELS), values)
        ),
        "messages": draw(messages),
    }
    names = [n for n in sdk_arguments() if n not in ("model", "messages") and (with_stream or n != "stream")]
    for name in draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        kwargs[name] = draw(argument(name))
    if draw(st.booleans()):
        kwargs["route"] = draw(route)
    return kwargs


# -- the router under test ----------------------------------------------------------------------------


@dataclass
class Setup:
    emu: Emulator
    router: llmroute.Router
    arouter: llmroute.AsyncRouter
    budgets: Budgets
    loop: asyncio.AbstractEventLoop

    def deployments(self, asynchronous: bool) -> list[llmroute.Deployment]:
        emu = self.emu
        client = emu.async_http_client() if asynchronous else emu.http_client()
        transport = {"async_http_client": client} if asynchronous else {"http_client": client}
        common: dict[str, Any] = {"max_in_flight": 1, **transport}
        return [
            llmroute.Deployment(
                "gpt", model="gpt-5.4", base_url=emu.base_url("openai"), api_key=CANARY_OPENAI, **common
            ),
            llmroute.Deployment(
                "ds",
                model="deepseek-v3.2",
                base_url=emu.base_url("deepseek"),
                api_key=CANARY_DEEPSEEK,
                **common,
            ),
            llmroute.Deployment(
                "local", model="qwen3-8b", provider="vllm", base_url=emu.base_url("vllm"), **common
            ),
            llmroute.Deployment(
                "claude",
                model="claude-sonnet-4.6",
                base_url=emu.base_url("anthropic"),
                api_key=CANARY_ANTHROPIC,
                **common,
            ),
        ]


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    from tenacity import wait_none

    emu = Emulator(seed=7)
    budgets = Budgets([Budget(Decimal("1000000"))])
    loop = asyncio.new_event_loop()
    holder = Setup(emu, None, None, budgets, loop)  # type: ignore[arg-type]
    # Cooldowns of 0 s: a provider's 400 to one drawn request must not turn the next into NoRoute.
    common: dict[str, Any] = {
        "budgets": budgets,
        "retry": llmroute.RetryPolicy(wait=wait_none()),
        "cooldowns": Cooldowns(base_s=0.0, max_s=0.0, rate_limit_s=0.0, auth_s=0.0),
    }
    holder.router = llmroute.Router(holder.deployments(False), **common)
    holder.arouter = llmroute.AsyncRouter(holder.deployments(True), **common)
    set_default_router(holder.router, holder.arouter)
    yield holder
    reset_default_router()
    holder.router.close()
    loop.run_until_complete(holder.arouter.close())
    loop.close()


def check(setup: Setup, run: Any) -> None:
    """Run one call and check the property."""
    emu = setup.emu
    if len(emu.requests) > 500:
        emu.reset()
    before = len(emu.requests)
    try:
        run()
        event("success")
    except llmroute.LLMRouteError as e:
        event(type(e).__name__)  # `pytest --hypothesis-show-statistics` shows the mix of outcomes
        assert isinstance(e, openai.APIError), f"{type(e).__name__} is not an openai.APIError: {e}"
        if isinstance(e, llmroute.InvalidRequest):
            assert isinstance(e, openai.BadRequestError) and e.status_code in (400, 404)
            assert e.response.headers["x-llmroute-local"] == "true"
            assert len(emu.requests) == before, f"an invalid call reached the provider: {e}"
            str(e).encode("utf-8")  # the message can be printed and logged (no lone surrogates)
    for router in (setup.router, setup.arouter):
        for deployment in router.deployments:
            assert router._core.load.in_flight(deployment.name) == 0, f"{deployment.name}: slot left taken"
    assert setup.budgets.in_flight == 0, "a budget reservation was left open"


def _drain(result: Any) -> None:
    if isinstance(result, RoutedStream):
        with result:
            for _ in result:
                pass


async def _adrain(result: Any) -> None:
    if isinstance(result, AsyncRoutedStream):
        async with result:
            async for _ in result:
                pass


# -- the properties, one per entry point -------------------------------------------------------------


@PROFILE
@given(kwargs=calls(), raw=st.booleans())
def test_fuzz_sync_create(setup: Setup, kwargs: dict[str, Any], raw: bool) -> None:
    completions = setup.router.chat.completions
    if raw:  # with_raw_response: the same call, the provider's HTTP response beside it
        check(setup, lambda: _drain(completions.with_raw_response.create(**kwargs).parse()))
    else:
        check(setup, lambda: _drain(completions.create(**kwargs)))


@PROFILE
@given(kwargs=calls())
def test_fuzz_async_create(setup: Setup, kwargs: dict[str, Any]) -> None:
    async def run() -> None:
        await _adrain(await setup.arouter.chat.completions.create(**kwargs))

    check(setup, lambda: setup.loop.run_until_complete(run()))


@PROFILE
@given(
    kwargs=calls(with_stream=False), response_format=st.one_of(st.just(Answer), argument("response_format"))
)
def test_fuzz_parse(setup: Setup, kwargs: dict[str, Any], response_format: Any) -> None:
    kwargs["response_format"] = response_format

    def run() -> None:
        # the SDK's documented outcome of a cut structured answer
        with contextlib.suppress(openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError):
            setup.router.chat.completions.parse(**kwargs)

    check(setup, run)


@PROFILE
@given(kwargs=calls(with_stream=False))
def test_fuzz_stream_helper(setup: Setup, kwargs: dict[str, Any]) -> None:
    def run() -> None:
        with setup.router.chat.completions.stream(**kwargs) as stream:
            for _ in stream:
                pass

    check(setup, run)


@PROFILE
@given(kwargs=calls(with_stream=False))
def test_fuzz_async_stream_helper(setup: Setup, kwargs: dict[str, Any]) -> None:
    async def run() -> None:
        async with setup.arouter.chat.completions.stream(**kwargs) as stream:
            async for _ in stream:
                pass

    check(setup, lambda: setup.loop.run_until_complete(run()))


@PROFILE
@given(kwargs=calls())
def test_fuzz_legacy_create(setup: Setup, kwargs: dict[str, Any]) -> None:
    def run() -> None:
        result = llmroute.ChatCompletion.create(**kwargs)
        if kwargs.get("stream") is True:
            for _ in result:
                pass

    check(setup, run)


@PROFILE
@given(kwargs=calls())
def test_fuzz_async_legacy_create(setup: Setup, kwargs: dict[str, Any]) -> None:
    async def run() -> None:
        result = await llmroute.ChatCompletion.acreate(**kwargs)
        if kwargs.get("stream") is True:
            async for _ in result:
                pass

    check(setup, lambda: setup.loop.run_until_complete(run()))


def test_the_fuzz_draws_every_sdk_argument() -> None:
    """The strategy is built from the installed SDK's signature, so a newer SDK's arguments are
    fuzzed too; the ones llmroute checks closely have a likely-value strategy of their own."""
    names = sdk_arguments()
    assert {
        "messages",
        "model",
        "stream",
        "tools",
        "extra_headers",
        "extra_body",
        "extra_query",
        "timeout",
    } <= set(names)
    assert set(LIKELY) <= set(names)
