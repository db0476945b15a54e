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
from typing import Any, Generic, TypeVar

from tenacity import RetryCallState, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from .errors import (
    AllTargetsFailed,
    ContextWindowExceeded,
    NoCapacity,
    NoRoute,
    ProviderError,
    Rejection,
    Retryability,
)
from .target import Target

__all__ = ["Attempt", "Call", "RetryPolicy", "Sleep", "adrive", "drive", "plan"]

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
class Attempt(Generic[T]):
    """What the driver reports back after a `Call`: a result, or the attempt's error."""

    result: T | None = None
    error: ProviderError | None = None


class RetryPolicy:
    """How often and how long to retry one target before moving to the next.

    - `stop`: a tenacity stop strategy over attempts on ONE target (default: 3 attempts).
    - `wait`: a tenacity wait strategy (default: full-jitter exponential, 0.5 s base, 8 s cap).
    - `max_retry_after`: the longest provider-requested wait honoured; longer means "next target".
    - `switch_after`: when another target remains, waits longer than this move on instead.
    - `deadline`: total seconds across all attempts and targets (None: no limit).
    """

    def __init__(
        self,
        stop: stop_base | None = None,
        wait: wait_base | None = None,
        *,
        max_retry_after: float = 60.0,
        switch_after: float = 2.0,
        deadline: float | None = None,
    ) -> None:
        self.stop = stop if stop is not None else stop_after_attempt(3)
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

    def expired(self, started: float, now: float) -> bool:
        return self.deadline is not None and now - started >= self.deadline


NO_RETRY = RetryPolicy(stop=stop_after_attempt(1))


POLL_S = 0.01
"""How often a call waiting for a deployment's in-flight slot looks again (rate windows say exactly
when they free up; a finishing call does not)."""


def plan(
    targets: Sequence[Target],
    retry: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    available: Callable[[Target], bool] | None = None,
    admit: Callable[[Target], tuple[Any, float | None]] | None = None,
    queue_timeout: float = 0.0,
    release: Callable[[Any], None] | None = None,
) -> Generator[Call | Sleep, Attempt[T] | None, T]:
    """The state machine for one call over ranked targets.

    - An `Attempt` with only a result ends the call with it.
    - An `Attempt` with an error is classified: FATAL ends the call; RETRY may retry the same target
      (per `retry`, honouring Retry-After); NEXT_TARGET and exhausted retries move on.
    - An `Attempt` with both a result and an error is a soft failure (an answer the caller's
      truncation settings want replaced, e.g. a content-filtered one): the next target is tried,
      and if none is left the last such result is returned.
    - `available(target)` is asked before each attempt; targets cooling down are skipped.
    - `admit(target)` reserves room at a deployment under its client-side limits: `(ticket, None)`
      when admitted, else `(None, seconds until room or None)`. A deployment without room is passed
      over for a later one of the same model that has room; if none has, the call waits (yielding
      `Sleep`) up to `queue_timeout`, then moves on. The ticket rides on the `Call`; the attempt's
      ledger row releases it. If the driver never reports back (the attempt raised, or the task
      was cancelled: the drivers then close this generator), `release(ticket)` gives it back here,
      so no exception between admission and the answer can leave a deployment's slot taken.
    - After a context-window error, targets whose window is not larger are skipped.
    """
    errors: list[ProviderError] = []
    full: list[Rejection] = []
    started = clock()
    number = 0
    fallback_result: T | None = None
    min_window = 0
    pending = list(targets)
    while pending:
        target = pending.pop(0)
        window = target.model.context_window
        if min_window and window is not None and window <= min_window:
            continue
        tries = 0
        while available is None or available(target):
            ticket: Any = None
            if admit is not None:
                waited = 0.0
                while True:
                    ticket, wait = admit(target)
                    if ticket is not None:
                        break
                    for i, other in enumerate(pending):  # a sibling deployment with room now?
                        if other.model.id == target.model.id:
                            ticket, _ = admit(other)
                            if ticket is not None:
                                pending[i], target = target, other
                                break
                    if ticket is not None:
                        break
                    pause = POLL_S if wait is None else wait
                    if waited + pause > queue_timeout:
                        break
                    yield Sleep(pause)
                    waited += pause
                if ticket is None:
                    full.append(Rejection(target.name, "limits", "at its rate or concurrency limits"))
                    break
            tries += 1
            number += 1
            try:
                outcome = yield Call(target, number, tries, ticket)
            except BaseException:  # GeneratorExit from a driver whose attempt raised, or a throw()
                if release is not None and ticket is not None:
                    release(ticket)  # idempotent: a no-op if the attempt's row released it already
                raise
            assert outcome is not None, "drivers send an Attempt after every Call"
            if outcome.error is None:
                return outcome.result  # type: ignore[return-value]
            error = outcome.error
            errors.append(error)
            if outcome.result is not None:
                fallback_result = outcome.result
                break
            if error.retryable is Retryability.FATAL:
                raise error
            if isinstance(error, ContextWindowExceeded):
                min_window = max(min_window, window or 0)
            wait = retry.next_wait(tries, error, started, clock(), bool(pending))
            if wait is None:
                break
            yield Sleep(wait)
        if retry.expired(started, clock()):
            break
    if fallback_result is not None:
        return fallback_result
    if not errors:
        if full:
            raise NoCapacity(full)
        raise NoRoute([Rejection(t.name, "Cooldown", "cooling down") for t in targets])
    if len(errors) == 1:
        raise errors[0]
    raise AllTargetsFailed.of(errors)


def drive(flow: Generator[Call | Sleep, Attempt[T] | None, T], attempt: Callable[[Call], Attempt[T]]) -> T:
    """Run a plan synchronously: `attempt(call)` performs the I/O of one attempt. Whatever ends
    the run early (an exception from an attempt, an interrupt) closes the plan, which gives back
    the admission ticket of an attempt that never reported."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Call):
                action = flow.send(attempt(action))
            else:
                time.sleep(action.seconds)
                action = flow.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def adrive(
    flow: Generator[Call | Sleep, Attempt[T] | None, T], attempt: Callable[[Call], Awaitable[Attempt[T]]]
) -> T:
    """Run a plan on the event loop: `await attempt(call)` performs the I/O of one attempt. An
    exception or a cancellation closes the plan, as in `drive`."""
    try:
        action = next(flow)
        while True:
            if isinstance(action, Call):
                action = flow.send(await attempt(action))
            else:
                await asyncio.sleep(action.seconds)
                action = flow.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        flow.close()
