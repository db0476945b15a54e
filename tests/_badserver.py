"""A raw asyncio HTTP/1.1 server that misbehaves on purpose, for the time-bound and malformed-answer
tests. It speaks just enough of the OpenAI (`/chat/completions`) and Anthropic (`/messages`) wire
formats; what it does is chosen by the first path segment of the base URL:

- `stall`: the headers, then nothing (the connection stays open).
- `ping`: the headers, one content chunk, then only SSE keep-alive comments (`: ping`) and, for
  Anthropic, `ping` events, every 0.2 s, forever.
- `trickle`: the headers, then the body one byte per second.
- `garbage`: the headers, then random bytes, then the connection closes.
- `badjson`: a complete body that is not valid JSON (for streams: one such `data:` event).
- `drip-<key>`: the stream `answers[key]`, one event every 0.3 s (slow, but making progress).
- `answer-<key>`: the JSON `answers[key]` — a dict (the non-streaming body) or a list of dicts (the
  stream's events, each sent as `data:`; an Anthropic event's `type` is also its SSE `event:`).

Only 127.0.0.1. Every connection is closed when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

PING_S = 0.2
DRIP_S = 0.3

_OPENAI_CHUNK = {
    "id": "chatcmpl-bad",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-5.4",
    "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "Hello there"}, "finish_reason": None}
    ],
}
_OPENAI_ANSWER = {
    "id": "chatcmpl-bad",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-5.4",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
_ANTHROPIC_START = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_bad",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello there"}},
]
_ANTHROPIC_ANSWER = {
    "id": "msg_bad",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hello there"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 2},
}


def _sse(event: dict[str, Any], anthropic: bool) -> bytes:
    head = f"event: {event.get('type', 'message')}\n" if anthropic else ""
    return f"{head}data: {json.dumps(event)}\n\n".encode()


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class BadServer:
    """Run with `with BadServer() as server:`; `server.base_url("stall")` is an API base URL."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="badserver", daemon=True)
        self.port = 0

    def base_url(self, mode: str, anthropic: bool = False) -> str:
        """The API base URL of a misbehaving server (the Anthropic SDK adds `/v1` itself)."""
        return f"http://127.0.0.1:{self.port}/{mode}" + ("" if anthropic else "/v1")

    def __enter__(self) -> BadServer:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = started.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
            }
            body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
            self.requests += 1
            await self._answer(writer, path, bool(body.get("stream")))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, path: str, stream: bool) -> None:
        mode = path.strip("/").split("/")[0]
        anthropic = path.endswith("/messages")
        if mode.startswith("drip-"):  # a stream's events one at a time, DRIP_S apart
            events = self.answers[mode.removeprefix("drip-")]
            writer.write(self._head(True, None))
            for event in events:
                writer.write(_chunk(_sse(event, anthropic)))
                await writer.drain()
                await asyncio.sleep(DRIP_S)
            writer.write(_chunk(b"" if anthropic else b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
            return
        if mode.startswith("answer-"):
            answer = self.answers[mode.removeprefix("answer-")]
            if isinstance(answer, list):
                body = b"".join(_sse(event, anthropic) for event in answer)
                if not anthropic:
                    body += b"data: [DONE]\n\n"
                await self._send(writer, body, stream=True)
            else:
                await self._send(writer, json.dumps(answer).encode(), stream=False)
            return
        if mode == "badjson":
            event = b"event: message_start\n" if anthropic else b""  # the SDK reads known events only
            await self._send(
                writer, event + b'data: {"choices": [\n\n' if stream else b'{"choices": [', stream
            )
            return
        if mode == "garbage":
            await self._send(writer, random.Random(7).randbytes(512), stream)
            return
        if mode == "stall":
            writer.write(self._head(stream, length=None if stream else len(json.dumps(_OPENAI_ANSWER))))
            await writer.drain()
            await asyncio.sleep(3600)
        if mode == "ping":
            writer.write(self._head(True, None))
            first = _ANTHROPIC_START if anthropic else [_OPENAI_CHUNK]
            writer.write(_chunk(b"".join(_sse(event, anthropic) for event in first)))
            await writer.drain()
            while True:
                ping = b": ping\n\n" + (_sse({"type": "ping"}, True) if anthropic else b"")
                writer.write(_chunk(ping))
                await writer.drain()
                await asyncio.sleep(PING_S)
        if mode == "trickle":
            if stream:
                events = _ANTHROPIC_START if anthropic else [_OPENAI_CHUNK]
                body = b"".join(_sse(event, anthropic) for event in events)
            else:
                body = json.dumps(_ANTHROPIC_ANSWER if anthropic else _OPENAI_ANSWER).encode()
            writer.write(self._head(stream, None if stream else len(body)))
            await writer.drain()
            for byte in _bytes(body):
                writer.write(_chunk(byte) if stream else byte)
                await writer.drain()
                await asyncio.sleep(1.0)
            return
        raise ValueError(f"unknown mode {mode!r}")

    def _head(self, stream: bool, length: int | None) -> bytes:
        kind = "text/event-stream" if stream else "application/json"
        framing = f"content-length: {length}" if length is not None else "transfer-encoding: chunked"
        return (
            f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{framing}\r\n"
            "x-request-id: req_bad\r\nrequest-id: req_bad\r\n\r\n"
        ).encode()

    async def _send(self, writer: asyncio.StreamWriter, body: bytes, stream: bool) -> None:
        writer.write(self._head(stream, len(body)) + body)
        await writer.drain()


def _bytes(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]
