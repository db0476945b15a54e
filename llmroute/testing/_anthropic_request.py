"""The request side of the emulator's Anthropic Messages endpoint: what it checks and how it reads
a request into a `Job` (headers, parameters, tools, content blocks, turns, cache breakpoints). The
answers are written by `AnthropicWire` in ``_anthropic``; the endpoint's behaviour is described there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmroute.tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOLS_OVERHEAD, Segment

from ._engine import (
    _WEATHER,
    ApiError,
    ExplicitPrompt,
    Job,
    _last_user_text,
)

__all__ = [
    "DOCUMENT_TOKENS",
    "MAX_BREAKPOINTS",
    "SAMPLING_REMOVED",
    "VERSIONS",
    "AnthropicRequests",
    "cache_min_tokens",
]

VERSIONS = ("2023-06-01", "2026-10-21")
"""``anthropic-version`` values the endpoint accepts; the last one is what 2.x SDKs send."""
SAMPLING_REMOVED = "2026-10-21"
"""The API version that dropped ``temperature``, ``top_p`` and ``top_k`` (400 even at defaults)."""
MAX_BREAKPOINTS = 4
DOCUMENT_TOKENS = 1500
"""Fixed input cost of a ``document`` block (the emulator does not read PDFs)."""

_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "cache_control",
        "output_config",
        "service_tier",
        "container",
        "diagnostics",
        "inference_geo",
        "speed",
    }
)
_SAMPLING = ("temperature", "top_p", "top_k")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_TTLS = ("5m", "1h")


def cache_min_tokens(model: str) -> int:
    """Shortest cacheable prefix: 4,096 for Haiku 4.5, 2,048 for Haiku 3.x, else 1,024 (Opus and Sonnet
    4.x; later models may differ: set ``Emulator.configure(..., cache_min_tokens=)``)."""
    m = model.lower()
    if "haiku-4-5" in m or "haiku-4.5" in m:
        return 4096
    if "haiku-3" in m or "3-haiku" in m or "3-5-haiku" in m:
        return 2048
    return 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


class _Breakpoints:
    """Collects ``cache_control`` marks in prompt order and checks them."""

    def __init__(self) -> None:
        self.marks: dict[int, str] = {}
        self.error: ApiError | None = None
        self._count = 0
        self._seen_5m = False

    def add(self, where: str, block: Mapping[str, Any], index: int) -> None:
        control = block.get("cache_control")
        if control is None or self.error is not None:
            return
        self.mark(where, control, index)

    def mark(self, where: str, control: Any, index: int) -> None:
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            self.error = _bad(f"{where}.cache_control.type: Input should be 'ephemeral'")
            return
        ttl = control.get("ttl", "5m")
        if ttl not in _TTLS:
            self.error = _bad(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
            return
        if ttl == "1h" and self._seen_5m:
            self.error = _bad(
                "A cache_control block with ttl='1h' must not come after one with ttl='5m' "
                "(tools, then system, then messages)."
            )
            return
        self._seen_5m = self._seen_5m or ttl == "5m"
        self._count += 1
        if index >= 0:
            self.marks[index] = ttl if self.marks.get(index) != "1h" else "1h"

    def check_count(self) -> ApiError | None:
        if self.error is None and self._count > MAX_BREAKPOINTS:
            self.error = _bad(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {self._count}."
            )
        return self.error


def _check_image(where: str, source: Any) -> ApiError | None:
    if not isinstance(source, dict):
        return _bad(f"{where}.source: Field required")
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") not in _IMAGE_TYPES:
            allowed = ", ".join(f"'{t}'" for t in _IMAGE_TYPES)
            return _bad(f"{where}.source.base64.media_type: Input should be {allowed}")
        if not isinstance(source.get("data"), str) or not source["data"]:
            return _bad(f"{where}.source.base64.data: Field required")
        return None
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _bad(f"{where}.source.url.url: Input should be an http(s) URL")
        return None
    return _bad(f"{where}.source.type: Input should be 'base64' or 'url'")


def _image_url(source: dict[str, Any]) -> str:
    if source.get("type") == "base64":
        return f"data:{source['media_type']};base64,{source['data']}"
    return str(source.get("url", ""))


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


class AnthropicRequests:
    """Reads and checks Messages API requests (the first half of `AnthropicWire`)."""

    def parse(self, provider: str, raw: bytes) -> Job | ApiError:
        return self.parse_request(provider, {"anthropic-version": VERSIONS[-1]}, raw)

    def parse_request(self, provider: str, headers: Mapping[str, str], raw: bytes) -> Job | ApiError:
        version = headers.get("anthropic-version")
        if version is None:
            return _bad("anthropic-version: header is required")
        if version not in VERSIONS:
            return _bad(f"anthropic-version: unknown version {version!r}; use one of {', '.join(VERSIONS)}")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _bad("The request body is not valid JSON.")
        for key in body:
            if key not in _PARAMS and not (key in _SAMPLING and version < SAMPLING_REMOVED):
                return _bad(f"{key}: Extra inputs are not permitted")
        err = self._check_scalars(body)
        if err is not None:
            return err
        model = body["model"]
        job = Job(provider, model, body.get("stream") is True, body, [])
        job.max_tokens = body["max_tokens"]
        job.stop = list(body.get("stop_sequences") or [])
        marks = _Breakpoints()
        tools = body.get("tools")
        err = self._parse_tools(job, tools, marks) or self._check_choice(body.get("tool_choice"), tools)
        if err is not None:
            return err
        system = body.get("system")
        system_blocks: list[dict[str, Any]]
        if system is None:
            system_blocks = []
        elif isinstance(system, str):
            system_blocks = [{"type": "text", "text": system}] if system else []
        elif isinstance(system, list) and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
        ):
            system_blocks = system
        else:
            return _bad("system: Input should be a valid string or a list of text blocks")
        turns = self._merge(body["messages"])
        if isinstance(turns, ApiError):
            return turns
        err = self._check_tool_pairs(turns)
        if err is not None:
            return err
        thinking = body.get("thinking")
        mode = thinking.get("type") if isinstance(thinking, dict) else None
        if thinking is not None and mode not in ("enabled", "adaptive", "disabled"):
            return _bad("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
        job.reasoning = "visible" if mode in ("enabled", "adaptive") else False
        choice = body.get("tool_choice")
        if job.reasoning and isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            return _bad("Thinking may not be enabled when tool_choice forces tool use.")
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            job.json_schema = schema if isinstance(schema, dict) else {}
        job.messages = self._openai_messages(system_blocks, turns)
        self._pick_tool(job, choice)
        prompt = self._prompt(
            model, tools or [], system_blocks, turns, (choice, thinking, body.get("cache_control")), marks
        )
        if isinstance(prompt, ApiError):
            return prompt
        job.prompt = prompt
        return job

    def _check_scalars(self, body: dict[str, Any]) -> ApiError | None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _bad("model: Field required")
        if "max_tokens" not in body:
            return _bad("max_tokens: Field required")
        limit = body["max_tokens"]
        if not _is_int(limit) or limit < 0:
            return _bad("max_tokens: Input should be a non-negative integer")
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _bad(
                "messages: Field required" if messages is None else "messages: Input should be a list"
            )
        if not messages:
            return _bad("messages: at least one message is required")
        for name, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
            value = body.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
            ):
                return _bad(f"{name}: range: {low:g}..{high:g}")
        top_k = body.get("top_k")
        if top_k is not None and (not _is_int(top_k) or top_k < 0):
            return _bad("top_k: Input should be a non-negative integer")
        stop = body.get("stop_sequences")
        if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
            return _bad("stop_sequences: Input should be a list of strings")
        if "stream" in body and not isinstance(body["stream"], bool):
            return _bad("stream: Input should be a valid boolean")
        metadata = body.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                return _bad("metadata: Input should be an object")
            for key, value in metadata.items():
                if key != "user_id":
                    return _bad(f"metadata.{key}: Extra inputs are not permitted")
                if value is not None and (not isinstance(value, str) or len(value) > 256):
                    return _bad("metadata.user_id: Input should be a string of at most 256 characters")
        return None

    def _parse_tools(self, job: Job, tools: Any, marks: _Breakpoints) -> ApiError | None:
        if tools is None:
            return None
        if not isinstance(tools, list):
            return _bad("tools: Input should be a list")
        names: list[str] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return _bad(f"tools.{i}: Input should be an object")
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return _bad(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return _bad(f"tools.{i}.input_schema.type: Input should be 'object'")
            if name in names:
                return _bad(f"tools: Tool names must be unique (duplicate {name!r})")
            names.append(name)
            marks.add(f"tools.{i}", tool, i)
        job.tools = tools or None
        return None

    def _check_choice(self, choice: Any, tools: Any) -> ApiError | None:
        if choice is None:
            return None
        names = [t["name"] for t in tools or ()]
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            return _bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if kind == "tool" and choice.get("name") not in names:
            return _bad(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
        if kind in ("any", "tool") and not names:
            return _bad("tool_choice: may only be specified while providing tools")
        return None

    def _blocks(self, i: int, role: str, content: Any) -> list[dict[str, Any]] | ApiError:
        if isinstance(content, str):
            if not content:
                return _bad(f"messages.{i}: text content blocks must be non-empty")
            return [{"type": "text", "text": content}]
        if not isinstance(content, list):
            return _bad(f"messages.{i}.content: Input should be a valid string or a list of blocks")
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                if not isinstance(block.get("text"), str) or not block["text"]:
                    return _bad(f"{where}: text content blocks must be non-empty")
            elif kind == "image":
                err = _check_image(where, block.get("source"))
                if err is not None:
                    return err
            elif kind == "document":
                if role != "user":
                    return _bad(f"{where}: document blocks are only allowed in user messages")
                if not isinstance(block.get("source"), dict):
                    return _bad(f"{where}.source: Field required")
            elif kind == "tool_use":
                if role != "assistant":
                    return _bad(f"{where}: tool_use blocks are only allowed in assistant messages")
                if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
                    return _bad(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
                if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
                    return _bad(f"{where}: a tool_use block needs a string 'name' and an object 'input'")
            elif kind == "tool_result":
                if role != "user":
                    return _bad(f"{where}: tool_result blocks are only allowed in user messages")
                if not isinstance(block.get("tool_use_id"), str):
                    return _bad(f"{where}.tool_use_id: Field required")
                inner = block.get("content", "")
                if not isinstance(inner, str | list):
                    return _bad(f"{where}.content: Input should be a valid string or a list of blocks")
            elif kind in ("thinking", "redacted_thinking"):
                if role != "assistant":
                    return _bad(f"{where}: {kind} blocks are only allowed in assistant messages")
            else:
                return _bad(
                    f"{where}.type: Input tag {kind!r} found using 'type' does not match any of the expected "
                    "tags: 'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', "
                    "'redacted_thinking'"
                )
        if not content:
            return _bad(f"messages.{i}: all messages must have non-empty content")
        return list(content)

    def _merge(self, messages: list[Any]) -> list[tuple[str, list[dict[str, Any]]]] | ApiError:
        """Validate the messages and merge consecutive same-role turns, as the API does."""
        turns: list[tuple[str, list[dict[str, Any]]]] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                return _bad(f"messages.{i}: Input should be an object")
            role = message.get("role")
            if role == "system":
                return _bad(
                    f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                return _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if "content" not in message:
                return _bad(f"messages.{i}.content: Field required")
            blocks = self._blocks(i, role, message["content"])
            if isinstance(blocks, ApiError):
                return blocks
            if turns and turns[-1][0] == role:
                turns[-1][1].extend(blocks)
            else:
                turns.append((role, blocks))
        return turns

    def _check_tool_pairs(self, turns: list[tuple[str, list[dict[str, Any]]]]) -> ApiError | None:
        for t, (role, blocks) in enumerate(turns):
            if role == "assistant":
                ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
                if not ids:
                    continue
                following = turns[t + 1][1] if t + 1 < len(turns) else []
                answered = {b.get("tool_use_id") for b in following if b.get("type") == "tool_result"}
                missing = [x for x in ids if x not in answered]
                if missing:
                    return _bad(
                        f"messages.{t}: `tool_use` ids were found without `tool_result` blocks immediately "
                        f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                        "`tool_result` block in the next message."
                    )
                continue
            asked = (
                {b["id"] for b in turns[t - 1][1] if b.get("type") == "tool_use"}
                if t > 0 and turns[t - 1][0] == "assistant"
                else set()
            )
            others = False
            for j, block in enumerate(blocks):
                if block.get("type") != "tool_result":
                    others = True
                    continue
                if others:
                    return _bad(
                        f"messages.{t}.content.{j}: tool_result blocks must come first in the user message, "
                        "before any other content."
                    )
                if block["tool_use_id"] not in asked:
                    return _bad(
                        f"messages.{t}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
        return None

    def _pick_tool(self, job: Job, choice: Any) -> None:
        if not job.tools or not isinstance(choice, dict):
            return
        kind = choice.get("type")
        if kind == "none":
            job.tools_disabled = True
        elif kind == "tool":
            job.forced_tool = str(choice.get("name"))
        elif kind == "any":
            # Some tool must be called: the first one when the user asks about the weather (the
            # emulator's usual trigger), else the last one (llmroute puts its JSON answer tool last).
            last = _last_user_text(job.messages)
            pick = job.tools[0] if last is not None and _WEATHER.search(last) else job.tools[-1]
            job.forced_tool = str(pick["name"])

    def _openai_messages(
        self, system: list[dict[str, Any]], turns: list[tuple[str, list[dict[str, Any]]]]
    ) -> list[dict[str, Any]]:
        """The conversation in OpenAI's form, for reply functions and the default answer."""
        out: list[dict[str, Any]] = []
        if system:
            out.append({"role": "system", "content": "\n\n".join(b["text"] for b in system)})
        for role, blocks in turns:
            if role == "assistant":
                text = "".join(b["text"] for b in blocks if b.get("type") == "text")
                calls = [
                    {
                        "id": b["id"],
                        "type": "function",
                        "function": {"name": b["name"], "arguments": _dumps(b["input"])},
                    }
                    for b in blocks
                    if b.get("type") == "tool_use"
                ]
                message: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    message["tool_calls"] = calls
                out.append(message)
                continue
            parts: list[dict[str, Any]] = []
            for b in blocks:
                kind = b.get("type")
                if kind == "tool_result":
                    out.append({"role": "tool", "tool_call_id": b["tool_use_id"], "content": _result_text(b)})
                elif kind == "text":
                    parts.append({"type": "text", "text": b["text"]})
                elif kind == "image":
                    parts.append({"type": "image_url", "image_url": {"url": _image_url(b["source"])}})
                else:
                    parts.append({"type": "text", "text": f"[{kind}]"})
            if parts:
                only_text = all(p["type"] == "text" for p in parts)
                content: Any = "".join(p["text"] for p in parts) if only_text else parts
                out.append({"role": "user", "content": content})
        return out

    def _prompt(
        self,
        model: str,
        tools: list[dict[str, Any]],
        system: list[dict[str, Any]],
        turns: list[tuple[str, list[dict[str, Any]]]],
        settings: tuple[Any, Any, Any],
        marks: _Breakpoints,
    ) -> ExplicitPrompt | ApiError:
        """The prompt as cacheable blocks: tools, system, messages (PROVIDERS.md section 2).
        ``settings``: ``(tool_choice, thinking, top-level cache_control)``."""
        choice, thinking, automatic = settings
        blocks: list[tuple[str, list[Segment]]] = []
        texts: list[str] = []
        for i, tool in enumerate(tools):
            rendered = _dumps(_without_cache_control(tool))
            blocks.append(("tool\x1f" + rendered, [TOOLS_OVERHEAD, rendered] if i == 0 else [rendered]))
        for i, block in enumerate(system):
            marks.add(f"system.{i}", block, len(blocks))
            blocks.append(("system\x1f" + block["text"], [block["text"]]))
            texts.append(block["text"])
        # A change of tool_choice or thinking invalidates the cached messages (not tools or system).
        invalidating = f"\x1d{_dumps(choice)}\x1d{_dumps(thinking)}"
        last_cacheable = -1
        for t, (role, content) in enumerate(turns):
            for j, block in enumerate(content):
                kind = block.get("type")
                segments: list[Segment] = [MESSAGE_OVERHEAD, role] if j == 0 else []
                if kind == "text":
                    segments.append(block["text"])
                    texts.append(block["text"])
                elif kind == "image":
                    segments.append(IMAGE_TOKENS)
                elif kind == "document":
                    segments.append(DOCUMENT_TOKENS)
                elif kind == "tool_use":
                    segments += [block["name"], _dumps(block["input"])]
                elif kind == "tool_result":
                    text = _result_text(block)
                    segments.append(text)
                    texts.append(text)
                # thinking blocks of earlier turns are dropped from the context: they cost nothing
                key = f"{role}\x1f{j}\x1f{_dumps(_without_cache_control(block))}"
                if t == 0 and j == 0:
                    key += invalidating
                marks.add(f"messages.{t}.content.{j}", block, len(blocks))
                if kind not in ("thinking", "redacted_thinking"):
                    last_cacheable = len(blocks)
                blocks.append((key, segments))
        if automatic is not None:
            marks.mark("cache_control", automatic, last_cacheable)
        err = marks.check_count()
        if err is not None:
            return err
        return ExplicitPrompt(
            blocks, marks.marks, cache_min_tokens(model), tail=REPLY_PRIMING, text="\x1e".join(texts)
        )

    # -------------------------------------------------------------- responses
