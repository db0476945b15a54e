"""The routing engine: a state machine with no I/O of its own.

`plan(...)` is a generator that yields actions — `Call(target)` ("make this attempt and send me the
outcome") or `Sleep(seconds)` — and returns the successful result or raises the failure. The sync and
async drivers (`drive`, `adrive`) are the only places that perform I/O or wait, so the logic of
retries, fallbacks and error classification is written once (the model is tenacity's `iter()` and
httpx's `auth_flow`).

Retries use tenacity's strategies: `stop` and `wait` are any tenacity `stop_*` / `wait_*` objects,
combinable with `|` and `+`. A provider's `Retry-After` is honoured: the engine never waits less than
the provider asked, and if the provider asks for longer than `max_retry_after` (or longer than
`switch_after` while another target remains) it moves on to the next target instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tenacity import RetryCallState, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ..errors import (
    AllTargetsFailed,
    ContextWindowExceeded,
    NoCapacity,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Rejection,
    Retryability,
)
from ..target import Target

if TYPE_CHECKING:
    from .cooldown import Blocked

__all__ = ["DEFAULT_DEADLINE_S", "Attempt", "Call", "Io", "RetryPolicy", "Sleep", "adrive", "drive", "plan"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """Action: make one attempt at `target`. `number` counts attempts across all targets from 1."""

    target: Target
    number: int
    try_on_target: int
    ticket: Any = None
    """The load tracker's reservation for this attempt, if client-side limits are in force."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Action: wait this many seconds, then continue."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Io:
    """Action: a shared store's round trip (fleet admission); the driver sends back its result —
    `run()` in `drive`, `await arun()` in `adrive`, so the event loop is never blocked."""

    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Attempt(Generic[T]):
    """What the driver reports back after a `Call`: a result, or the attempt's error."""

    result: T | None = None
    error: ProviderError | None = None


DEFAULT_DEADLINE_S = 300.0
"""The default total deadline of one call (`RetryPolicy.deadline`): no wait and no new attempt starts
that would end after it. An attempt already running is bounded by its own timeout, not by this."""


class RetryPolicy:
    """How often and how long to retry one target before moving to the next.

    - `stop`: a tenacity stop strategy over attempts on ONE target (default: 4 attempts, one more
      than the `openai` SDK's 1 + 2 retries).
    - `wait`: a tenacity wait strategy (default: full-jitter exponential, 0.5 s base, 8 s cap).
    - `max_retry_after`: the longest provider-requested wait honoured; longer means "next target".
    - `switch_after`: when another target remains, waits longer than this move on instead.
    - `deadline`: total seconds across all attempts, waits and targets (default `DEFAULT_DEADLINE_S`,
      300 s; None: no limit). A wait (backoff, Retry-After, a pause, room under limits) that would end
      after it is not taken: the call moves on, or fails if nothing is left.
    """

    def __init__(
        self,
        stop: stop_base | None = None,
        wait: wait_base | None = None,
        *,
        max_retry_after: float = 60.0,
        switch_after: float = 2.0,
        deadline: float | None = DEFAULT_DEADLINE_S,
    ) -> None:
        self.stop = stop if stop is not None else stop_after_attempt(4)
        self.wait = wait if wait is not None else wait_random_exponential(multiplier=0.5, max=8.0)
        self.max_retry_after = max_retry_after
        self.switch_after = switch_after
        self.deadline = deadline

    def next_wait(
        self, tries: int, error: ProviderError, started: float, now: float, more_targets: bool
    ) -> float | None:
        """Seconds to wait before retrying the same target, or None to move on."""
        if error.retryable is not Retryability.RETRY:
            return None
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # strategies read no retry object
        state.attempt_number = tries
        state.start_time = started
        state.outcome_timestamp = now
        if self.stop(state):
            return None
        wait = float(self.wait(state))
        asked = error.retry_after
        if asked is not None:
            if asked > self.max_retry_after:
                return None
            wait = max(wait, asked)
        if more_targets and wait > self.switch_after:
            return None
        if self.deadline is not None and (now - started) + wait > self.deadline:
            return None
        return wait

    def with_stop(self, stop: stop_base) -> RetryPolicy:
        """The same policy with another stop strategy."""
        return RetryPolicy(
            stop,
            self.wait,
            max_retry_after=self.max_retry_after,
            switch_after=self.switch_after,
            deadline=self.deadline,
        )

    def retries(self) -> bool:
        """Whether this policy retries at all (`max_retries=0` / one attempt per target: no)."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = 1
        return not self.stop(state)

    def expired(self, started: float, now: float) -> bool:
        return self.deadline is not None and now - started >= self.deadline


NO_RETRY = RetryPolicy(stop=stop_after_attempt(1))


POLL_S = 0.01
"""How often a call waiting for a deployment's in-flight slot looks again (rate windows say exactly
when they free up; a finishing call does not)."""

FREE_RATE_LIMIT_WAITS = 10
"""Per target and call, how many 429s that carried a Retry-After are waited out without using up
one of the retry policy's attempts (the deadline bounds them too), when the policy retries at all."""

