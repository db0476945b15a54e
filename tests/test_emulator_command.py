"""`llmroute emulator` / `python -m llmroute.testing`: the emulator in the foreground on a real port,
called with the raw SDKs at the base URLs it prints, stopped by SIGTERM or Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import openai
import pytest


def _sigint_ignored_and_blocked() -> None:
    """What a child inherits from a parent that ignores and blocks Ctrl-C (a shell's background
    job, a supervisor): the emulator must still stop on SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


@contextmanager
def emulator(
    *argv: str, inherit_blocked: bool = False
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc = subprocess.Popen(
        [sys.executable, *argv, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_sigint_ignored_and_blocked if inherit_blocked else None,  # noqa: PLW1509 (signal calls only)
    )
    urls: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                urls[name] = value
            if "DEEPSEEK_BASE_URL" in urls and "OLLAMA_BASE_URL" in urls:
                break
        assert urls, proc.stderr.read() if proc.stderr else ""
        yield proc, urls
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=90)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    ("argv", "stop", "inherit_blocked"),
    [
        (["-m", "llmroute.cli", "emulator", "--seed", "3"], signal.SIGTERM, False),
        (["-m", "llmroute.testing", "--seed", "3"], signal.SIGINT, False),
        (["-m", "llmroute.testing", "--seed", "3"], signal.SIGINT, True),
    ],
    ids=["cli-sigterm", "module-sigint", "module-sigint-inherited-ignored-and-blocked"],
)
def test_serves_until_stopped(argv: list[str], stop: signal.Signals, inherit_blocked: bool) -> None:
    with emulator(*argv, inherit_blocked=inherit_blocked) as (proc, urls):
        assert set(urls) >= {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "DEEPSEEK_BASE_URL"}
        assert urls["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
        assert urls["OPENAI_BASE_URL"].endswith("/openai/v1")
        with openai.OpenAI(api_key="sk-anything", base_url=urls["OPENAI_BASE_URL"], max_retries=0) as client:
            reply = client.chat.completions.create(
                model="gpt-5.4", messages=[{"role": "user", "content": "hello"}]
            )
        assert reply.choices[0].message.content and reply.usage and reply.usage.prompt_tokens > 0
        ds = openai.OpenAI(api_key="x", base_url=urls["DEEPSEEK_BASE_URL"], max_retries=0)
        chunks = list(
            ds.chat.completions.create(
                model="deepseek-chat", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        ds.close()
        assert any(c.choices and c.choices[0].delta.content for c in chunks)
        claude = anthropic.Anthropic(api_key="x", base_url=urls["ANTHROPIC_BASE_URL"], max_retries=0)
        message = claude.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        claude.close()
        assert message.content and message.usage.input_tokens > 0
        proc.send_signal(stop)
        assert proc.wait(timeout=90) == 0
        assert proc.stdout is not None and "stopped after 3 requests" in proc.stdout.read()


def test_faults_option() -> None:
    argv = ["-m", "llmroute.cli", "emulator", "--fault", "server_error", "--fault-rate", "1"]
    with emulator(*argv) as (proc, urls):
        client = openai.OpenAI(api_key="x", base_url=urls["OPENAI_BASE_URL"], max_retries=0)
        with client, pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-5.4", messages=[{"role": "user", "content": "x"}])
        proc.terminate()
        assert proc.wait(timeout=90) == 0


def test_bad_options_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmroute.testing", "--fault-rate", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "needs at least one --fault" in result.stderr
