"""In-process transport: the ``openai`` SDK talks to the emulator without a socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx2

from ._engine import Handler, Outcome

__all__ = ["EmulatorTransport"]

_RESET = "Server disconnected without sending a response."
_CUT = "peer closed connection without sending complete message body (incomplete chunked read)"


class _Events(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """An SSE body; ends with ``RemoteProtocolError`` when the outcome says the stream is cut."""

    def __init__(self, out: Outcome, request: httpx2.Request, sleep: bool) -> None:
        self._out = out
        self._request = request
        self._sleep = sleep and bool(out.event_delays) and any(out.event_delays or ())

    def _cut(self) -> httpx2.RemoteProtocolError:
        return httpx2.RemoteProtocolError(_CUT, request=self._request)

    def __iter__(self) -> Iterator[bytes]:
        events = self._out.events or []
        if self._sleep:
            for event, delay in zip(events, self._out.event_delays or [], strict=True):
                if delay > 0:
                    time.sleep(delay)
                yield event
        elif events:
            yield b"".join(events)
        if self._out.cut:
            raise self._cut()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        events = self._out.events or []
        if self._sleep:
            for event, delay in zip(events, self._out.event_delays or [], strict=True):
                if delay > 0:
                    await asyncio.sleep(delay)
                yield event
        elif events:
            yield b"".join(events)
        if self._out.cut:
            raise self._cut()


class EmulatorTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Hands requests to :meth:`Emulator.handle`; works for ``httpx2.Client`` and ``AsyncClient``.

    Timeouts raise ``httpx2.ReadTimeout`` at once and resets ``httpx2.RemoteProtocolError``; a cut
    stream raises ``RemoteProtocolError`` after its last event. Latency is ignored unless the
    emulator was made with ``simulate_latency=True``.
    """

    def __init__(self, emulator: Handler) -> None:
        self._emu = emulator

    def _outcome(self, request: httpx2.Request, body: bytes) -> Outcome:
        headers = {k.lower(): v for k, v in request.headers.items()}
        out = self._emu.handle(request.method, request.url.path, headers, body)
        if out.action == "timeout":
            raise httpx2.ReadTimeout("The read operation timed out (emulated)", request=request)
        if out.action == "reset":
            raise httpx2.RemoteProtocolError(_RESET, request=request)
        return out

    def _response(self, out: Outcome, request: httpx2.Request) -> httpx2.Response:
        if out.events is None:
            headers = [*out.headers, ("content-length", str(len(out.body)))]
            return httpx2.Response(out.status, headers=headers, content=out.body, request=request)
        stream = _Events(out, request, self._emu.simulate_latency)
        return httpx2.Response(out.status, headers=out.headers, stream=stream, request=request)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        out = self._outcome(request, request.read())
        if self._emu.simulate_latency and out.wait > 0:
            time.sleep(out.wait)
        return self._response(out, request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        out = self._outcome(request, await request.aread())
        if self._emu.simulate_latency and out.wait > 0:
            await asyncio.sleep(out.wait)
        return self._response(out, request)
