"""`Router` and `AsyncRouter`: drop-in replacements for `openai.OpenAI` / `openai.AsyncOpenAI` chat.

```python
router = llmroute.Router([
    llmroute.Deployment("gpt", model="gpt-5.4"),
    llmroute.Deployment("deepseek", model="deepseek-v3.2"),
], fallbacks=["deepseek-v3.2"])
reply = router.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "Hi"}])
reply.choices[0].message.content      # an openai ChatCompletion
reply.route.cost                       # and how it was routed, what it cost
```

Each call: validate (`ChatRequest`), rank targets (the policy), then the engine tries them in order
with retries; every attempt is a ledger row. The sync router does its I/O on the calling thread (no
event loop behind it); the async router never blocks its loop.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import openai
from openai.types.chat import ChatCompletionChunk
from tenacity import stop_after_attempt

from . import _fork, _sdkclient
from .catalog import Catalog, Deployment, ModelSpec, ProviderSpec
from .errors import BudgetExceeded, ConfigurationError, ProviderError
from .money.ledger import Ledger, LedgerRow
from .policy import Decision, Policy
from .providers._watchdog import cut_to_deadline
from .providers.base import Completed
from .request import ChatRequest
from .resources import AsyncChat, Chat
from .response import RoutedChatCompletion
from .routing.answer import answer_flow
from .routing.balance import Balancer, LoadStore
from .routing.cooldown import Cooldowns
from .routing.core import RouterCore, new_call_id
from .routing.engine import Attempt, Call, RetryPolicy, adrive, drive
from .routing.health import Health
from .stream import AsyncRoutedStream, RoutedStream, _Settle
from .usage import Usage

if TYPE_CHECKING:
    from .fleet import RedisLink
    from .money.budget import Budgets
    from .truncation import TruncationPolicy

__all__ = ["AsyncRouter", "Router"]

_NO_USAGE = Usage()


class _Base:
    _core: RouterCore
    chat: Any
    _shadows: Any

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        catalog: Catalog | None = None,
        models: Iterable[ModelSpec] = (),
        providers: Iterable[ProviderSpec] = (),
        policy: Policy | None = None,
        fallbacks: Sequence[str] | None = (),
        ledger: Ledger | None = None,
        retry: RetryPolicy | None = None,
        health: Health | None = None,
        cooldowns: Cooldowns | None = None,
        balancer: Balancer | None = None,
        queue_timeout: float = 0.0,
        truncation: TruncationPolicy | None = None,
        budgets: Budgets | None = None,
        cache_hints: bool = True,
        load: LoadStore | None = None,
        state: str | RedisLink | None = None,
    ) -> None:
        """Build a router.

        - `deployments`: where models are served (see `Deployment`).
        - `catalog`: the model catalog (default: the shipped one); `models` / `providers` add or
          override rows.
        - `policy`: how targets are ranked (default: `Requested(fallbacks)`).
        - `fallbacks`: models or deployments tried, in order, after the requested one.
        - `ledger`: where attempts are recorded (share one between routers to pool spend).
        - `retry`: retry strategy per target (default: 4 attempts, jittered backoff, Retry-After).
        - `cooldowns`: when failing deployments are rested (default: `Cooldowns()`).
        - `balancer`: orders deployments of the same model (default: `WeightedRandom()`).
        - `queue_timeout`: seconds a call may wait for room when every deployment of a model is at
          its client-side limits (`max_in_flight`, `rpm`, `tpm`) before moving on (default 0).
        - `truncation`: what to do with cut answers, per kind (default: `TruncationPolicy()` —
          return flagged, but move a content-filtered answer to the next target).
        - `budgets`: spending limits (`llmroute.money.budget.Budgets`); a call whose estimated cost would
          cross a hard limit fails with `BudgetExceeded` before anything is sent.
        - `cache_hints`: give each attempt its provider's prompt-cache hints — Anthropic breakpoints
          where the request has none, an OpenAI `prompt_cache_key` from the stable prefix (see
          `llmroute.prefix`). On by default.
        - `load`: where in-flight counts, rate windows and provider headroom live (default: an
          in-memory `LoadTracker`; a shared `LoadStore` makes limits hold across processes).
        - `state`: fleet mode, `"redis://host:port/db"` (or a `llmroute.fleet.RedisLink`): budgets,
          client-side limits, cooldowns and latency statistics shared by every process given the same
          URL (docs/fleet.md).
        """
        if state is not None:
            from .fleet import shared

            budgets, load, cooldowns, health = shared(
                state, budgets=budgets, load=load, cooldowns=cooldowns, health=health
            )
        self._core = RouterCore(
            deployments,
            catalog=catalog,
            models=models,
            providers=providers,
            policy=policy,
            fallbacks=fallbacks,
            ledger=ledger,
            retry=retry,
            health=health,
            cooldowns=cooldowns,
            balancer=balancer,
            queue_timeout=queue_timeout,
            truncation=truncation,
            budgets=budgets,
            cache_hints=cache_hints,
            load=load,
        )
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()  # open ones, closed with the router
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        """Background shadow calls and open streams of the parent do not exist in a forked child
        (`llmroute._fork`): the parent records its own streams' rows. The SDK clients of its non-chat
        resources are built again."""
        _fork.reset_router(self)
        _fork.keep(self._shadows)
        _fork.keep(self._streams)
        self._streams = weakref.WeakSet()
        self._shadows = None if isinstance(self, Router) else set()

    @property
    def ledger(self) -> Ledger:
        return self._core.ledger

    @property
    def catalog(self) -> Catalog:
        return self._core.catalog

    @property
    def policy(self) -> Policy:
        return self._core.policy

    @property
    def health(self) -> Health:
        return self._core.health

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return tuple(self._core.deployments.values())

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> Self:
        """A router described by a TOML file (deployments, models, providers, policy by name)."""
        from .routing.config import load_config

        return cls(**{**load_config(path), **overrides})

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """A router for every provider whose API key is in the environment
        (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `DEEPSEEK_API_KEY`, with their `*_BASE_URL`)."""
        from .routing.config import env_config

        return cls(**{**env_config(), **overrides})

    def with_options(
        self, *, timeout: float | None = None, max_retries: int | None = None, **client_options: Any
    ) -> Self:
        """A copy of this router with other per-call options, sharing its deployments, ledger,
        health and cooldowns (the `openai` client's `with_options`, also reachable as `copy`).
        `max_retries` counts retries per target, as the SDK does: `max_retries=0` means one attempt
        on each target. `default_headers` / `default_query` add to the router's."""
        clone = copy.copy(self)
        core = copy.copy(self._core)
        if max_retries is not None:
            if max_retries < 0:
                raise ConfigurationError("max_retries must be >= 0")
            core.retry = core.retry.with_stop(stop_after_attempt(max_retries + 1))
        if timeout is not None:
            core.default_timeout = timeout
        clone._core = core
        clone.chat = type(self.chat)(clone)
        _sdkclient.copy_options(clone, timeout, max_retries, client_options)
        _fork.track(core)
        _fork.track(clone)
        return clone

    def __repr__(self) -> str:
        names = ", ".join(self._core.deployments)
        return f"{type(self).__name__}(deployments=[{names}], policy={self._core.policy.name})"


def _finish(
    core: RouterCore,
    call_id: str,
    request: ChatRequest,
    decision: Decision,
    rows: list[LedgerRow],
    done: Completed,
) -> RoutedChatCompletion:
    completion = done.completion
    if not isinstance(completion, RoutedChatCompletion):
        completion = RoutedChatCompletion.construct(**dict(completion))
    completion._http_response = done.http_response
    verdict = done.verdict
    completion._route = core.route_info(
        call_id,
        request,
        decision,
        rows,
        done.usage,
        done.finish_reason,
        done.served_model,
        verdict.truncated if verdict is not None else done.finish_reason in ("length", "content_filter"),
        verdict,
    )
    return completion


def _within_deadline(core: RouterCore, request: ChatRequest, call: Call, started: float) -> ChatRequest:
    """The request with a timeout that ends its attempt by the call's `RetryPolicy(deadline=...)`
    (`providers._watchdog.cut_to_deadline`), so that one attempt cannot outlive the deadline."""
    deadline = core.retry.deadline
    if deadline is None:
        return request
    timeout = cut_to_deadline(request.timeout, call.target.deployment.timeout, started + deadline)
    return dataclasses.replace(request, timeout=timeout)


def _has_content(chunk: ChatCompletionChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.delta
        if delta.content or delta.tool_calls or delta.refusal or choice.finish_reason is not None:
            return True
    return False


class Router(_Base, openai.OpenAI):  # type: ignore[misc]
    """Synchronous router: an `openai.OpenAI` whose `chat.completions` are routed (see `_sdkclient`
    for the other resources and the SDK client's options)."""

    def __init__(self, deployments: Iterable[Deployment], **kwargs: Any) -> None:
        options = _sdkclient.client_options(kwargs)
        super().__init__(deployments, **kwargs)
        _sdkclient.init_client(self, openai.OpenAI, options)
        self.chat = Chat(self)
        self._shadows: ThreadPoolExecutor | None = None

    def _create(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | RoutedStream:
        return self._core.telemetry.call(self._route, kwargs)  # the call's span (llmroute.telemetry)

    def _route(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | RoutedStream:
        core = self._core
        request, decision = core.prepare(kwargs)
        call_id = new_call_id()
        rows: list[LedgerRow] = []
        call_started = time.monotonic()

        def complete(call: Call) -> Attempt[Completed]:
            adapter = core.adapter(call.target)
            flow = answer_flow(core, call_id, call, request, decision, rows)
            reservation = core.reserve(call_id, call, request)
            try:
                sent = next(flow)
                while True:
                    try:
                        outcome: Completed | ProviderError = adapter.complete(
                            _within_deadline(core, core.hinted(sent, call.target), call, call_started),
                            call.target,
                        )
                    except ProviderError as e:
                        outcome = e
                    sent = flow.send(outcome)
            except StopIteration as done:
                result: Attempt[Completed] = done.value
                return result
            finally:
                if reservation is not None:
                    reservation.release()  # a no-op once the attempt's row has settled it

        def open_stream(call: Call) -> Attempt[RoutedStream]:
            reservation = core.reserve(call_id, call, request)  # settled by the stream's ledger row
            try:
                return open_reserved(call)
            except BaseException:
                if reservation is not None:
                    reservation.release()
                raise

        def open_reserved(call: Call) -> Attempt[RoutedStream]:
            started = time.perf_counter()
            try:
                chunks = core.adapter(call.target).stream(
                    _within_deadline(core, core.hinted(request, call.target), call, call_started), call.target
                )
            except ProviderError as e:
                rows.append(
                    core.row(
                        call_id, call, request, outcome="error", started=started, error=e, decision=decision
                    )
                )
                return Attempt(error=e)
            settle = _Settle(core, call_id, request, decision, rows, call, started)
            rest = iter(chunks)
            head: list[ChatCompletionChunk] = []
            try:
                for chunk in rest:  # fallback stays invisible until the first content chunk
                    head.append(chunk)
                    if _has_content(chunk):
                        break
            except ProviderError as e:
                return Attempt(error=settle.failed_before_content(head, chunks, e))
            if not head or not _has_content(head[-1]):
                chunks.close()
                return Attempt(error=settle.failed_before_content(head, chunks, None))
            settle.ttft = time.perf_counter() - started
            routed = RoutedStream(settle, chunks, rest, head)
            self._streams.add(routed)
            return Attempt(result=routed)

        if request.stream:
            stream: RoutedStream = drive(core.plan(decision, request), open_stream)
            return stream
        done = drive(core.plan(decision, request), complete)
        result = _finish(core, call_id, request, decision, rows, done)
        shadow = core.shadow_call(call_id, decision)
        if shadow is not None:
            self._shadow(request, *shadow)
        return result

    def _shadow(self, request: ChatRequest, call: Call, decision: Decision) -> None:
        """Ask a `Shadow` candidate too, on a background thread, after the caller has its answer."""
        core = self._core

        def run() -> None:
            try:
                reservation = core.reserve(decision.targets[0].name, call, request)
            except BudgetExceeded:
                return  # a shadow never spends past a budget
            started = time.perf_counter()
            try:
                outcome: Completed | ProviderError = core.adapter(call.target).complete(
                    core.hinted(request, call.target), call.target
                )
            except ProviderError as e:
                outcome = e
            core.record_shadow(call, decision, request, started, outcome)
            if reservation is not None:
                reservation.release()

        if self._shadows is None:
            self._shadows = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llmroute-shadow")
        self._shadows.submit(run)

    def close(self) -> None:
        """Wait for background shadow calls, close (and record) streams still open, then close
        the SDK clients the router created."""
        for stream in list(self._streams):
            stream.close()
        if self._shadows is not None:
            self._shadows.shutdown(wait=True)
            self._shadows = None
        self._core.close()
        openai.OpenAI.close(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncRouter(_Base, openai.AsyncOpenAI):  # type: ignore[misc]
    """Asynchronous router: an `openai.AsyncOpenAI` whose `chat.completions` are routed."""

    def __init__(self, deployments: Iterable[Deployment], **kwargs: Any) -> None:
        options = _sdkclient.client_options(kwargs)
        super().__init__(deployments, **kwargs)
        _sdkclient.init_client(self, openai.AsyncOpenAI, options)
        self.chat = AsyncChat(self)
        self._shadows: set[asyncio.Task[None]] = set()

    async def _create(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | AsyncRoutedStream:
        return await self._core.telemetry.acall(self._route, kwargs)  # the call's span

    async def _route(self, kwargs: dict[str, Any]) -> RoutedChatCompletion | AsyncRoutedStream:
        core = self._core
        request, decision = core.prepare(kwargs)
        call_id = new_call_id()
        rows: list[LedgerRow] = []
        call_started = time.monotonic()

        async def complete(call: Call) -> Attempt[Completed]:
            adapter = core.adapter(call.target)
            flow = answer_flow(core, call_id, call, request, decision, rows)
            reservation = await core.areserve(call_id, call, request)
            try:
                sent = next(flow)
                while True:
                    try:
                        outcome: Completed | ProviderError = await adapter.acomplete(
                            _within_deadline(core, core.hinted(sent, call.target), call, call_started),
                            call.target,
                        )
                    except ProviderError as e:
                        outcome = e
                    sent = flow.send(outcome)
            except StopIteration as done:
                result: Attempt[Completed] = done.value
                return result
            finally:
                if reservation is not None:
                    reservation.release()  # a no-op once the attempt's row has settled it

        async def open_stream(call: Call) -> Attempt[AsyncRoutedStream]:
            reservation = await core.areserve(call_id, call, request)  # settled by the stream's ledger row
            try:
                return await open_reserved(call)
            except BaseException:
                if reservation is not None:
                    reservation.release()
                raise

        async def open_reserved(call: Call) -> Attempt[AsyncRoutedStream]:
            started = time.perf_counter()
            try:
                chunks = await core.adapter(call.target).astream(
                    _within_deadline(core, core.hinted(request, call.target), call, call_started), call.target
                )
            except ProviderError as e:
                rows.append(
                    core.row(
                        call_id, call, request, outcome="error", started=started, error=e, decision=decision
                    )
                )
                return Attempt(error=e)
            settle = _Settle(core, call_id, request, decision, rows, call, started)
            rest = chunks.__aiter__()
            head: list[ChatCompletionChunk] = []
            try:
                async for chunk in rest:  # fallback stays invisible until the first content chunk
                    head.append(chunk)
                    if _has_content(chunk):
                        break
            except ProviderError as e:
                return Attempt(error=settle.failed_before_content(head, chunks, e))
            if not head or not _has_content(head[-1]):
                await chunks.aclose()
                return Attempt(error=settle.failed_before_content(head, chunks, None))
            settle.ttft = time.perf_counter() - started
            routed = AsyncRoutedStream(settle, chunks, rest, head)
            self._streams.add(routed)
            return Attempt(result=routed)

        if request.stream:
            astream: AsyncRoutedStream = await adrive(core.plan(decision, request), open_stream)
            return astream
        done = await adrive(core.plan(decision, request), complete)
        result = _finish(core, call_id, request, decision, rows, done)
        shadow = core.shadow_call(call_id, decision)
        if shadow is not None:
            task = asyncio.create_task(self._shadow(request, *shadow))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)
        return result

    async def _shadow(self, request: ChatRequest, call: Call, decision: Decision) -> None:
        """Ask a `Shadow` candidate too, as a background task, after the caller has its answer."""
        core = self._core
        try:
            reservation = await core.areserve(decision.targets[0].name, call, request)
        except BudgetExceeded:
            return
        started = time.perf_counter()
        try:
            outcome: Completed | ProviderError = await core.adapter(call.target).acomplete(
                core.hinted(request, call.target), call.target
            )
        except ProviderError as e:
            outcome = e
        core.record_shadow(call, decision, request, started, outcome)
        if reservation is not None:
            reservation.release()

    async def close(self) -> None:
        """Wait for background shadow calls, close (and record) streams still open, then close
        the SDK clients the router created."""
        for stream in list(self._streams):
            await stream.close()
        if self._shadows:
            await asyncio.gather(*self._shadows, return_exceptions=True)
        await self._core.aclose()
        await openai.AsyncOpenAI.close(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


_sdkclient.install(Router, openai.OpenAI)
_sdkclient.install(AsyncRouter, openai.AsyncOpenAI)
