"""Every call has a time bound; abandoned streams are accounted for (issue #14 items 4 and 5).

Against a raw misbehaving HTTP server (`tests/_badserver.py`) on a real socket, through the real SDKs:
an answer that stalls after its headers, a stream that sends one chunk then only keep-alive
comments, a body trickled at one byte a second. Each ends with `ProviderTimeout` (an
`openai.APITimeoutError`) within its timeout plus a generous margin (a correctness bound, not a
speed test), and leaves its ledger row. The raw `openai` SDK, same server, same timeout, is still
stuck when the router's call has long ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic as anthropic_sdk
import httpx2
import openai
import pytest
from _badserver import BadServer
from conftest import CANARY_OPENAI, USER
from tenacity import stop_after_attempt

import llmroute
from llmroute.errors import MalformedResponse, ProviderTimeout, Retryability, StreamInterrupted, StreamStalled
from llmroute.money.budget import Budget, Budgets
from llmroute.providers import _watchdog

ANTHROPIC_KEY = "sk-ant-canary-99887766554433221100ffeeddcc"
TIMEOUT = 1.0
TIMEOUTS = {"stall": TIMEOUT, "ping": TIMEOUT, "trickle": 2.5}
"""The call's `timeout` per case: above the trickle's 1 s between bytes, so that the raw SDK's read
timeout is never what ends it (as with the `timeout=5` of the issue)."""
ONE_TRY = llmroute.RetryPolicy(stop=stop_after_attempt(1))
_ANSWER = {
    "id": "chatcmpl-warm",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-5.4",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
}
MARGIN = 3.0  # generous: the bound is the timeout; the margin absorbs a loaded machine


@pytest.fixture(scope="module")
def server() -> Iterator[BadServer]:
    with BadServer() as bad:
        # First use imports the SDKs and loads tokenizers (seconds on a loaded machine): not the
        # time bound under test, so paid here.
        bad.answers["warm"] = _ANSWER
        for anthropic in (False, True):
            with (
                llmroute.Router([deployment(bad, "answer-warm", anthropic)], retry=ONE_TRY) as router,
                contextlib.suppress(llmroute.LLMRouteError),
            ):
                router.chat.completions.create(model="bad", messages=USER)
        yield bad


def deployment(server: BadServer, mode: str, anthropic: bool = False, **kwargs: Any) -> llmroute.Deployment:
    if anthropic:
        return llmroute.Deployment(
            "bad",
            model="claude-sonnet-4.6",
            base_url=server.base_url(mode, True),
            api_key=ANTHROPIC_KEY,
            **kwargs,
        )
    return llmroute.Deployment(
        "bad", model="gpt-5.4", base_url=server.base_url(mode), api_key=CANARY_OPENAI, **kwargs
    )


CASES = [
    ("stall", False, False),
    ("stall", True, False),
    ("ping", True, False),
    ("trickle", False, False),
    ("trickle", True, False),
    ("stall", False, True),
    ("ping", True, True),
    ("stall", True, True),
    ("trickle", False, True),
    ("trickle", True, True),
]


def _check_row(router: llmroute.Router | llmroute.AsyncRouter, stream: bool) -> None:
    rows = router.ledger.rows()
    assert len(rows) == 1
    row = rows[0]
    assert row.error is not None and row.outcome in ("error", "cut")
    assert row.usage.estimated and row.usage.input_tokens > 0  # counted, and flagged as such
    assert row.stream is stream


RAW_TIMES_OUT = {"stall": True, "ping": False, "trickle": False}
"""Whether the raw SDK with the same `timeout` ends the case: its read timeout is per socket read, so
keep-alive comments and trickled bytes keep it waiting (its default bound is 600 s per read)."""


def _raw_client(server: BadServer, mode: str, anthropic: bool, asynchronous: bool) -> Any:
    kwargs: dict[str, Any] = {"timeout": TIMEOUTS[mode], "max_retries": 0}
    if anthropic:
        kind = anthropic_sdk.AsyncAnthropic if asynchronous else anthropic_sdk.Anthropic
        return kind(base_url=server.base_url(mode, True), api_key=ANTHROPIC_KEY, **kwargs)
    openai_kind = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return openai_kind(base_url=server.base_url(mode), api_key=CANARY_OPENAI, **kwargs)


def _raw_args(stream: bool, anthropic: bool) -> dict[str, Any]:
    if anthropic:
        return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER, "stream": stream}
    return {"model": "gpt-5.4", "messages": USER, "stream": stream}


class _RawCall:
    """The same call through the raw SDK (the `openai` one, or `anthropic` against the Anthropic
    wire format), same timeout, no retries, in a thread: the baseline."""

    def __init__(self, server: BadServer, mode: str, stream: bool, anthropic: bool) -> None:
        self.client = _raw_client(server, mode, anthropic, asynchronous=False)
        self.create = self.client.messages.create if anthropic else self.client.chat.completions.create
        self.args = _raw_args(stream, anthropic)
        self.error: BaseException | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            reply = self.create(**self.args)
            if self.args["stream"]:
                for _ in reply:
                    pass
        except Exception as e:  # the outcome is what the test compares
            self.error = e
        finally:
            self.ended.set()


RAW_GRACE = 1.0
"""The raw SDK is judged this long after its own timeout: still waiting then, it is stuck (on a
keep-alive stream, forever; on a trickle, until the last byte)."""


RAW_TIMEOUTS = (openai.APITimeoutError, anthropic_sdk.APITimeoutError, httpx2.TimeoutException)
"""How the raw SDK's own read timeout surfaces: the SDKs wrap it before the body; in a stream's body
their older releases (the floors, openai 3.0 and anthropic 2.0) let the transport's ReadTimeout out."""


