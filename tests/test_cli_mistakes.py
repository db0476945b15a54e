"""The first hour with the command line: ordinary mistakes get a one-line message and the documented
exit code (1: a file that is missing or not what the option expects; 2: bad usage), never a
traceback; `--version`, help pages with a description, usage of the subcommand on errors, a closed
pipe, and report tables that fit the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import USER

from llmroute import __version__
from llmroute.cli import main
from llmroute.money.ledger import Ledger
from llmroute.money.store import SQLiteStore


@pytest.fixture
def db(tmp_path: Path, make_router: Any) -> Path:
    path = tmp_path / "ledger.db"
    store = SQLiteStore(path)
    router = make_router(ledger=Ledger(store=store))
    for task in ("code_review", "chat"):
        router.chat.completions.create(model="gpt-5.4", messages=USER, route={"task": task})
    store.close()
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "prices.txt"
    text.write_text("model  input  output\ngpt-5.4  1.25  10\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[model]\nid = \n")
    return {"text": text, "bad": bad, "missing": tmp_path / "nope.toml"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["prices", "--catalog", "{missing}"], 1, "cannot read the catalog file {missing}: No such file"),
        (["prices", "--catalog", "{bad}"], 1, "{bad} is not a valid TOML catalog file"),
        (
            ["estimate", "--input", "1", "--output", "1", "--model", "gpt-5.4", "--catalog", "{bad}"],
            1,
            "{bad}",
        ),
        (["report", "--db", "{db}", "--catalog", "{missing}"], 1, "cannot read the catalog file"),
        (["report", "--db", "{text}"], 1, "{text} is not an llmroute SQLite ledger"),
        (["report", "--jsonl", "{text}"], 1, "{text} is not a JSONL ledger export"),
        (["report", "--jsonl", "{missing}"], 1, "cannot read {missing}"),
        (["report", "--db", "{db}", "--prices", "{text}"], 1, "{text}"),
        (["report", "--db", "{db}", "--by", "colour"], 2, "--by 'colour': not a ledger field"),
        (["report", "--db", "{db}", "--by", "model+colour"], 2, "'colour'"),
        (["prices", "--provider", "nosuch"], 2, "unknown provider 'nosuch'; known: anthropic, deepseek"),
        (["whatif", "--db", "{db}", "--model", "gpt-5.4", "--task", "nosuchtask"], 2, "chat, code_review"),
        (["lint-prompt", "{text}", "--model", "gpt-9000"], 2, "unknown model 'gpt-9000'"),
        (["estimate", "{missing}", "--model", "gpt-5.4"], 1, "nope.toml"),
    ],
)
def test_ordinary_mistakes(
    argv: list[str],
    code: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
    db: Path,
    files: dict[str, Path],
) -> None:
    names = {**{k: str(v) for k, v in files.items()}, "db": str(db)}
    got, _, err = run(capsys, *(a.format(**names) for a in argv))
    assert (got, "Traceback" in err) == (code, False), err
    assert message.format(**names) in err
    assert len(err.strip().splitlines()) <= 6  # a message (and the usage), not a dump


def test_usage_errors_print_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "prices", "--provider", "nosuch")
    assert code == 2 and err.startswith("usage: llmroute prices ")


def test_by_accepts_every_documented_field(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    for by in ("model", "provider", "deployment", "task", "tag", "user", "day", "week", "month", "all"):
        code, _, err = run(capsys, "report", "--db", str(db), "--by", by, "--by", "label:arm", "--json")
        assert code == 0, (by, err)
    code, _, err = run(capsys, "report", "--db", str(db), "--by", "model+day", "--by", "outcome")
    assert code == 0, err


def test_version_and_help_pages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"llmroute {__version__}"
    for command in ("prices", "report", "whatif", "estimate", "demo", "emulator", "tokenizers"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0
        description = out.split("\n\n")[1]
        assert not description.startswith(("options:", "positional")), (command, out)
        assert len(description) > 20


def _cli(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmroute.cli", *argv],
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
        **kw,
    )


@pytest.mark.parametrize("plain", [False, True])
def test_a_closed_pipe_is_not_an_error(plain: bool, db: Path) -> None:
    """`llmroute prices | head -2`: the reader is gone before the first write."""
    env = {**os.environ, "LLMROUTE_PLAIN": "1" if plain else ""}
    for argv in (["prices"], ["report", "--db", str(db), "--json"]):
        read, write = os.pipe()
        os.close(read)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "llmroute.cli", *argv],
                stdout=write,
                check=False,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
                env=env,
            )
        finally:
            os.close(write)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert "BrokenPipe" not in result.stderr and "Exception ignored" not in result.stderr


@pytest.mark.parametrize("plain", [False, True])
def test_report_fits_100_columns(plain: bool, db: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["LLMROUTE_PLAIN"] = "1" if plain else ""
    for by in ("model", "task+model"):
        result = _cli("report", "--db", str(db), "--by", by, env=env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert "gpt-5.4" in result.stdout and "fallback" in result.stdout
        assert max(len(line) for line in lines) <= 100, result.stdout
    wide = _cli("report", "--db", str(db), "--wide", env=env)
    assert "cache write" in wide.stdout and "p99" in wide.stdout


def test_report_follows_the_terminal_width(db: Path) -> None:
    pytest.importorskip("rich")  # the plain-text tables (no `cli` extra) have fixed widths
    env = {**os.environ, "COLUMNS": "72", "LLMROUTE_PLAIN": ""}
    result = _cli("report", "--db", str(db), "--by", "model", env=env)
    assert max(len(line) for line in result.stdout.splitlines()) <= 72
    assert "gpt-5.4" in result.stdout
