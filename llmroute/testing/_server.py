"""A real HTTP/1.1 server for the emulator, on an asyncio loop in a daemon thread.

Hand-written on ``asyncio.Protocol`` (no framework): keep-alive connections, ``TCP_NODELAY``,
``Content-Length`` JSON bodies and ``Transfer-Encoding: chunked`` SSE streams. Latency, timeouts
and resets are real: sleeps run on the loop (other connections go on), a reset closes the
connection without a response, a cut stream closes it mid-body (the chunked body never ends).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from http import HTTPStatus
from types import TracebackType

from ._engine import SDK_ADDS_V1, Handler, Outcome

__all__ = ["EmulatorServer"]

log = logging.getLogger("llmroute.testing")
_MAX_HEAD = 65536
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class _BadRequest(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One client connection: parses requests in order, answers each through the emulator."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._emu = server.emulator
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server._connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._task is None:
            self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """Drop the connection now (server shutdown)."""
        if self._transport is not None:
            self._transport.abort()

    # -------------------------------------------------------------- requests

    def _next_request(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        """Parse one complete request from the buffer, or ``None`` if more bytes are needed."""
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise _BadRequest
            return None
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError as e:
            raise _BadRequest from e
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = bytearray()
            pos = start
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                if len(buf) < eol + 2 + size + 2:
                    return None
                body += buf[eol + 2 : eol + 2 + size]
                pos = eol + 2 + size + 2
                if size == 0:
                    break
            consumed = pos
        else:
            length = int(headers.get("content-length", "0") or 0)
            if len(buf) < start + length:
                return None
            body = buf[start : start + length]
            consumed = start + length
        del buf[:consumed]
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        return method, target, headers, bytes(body), keep_alive

    def _process(self) -> None:
        transport = self._transport
        assert transport is not None
        while not self._closed:
            try:
                request = self._next_request()
            except (_BadRequest, ValueError):
                transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                transport.close()
                return
            if request is None:
                return
            method, target, headers, body, keep_alive = request
            try:
                out = self._emu.handle(method, target, headers, body)
            except Exception as e:  # a bug or a failing reply function: answer 500, keep serving
                log.exception("emulator failed on %s %s", method, target)
                self._server.errors.append(e)
                message = f"emulator error: {type(e).__name__}: {e}"
                error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
                out = Outcome(500, [("content-type", "application/json")], json.dumps(error).encode())
            if out.wait > 0 or out.action == "timeout" or (out.event_delays and any(out.event_delays)):
                self._task = asyncio.get_running_loop().create_task(self._send_slowly(out, keep_alive))
                return
            if not self._send(out, keep_alive):
                return

    def _send(self, out: Outcome, keep_alive: bool) -> bool:
        """Write a whole answer at once; ``False`` when the connection was closed."""
        transport = self._transport
        assert transport is not None
        if out.action == "reset":
            transport.close()
            return False
        if out.events is None:
            transport.write(_head(out, keep_alive) + out.body)
        else:
            parts = [_head(out, keep_alive)]
            parts += [b"%x\r\n%b\r\n" % (len(e), e) for e in out.events]
            if not out.cut:
                parts.append(b"0\r\n\r\n")
            transport.write(b"".join(parts))
        if out.cut or not keep_alive:
            transport.close()
            return False
        return True

    async def _send_slowly(self, out: Outcome, keep_alive: bool) -> None:
        """Write an answer with its latency (or a timeout's wait) as real sleeps."""
        transport = self._transport
        assert transport is not None
        try:
            if out.wait > 0:
                await asyncio.sleep(out.wait)
            if out.events is None or out.action == "reset":
                alive = self._send(out, keep_alive)
            else:
                transport.write(_head(out, keep_alive))
                for event, delay in zip(out.events, out.event_delays or [0.0] * len(out.events), strict=True):
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self._closed:
                        return
                    transport.write(b"%x\r\n%b\r\n" % (len(event), event))
                alive = not out.cut and keep_alive
                if out.cut:
                    transport.close()
                else:
                    transport.write(b"0\r\n\r\n")
                    if not keep_alive:
                        transport.close()
        except asyncio.CancelledError:
            return
        self._task = None
        if alive and self._buf:
            self._process()


def _head(out: Outcome, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {out.status} {_REASONS.get(out.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in out.headers]
    if out.events is None:
        lines.append(f"content-length: {len(out.body)}")
    else:
        lines.append("transfer-encoding: chunked")
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class EmulatorServer:
    """The emulator on a real socket; ``with emu.serve() as server: server.base_url("openai")``.

    Binds ``host`` (default ``127.0.0.1``) on ``port`` (default: an ephemeral one), serves from an
    asyncio loop in a daemon thread, and on exit closes every connection and joins the thread.
    """

    def __init__(self, emulator: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.errors: list[Exception] = []
        """Exceptions raised while handling requests (each was answered with a 500)."""

    def base_url(self, provider: str) -> str:
        """e.g. ``http://127.0.0.1:PORT/openai/v1``; ``http://127.0.0.1:PORT/anthropic`` for Anthropic,
        whose SDK appends ``/v1/messages`` itself (the same rule as `Emulator.base_url`)."""
        if provider in SDK_ADDS_V1:
            return f"{self.url}/{provider}"
        return f"{self.url}/{provider}/v1"

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Start serving (returns when the socket is listening)."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name="llmroute-emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Close all connections, stop the loop and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._shutdown)
        thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                loop.create_server(lambda: _Connection(self), self.host, self.port, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for _ in range(3):  # let connection_lost callbacks of aborted transports run
                loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def _shutdown(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        self._loop.stop()
