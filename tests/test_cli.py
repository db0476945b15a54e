"""The CLI on a recorded ledger: output, `--json`, the HTML report, exit codes, and the plain-text
fallback when `rich` is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import USER

from llmroute.cli import main
from llmroute.money.ledger import Ledger
from llmroute.money.pricing import money
from llmroute.money.store import SQLiteStore, export_jsonl
from llmroute.testing import Emulator, Fault

D = Decimal
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def recorded(tmp_path: Path, make_router: Any, emu: Emulator) -> tuple[Path, Ledger]:
    """A small month: code reviews and chats on GPT-5.4 and DeepSeek, a 503 answered by a fallback,
    an unpriced self-hosted call; saved to SQLite and read back, as the CLI would."""
    path = tmp_path / "ledger.db"
    store = SQLiteStore(path)
    ledger = Ledger(store=store)
    router = make_router(ledger=ledger, fallbacks=["deepseek-v3.2"])
    review = [{"role": "system", "content": "You review code. " * 300}, {"role": "user", "content": "diff"}]
    for _ in range(4):
        router.chat.completions.create(model="gpt-5.4", messages=review, route={"task": "code_review"})
        router.chat.completions.create(
            model="deepseek-v3.2", messages=USER, route={"task": "chat", "user": "ann"}
        )
    emu.inject(Fault.server_error(503), provider="openai", times=4)
    router.chat.completions.create(model="gpt-5.4", messages=USER, route={"task": "chat"})
    router.chat.completions.create(model="qwen3-8b", messages=USER, route={"task": "chat"})
    store.close()
    return path, ledger


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_tables(recorded: tuple[Path, Ledger], capsys: pytest.CaptureFixture[str]) -> None:
    path, ledger = recorded
    code, out, err = run(capsys, "report", "--db", str(path), "--by", "model", "--by", "task")
    assert code == 0, err
    total = ledger.total()
    assert money(total.cost, total.unpriced) in out  # "$0.0x + 1 unpriced"
    assert "+ 1 unpriced" in out
    for name in ("gpt-5.4", "deepseek-v3.2", "qwen3-8b", "code_review", "chat", "By model", "By task"):
        assert name in out, name
    qwen_line = next(line for line in out.splitlines() if "qwen3-8b" in line)
    assert "unpriced" in qwen_line and "$0.00 " not in qwen_line


def test_report_json_matches_the_ledger(
    recorded: tuple[Path, Ledger], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ledger = recorded
    code, out, _ = run(capsys, "report", "--db", str(path), "--json", "--by", "all")
    assert code == 0
    data = json.loads(out)
    totals = ledger.total()
    assert D(data["total"]["cost"]) == totals.cost and data["total"]["unpriced"] == totals.unpriced == 1
    assert data["total"]["attempts"] == totals.attempts and data["total"]["calls"] == totals.calls == 10
    assert data["total"]["input_tokens"] == totals.usage.input_tokens
    assert data["total"]["fallbacks"] == 1 and data["total"]["errors"] == 4
    assert {g["key"] for g in data["groups"]["user"]} == {"ann", "(none)"}
    assert set(data["groups"]) == {"model", "provider", "deployment", "task", "tag", "user", "day"}


def test_report_html(
    recorded: tuple[Path, Ledger], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, ledger = recorded
    page = tmp_path / "report.html"
    code, out, _ = run(capsys, "report", "--db", str(path), "--html", str(page), "--whatif", "deepseek-v3.2")
    assert code == 0 and "HTML report written" in out
    text = page.read_text("utf-8")

    class Check(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    parser = Check()
    parser.feed(text)
    parser.close()
    assert parser.tags.count("svg") == 3 and "table" in parser.tags
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    totals = ledger.total()
    assert money(totals.cost, totals.unpriced) in text
    assert "Cost over time by model" in text and "Cache hit share by model" in text and "What if" in text
    assert "deepseek-v3.2" in text and "unpriced" in text


def test_whatif(recorded: tuple[Path, Ledger], capsys: pytest.CaptureFixture[str]) -> None:
    path, ledger = recorded
    code, out, _ = run(
        capsys,
        "whatif",
        "--db",
        str(path),
        "--model",
        "deepseek-v3.2",
        "--task",
        "code_review",
        "--period",
        "This month",
    )
    assert code == 0
    assert out.startswith("This month cost $") and "on deepseek-v3.2 it would have cost" in out
    assert "routing code review calls there would have saved $" in out
    code, out, _ = run(
        capsys,
        "whatif",
        "--jsonl",
        str(_jsonl(ledger, path.parent)),
        "--model",
        "gpt-5.4",
        "--route",
        "chat=deepseek-v3.2",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    labels = [r["label"] for r in data["results"]]
    assert labels == ["gpt-5.4", "chat -> deepseek-v3.2"]
    assert D(data["results"][0]["actual"]) == ledger.total().cost


def _jsonl(ledger: Ledger, where: Path) -> Path:
    path = where / "rows.jsonl"
    export_jsonl(ledger, path)
    return path


def test_estimate_seed_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        "estimate",
        "--input",
        "8.5K",
        "--output",
        "400",
        "--requests",
        "1000",
        "--cache-share",
        "1",
        "--model",
        "deepseek-v3.2",
        "--model",
        "gpt-5.4",
    )
    assert code == 0 and "$0.41" in out and "$27.25" in out
    code, out, _ = run(
        capsys,
        "estimate",
        "--input",
        "80M",
        "--output",
        "45M",
        "--model",
        "gpt-5.5",
        "--model",
        "deepseek-v4-pro",
        "--json",
    )
    assert code == 0
    totals = {m["model"]: D(m["total"]) for m in json.loads(out)["models"]}
    assert totals == {"gpt-5.5": D("2150"), "deepseek-v4-pro": D("74.35")}
    code, out, _ = run(capsys, "estimate", str(ROOT / "examples" / "seed_workload.toml"))
    assert code == 0 and "Monthly cost per routing table" in out and "seed" in out


def test_prices(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "prices", "--json")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)}
    assert rows["deepseek-v3.2"]["input"] == "0.28" and rows["deepseek-v3.2"]["cache_read"] == "0.028"
    assert rows["gpt-5.4"]["source"] and all("source" in r for r in rows.values())
    code, out, _ = run(capsys, "prices", "--provider", "deepseek", "--sources")
    words = " ".join(out.split())  # the source column wraps to fit the terminal
    assert code == 0 and "deepseek-v3.2" in out and "gpt-5.4" not in out and "seed analysis" in words
    changes = tmp_path / "p.toml"
    changes.write_text('[[price]]\nmodel = "gpt-5.4"\neffective = "2027-01-01"\ninput = "2"\noutput = "12"\n')
    code, out, _ = run(capsys, "prices", "--prices", str(changes), "--history", "--json")
    history = [r for r in json.loads(out) if r["model"] == "gpt-5.4"]
    assert [(r["effective"], r["input"]) for r in history] == [(None, "2.50"), ("2027-01-01", "2")]
    code, out, _ = run(capsys, "prices", "--prices", str(changes), "--at", "2027-02-01", "--json")
    assert {r["model"]: r["input"] for r in json.loads(out)}["gpt-5.4"] == "2"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["report"], 2),  # no ledger source
        (["report", "--db", "x.db", "--jsonl", "y.jsonl"], 2),
        (["whatif", "--db", "x.db"], 2),  # no alternative named
        (["whatif", "--db", "x.db", "--model", "gpt-9"], 2),  # unknown model
        (["estimate", "--input", "lots", "--output", "1"], 2),
        (["estimate", "--input", "1", "--output", "1"], 2),  # no models
        (["report", "--nope"], 2),
        (["frobnicate"], 2),
        (["--help"], 0),
        (["report", "--db", "missing.db"], 1),
        (["estimate", "missing.toml", "--model", "gpt-5.4"], 1),
    ],
)
def test_exit_codes(
    argv: list[str],
    expected: int,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == expected
    if expected == 1:
        assert err.startswith("llmroute ")


def test_bad_workload_file_fails_with_a_message(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "w.toml"
    bad.write_text('[[task]]\nname = "x"\nrequests = 1\n')
    code, _, err = run(capsys, "estimate", str(bad), "--model", "gpt-5.4")
    assert code == 1 and "missing key(s)" in err


def test_plain_text_without_rich(
    recorded: tuple[Path, Ledger], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMROUTE_PLAIN", "1")
    path, _ = recorded
    code, out, _ = run(capsys, "report", "--db", str(path), "--by", "model")
    assert code == 0 and "gpt-5.4" in out and "┃" not in out and "-----" in out


def test_commands_work_with_rich_not_installed(recorded: tuple[Path, Ledger]) -> None:
    path, _ = recorded
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from llmroute.cli import main\n"
        f"assert main(['report', '--db', {str(path)!r}]) == 0\n"
        "assert main(['estimate', '--input', '80M', '--output', '45M', '--model', 'gpt-5.5']) == 0\n"
        "assert main(['demo', '--calls', '12']) in (0, 1)\n"
        "assert 'rich' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "$2,150.00" in result.stdout and "llmroute demo" in result.stdout
