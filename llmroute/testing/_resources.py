"""The OpenAI-compatible endpoints besides chat completions that the emulator serves:
``GET /{provider}/v1/models`` and ``POST /{provider}/v1/embeddings``.

Both are deterministic: the model list is the provider's configured models (``Emulator.models``),
or a fixed list when any model is served; an embedding is a unit vector derived from a SHA-256 of
the input text, as floats or base64 (the SDK asks for base64), with ``prompt_tokens`` counted as
whitespace-separated words.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Collection
from typing import Any

from ._engine import ApiError, Outcome

__all__ = ["ANY_MODELS", "EMBEDDING_DIMENSIONS", "embeddings", "models"]

ANY_MODELS = ("gpt-5.4", "gpt-5.4-mini", "text-embedding-3-small")
"""What ``/v1/models`` lists for a provider that serves any model name."""

EMBEDDING_DIMENSIONS = 8
_JSON = "application/json"


def _reply(body: dict[str, Any]) -> Outcome:
    return Outcome(200, [("content-type", _JSON)], json.dumps(body).encode())


def models(served: Collection[str] | None) -> Outcome:
    names = sorted(served) if served is not None else list(ANY_MODELS)
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "emulator"} for name in names]
    return _reply({"object": "list", "data": data})


def vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The embedding of `text`: deterministic, of unit length."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] - 127.5) / 127.5 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _encode(values: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def embeddings(raw: bytes) -> Outcome | ApiError:
    try:
        body = json.loads(raw)
    except ValueError:
        return ApiError(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return ApiError(400, "you must provide a model parameter")
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) for v in inputs):
        return ApiError(400, "'input' must be a string or a non-empty list of strings")
    dimensions = body.get("dimensions", EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or dimensions < 1:
        return ApiError(400, "'dimensions' must be a positive integer")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return ApiError(400, "'encoding_format' must be 'float' or 'base64'")
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(vector(text, dimensions), encoding)}
        for i, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    return _reply(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
