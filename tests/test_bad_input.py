"""Hostile input, one class at a time: each is an `InvalidRequest` (an `openai.BadRequestError`)
naming the argument path, before any network call; nothing between admission and the provider's
answer can leave a slot or a budget reservation taken. Each test backs a row of docs/bad-input.md."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import openai
import pytest
from conftest import CANARY_DEEPSEEK, USER, deployments

import llmroute
from llmroute.errors import LOCAL_HEADER
from llmroute.money.budget import Budget, Budgets
from llmroute.policies import Cascade
from llmroute.testing import Emulator

MODEL = "deepseek-v3.2"
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def refused(router: llmroute.Router, emu: Emulator, **kwargs: Any) -> llmroute.InvalidRequest:
    """The InvalidRequest a call with these arguments raises; checks nothing was sent."""
    before = len(emu.requests)
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", USER)
    with pytest.raises(llmroute.InvalidRequest) as caught:
        router.chat.completions.create(**kwargs)
    assert len(emu.requests) == before, "an invalid call reached the provider"
    return caught.value


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"messages": [{"role": "system", "content": "\ud800"}, *USER]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "ok \udfff"}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]},
            "messages[0].content[0].text",
        ),
        ({"tools": [TOOL, {"type": "function", "function": {"name": "g\ud800"}}]}, "tools[1].function.name"),
        ({"stop": ["ok", "\ud800"]}, "stop[1]"),
        ({"user": "\ud800"}, "user"),
        ({"extra_body": {"k\ud800": 1}}, "extra_body['k\\ud800']"),
        ({"model": "deepseek-\ud800"}, "model"),
    ],
)
def test_unencodable_text_is_named_by_its_path(
    make_router: Any, emu: Emulator, kwargs: dict[str, Any], path: str
) -> None:
    error = refused(make_router(), emu, **kwargs)
    assert error.argument == path
    assert "not valid Unicode" in str(error)
    str(error).encode("utf-8")  # the message itself can be printed and logged


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"metadata": {"k": object()}}, "metadata.k"),
        (
            {
                "tools": [
                    TOOL,
                    TOOL,
                    {"type": "function", "function": {"name": "f", "parameters": {"type": math.nan}}},
                ]
            },
            "tools[2].function.parameters.type",
        ),
        ({"logit_bias": {"1": math.inf}}, "logit_bias['1']"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"a", "b"}}}]},
            "tools[0].function.parameters",
        ),
        ({"extra_body": {"when": b"bytes"}}, "extra_body.when"),
        ({"extra_query": {"q": Decimal(1)}}, "extra_query.q"),
        ({"seed": 10**30}, "seed"),
        ({"metadata": {"k": [[[[0]]]]}}, "metadata.k[0][0][0][0]"),
    ],
)
def test_values_json_cannot_carry_are_named_by_their_path(
    make_router: Any, emu: Emulator, kwargs: dict[str, Any], path: str
) -> None:
    if path.endswith("[0][0][0][0]"):
        kwargs["metadata"]["k"][0][0][0][0] = math.nan
    error = refused(make_router(), emu, **kwargs)
    assert error.argument == path, str(error)


def test_non_string_keys_nesting_and_cycles(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    assert refused(router, emu, metadata={1: "a"}).argument == "metadata"
    assert refused(router, emu, extra_body={"a": {(1, 2): 0}}).argument == "extra_body.a"
    assert refused(router, emu, route={1: 0, "x": 0}).argument == "route"
    deep: list[Any] = []
    for _ in range(200):
        deep = [deep]
    assert "nested more than 100" in str(refused(router, emu, extra_body={"deep": deep}))
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert "contains itself" in str(refused(router, emu, metadata=cycle))


def test_wrong_container_types_are_named(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    assert refused(router, emu, messages=[{"role": {}, "content": "x"}]).argument == "messages[0].role"
    assert refused(router, emu, messages=[{"role": "user", "content": [{"type": ["text"]}]}]).argument == (
        "messages[0].content[0].type"
    )
    assert refused(router, emu, route={"tags": 5}).argument == "route.tags"
    assert refused(router, emu, route={"task": "\ud800"}).argument == "route.task"
    assert refused(router, emu, timeout=10**400).argument == "timeout"
    assert refused(router, emu, modalities=False).argument == "modalities"
    assert refused(router, emu, prompt_cache_key=[]).argument == "prompt_cache_key"
    assert refused(router, emu, parallel_tool_calls="yes").argument == "parallel_tool_calls"


@pytest.mark.parametrize("value", ["\ud800", "é", " padded", "a\r\nInjected: 1", "tab\x00"])
def test_header_values_must_be_sendable(make_router: Any, emu: Emulator, value: str) -> None:
    error = refused(make_router(), emu, extra_headers={"X-A": value})
    assert error.argument == "extra_headers['X-A']"


def test_header_names_must_be_tokens(make_router: Any, emu: Emulator) -> None:
    assert refused(make_router(), emu, extra_headers={"X A": "v"}).argument == "extra_headers"


def test_plain_json_values_pass_and_tuples_are_sent_as_lists(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    router.chat.completions.create(
        model=MODEL, messages=USER, metadata={"k": "é ünïcode ✓"}, stop=("a", "b"), extra_body={"x": (1, 2.5)}
    )
    body = emu.requests[-1].body
    assert body["stop"] == ["a", "b"] and body["x"] == [1, 2.5] and body["metadata"] == {"k": "é ünïcode ✓"}


# -- the openai exception classes -----------------------------------------------------------------------


def test_invalid_request_is_caught_as_openai_bad_request(make_router: Any, emu: Emulator) -> None:
    router = make_router()
    with pytest.raises(openai.BadRequestError) as caught:
        router.chat.completions.create(model=MODEL, messages=USER, max_tokens=-1)
    error = caught.value
    assert isinstance(error, llmroute.InvalidRequest) and isinstance(error, ValueError | TypeError)
    assert isinstance(error, openai.APIStatusError) and error.status_code == 400
    assert error.param == "max_tokens" and error.type == "invalid_request_error"
    assert error.response.headers[LOCAL_HEADER] == "true" and error.local
    assert error.response.json()["error"]["param"] == "max_tokens"
    assert error.request.url.scheme == "llmroute"  # no host: nothing was sent
    assert emu.requests == []


def test_unknown_model_is_caught_as_openai_not_found(make_router: Any, emu: Emulator) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        make_router().chat.completions.create(model="gpt-9-imaginary", messages=USER)
    error = caught.value
    assert isinstance(error, llmroute.UnknownModel) and isinstance(error, openai.BadRequestError)
    assert error.status_code == 404 and error.code == "model_not_found"
    assert error.response.headers[LOCAL_HEADER] == "true"
    assert emu.requests == []


# -- omit / NOT_GIVEN ----------------------------------------------------------------------------------


SENTINELS = [openai.omit, openai.NOT_GIVEN, openai.Omit(), openai.NotGiven()]


def every_argument_not_given(sentinel: Any) -> dict[str, Any]:
    """What the OpenAI Agents SDK passes: every optional argument it does not use as a sentinel."""
    from llmroute.request import known_arguments

    return {name: sentinel for name in known_arguments() if name not in ("model", "messages")}


@pytest.mark.parametrize("sentinel", SENTINELS)
def test_omit_and_not_given_mean_not_given_for_every_argument(
    make_router: Any, emu: Emulator, sentinel: Any
) -> None:
    router = make_router()
    reply = router.chat.completions.create(
        model=MODEL, messages=USER, route=sentinel, **every_argument_not_given(sentinel)
    )
    assert reply.choices[0].message.content
    assert set(emu.requests[-1].body) <= {"model", "messages", "stream_options", "stream", "prompt_cache_key"}
    parsed = router.chat.completions.parse(model=MODEL, messages=USER, **every_argument_not_given(sentinel))
    assert parsed.choices[0].message.content
    helper = every_argument_not_given(sentinel)
    del helper["stream"]
    with router.chat.completions.stream(model=MODEL, messages=USER, **helper) as stream:
        assert stream.get_final_completion().choices[0].message.content


async def test_omit_streams_too_and_async(make_async_router: Any, emu: Emulator) -> None:
    router = make_async_router()
    stream = await router.chat.completions.create(
        model=MODEL, messages=USER, stream=True, stream_options=openai.omit, temperature=openai.NOT_GIVEN
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    reply = await router.chat.completions.create(model=MODEL, messages=USER, stream=openai.omit)
    assert reply.choices[0].message.content
    await router.close()


# -- no slot and no reservation left behind --------------------------------------------------------------


def limited(emu: Emulator, **kwargs: Any) -> list[llmroute.Deployment]:
    return [
        llmroute.Deployment(
            "ds",
            model=MODEL,
            base_url=emu.base_url("deepseek"),
            api_key=CANARY_DEEPSEEK,
            http_client=emu.http_client(),
            max_in_flight=1,
            **kwargs,
        )
    ]


HOSTILE: list[dict[str, Any]] = [
    {"messages": [{"role": "system", "content": "\ud800"}, *USER]},
    {"messages": [{"role": "user", "content": "\ud800"}]},
    {"extra_headers": {"X-A": "\ud800"}},
    {"route": {1: 0, "x": 0}},
    {"metadata": {"k": object()}},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": math.nan}}}]},
    {"logit_bias": {"1": math.inf}},
    {"messages": [{"role": {}, "content": "x"}]},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"a"}}}]},
    {"max_tokens": -1},
]


@pytest.mark.parametrize("stream", [False, True])
def test_hostile_calls_leave_no_slot_or_reservation(make_router: Any, emu: Emulator, stream: bool) -> None:
    budgets = Budgets([Budget(Decimal(100))])
    router = make_router(deployments=limited(emu), budgets=budgets)
    for _ in range(3):
        for kwargs in HOSTILE:
            with pytest.raises(llmroute.InvalidRequest):
                router.chat.completions.create(model=MODEL, **{"messages": USER, "stream": stream, **kwargs})
    assert emu.requests == []
    assert router._core.load.in_flight("ds") == 0 and budgets.in_flight == 0
    reply = router.chat.completions.create(model=MODEL, messages=USER)
    assert reply.choices[0].message.content
    assert budgets.in_flight == 0 and router._core.load.in_flight("ds") == 0


def test_a_budget_refusal_after_admission_gives_the_slot_back(make_router: Any, emu: Emulator) -> None:
    """The budget is checked inside the attempt, after the deployment admitted it: the refusal
    must not keep the deployment's only slot (before: every later call was NoCapacity)."""
    budgets = Budgets([Budget(Decimal("0.000000001"), scope="task:expensive")])
    router = make_router(deployments=limited(emu), budgets=budgets)
    for _ in range(3):
        with pytest.raises(llmroute.BudgetExceeded):
            router.chat.completions.create(model=MODEL, messages=USER, route={"task": "expensive"})
    assert router._core.load.in_flight("ds") == 0 and budgets.in_flight == 0
    assert router.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content


