"""llmroute.tokens: encoder choice, the offline fallback, chat overhead, and the cache script."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmroute import tokens
from llmroute.tokens import (
    IMAGE_TOKENS,
    TOOLS_OVERHEAD,
    TokenEstimate,
    TokenizerFallbackWarning,
    count_messages,
    count_text,
    encoder_for,
    encoding_for_model,
)

ROOT = Path(__file__).resolve().parent.parent
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"
CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
ENGLISH = (
    "The router sends each request to the cheapest model that is allowed and good enough for the task. "
    "When a provider fails, it retries with backoff, honours Retry-After, and falls back to another "
    "deployment; every attempt is written to the ledger, including the ones that were cut off midway. "
    "Prompts are laid out so that the static part comes first and provider caches can hit."
)


def _real_cache_dir() -> Path | None:
    """Where tiktoken's real files are: $TIKTOKEN_CACHE_DIR, else the repo's .cache/tiktoken."""
    for candidate in (os.environ.get("TIKTOKEN_CACHE_DIR"), str(ROOT / ".cache" / "tiktoken")):
        if (
            candidate
            and (Path(candidate) / O200K_FILE).is_file()
            and (Path(candidate) / CL100K_FILE).is_file()
        ):
            return Path(candidate)
    return None


REAL_DIR = _real_cache_dir()
needs_tiktoken = pytest.mark.skipif(
    REAL_DIR is None,
    reason="tiktoken's o200k_base/cl100k_base files are not in $TIKTOKEN_CACHE_DIR "
    "(run: python scripts/tiktoken_cache.py .cache/tiktoken)",
)


@pytest.fixture(autouse=True)
def _fresh_encoders() -> Iterator[None]:
    """Each test loads encoders under its own environment; restore a clean state afterwards."""
    tokens._reset()
    yield
    tokens._reset()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty tiktoken cache and a network that fails loudly if anything tries to use it."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(tokens.DOWNLOAD_ENV, raising=False)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the token counter tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    return tmp_path


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch) -> Path:
    assert REAL_DIR is not None
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(REAL_DIR))
    return REAL_DIR


# ---------------------------------------------------------------- model -> encoding


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-5.4", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo:org::abc", "cl100k_base"),
        ("openai/gpt-4-0613", "cl100k_base"),
        ("gpt-oss-120b", "o200k_harmony"),
        ("claude-opus-4-8", "o200k_base"),
        ("deepseek-v4-pro", "o200k_base"),
        ("ollama-llama3", "o200k_base"),
        ("totally-unknown", "o200k_base"),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding


def test_import_does_not_import_tiktoken() -> None:
    code = "import sys, llmroute.tokens; assert 'tiktoken' not in sys.modules, 'tiktoken imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- the offline fallback


def test_fallback_is_fast_offline_and_warns_once(offline: Path) -> None:
    start = time.perf_counter()
    with pytest.warns(TokenizerFallbackWarning, match=r"o200k_base.*TIKTOKEN_CACHE_DIR"):
        enc = encoder_for("gpt-4o")
    assert time.perf_counter() - start < 1.0
    assert (enc.name, enc.exact) == ("approx", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = encoder_for("gpt-4")  # cl100k_base is missing too: no second warning
        estimate = count_messages([{"role": "user", "content": "hi"}], "gpt-4")
    assert other.exact is False
    assert estimate == TokenEstimate(estimate.tokens, False, "approx")
    assert encoder_for("gpt-4o") is enc  # cached per encoding name


def test_fallback_when_caching_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.delenv(tokens.DOWNLOAD_ENV, raising=False)
    with pytest.warns(TokenizerFallbackWarning, match="disabled"):
        assert encoder_for("gpt-4o").exact is False


def test_fallback_on_corrupt_cache_file(offline: Path) -> None:
    (offline / O200K_FILE).write_bytes(b"not a bpe file")
    with pytest.warns(TokenizerFallbackWarning, match="corrupt"):
        assert encoder_for("gpt-5").exact is False
    assert (offline / O200K_FILE).read_bytes() == b"not a bpe file"  # tiktoken never got to delete it


def test_download_allowed_but_failing_falls_back(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    def fail(name: str) -> Any:
        raise ConnectionError("no route to host")

    monkeypatch.setenv(tokens.DOWNLOAD_ENV, "1")
    monkeypatch.setattr(tiktoken, "get_encoding", fail)
    with pytest.warns(TokenizerFallbackWarning, match="no route to host"):
        assert encoder_for("gpt-4o").exact is False


def test_unknown_explicit_encoding_falls_back(offline: Path) -> None:
    with pytest.warns(TokenizerFallbackWarning, match="unknown encoding"):
        assert encoder_for("gpt-4o", encoding="nope_base").name == "approx"


def test_explicit_approx_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = encoder_for("gpt-4o", encoding="approx")
    assert enc.exact is False


def test_approx_is_deterministic_across_processes() -> None:
    enc = encoder_for("x", encoding="approx")
    code = (
        "from llmroute.tokens import encoder_for; "
        "print(encoder_for('x', 'approx').encode('Hello, world 12345!'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert json.loads(out.stdout) == enc.encode("Hello, world 12345!")


def test_approx_pieces() -> None:
    enc = encoder_for("x", encoding="approx")
    assert enc.split("Hello world, it's 123456 items!") == [
        "Hello",
        " world",
        ",",
        " it",
        "'s",
        " ",
        "123",
        "456",
        " items",
        "!",
    ]
    assert enc.split(" internationalization") == [" interna", "tionali", "zation"]
    assert enc.split("数据驻留") == ["数", "据", "驻", "留"]
    assert enc.count("") == 0


def test_approx_is_close_to_four_chars_per_token() -> None:
    n = encoder_for("x", encoding="approx").count(ENGLISH)
    assert 3.5 <= len(ENGLISH) / n <= 5.5


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_approx_split_covers_text(text: str) -> None:
    enc = encoder_for("x", encoding="approx")
    pieces = enc.split(text)
    assert "".join(pieces) == text
    assert len(pieces) == enc.count(text) == len(enc.encode(text))


def test_count_is_memoised() -> None:
    enc = encoder_for("x", encoding="approx")
    enc.cache_clear()
    enc.count(ENGLISH)
    enc.count(ENGLISH)
    info = enc._count.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert enc.tokens(ENGLISH) is enc.tokens(ENGLISH)


# ---------------------------------------------------------------- chat overhead


def _approx(text: str) -> int:
    return count_text(text, "x", encoding="approx")


def test_count_messages_formula() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ann", "content": "Hi there"},
        {"role": "assistant", "content": None},
    ]
    expected = 3 * 3 + 3  # per message, reply priming
    expected += _approx("system") + _approx("Be brief.")
    expected += _approx("user") + 1 + _approx("ann") + _approx("Hi there")
    expected += _approx("assistant")
    assert count_messages(messages, "gpt-4o", encoding="approx") == TokenEstimate(expected, False, "approx")


def test_count_messages_parts_tool_calls_and_tools() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                audio,
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ]
    tools = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]
    base = count_messages(messages, "gpt-4o", encoding="approx").tokens
    expected = 3 * 3 + 3
    expected += _approx("user") + _approx("What is in this image?") + IMAGE_TOKENS
    expected += _approx(json.dumps(audio, separators=(",", ":")))
    expected += _approx("assistant") + _approx("look") + _approx('{"x":1}')
    expected += _approx("tool") + _approx("a cat") + _approx("call_1")
    assert base == expected
    with_tools = count_messages(messages, "gpt-4o", tools=tools, encoding="approx").tokens
    assert with_tools == base + TOOLS_OVERHEAD + _approx(json.dumps(tools, separators=(",", ":")))


def test_reordered_tools_count_the_same_but_render_differently() -> None:
    a = {"type": "function", "function": {"name": "a"}}
    b = {"type": "function", "function": {"name": "b"}}
    msgs = [{"role": "user", "content": "x"}]
    one, two = (count_messages(msgs, "m", tools=t, encoding="approx").tokens for t in ([a, b], [b, a]))
    assert one == two
    assert tokens.prompt_segments(msgs, [a, b]) != tokens.prompt_segments(msgs, [b, a])


# ---------------------------------------------------------------- exact, with tiktoken's files


@needs_tiktoken
def test_exact_with_real_encodings(real: Path) -> None:
    import tiktoken

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc = encoder_for("gpt-4o")
        old = encoder_for("gpt-4")
    assert (enc.name, enc.exact, old.name, old.exact) == ("o200k_base", True, "cl100k_base", True)
    assert enc.encode(ENGLISH) == tiktoken.get_encoding("o200k_base").encode(ENGLISH)
    assert old.count(ENGLISH) == len(tiktoken.get_encoding("cl100k_base").encode(ENGLISH))
    assert enc.count("<|endoftext|>") > 1  # special tokens are counted as plain text
    estimate = count_messages([{"role": "user", "content": ENGLISH}], "gpt-4o")
    assert estimate == TokenEstimate(3 + 3 + 1 + enc.count(ENGLISH), True, "o200k_base")
    approx = encoder_for("gpt-4o", encoding="approx").count(ENGLISH)
    assert 0.85 <= approx / enc.count(ENGLISH) <= 1.15


@needs_tiktoken
@pytest.mark.parametrize("text", ["héllo wörld", "数据驻留 🙂🚀 ok", "a\n\n  b\tc", ""])
def test_exact_split(real: Path, text: str) -> None:
    enc = encoder_for("gpt-4o")
    pieces = enc.split(text)
    assert "".join(pieces) == text
    assert len(pieces) == enc.count(text)


# ---------------------------------------------------------------- scripts/tiktoken_cache.py


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiktoken_cache", ROOT / "scripts" / "tiktoken_cache.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cache_script_names_match_tiktoken() -> None:
    script = _script()
    assert script.cache_name("o200k_base") == O200K_FILE
    assert script.cache_name("cl100k_base") == CL100K_FILE
    url = "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken"
    assert script.cache_name("p50k_base") == hashlib.sha1(url.encode()).hexdigest()


def test_cache_script_does_nothing_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    for enc in script.ENCODINGS:
        (tmp_path / script.cache_name(enc)).write_bytes(b"x")

    def no_pip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pip must not run")

    monkeypatch.setattr(subprocess, "run", no_pip)
    assert script.main(["tiktoken_cache.py", str(tmp_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_cache_script_extracts_from_wheel(tmp_path: Path) -> None:
    import zipfile

    script = _script()
    wheel = tmp_path / "litellm-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for enc in script.ENCODINGS:
            zf.writestr(script.WHEEL_DIR + script.cache_name(enc), enc.encode())
        zf.writestr("litellm/other.py", "")
    dest = tmp_path / "dest"
    dest.mkdir()
    got = script.extract(wheel, dest, script.missing(dest))
    assert sorted(got) == sorted(script.ENCODINGS)
    assert (dest / O200K_FILE).read_bytes() == b"o200k_base"
    assert script.missing(dest) == {}
