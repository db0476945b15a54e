"""Anthropic stream events -> OpenAI `ChatCompletionChunk`s, for the Anthropic adapter."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anthropic
import httpx2
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import (
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from ..usage import FinishReason, Usage
from ._anthropic_wire import (
    _finish,
    _make,
    _openai_usage,
    decode_usage,
)
from ._watchdog import Bound, stalled
from .base import (
    MALFORMED,
    AsyncChunkStream,
    ChunkStream,
)

if TYPE_CHECKING:
    from ..policy import Target


# ------------------------------------------------------------------------------------ streams


class _Fails(Protocol):
    """What a stream needs of its adapter: the error its failure is reported as (`ProviderTimeout`
    when the watchdog ended it, else the mapped SDK error)."""

    def _failed(
        self, error: BaseException, target: Target, bound: Bound | None, response: Any
    ) -> Exception: ...


class _Translate:
    """Anthropic stream events -> OpenAI chunks, and the usage they report (pure, no I/O)."""

    def __init__(self, target: Target, json_tool: str | None, hide_usage: bool) -> None:
        self.target = target
        self.json_tool = json_tool
        self.hide_usage = hide_usage
        self.id = ""
        self.model = target.api_name
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.final = False  # message_delta arrived: usage is complete
        self.finish: FinishReason | None = None
        self._fields: dict[str, Any] = {}
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._json_answer = False

    def chunk(self, finish: str | None = None, **delta: Any) -> ChatCompletionChunk:
        choice = _make(
            Choice, index=0, delta=_make(ChoiceDelta, **delta), finish_reason=finish, logprobs=None
        )
        return _make(
            ChatCompletionChunk,
            id=self.id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[choice],
        )

    def tool_chunk(self, number: int, arguments: str, **call: Any) -> ChatCompletionChunk:
        function = _make(ChoiceDeltaToolCallFunction, **call.pop("function", {}), arguments=arguments)
        return self.chunk(tool_calls=[_make(ChoiceDeltaToolCall, index=number, function=function, **call)])

    def _update_usage(self, usage: Any) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation",
            "output_tokens_details",
        ):
            value = getattr(usage, name, None)
            if value is not None:  # message_delta counts are cumulative: they replace, never add
                self._fields[name] = value
        self.usage = decode_usage(_Fields(self._fields))

    def feed(self, event: Any) -> list[ChatCompletionChunk]:
        kind = event.type
        if kind == "message_start":
            message = event.message
            self.id, self.model = message.id, message.model or self.model
            self._update_usage(message.usage)
            return [self.chunk(role="assistant", content="")]
        if kind == "content_block_start":
            return self._start(event.index, event.content_block)
        if kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        if kind == "message_delta":
            self._update_usage(event.usage)
            self.final = True
            only_json = self._json_answer and self._tools == 0
            raw, self.finish = _finish(event.delta.stop_reason, only_json)
            return [self.chunk(raw or "unknown")]
        if kind == "message_stop" and not self.hide_usage and self.usage is not None:
            return [
                _make(
                    ChatCompletionChunk,
                    id=self.id,
                    object="chat.completion.chunk",
                    created=self.created,
                    model=self.model,
                    choices=[],
                    usage=_openai_usage(self.usage),
                )
            ]
        return []  # content_block_stop, message_stop, ping, unknown events

    def _start(self, index: int, block: Any) -> list[ChatCompletionChunk]:
        kind = block.type
        if kind == "tool_use":
            _text(block.name, "a tool_use block's name")
        if kind == "tool_use" and block.name == self.json_tool:
            self._blocks[index] = _Block("answer", name=block.name)
            self._json_answer = True
            return []
        if kind == "tool_use":
            number = self._tools
            self._tools += 1
            self._blocks[index] = _Block("tool", number, block.name)
            return [self.tool_chunk(number, "", id=block.id, type="function", function={"name": block.name})]
        state = self._blocks[index] = _Block(kind)
        text = getattr(block, "text", None) or getattr(block, "thinking", None)
        if text:
            _text(text, f"a {kind} block's text")
            state.pieces.append(text)
            return [self.chunk(content=text) if kind == "text" else self.chunk(reasoning_content=text)]
        return []

    def _delta(self, index: int, delta: Any) -> list[ChatCompletionChunk]:
        state = self._blocks.get(index) or _Block("")
        if delta.type == "text_delta":
            state.pieces.append(_text(delta.text, "a text_delta"))
            return [self.chunk(content=delta.text)]
        if delta.type == "thinking_delta":
            state.pieces.append(_text(delta.thinking, "a thinking_delta"))
            return [self.chunk(reasoning_content=delta.thinking)]
        if delta.type == "input_json_delta" and delta.partial_json:
            state.pieces.append(_text(delta.partial_json, "an input_json_delta"))
            if state.kind == "answer":
                return [self.chunk(content=delta.partial_json)]
            return [self.tool_chunk(state.number, delta.partial_json)]
        return []  # signature and citation deltas have no Chat Completions counterpart

    def partial_usage(self) -> Usage | None:
        """Usage of a stream that broke before `message_delta`: the input as reported at
        `message_start`, the output counted from what arrived (flagged estimated)."""
        if self.final or self.usage is None:
            return self.usage
        from ..tokens import encoder_for

        count = encoder_for(self.target.api_name, self.target.model.tokenizer, warn=False).count
        output = thinking = 0
        for state in self._blocks.values():
            tokens = count(state.name) + count("".join(state.pieces))
            output += tokens
            thinking += tokens if state.kind == "thinking" else 0
        u = self.usage
        return Usage(
            u.input_tokens,
            output,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.cache_write_1h_tokens,
            thinking,
            estimated=True,
        )


@dataclass(slots=True)
class _Block:
    """A content block of a stream: its kind, tool-call index, tool name and the text that arrived."""

    kind: str
    number: int = -1
    name: str = ""
    pieces: list[str] = field(default_factory=list)


class _Fields:
    """Attribute access over the accumulated usage fields (for `decode_usage`)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


