"""Time bounds on an attempt's answer: a stalled provider ends with `ProviderTimeout`.

httpx's read timeout is per socket read, so a provider that sends SSE keep-alive comments or trickles
bytes never trips it. Once an answer's headers have arrived, each attempt gets a `Bound`: a deadline
that moves on only with content progress (a chunk carrying content, reasoning, tool calls, a finish
reason or usage; for a non-streaming answer, only the whole body). One shared watchdog thread keeps
the deadlines in a heap; when one passes, it shuts the attempt's socket down, which ends the blocked
read at once — in a thread (sync) or on an event loop (async) alike — and the adapter reports the
failure as a `ProviderTimeout`.

The window is the call's `timeout` (or the deployment's), counted from the start of the attempt
until the first progress and from each progress after; with none, `DEFAULT_STALL_S` counted from the
headers. Time the caller spends between two chunks of a stream (its own work) does not count.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from typing import Any

__all__ = ["DEFAULT_STALL_S", "Bound", "DeadlineTimeout", "bound_for", "cut_to_deadline", "window_of"]

DEFAULT_STALL_S = 120.0
"""Seconds without content progress after which an attempt with no `timeout` is ended."""

STALLED = "stalled"
"""The `type` of a `ProviderTimeout` raised because an answer stopped making progress."""

_monotonic = time.monotonic


class DeadlineTimeout(float):
    """An attempt's `timeout` inside a call's total deadline (`RetryPolicy(deadline=...)`): its value,
    what the SDK gets, is the smaller of the progress window and what is left of the deadline;
    `window` is the progress window the caller or deployment asked for (None: none was asked, the
    default stall bound applies) and `end` the deadline as a `time.monotonic()` instant."""

    window: float | None
    end: float

    def __new__(cls, value: float, window: float | None, end: float) -> DeadlineTimeout:
        self = super().__new__(cls, value)
        self.window, self.end = window, end
        return self


def cut_to_deadline(timeout: Any, fallback: Any, end: float) -> Any:
    """The timeout of an attempt that must end by `end` (monotonic): a `DeadlineTimeout` carrying the
    progress window (`timeout`, else the deployment's `fallback`) and the end (see `bound_for`).
    The window alone cannot end the attempt in time: a stream making progress outlives any window."""
    window = window_of(timeout, fallback)
    left = max(0.001, end - _monotonic())
    return DeadlineTimeout(left if window is None else min(window, left), window, end)


def window_of(timeout: Any, fallback: Any = None) -> float | None:
    """The progress window of a call: its `timeout` in seconds (an `httpx.Timeout`'s read value),
    else the deployment's, else None (the default stall bound applies)."""
    for value in (timeout, fallback):
        if value is None:
            continue
        if isinstance(value, DeadlineTimeout):
            return value.window
        if isinstance(value, int | float):
            return float(value)
        read = getattr(value, "read", None)
        if isinstance(read, int | float):
            return float(read)
    return None


class Bound:
    """One attempt's moving deadline (see the module docstring). The adapter calls `hold` before
    handing a chunk to the caller and `resume` when the caller asks for the next one."""

    __slots__ = ("_socket", "deadline", "done", "end", "expired", "paused", "window")

    def __init__(self, window: float, deadline: float, sock: Any, end: float = math.inf) -> None:
        self.window = window
        self.end = end  # the call's total deadline: progress does not move the deadline past it
        self.deadline = min(deadline, end)
        self.paused = 0.0
        self.expired = False
        self.done = False
        self._socket: Any = sock

    def hold(self, progressed: bool) -> None:
        """A chunk goes to the caller: restart the window if it carried content, and stop the
        clock while the caller has it."""
        now = _monotonic()
        if progressed:
            self.deadline = min(now + self.window, self.end)
        self.paused = now

    def resume(self) -> None:
        """The caller wants the next chunk: the clock runs again, the caller's time not counted."""
        if self.paused:
            held = _monotonic() - self.paused
            self.deadline += held
            self.end += held
            self.paused = 0.0

    def finish(self) -> None:
        """The answer ended (or was closed): nothing left to watch."""
        self.done = True
        self._socket = None

    def fire(self) -> None:
        """The deadline passed: end the blocked read by shutting the socket down (not closing it:
        its owner still holds the descriptor and closes it as usual)."""
        sock = self._socket
        self.expired = True
        self.finish()
        if sock is None:
            return
        with contextlib.suppress(OSError, ValueError):  # already closed by its owner
            if isinstance(sock, socket.socket):  # not an SSLSocket's own shutdown (a TLS unwrap)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            else:  # asyncio's TransportSocket: the raw socket's shutdown; the loop then reads EOF
                sock.shutdown(socket.SHUT_RDWR)

    def describe(self) -> str:
        if self.deadline >= self.end:
            return "the call's total deadline (RetryPolicy.deadline) passed during the answer"
        return f"no content progress from the provider for {self.window:g} s"


class _Watchdog:
    """One daemon thread over a heap of deadlines. Deadlines only move later, so an entry is
    re-queued at its bound's current deadline when it comes due early, and dropped once done."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Bound]] = []
        self._cond = threading.Condition(threading.Lock())
        self._count = itertools.count()
        self._thread: threading.Thread | None = None
        self._compact_at = 1024

    def watch(self, bound: Bound) -> None:
        with self._cond:
            if len(self._heap) >= self._compact_at:  # drop finished entries (amortised O(1))
                self._heap[:] = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._compact_at = max(1024, 2 * len(self._heap))
            earliest = not self._heap or bound.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (bound.deadline, next(self._count), bound))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llmroute-watchdog", daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()

    def _run(self) -> None:
        heap, cond = self._heap, self._cond
        while True:
            due: list[Bound] = []
            with cond:
                while not heap:
                    cond.wait()
                now = _monotonic()
                while heap and heap[0][0] <= now:
                    _, _, bound = heapq.heappop(heap)
                    if bound.done:
                        continue
                    if bound.paused:  # the caller holds a chunk: look again one window later
                        heapq.heappush(heap, (now + bound.window, next(self._count), bound))
                    elif bound.deadline > now:
                        heapq.heappush(heap, (bound.deadline, next(self._count), bound))
                    else:
                        due.append(bound)
                if not due:
                    cond.wait(heap[0][0] - now if heap else None)
            for bound in due:
                bound.fire()

    def _after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the thread did not survive the fork


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._after_fork)


def _socket_of(response: Any) -> Any:
    """The socket under a response: a `socket.socket` (sync transports) or, on an event loop,
    asyncio's `TransportSocket` (its `shutdown` is the raw socket's); None when there is none."""
    stream = getattr(response, "extensions", {}).get("network_stream")
    if stream is None:
        return None
    try:
        sock = stream.get_extra_info("socket")
    except Exception:  # a transport without the extension's usual interface
        return None
    if isinstance(sock, socket.socket) or callable(getattr(sock, "shutdown", None)):
        return sock
    return None


def bound_for(response: Any, timeout: Any, fallback: Any, started: float) -> Bound | None:
    """Watch an attempt whose headers have arrived: its window (`timeout`, else the deployment's
    `fallback`) from `started` (the attempt's start) until progress, or `DEFAULT_STALL_S` from now
    when neither set one; never past the call's deadline when `timeout` is a `DeadlineTimeout`.
    None when the transport has no socket to shut (a custom or in-process transport): the SDK's
    timeouts are all there is then."""
    sock = _socket_of(response)
    if sock is None:
        return None
    window = window_of(timeout, fallback)
    end = timeout.end if isinstance(timeout, DeadlineTimeout) else math.inf
    if window is None:
        bound = Bound(DEFAULT_STALL_S, _monotonic() + DEFAULT_STALL_S, sock, end)
    else:
        bound = Bound(window, started + window, sock, end)
    _WATCHDOG.watch(bound)
    return bound


def stalled(bound: Bound, target: Any, response: Any = None) -> Exception:
    """The error for an attempt its watchdog ended: a retryable `ProviderTimeout` whose `type` is
    "stalled" (the provider had answered with headers: it may bill the attempt)."""
    from ..errors import ProviderTimeout
    from .base import request_for

    return ProviderTimeout(
        bound.describe(),
        request=request_for(target, response),
        body={"type": STALLED, "message": bound.describe()},
        provider=target.provider.name,
        deployment=target.deployment.name,
        model=target.model.id,
    )