def _check_raw(mode: str, ended: bool, error: BaseException | None) -> None:
    if RAW_TIMES_OUT[mode]:  # the SDK's own read timeout catches a silent socket
        assert ended and isinstance(error, RAW_TIMEOUTS), error
    else:
        assert not ended, error  # still waiting when the router's call has long ended


@pytest.mark.parametrize(("mode", "stream", "anthropic"), CASES)
def test_stalled_attempt_ends_in_time_sync(
    server: BadServer, mode: str, stream: bool, anthropic: bool
) -> None:
    timeout = TIMEOUTS[mode]
    raw = _RawCall(server, mode, stream, anthropic)
    started = time.monotonic()
    with llmroute.Router([deployment(server, mode, anthropic)], retry=ONE_TRY) as router:
        with pytest.raises(ProviderTimeout) as info:
            reply = router.chat.completions.create(model="bad", messages=USER, stream=stream, timeout=timeout)
            if stream:
                for _ in reply:
                    pass
        elapsed = time.monotonic() - started
        assert elapsed < timeout + MARGIN, elapsed
        assert isinstance(info.value, openai.APITimeoutError)
        assert info.value.retryable is Retryability.RETRY
        if stream:
            assert isinstance(info.value, StreamStalled)
        _check_row(router, stream)
    raw.ended.wait(max(0.0, started + timeout + RAW_GRACE - time.monotonic()))
    _check_raw(mode, raw.ended.is_set(), raw.error)


@pytest.mark.parametrize(("mode", "stream", "anthropic"), CASES)
async def test_stalled_attempt_ends_in_time_async(
    server: BadServer, mode: str, stream: bool, anthropic: bool
) -> None:
    timeout = TIMEOUTS[mode]
    client = _raw_client(server, mode, anthropic, asynchronous=True)
    create = client.messages.create if anthropic else client.chat.completions.create

    async def raw_call() -> None:
        reply = await create(**_raw_args(stream, anthropic))
        if stream:
            async for _ in reply:
                pass

    raw = asyncio.create_task(raw_call())
    started = time.monotonic()
    async with llmroute.AsyncRouter([deployment(server, mode, anthropic)], retry=ONE_TRY) as router:
        with pytest.raises(ProviderTimeout) as info:
            reply = await router.chat.completions.create(
                model="bad", messages=USER, stream=stream, timeout=timeout
            )
            if stream:
                async for _ in reply:
                    pass
        assert time.monotonic() - started < timeout + MARGIN
        assert isinstance(info.value, openai.APITimeoutError)
        _check_row(router, stream)
    await asyncio.wait([raw], timeout=max(0.0, started + timeout + RAW_GRACE - time.monotonic()))
    raw.cancel()
    outcome = await asyncio.gather(raw, return_exceptions=True)
    _check_raw(mode, not isinstance(outcome[0], asyncio.CancelledError), outcome[0])
    await client.close()


