"""The layout helper: prompts built stable part first, serialised canonically, with cache hints.

```python
layout = PromptLayout(
    system=REVIEW_GUIDELINES,            # instructions: change rarely
    tools=TOOLS,                         # sorted by name, keys sorted
    documents=[Document(style_guide, title="Style guide")],
    examples=[Example("Review: ...", "LGTM, but ...")],
)
reply = router.chat.completions.create(model="auto", **layout.render(history, diff, context=now))
```

The rendered `messages` are, in order: the instructions (a `system` message), the documents (one
`system` message), the few-shot examples (user/assistant pairs), the conversation history, and the
new user turn, preceded by the volatile `context` (a date, a user name...). Everything before the
history is byte-identical from call to call, so every provider's prefix cache can hit it.

Provider hints, with `render(..., provider=...)`:

- `"anthropic"`: `cache_control` breakpoints on the content parts that end stable sections (at most
  four, longest prefixes first, only where the prefix reaches the model's minimum cacheable length,
  `ttl` on all of them), plus Anthropic's top-level automatic breakpoint (`extra_body=
  {"cache_control": ...}`) for a conversation, which caches the history without changing a byte of
  the earlier messages.
- `"openai"`: `prompt_cache_key` derived from the stable part's fingerprint, so requests that share
  it are routed to the same cache.
- anything else (DeepSeek, vLLM, llama.cpp...): the stable order is all they need.

Without `provider` the output is portable: any provider, or a router that may pick any of them.
`cache_hints(request, target)` applies the same hints to a validated request for one target (the
hook the routing engine calls per attempt).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..tokens import MESSAGE_OVERHEAD, TOOLS_OVERHEAD, Encoder, encoder_for
from ._canon import STABLE_ROLES, canonical, dumps, fingerprint, normalize_text, stable_part, tool_name

if TYPE_CHECKING:
    from ..catalog import ModelSpec
    from ..policy import Target
    from ..request import ChatRequest

__all__ = [
    "ANTHROPIC_MAX_BREAKPOINTS",
    "DEFAULT_MIN_TOKENS",
    "Conversation",
    "Document",
    "Example",
    "PromptLayout",
    "cache_hints",
    "min_cache_tokens",
]

TTL = Literal["5m", "1h"]
ANTHROPIC_MAX_BREAKPOINTS = 4
DEFAULT_MIN_TOKENS = {"anthropic": 1024, "openai": 1024, "deepseek": 64, "vllm": 16, "llamacpp": 1}
"""Shortest cacheable prefix per provider when the catalog row does not say (PROVIDERS.md 2)."""
_AUTOMATIC: dict[str, Any] = {"type": "ephemeral"}
_HISTORY_KEYS = ("role", "name", "content", "tool_calls", "tool_call_id")
_REPLY_KEYS = frozenset({"role", "name", "content", "tool_calls", "thinking_blocks"})


@dataclass(frozen=True, slots=True)
class Document:
    """A reference document for the prompt; `title` (and `source`) are rendered as attributes."""

    text: str
    title: str | None = None
    source: str | None = None

    def render(self, index: int) -> str:
        attrs = f' index="{index}"'
        if self.title:
            attrs += f' title="{_attr(self.title)}"'
        if self.source:
            attrs += f' source="{_attr(self.source)}"'
        return f"<document{attrs}>\n{self.text}\n</document>"


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("\n", " ")


@dataclass(frozen=True, slots=True)
class Example:
    """A few-shot example: a user message and the answer you want."""

    user: str
    assistant: str


def min_cache_tokens(model: str | ModelSpec | None, provider: str | None = None) -> int:
    """The shortest cacheable prefix of `model`: its catalog `cache_min_tokens`, else the provider's
    default (`DEFAULT_MIN_TOKENS`), else 1,024."""
    from ..catalog import ModelSpec, default_catalog

    spec = model if isinstance(model, ModelSpec) else default_catalog().model(model) if model else None
    if spec is not None:
        if spec.cache_min_tokens is not None:
            return spec.cache_min_tokens
        provider = provider or spec.provider
    return DEFAULT_MIN_TOKENS.get(provider or "", 1024)


def _encoder(model: str | ModelSpec | None) -> Encoder:
    from ..catalog import ModelSpec, default_catalog

    spec = model if isinstance(model, ModelSpec) else default_catalog().model(model) if model else None
    if spec is not None:
        return encoder_for(spec.api_name, spec.tokenizer, warn=False)
    return encoder_for(model if isinstance(model, str) else "", warn=False)


def _normalize_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: normalize_text(v) if k == "description" and isinstance(v, str) else _normalize_descriptions(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalize_descriptions(v) for v in value]
    return value


def _history_message(message: Any) -> dict[str, Any]:
    """A history message as a plain dict in a fixed key order (role, name, content, tool_calls,
    tool_call_id, then the rest sorted). SDK objects (an earlier reply's `message`) keep only what
    goes back to a provider."""
    dump = getattr(message, "model_dump", None)
    if dump is not None:
        data = dump(mode="json", exclude_none=True)
        data = {k: v for k, v in data.items() if k in _REPLY_KEYS}
        if data.get("content") is None and "tool_calls" not in data:
            data["content"] = ""
    elif isinstance(message, Mapping):
        data = dict(message)
    else:
        raise TypeError(f"a history message must be a dict or an SDK message, got {type(message).__name__}")
    out = {k: data[k] for k in _HISTORY_KEYS if k in data}
    for k in sorted(data):
        if k not in out:
            out[k] = data[k]
    if isinstance(out.get("content"), list):
        out["content"] = [canonical(p) for p in out["content"]]
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [canonical(c) for c in out["tool_calls"]]
    return out


def _with_context(turn: Any, context: str | None) -> dict[str, Any]:
    if isinstance(turn, str):
        message: dict[str, Any] = {"role": "user", "content": turn}
    elif isinstance(turn, Mapping) or hasattr(turn, "model_dump"):
        message = _history_message(turn)
    elif isinstance(turn, Sequence):
        message = {"role": "user", "content": [canonical(p) for p in turn]}
    else:
        raise TypeError(f"user_turn must be a string, a message dict or a list of parts, got {turn!r}")
    if not context:
        return message
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = f"{context}\n\n{content}" if content else context
    elif isinstance(content, list):
        message["content"] = [{"text": context, "type": "text"}, *content]
    else:
        message["content"] = context
    return message


def _marked(message: dict[str, Any], ttl: TTL) -> dict[str, Any]:
    """A copy of `message` whose last content part carries a `cache_control` breakpoint."""
    control: dict[str, Any] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    content = message.get("content")
    if isinstance(content, str):
        parts: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list) and content:
        parts = [dict(p) for p in content]
    else:
        return message
    parts[-1] = {**parts[-1], "cache_control": control}
    return {**message, "content": parts}


def _message_tokens(message: Mapping[str, Any], enc: Encoder) -> int:
    total = MESSAGE_OVERHEAD + enc.count(str(message.get("role", "")))
    content = message.get("content")
    if isinstance(content, str):
        return total + enc.count(content)
    if isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, Mapping) else None
            total += enc.count(text) if isinstance(text, str) else enc.count(dumps(part))
    return total


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    end: int  # tokens of the prompt through the end of this section
    tool: int | None = None  # mark the tool at this index ...
    message: int | None = None  # ... or the last part of the message at this index


def _choose(sections: Sequence[_Section], min_tokens: int, budget: int) -> list[_Section]:
    """The sections to end with a breakpoint: those whose prefix reaches `min_tokens`, the longest
    prefix first, at most `budget` of them; returned in prompt order."""
    eligible = [s for s in sections if s.end >= min_tokens]
    chosen = eligible[::-1][: max(budget, 0)]
    return chosen[::-1]


def _apply(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, chosen: Sequence[_Section], ttl: TTL
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    if not chosen:
        return messages, tools
    messages = list(messages)
    tools = list(tools) if tools is not None else None
    control: dict[str, Any] = {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}
    for section in chosen:
        if section.tool is not None and tools is not None:
            tools[section.tool] = {**tools[section.tool], "cache_control": control}
        elif section.message is not None:
            messages[section.message] = _marked(messages[section.message], ttl)
    return messages, tools


class PromptLayout:
    """A prompt built from parts ordered by how often they change, rendered canonically.

    - `system`: the instructions (one `system_role` message, first).
    - `tools`: Chat Completions tools; rendered sorted by name, every dict with sorted keys
      (descriptions whitespace-normalised), so the order the caller builds them in never matters.
    - `documents`: reference texts (`Document` or `str`), rendered into one `system_role` message.
    - `examples`: few-shot `Example`s (or `(user, assistant)` pairs), as user/assistant messages
      (`examples_as="messages"`) or as a section of the instructions (`examples_as="system"`).
    - `normalize`: whitespace normalised where harmless (`normalize_text`) in the stable parts.
    - `ttl`: Anthropic breakpoints on the stable sections: `"5m"` (writes cost 1.25x input) or
      `"1h"` (2x; worth it when calls are more than five minutes apart).
    - `cache_key_prefix`, `cache_key_shards`: OpenAI's `prompt_cache_key` is the prefix plus the
      fingerprint; with N shards a `shard_key` (a user, a tenant) spreads one prefix over N keys, for
      prefixes called more than about 15 times a minute (OpenAI then overflows a cache machine).

    The stable messages and tools are rendered once, at construction; `render` only adds the
    history and the new turn, so it costs microseconds and hands the router the very same strings
    every call (the fingerprint is then a dict lookup).
    """

    def __init__(
        self,
        system: str = "",
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        documents: Sequence[str | Document] = (),
        examples: Sequence[Example | tuple[str, str]] = (),
        system_role: Literal["system", "developer"] = "system",
        examples_as: Literal["messages", "system"] = "messages",
        normalize: bool = True,
        ttl: TTL = "5m",
        cache_key_prefix: str = "llmroute-",
        cache_key_shards: int = 1,
    ) -> None:
        if system_role not in STABLE_ROLES:
            raise ValueError(f"system_role must be 'system' or 'developer', got {system_role!r}")
        if examples_as not in ("messages", "system"):
            raise ValueError(f"examples_as must be 'messages' or 'system', got {examples_as!r}")
        if ttl not in ("5m", "1h"):
            raise ValueError(f"ttl must be '5m' or '1h', got {ttl!r}")
        if cache_key_shards < 1:
            raise ValueError("cache_key_shards must be >= 1")
        text = normalize_text if normalize else (lambda s: s)
        self.ttl: TTL = ttl
        self.cache_key_prefix = cache_key_prefix
        self.cache_key_shards = cache_key_shards
        rendered = [canonical(t) for t in tools]
        if normalize:
            rendered = [_normalize_descriptions(t) for t in rendered]
        names = [tool_name(t) for t in rendered]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tools: duplicate names {duplicates}")
        self.tools: tuple[dict[str, Any], ...] = tuple(
            t for _, t in sorted(zip(names, rendered, strict=True))
        )
        """The tools as rendered: sorted by name, keys sorted."""
        pairs = [e if isinstance(e, Example) else Example(*e) for e in examples]
        sections: list[tuple[str, list[dict[str, Any]]]] = []
        instructions = text(system) if system else ""
        if pairs and examples_as == "system":
            shots = "\n\n".join(
                f"<example>\nUser: {text(e.user)}\nAssistant: {text(e.assistant)}\n</example>" for e in pairs
            )
            instructions = f"{instructions}\n\n<examples>\n{shots}\n</examples>" if instructions else shots
            pairs = []
        if instructions:
            sections.append(("system", [{"role": system_role, "content": instructions}]))
        docs = [d if isinstance(d, Document) else Document(d) for d in documents]
        if docs:
            body = "\n\n".join(
                dataclasses.replace(d, text=text(d.text)).render(i + 1) for i, d in enumerate(docs)
            )
            sections.append(
                ("documents", [{"role": system_role, "content": f"<documents>\n{body}\n</documents>"}])
            )
        if pairs:
            shots_messages: list[dict[str, Any]] = []
            for e in pairs:
                shots_messages.append({"role": "user", "content": text(e.user)})
                shots_messages.append({"role": "assistant", "content": text(e.assistant)})
            sections.append(("examples", shots_messages))
        self._sections = sections
        self.stable_messages: tuple[dict[str, Any], ...] = tuple(m for _, ms in sections for m in ms)
        """The messages every render starts with (instructions, documents, examples)."""
        part = stable_part(self.stable_messages, self.tools)
        self.fingerprint: str = part.fingerprint
        """The fingerprint of the tools and the leading system messages (`prefix_fingerprint`)."""
        self._anthropic: dict[tuple[str, int], tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {}
        self._tokens: dict[str, list[_Section]] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={len(ms)}" for name, ms in self._sections)
        return f"PromptLayout(tools={len(self.tools)}, {counts}, fingerprint={self.fingerprint!r})"

    # -- rendering --------------------------------------------------------------------------------

    def render(
        self,
        history: Sequence[Any] = (),
        user_turn: Any = None,
        *,
        context: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        cache_conversation: bool | None = None,
        shard_key: str | None = None,
    ) -> dict[str, Any]:
        """`create()` keyword arguments: `messages` (and `tools`, and the provider's cache hints).

        - `history`: the conversation so far (dicts or SDK messages), sent as given in a fixed key
          order; `user_turn`: the new input (a string, a message dict, or a list of content parts).
        - `context`: volatile text (today's date, the user's name...) put at the start of the new
          turn, after everything cacheable.
        - `provider` (`"anthropic"`, `"openai"`, others) and `model` (for Anthropic's minimum
          cacheable length): add that provider's cache hints (see the module docstring).
        - `cache_conversation`: Anthropic: also cache the conversation with the top-level automatic
          breakpoint (default: when there is a history). It takes one of the four breakpoints, so
          pass the same value on every turn of a conversation (`Conversation` passes True) for the
          stable sections' marks to stay where they are from the first turn on.
        """
        messages: list[dict[str, Any]] = [dict(m) for m in self.stable_messages]
        messages.extend(_history_message(m) for m in history)
        if user_turn is not None or context:
            messages.append(_with_context(user_turn if user_turn is not None else "", context))
        if not messages:
            raise ValueError("nothing to render: no instructions, documents, examples, history or turn")
        tools: list[dict[str, Any]] | None = list(self.tools) if self.tools else None
        out: dict[str, Any] = {}
        if provider == "anthropic":
            conversation = bool(history) if cache_conversation is None else cache_conversation
            stable, tools = self._anthropic_stable(model, conversation)
            messages[: len(stable)] = [dict(m) for m in stable]
            if conversation:
                out["extra_body"] = {"cache_control": dict(_AUTOMATIC)}
        elif provider == "openai" and (self.tools or self.stable_messages):
            out["prompt_cache_key"] = self.cache_key(shard_key)
        out = {"messages": messages, **({"tools": tools} if tools else {}), **out}
        return out

    def cache_key(self, shard_key: str | None = None) -> str:
        """OpenAI's `prompt_cache_key` for this layout (and shard)."""
        key = f"{self.cache_key_prefix}{self.fingerprint}"
        if self.cache_key_shards > 1:
            digest = hashlib.blake2b((shard_key or "").encode(), digest_size=4).digest()
            key += f"-{int.from_bytes(digest, 'big') % self.cache_key_shards}"
        return key

    def stable_tokens(self, model: str | None = None) -> int:
        """Tokens of the stable part (tools, instructions, documents, examples) under `model`'s
        tokenizer (an estimate for models whose tokenizer is not tiktoken's)."""
        sections = self._section_ends(model)
        return sections[-1].end if sections else 0

    def breakpoints(self, model: str | None = None, *, conversation: bool = False) -> list[str]:
        """The stable sections an Anthropic render ends with a breakpoint (`"tools"`, `"system"`,
        `"documents"`, `"examples"`), for `model`'s minimum cacheable length."""
        budget = ANTHROPIC_MAX_BREAKPOINTS - (1 if conversation else 0)
        return [
            s.name for s in _choose(self._section_ends(model), min_cache_tokens(model, "anthropic"), budget)
        ]

    def _section_ends(self, model: str | None) -> list[_Section]:
        key = model or ""
        found = self._tokens.get(key)
        if found is not None:
            return found
        enc = _encoder(model or "claude")
        sections: list[_Section] = []
        total = 0
        if self.tools:
            total += TOOLS_OVERHEAD + enc.count(dumps(list(self.tools)))
            sections.append(_Section("tools", total, tool=len(self.tools) - 1))
        index = 0
        for name, section_messages in self._sections:
            for message in section_messages:
                total += _message_tokens(message, enc)
            index += len(section_messages)
            sections.append(_Section(name, total, message=index - 1))
        self._tokens[key] = sections
        return sections

    def _anthropic_stable(
        self, model: str | None, conversation: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        min_tokens = min_cache_tokens(model, "anthropic")
        budget = ANTHROPIC_MAX_BREAKPOINTS - (1 if conversation else 0)
        key = (model or "", budget)
        found = self._anthropic.get(key)
        if found is None:
            chosen = _choose(self._section_ends(model), min_tokens, budget)
            found = _apply(list(self.stable_messages), list(self.tools) or None, chosen, self.ttl)
            self._anthropic[key] = found
        messages, tools = found
        return messages, (list(tools) if tools else None)


class Conversation:
    """A conversation on a `PromptLayout`: keeps the history exactly as it was sent, so every turn's
    prompt extends the previous one byte for byte (and the provider's cache keeps hitting).

    ```python
    chat = Conversation(layout)
    reply = router.chat.completions.create(model="auto", **chat.render("Review this diff: ..."))
    chat.add_reply(reply)
    reply = router.chat.completions.create(model="auto", **chat.render("And the tests?"))
    ```
    """

    def __init__(
        self, layout: PromptLayout, *, provider: str | None = None, model: str | None = None
    ) -> None:
        self.layout = layout
        self.provider = provider
        self.model = model
        self.history: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None

    def render(self, user_turn: Any = None, *, context: str | None = None) -> dict[str, Any]:
        """The next call's `create()` arguments. The new turn joins the history with `add_reply` (or
        `add`); rendering again without one replaces it (a retried turn is not sent twice)."""
        kwargs = self.layout.render(
            self.history,
            user_turn,
            context=context,
            provider=self.provider,
            model=self.model,
            cache_conversation=True,
        )
        self._pending = kwargs["messages"][-1] if (user_turn is not None or context) else None
        return kwargs

    def add_reply(self, reply: Any) -> None:
        """Append the turn just sent and the answer (a completion, its message, a dict or a string)."""
        if self._pending is not None:
            self.history.append(self._pending)
            self._pending = None
        choices = getattr(reply, "choices", None)
        if choices:
            reply = choices[0].message
        if isinstance(reply, str):
            reply = {"role": "assistant", "content": reply}
        self.history.append(_history_message(reply))

    def add(self, message: Any) -> None:
        """Append any message (a tool result, say) to the history."""
        if self._pending is not None:
            self.history.append(self._pending)
            self._pending = None
        self.history.append(_history_message(message))


# ---------------------------------------------------------------- per target


def _has_breakpoints(request: ChatRequest) -> bool:
    extra = request.extra_body
    if isinstance(extra, Mapping) and extra.get("cache_control") is not None:
        return True
    for tool in request.body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("cache_control") is not None:
            return True
    for message in request.messages:
        if message.get("cache_control") is not None:
            return True
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, Mapping)
            and (p.get("cache_control") is not None or p.get("prompt_cache_breakpoint"))
            for p in content
        ):
            return True
    return False


def _strip_breakpoints(request: ChatRequest) -> ChatRequest:
    """`request` without Anthropic `cache_control` marks (the same object when it has none)."""
    if not _has_breakpoints(request):
        return request
    messages = []
    for original in request.messages:
        message = {k: v for k, v in original.items() if k != "cache_control"}
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [
                {k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, Mapping) else p
                for p in content
            ]
        messages.append(message)
    body = dict(request.body)
    if body.get("tools"):
        body["tools"] = [
            {k: v for k, v in t.items() if k != "cache_control"} if isinstance(t, Mapping) else t
            for t in body["tools"]
        ]
    extra = request.extra_body
    if isinstance(extra, Mapping) and "cache_control" in extra:
        extra = {k: v for k, v in extra.items() if k != "cache_control"} or None
    return dataclasses.replace(request, messages=messages, body=body, extra_body=extra)


def cache_hints(request: ChatRequest, target: Target) -> ChatRequest:
    """`request` with the cache hints of `target`'s provider (a new request; the same object when
    nothing changes). Meant to run once per attempt, after routing and before the adapter encodes.

    - Anthropic, when the request has no breakpoint of its own: breakpoints at the end of the tools,
      of the leading system messages and of the turns before the newest user message (few-shot
      examples or history) where the prefix reaches the model's `cache_min_tokens`, plus the
      top-level automatic breakpoint when those turns were not sent before with another newest
      message (a growing conversation; repeated turns are few-shot examples, see `_RepeatedTurns`).
    - OpenAI: `prompt_cache_key` from the stable part's fingerprint, unless the caller set one.
    - Other providers: Anthropic `cache_control` marks are removed (they mean nothing there).
    """
    dialect = target.dialect
    if dialect == "anthropic":
        if _has_breakpoints(request):
            return request
        return _anthropic_hints(request, target)
    request = _strip_breakpoints(request)
    if dialect == "openai" and not request.body.get("prompt_cache_key"):
        tools = request.body.get("tools")
        part = stable_part(request.messages, tools, request.body)
        if not part.empty:
            body = {**request.body, "prompt_cache_key": f"llmroute-{part.fingerprint}"}
            return dataclasses.replace(request, body=body)
    return request


def _anthropic_hints(request: ChatRequest, target: Target) -> ChatRequest:
    enc = _encoder(target.model)
    tools = request.body.get("tools")
    part = stable_part(request.messages, tools, request.body)
    sections: list[_Section] = []
    total = 0
    if tools:
        total += TOOLS_OVERHEAD + enc.count(dumps(list(tools)))
        sections.append(_Section("tools", total, tool=len(tools) - 1))
    for i in range(part.messages):
        total += _message_tokens(request.messages[i], enc)
    if part.messages:
        sections.append(_Section("system", total, message=part.messages - 1))
    # Turns between the stable part and the newest user turn are few-shot examples (the same on every
    # call) or a conversation's history (extended by the next call). The prefix through the last of
    # them gets a breakpoint: few-shot examples are then read on every call, as with an explicit
    # `PromptLayout.render(provider="anthropic")`. A conversation also gets the top-level automatic
    # breakpoint, which caches the newest turn for the next call; few-shot examples must not (the
    # newest turn, a new question, would be written at 1.25x and never read). They are told apart
    # by repetition: turns already sent before this process saw a different newest turn are
    # few-shot examples; turns never seen before are treated as a growing conversation.
    last_user = max((i for i, m in enumerate(request.messages) if m.get("role") == "user"), default=-1)
    conversation = False
    if last_user > part.messages:
        for i in range(part.messages, last_user):
            total += _message_tokens(request.messages[i], enc)
        sections.append(_Section("turns", total, message=last_user - 1))
        conversation = not _repeated_turns.seen(target.name, request.messages, last_user, tools)
    budget = ANTHROPIC_MAX_BREAKPOINTS - (1 if conversation else 0)
    chosen = _choose(sections, min_cache_tokens(target.model, "anthropic"), budget)
    if not chosen and not conversation:
        return request
    messages, new_tools = _apply(list(request.messages), list(tools) if tools else None, chosen, "5m")
    body = dict(request.body)
    if new_tools is not None:
        body["tools"] = new_tools
    extra = request.extra_body
    if conversation:
        extra = {**(extra or {}), "cache_control": dict(_AUTOMATIC)}
    return dataclasses.replace(request, messages=messages, body=body, extra_body=extra)


class _RepeatedTurns:
    """Which (target, turns-before-the-newest, newest turn) combinations were hinted, by
    fingerprint: turns seen before with another newest turn are few-shot examples. Bounded (the
    oldest half is dropped when full); a forgotten prefix only costs one automatic breakpoint."""

    def __init__(self, size: int = 8192) -> None:
        self._turns: dict[tuple[str, str], str] = {}
        self._size = size

    def seen(self, target: str, messages: Sequence[Mapping[str, Any]], last_user: int, tools: Any) -> bool:
        key = (target, fingerprint(messages[:last_user], tools))
        newest = fingerprint(messages[last_user:])
        before = self._turns.get(key)
        if before is None and len(self._turns) >= self._size:
            for old in list(self._turns)[: self._size // 2]:
                self._turns.pop(old, None)
        self._turns[key] = newest
        return before is not None and before != newest


_repeated_turns = _RepeatedTurns()
