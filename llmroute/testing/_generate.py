"""Deterministic default replies: English-like text, tool-call arguments and JSON answers.

Text is built from a fixed vocabulary of common words, each one token with its leading space in
tiktoken's encodings and in the approximate encoder, so a requested length is hit exactly: the
count of a text is the sum of the counts of its pieces (a word with its space, ``","``, ``"."``),
because every tokenizer used here splits text at those boundaries before merging.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from typing import Any

from llmroute.tokens import Encoder

__all__ = ["DIRECTIVE", "json_dumps", "json_reply", "rng_for", "schema_value", "text"]

DIRECTIVE = re.compile(r"\[\[emulator:tokens=(\d+)\]\]")
"""``[[emulator:tokens=N]]`` anywhere in the messages forces an answer of N output tokens."""

_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are from at or an have not but "
    "they which one you all were we there can their has been more when will would if so some what "
    "about out up into them than then only other its time new these two may first any like now "
    "over such our also most made after where many well could way through back much should "
    "because each just those people how too little state good very make world still own see work "
    "long get here between both under never same last might great old year off come since against "
    "go came right used take three small large next early young important few public bad able "
    "model cost price token cache route answer request reply data plan test value order "
    "simple clear short quick fast slow safe calm bright quiet open close ready final"
)
_WORDS = _VOCABULARY.split()
_STARTS = ("The", "This", "It", "We", "Our", "Each", "That", "Some", "Every", "Most", "A", "In")


def json_dumps(value: Any) -> str:
    """Compact JSON, as providers send tool-call arguments."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rng_for(seed: int, model: str, prompt: str) -> random.Random:
    """A generator seeded from (emulator seed, model, prompt text): same request, same answer."""
    digest = hashlib.blake2b(f"{seed}\x00{model}\x00{prompt}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


_one_token_cache: dict[str, tuple[list[str], list[str]]] = {}


def _vocab(enc: Encoder) -> tuple[list[str], list[str]]:
    """(" word"s, sentence starts): the words that are one token with their leading space."""
    got = _one_token_cache.get(enc.name)
    if got is None:
        words = [" " + w for w in _WORDS if enc.count(" " + w) == 1] or [" the"]
        starts = [w for w in _STARTS if enc.count(" " + w) == 1 and enc.count(w) == 1] or ["The"]
        got = _one_token_cache[enc.name] = (words, starts)
    return got


def text(rng: random.Random, enc: Encoder, n_tokens: int) -> str:
    """English-like sentences of exactly ``n_tokens`` tokens under ``enc``, ending with a period
    (when ``n_tokens >= 2``)."""
    words, starts = _vocab(enc)
    n_words, n_starts = len(words), len(starts)
    rand = rng.random
    parts: list[str] = []
    left = n_tokens
    in_sentence = 0
    sentence_len = 0
    while left > 0:
        if in_sentence == 0:
            start = starts[int(rand() * n_starts)]
            parts.append(" " + start if parts else start)
            in_sentence, sentence_len = 1, 5 + int(rand() * 10)
        elif left == 1 or (in_sentence >= sentence_len and left > 4):
            parts.append(".")  # a sentence ends when the next one can have three words or more
            in_sentence = 0
        elif in_sentence >= 3 and left > 3 and parts[-1] != "," and rand() < 0.08:
            parts.append(",")
        else:
            parts.append(words[int(rand() * n_words)])
            in_sentence += 1
        left -= 1
    return "".join(parts)


def schema_value(schema: Any, name: str = "", root: Any = None, depth: int = 0) -> Any:
    """A small deterministic value that satisfies a (simple) JSON schema.

    Local references (`{"$ref": "#/$defs/Step"}`, as pydantic writes nested models) are followed
    against the root schema, to a bounded depth so recursive schemas terminate.
    """
    if not isinstance(schema, Mapping):
        return "example"
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if depth > 8 or not isinstance(target, Mapping):
            return None
        return schema_value(target, name, root, depth + 1)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for combo in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combo)
        if isinstance(options, list) and options:
            return schema_value(options[0], name, root, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {key: schema_value(sub, key, root, depth) for key, sub in props.items()}
    if kind == "array":
        return [schema_value(schema.get("items"), name, root, depth)]
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    lowered = name.lower()
    if any(k in lowered for k in ("location", "city", "place")):
        return "Paris"
    if "unit" in lowered:
        return "celsius"
    if "date" in lowered:
        return "2026-01-01"
    return "example"


def json_reply(rng: random.Random, enc: Encoder, schema: Mapping[str, Any] | None) -> Any:
    """The object answered in JSON mode: from the schema, else ``{"answer": <a few words>}``."""
    if schema is not None:
        return schema_value(schema)
    return {"answer": text(rng, enc, rng.randint(4, 10)).rstrip(".")}