def test_partial_text_of_a_stalled_stream(server: BadServer) -> None:
    """After content, the caller gets the partial text with the timeout (both error types)."""
    with llmroute.Router([deployment(server, "ping")], retry=ONE_TRY) as router:
        stream = router.chat.completions.create(model="bad", messages=USER, stream=True, timeout=TIMEOUT)
        seen = []
        with pytest.raises(StreamStalled) as info:
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content)
        assert seen == ["Hello there"]
        assert isinstance(info.value, StreamInterrupted) and info.value.partial_text == "Hello there"
        row = router.ledger.rows()[0]
        assert row.outcome == "cut" and row.usage.output_tokens > 0 and row.usage.estimated


def test_default_stall_bound_applies_without_timeout(
    server: BadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_watchdog, "DEFAULT_STALL_S", TIMEOUT)
    with llmroute.Router([deployment(server, "ping")], retry=ONE_TRY) as router:
        started = time.monotonic()
        with pytest.raises(StreamStalled, match="no content progress"):
            for _ in router.chat.completions.create(model="bad", messages=USER, stream=True):
                pass
        assert time.monotonic() - started < TIMEOUT + MARGIN


def test_deployment_timeout_is_the_call_timeout(server: BadServer) -> None:
    with llmroute.Router([deployment(server, "trickle", timeout=TIMEOUT)], retry=ONE_TRY) as router:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            router.chat.completions.create(model="bad", messages=USER)
        assert time.monotonic() - started < TIMEOUT + MARGIN


@pytest.mark.parametrize(
    ("mode", "stream"), [("stall", False), ("ping", True), ("trickle", False), ("trickle", True)]
)
def test_retry_deadline_bounds_the_attempt(server: BadServer, mode: str, stream: bool) -> None:
    """`RetryPolicy(deadline=...)` without a per-call timeout: the attempt ends with the deadline,
    even while keep-alive comments or trickled bytes arrive, and no retry starts after it."""
    deadline = TIMEOUTS[mode]
    retry = llmroute.RetryPolicy(deadline=deadline)
    with llmroute.Router([deployment(server, mode)], retry=retry) as router:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout):
            reply = router.chat.completions.create(model="bad", messages=USER, stream=stream)
            if stream:
                for _ in reply:
                    pass
        assert time.monotonic() - started < deadline + MARGIN
        assert len(router.ledger.rows()) == 1