def test_an_exception_inside_the_attempt_gives_the_slot_and_reservation_back(
    make_router: Any, emu: Emulator
) -> None:
    """Whatever raises between admission and the answer's row (here the caller's own cascade check)
    releases the in-flight slot and the budget reservation."""
    calls = {"n": 0}

    def check(completion: Any) -> bool:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("the check itself broke")
        return True

    budgets = Budgets([Budget(Decimal(100))])
    router = make_router(deployments=limited(emu), budgets=budgets, policy=Cascade(check))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="check itself broke"):
            router.chat.completions.create(model=MODEL, messages=USER)
        assert router._core.load.in_flight("ds") == 0 and budgets.in_flight == 0
    assert router.chat.completions.create(model=MODEL, messages=USER).choices[0].message.content


async def test_a_cancelled_async_call_gives_the_slot_back(emu: Emulator) -> None:
    import asyncio

    emu.simulate_latency = True
    emu.set_latency("deepseek", ttft=5.0)
    budgets = Budgets([Budget(Decimal(100))])
    deployment = limited(emu)[0]
    router = llmroute.AsyncRouter(
        [
            llmroute.Deployment(
                "ds",
                model=MODEL,
                base_url=deployment.base_url,
                api_key=CANARY_DEEPSEEK,
                async_http_client=emu.async_http_client(),
                max_in_flight=1,
            )
        ],
        budgets=budgets,
    )
    task = asyncio.create_task(router.chat.completions.create(model=MODEL, messages=USER))
    while not emu.requests:  # the attempt is admitted and its request is at the provider
        await asyncio.sleep(0.005)
    assert router._core.load.in_flight("ds") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router._core.load.in_flight("ds") == 0 and budgets.in_flight == 0
    emu.simulate_latency = False
    assert (await router.chat.completions.create(model=MODEL, messages=USER)).choices[0].message.content
    await router.close()


def test_the_fuzz_routers_deployments_match_conftest(emu: Emulator) -> None:
    """The fuzz (tests/test_fuzz.py) builds on the same providers as the rest of the suite."""
    assert {d.model for d in deployments(emu)} <= {"gpt-5.4", "deepseek-v3.2", "qwen3-8b"}
