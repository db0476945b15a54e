"""Prompt-prefix facts routing builds on: how long each provider keeps a prefix, and its fingerprint.

The policies that use them (`PrefixLabel`, `CacheAffinity`) live in `llmroute.policies.affinity`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._canon import stable_part

if TYPE_CHECKING:
    from ..request import ChatRequest

__all__ = ["CACHE_LIFETIMES", "DEFAULT_LIFETIME", "EXTENDED_RETENTION", "prefix_fingerprint"]

CACHE_LIFETIMES: Mapping[str, float] = {
    "openai": 300.0,
    "anthropic": 300.0,
    "deepseek": 3600.0,
    "vllm": 600.0,
    "llamacpp": 600.0,
    "ollama": 0.0,
}
"""Seconds a provider keeps a prefix after its last use, conservatively (the providers' caching docs):
OpenAI 5-10 minutes (24 h with `prompt_cache_retention="24h"`), Anthropic 5 minutes (1 h for 1h
breakpoints, seen as 1h cache writes), DeepSeek's disk cache hours, vLLM/llama.cpp until evicted."""
EXTENDED_RETENTION = 86_400.0
DEFAULT_LIFETIME = 300.0


def prefix_fingerprint(
    request: ChatRequest | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str | None:
    """The fingerprint of a request's stable part (tools + leading system/developer messages + the
    response format), or None when it has none. Equal exactly when the stable parts render to the
    same prompt (see `llmroute.prefix._canon.fingerprint`)."""
    from ._canon import as_request_parts

    messages, found_tools, body, _ = as_request_parts(request, tools)
    part = stable_part(messages, found_tools, body)
    return None if part.empty else part.fingerprint