def _slow_stream(chunks: int) -> list[dict[str, Any]]:
    pieces = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-5.4",
            "choices": [{"index": 0, "delta": {"content": f"w{i}. "}, "finish_reason": None}],
        }
        for i in range(chunks)
    ]
    pieces.append({**pieces[0], "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return pieces


def test_caller_time_between_chunks_is_not_a_stall(server: BadServer) -> None:
    """The clock runs while llmroute waits for the provider, not while the caller holds a chunk."""
    server.answers["slow-reader"] = _slow_stream(3)
    with llmroute.Router([deployment(server, "answer-slow-reader")], retry=ONE_TRY) as router:
        stream = router.chat.completions.create(model="bad", messages=USER, stream=True, timeout=0.5)
        text = []
        for chunk in stream:
            time.sleep(0.8)  # longer than the timeout, spent by the caller
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
        assert "".join(text) == "w0. w1. w2. "
        assert router.ledger.rows()[0].outcome == "ok"


def test_a_stream_making_progress_outlives_its_timeout(server: BadServer) -> None:
    """The timeout bounds the gaps between content, not the whole of an answer that is arriving."""
    server.answers["steady"] = _slow_stream(5)
    with llmroute.Router([deployment(server, "drip-steady")], retry=ONE_TRY) as router:
        started = time.monotonic()
        stream = router.chat.completions.create(model="bad", messages=USER, stream=True, timeout=0.6)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert time.monotonic() - started > 0.6 * 2  # several timeouts long, and still complete
        assert text == "w0. w1. w2. w3. w4. "
        assert router.ledger.rows()[0].outcome == "ok", stream.route


# -- abandoned streams (issue #14 item 5) ---------------------------------------------------------


def _limited(server: BadServer) -> list[llmroute.Deployment]:
    return [deployment(server, "answer-long", max_in_flight=1)]


def _long_answer(server: BadServer) -> None:
    server.answers["long"] = _slow_stream(40)


def _budgets() -> Budgets:
    return Budgets([Budget("100")])


def _budget_state(router: llmroute.Router | llmroute.AsyncRouter) -> tuple[Decimal, Decimal]:
    budgets = router._core.budgets
    assert budgets is not None
    status = budgets.status()[0]
    return status.reserved, status.spent


def test_abandoned_streams_release_their_slot_and_are_recorded(server: BadServer) -> None:
    _long_answer(server)
    with llmroute.Router(_limited(server), retry=ONE_TRY, budgets=_budgets()) as router:
        for _ in range(3):
            stream = router.chat.completions.create(model="bad", messages=USER, stream=True)
            next(iter(stream))
            assert _budget_state(router)[0] > 0  # the open stream holds a reservation
            del stream  # neither exhausted nor closed
            gc.collect()
        rows = router.ledger.rows()
        assert [row.outcome for row in rows] == ["cut", "cut", "cut"]
        assert all(row.usage.estimated and row.usage.output_tokens > 0 for row in rows)
        reserved, spent = _budget_state(router)
        assert reserved == 0 and spent == sum(row.cost.total for row in rows if row.cost is not None) > 0
        reply = router.chat.completions.create(model="bad", messages=USER, stream=True)  # no NoCapacity
        assert sum(1 for _ in reply) == 41


def test_router_close_records_open_streams(server: BadServer) -> None:
    _long_answer(server)
    router = llmroute.Router(_limited(server), retry=ONE_TRY)
    stream = router.chat.completions.create(model="bad", messages=USER, stream=True)
    next(iter(stream))
    router.close()
    assert [row.outcome for row in router.ledger.rows()] == ["cut"]
    assert stream.route.usage.estimated


async def test_abandoned_async_streams_release_their_slot_and_are_recorded(server: BadServer) -> None:
    _long_answer(server)
    async with llmroute.AsyncRouter(_limited(server), retry=ONE_TRY, budgets=_budgets()) as router:
        for _ in range(3):
            stream = await router.chat.completions.create(model="bad", messages=USER, stream=True)
            await stream.__anext__()
            del stream
            gc.collect()
            await asyncio.sleep(0)  # the response's close, scheduled by the finaliser
        rows = router.ledger.rows()
        assert [row.outcome for row in rows] == ["cut", "cut", "cut"]
        assert all(row.usage.estimated for row in rows)
        assert _budget_state(router)[0] == 0
        reply = await router.chat.completions.create(model="bad", messages=USER, stream=True)
        assert len([chunk async for chunk in reply]) == 41


async def test_async_router_close_records_open_streams(server: BadServer) -> None:
    _long_answer(server)
    router = llmroute.AsyncRouter(_limited(server), retry=ONE_TRY)
    stream = await router.chat.completions.create(model="bad", messages=USER, stream=True)
    await stream.__anext__()
    await router.close()
    assert [row.outcome for row in router.ledger.rows()] == ["cut"]


def test_a_stream_read_without_a_name_is_not_abandoned(server: BadServer) -> None:
    """`for chunk in router.chat.completions.create(...)` holds no other reference to the stream:
    it must stay open while it is read (the finaliser only closes streams nobody can read)."""
    server.answers["unnamed"] = _slow_stream(3)
    with llmroute.Router([deployment(server, "drip-unnamed")], retry=ONE_TRY) as router:
        text = []
        for chunk in router.chat.completions.create(model="bad", messages=USER, stream=True):
            gc.collect()
            text.extend(choice.delta.content or "" for choice in chunk.choices)
        assert "".join(text) == "w0. w1. w2. " and router.ledger.rows()[0].outcome == "ok"


async def test_an_async_stream_read_without_a_name_is_not_abandoned(server: BadServer) -> None:
    server.answers["unnamed"] = _slow_stream(3)
    async with llmroute.AsyncRouter([deployment(server, "drip-unnamed")], retry=ONE_TRY) as router:
        text = []
        async for chunk in await router.chat.completions.create(model="bad", messages=USER, stream=True):
            gc.collect()
            await asyncio.sleep(0)
            text.extend(choice.delta.content or "" for choice in chunk.choices)
        assert "".join(text) == "w0. w1. w2. " and router.ledger.rows()[0].outcome == "ok"


# -- malformed answers (issue #14 item 6) ---------------------------------------------------------

_CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.4"}
_MALFORMED: dict[str, Any] = {
    # streams: the first chunk is unusable
    "chunk-no-choices": [_CHUNK],
    "chunk-choices-object": [{**_CHUNK, "choices": {"index": 0, "delta": {"content": "Hi"}}}],
    "chunk-choices-string": [{**_CHUNK, "choices": "Hi"}],
    # non-streaming answers
    "choices-empty-object": {**_ANSWER, "choices": [{}]},
    "message-null": {**_ANSWER, "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
    "choices-object": {**_ANSWER, "choices": {"index": 0, "message": {"role": "assistant"}}},
    "anthropic-content-object": {
        "id": "msg_bad",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": {"type": "text", "text": "Hi"},
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 2},
    },
}
MALFORMED_CASES = [
    ("answer-chunk-no-choices", True, False),
    ("answer-chunk-choices-object", True, False),
    ("answer-chunk-choices-string", True, False),
    ("answer-choices-empty-object", False, False),
    ("answer-message-null", False, False),
    ("answer-choices-object", False, False),
    ("badjson", False, False),
    ("badjson", True, False),
    ("garbage", False, False),
    ("garbage", True, False),
    ("answer-anthropic-content-object", False, True),
    ("badjson", False, True),
    ("badjson", True, True),
    ("garbage", False, True),
    ("garbage", True, True),
]


def _check_malformed(error: BaseException, router: llmroute.Router | llmroute.AsyncRouter) -> None:
    assert isinstance(error, MalformedResponse) and isinstance(error, openai.APIError)
    assert error.retryable is Retryability.RETRY
    rows = router.ledger.rows()
    assert len(rows) == 1 and rows[0].error == "MalformedResponse"
    assert rows[0].outcome in ("error", "cut")  # a stream's failed attempt is a cut one


@pytest.mark.parametrize(("mode", "stream", "anthropic"), MALFORMED_CASES)
def test_malformed_answers_are_typed_sync(
    server: BadServer, mode: str, stream: bool, anthropic: bool
) -> None:
    server.answers.update(_MALFORMED)
    with llmroute.Router([deployment(server, mode, anthropic)], retry=ONE_TRY) as router:
        with pytest.raises(llmroute.LLMRouteError) as info:
            reply = router.chat.completions.create(model="bad", messages=USER, stream=stream)
            if stream:
                list(reply)
        _check_malformed(info.value, router)


@pytest.mark.parametrize(("mode", "stream", "anthropic"), MALFORMED_CASES)
async def test_malformed_answers_are_typed_async(
    server: BadServer, mode: str, stream: bool, anthropic: bool
) -> None:
    server.answers.update(_MALFORMED)
    async with llmroute.AsyncRouter([deployment(server, mode, anthropic)], retry=ONE_TRY) as router:
        with pytest.raises(llmroute.LLMRouteError) as info:
            reply = await router.chat.completions.create(model="bad", messages=USER, stream=stream)
            if stream:
                [chunk async for chunk in reply]
        _check_malformed(info.value, router)


def test_a_malformed_answer_is_retried_on_the_next_target(server: BadServer) -> None:
    server.answers.update(_MALFORMED)
    bad = deployment(server, "answer-message-null")
    good = llmroute.Deployment(
        "good", model="gpt-5.4", base_url=server.base_url("answer-warm"), api_key=CANARY_OPENAI
    )
    with llmroute.Router([bad, good], fallbacks=["good"], retry=ONE_TRY) as router:
        reply = router.chat.completions.create(model="bad", messages=USER)
        assert reply.choices[0].message.content == "Hi"
        assert [(row.deployment, row.outcome) for row in router.ledger.rows()] == [
            ("bad", "error"),
            ("good", "ok"),
        ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_a_forked_child_does_not_record_the_parents_abandoned_stream(server: BadServer) -> None:
    """A stream left in a reference cycle is collected later, possibly in a forked child (a
    `multiprocessing` worker): the child must not close or record the parent's attempt."""
    _long_answer(server)
    with llmroute.Router(_limited(server), retry=ONE_TRY) as router:
        gc.disable()  # the cycle below must survive until the fork
        try:
            stream = router.chat.completions.create(model="bad", messages=USER, stream=True)
            next(iter(stream))
            cycle: list[Any] = [stream]
            cycle.append(cycle)
            del stream, cycle
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: collect, report its rows, leave at once
                code = 1
                try:
                    gc.collect()
                    os.write(write, str(len(router.ledger.rows())).encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write)
            child_rows = os.read(read, 16).decode()
            os.close(read)
            assert os.waitpid(pid, 0)[1] == 0
        finally:
            gc.enable()
        assert child_rows == "0"
        gc.collect()  # the parent collects its own stream (if it has not yet): recorded here, once
        assert [row.outcome for row in router.ledger.rows()] == ["cut"]