class _Chunks(ChunkStream):
    def __init__(
        self,
        adapter: _Fails,
        target: Target,
        events: Any,
        response: httpx2.Response,
        translate: _Translate,
        bound: Bound | None = None,
    ) -> None:
        self._adapter, self._target, self._events, self._translate = adapter, target, events, translate
        self.response = response
        self.headers = response.headers
        self.request_id = response.headers.get("request-id")
        self.finish_reason: FinishReason | None = None
        """The normalised finish reason, once `message_delta` arrived."""
        self._bound = bound

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        translate = self._translate
        bound = self._bound
        try:
            for event in self._events:
                chunks = translate.feed(event)  # [] for pings and bookkeeping events: no progress
                self.usage, self.finish_reason = translate.usage, translate.finish
                for chunk in chunks:
                    if bound is not None:
                        bound.hold(True)
                    yield chunk
                    if bound is not None:
                        bound.resume()
        except (anthropic.AnthropicError, httpx2.HTTPError, *MALFORMED) as e:
            self.usage = translate.partial_usage()
            raise self._adapter._failed(e, self._target, bound, self.response) from e
        finally:
            if bound is not None:
                bound.finish()
        if bound is not None and bound.expired:
            self.usage = translate.partial_usage()
            raise stalled(bound, self._target, self.response)

    def close(self) -> None:
        if self._bound is not None:
            self._bound.finish()
        self.usage = self._translate.partial_usage()
        self._events.close()


class _AsyncChunks(AsyncChunkStream):
    def __init__(
        self,
        adapter: _Fails,
        target: Target,
        events: Any,
        response: httpx2.Response,
        translate: _Translate,
        bound: Bound | None = None,
    ) -> None:
        self._adapter, self._target, self._events, self._translate = adapter, target, events, translate
        self.response = response
        self.headers = response.headers
        self.request_id = response.headers.get("request-id")
        self.finish_reason: FinishReason | None = None
        self._bound = bound

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        translate = self._translate
        bound = self._bound
        try:
            async for event in self._events:
                chunks = translate.feed(event)
                self.usage, self.finish_reason = translate.usage, translate.finish
                for chunk in chunks:
                    if bound is not None:
                        bound.hold(True)
                    yield chunk
                    if bound is not None:
                        bound.resume()
        except (anthropic.AnthropicError, httpx2.HTTPError, *MALFORMED) as e:
            self.usage = translate.partial_usage()
            raise self._adapter._failed(e, self._target, bound, self.response) from e
        finally:
            if bound is not None:
                bound.finish()
        if bound is not None and bound.expired:
            self.usage = translate.partial_usage()
            raise stalled(bound, self._target, self.response)

    async def aclose(self) -> None:
        if self._bound is not None:
            self._bound.finish()
        self.usage = self._translate.partial_usage()
        await self._events.close()


def _text(value: Any, what: str) -> str:
    """`value` if it is text; else the TypeError that makes the stream a `MalformedResponse` (the
    SDK does not validate events: a delta's text may be any JSON value)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} is {type(value).__name__}, not text")
    return value