Gate = Callable[[Target, bool], "Blocked | None"]
"""Asked before each attempt: None to go, else why not (`Cooldowns.acquire`). The flag is `force`:
every candidate's breaker is open, so the marks are not trusted and the attempt goes as a probe."""


def plan(
    targets: Sequence[Target],
    retry: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    gate: Gate | None = None,
    admit: Callable[[Target], tuple[Any, float | None] | Io] | None = None,
    queue_timeout: float = 0.0,
    release: Callable[[Any], None] | None = None,
) -> Generator[Call | Sleep | Io, Any, T]:
    """The state machine for one call over ranked targets.

    - An `Attempt` with only a result ends the call with it.
    - An `Attempt` with an error is classified: FATAL ends the call; RETRY may retry the same target
      (per `retry`, honouring Retry-After); NEXT_TARGET and exhausted retries move on.
    - An `Attempt` with both a result and an error is a soft failure (an answer the caller's
      truncation settings want replaced, e.g. a content-filtered one): the next target is tried,
      and if none is left the last such result is returned.
    - `gate(target, force)` is asked before each attempt. A target held out (breaker open, or paused
      by a 429) is passed over while another target can be called now. When none can: if any is held
      out only by its breaker, the first of those is tried anyway as a probe (the marks are not
      trusted when they would leave nothing: Envoy's panic threshold); otherwise (all paused) the
      call sleeps until the earliest reopens, if that fits the deadline. If it does not, the call
      fails: with the attempts' errors if any were made (a note lists each target's state), else
      with `NoCapacity`, an `openai.RateLimitError`.
    - `admit(target)` reserves room at a deployment under its client-side limits: `(ticket, None)`
      when admitted, else `(None, seconds until room or None)` — or an `Io` whose result is that
      pair, when admission is a shared store's round trip. A deployment without room is passed
      over for a later one of the same model that has room; if none has, the call waits (yielding
      `Sleep`) up to `queue_timeout`, or, when no other target is left and the limit says when it
      frees up, as long as the deadline allows; then it moves on. The ticket rides on the `Call`;
      the attempt's ledger row releases it. If the driver never reports back (the attempt raised, or
      the task was cancelled: the drivers then close this generator), `release(ticket)` gives it
      back here, so no exception between admission and the answer can leave a deployment's slot
      taken.
    - After a context-window error, targets whose window is not larger are skipped.
    """
    errors: list[ProviderError] = []
    full: list[Rejection] = []
    states: dict[str, Blocked] = {}
    started = clock()
    number = 0
    fallback_result: T | None = None
    min_window = 0
    pending = list(targets)
    tries_at: dict[str, int] = {}
    free_at: dict[str, int] = {}

    def fits(wait: float) -> bool:
        return retry.deadline is None or (clock() - started) + wait <= retry.deadline

    while pending:
        if min_window:
            pending = [
                t for t in pending if t.model.context_window is None or t.model.context_window > min_window
            ]
            if not pending:
                break
        target: Target | None = None
        if gate is None:
            target = pending.pop(0)
        else:
            for i, candidate in enumerate(pending):
                blocked = gate(candidate, False)
                if blocked is None:
                    target = pending.pop(i)
                    break
                states[candidate.name] = blocked
            if target is None:
                opened = [t for t in pending if states[t.name].kind == "open"]
                for candidate in sorted(opened, key=lambda t: states[t.name].seconds):
                    if gate(candidate, True) is None:  # panic: probe through an open breaker
                        target = candidate
                        pending.remove(candidate)
                        break
            if target is None:
                reopens = min(states[t.name].seconds for t in pending)
                if not fits(reopens):
                    break
                yield Sleep(max(reopens, POLL_S))
                continue
        states.pop(target.name, None)
        tries = tries_at.get(target.name, 0)
        free = free_at.get(target.name, 0)
        requeue = False
        while True:
            ticket: Any = None
            if admit is not None:
                waited = 0.0
                while True:
                    admitted = admit(target)
                    if isinstance(admitted, Io):
                        admitted = yield admitted
                    ticket, room = admitted
                    if ticket is not None:
                        break
                    for i, other in enumerate(pending):  # a sibling deployment with room now?
                        if other.model.id == target.model.id:
                            admitted = admit(other)
                            if isinstance(admitted, Io):
                                admitted = yield admitted
                            ticket, _ = admitted
                            if ticket is not None:
                                pending[i], target = target, other
                                break
                    if ticket is not None:
                        break
                    pause = POLL_S if room is None else max(room, POLL_S)
                    last = not pending and room is not None  # nowhere else to go: wait for room
                    if waited + pause > queue_timeout and not (last and fits(pause)):
                        break
                    yield Sleep(pause)
                    waited += pause
                if ticket is None:
                    full.append(Rejection(target.name, "limits", "at its rate or concurrency limits"))
                    break
            tries += 1
            tries_at[target.name] = tries
            free_at[target.name] = free
            number += 1
            try:
                outcome = yield Call(target, number, tries, ticket)
            except BaseException:  # GeneratorExit from a driver whose attempt raised, or a throw()
                if release is not None and ticket is not None:
                    release(ticket)  # idempotent: a no-op if the attempt's row released it already
                raise
            assert outcome is not None, "drivers send an Attempt after every Call"
            if outcome.error is None:
                return outcome.result  # type: ignore[no-any-return]
            error = outcome.error
            errors.append(error)
            free_at[target.name] = free
            if outcome.result is not None:
                fallback_result = outcome.result
                break
            if error.retryable is Retryability.FATAL:
                raise error
            if isinstance(error, ContextWindowExceeded):
                min_window = max(min_window, target.model.context_window or 0)
            if (
                isinstance(error, RateLimited)
                and not isinstance(error, QuotaExhausted)
                and error.retry_after is not None
                and free < FREE_RATE_LIMIT_WAITS
                and retry.retries()
            ):
                free += 1  # "wait", not "fail": a 429 that said how long does not use up an attempt
            wait = retry.next_wait(tries - free, error, started, clock(), bool(pending))
            if wait is None:
                break
            yield Sleep(wait)
            if gate is not None:
                blocked = gate(target, False)
                if blocked is not None:  # closed off meanwhile: the next round decides
                    states[target.name] = blocked
                    requeue = True
                    break
        if requeue:
            pending.append(target)
        if retry.expired(started, clock()):
            break
    if fallback_result is not None:
        return fallback_result
    held = [Rejection(name, "Cooldown", blocked.describe()) for name, blocked in states.items()]
    if not errors:
        soonest = min((b.seconds for b in states.values()), default=None)
        rejections = full + held or [Rejection(t.name, "Deadline", "no attempt fit") for t in targets]
        first = targets[0] if targets else None
        url = f"{first.deployment.base_url or first.provider.base_url}/chat/completions" if first else None
        raise NoCapacity(rejections, soonest, url)
    final = errors[0] if len(errors) == 1 else AllTargetsFailed.of(errors)
    if held:
        final.add_note("targets not called again: " + "; ".join(f"{r.deployment}: {r.reason}" for r in held))
    raise final


def drive(flow: Generator[Call | Sleep | Io, Any, T], attempt: Callable[[Call], Attempt[T]]) -> T:
    """Run a plan synchronously: `attempt(call)` performs the I/O of one attempt. Whatever ends
    the run early (an exception from an attempt, an interrupt) closes the plan, which gives back
    the admission ticket of an attempt that never reported."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Call):
                action = flow.send(attempt(action))
            elif isinstance(action, Io):
                action = flow.send(action.run())
            else:
                time.sleep(action.seconds)
                action = flow.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def adrive(
    flow: Generator[Call | Sleep | Io, Any, T], attempt: Callable[[Call], Awaitable[Attempt[T]]]
) -> T:
    """Run a plan on the event loop: `await attempt(call)` performs the I/O of one attempt. An
    exception or a cancellation closes the plan, as in `drive`."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Call):
                action = flow.send(await attempt(action))
            elif isinstance(action, Io):
                action = flow.send(await action.arun())
            else:
                await asyncio.sleep(action.seconds)
                action = flow.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        flow.close()
