"""`llmroute demo --ledger month.db`: the demo's month saved as a SQLite ledger that `report` and
`whatif` read (the examples of docs/ledger.md's command-line section)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from llmroute.cli import main
from llmroute.money.store import SQLiteStore


def test_demo_ledger_feeds_report_and_whatif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "month.db"
    assert main(["demo", "--calls", "60", "--ledger", str(path), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = SQLiteStore(path).load().rows()
    assert len(rows) >= 60 and {r.hints.task for r in rows} >= {"chat", "code_review"}
    days = {r.timestamp // 86400 for r in rows}
    assert len(days) > 5  # spread over the simulated month, as the report shows it

    assert main(["report", "--db", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"]["calls"] == summary["calls"]
    billed = sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))
    assert Decimal(report["total"]["cost"]) == billed

    argv = ["whatif", "--db", str(path), "--model", "deepseek-v3.2", "--task", "code_review", "--json"]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results[0]["label"] == "deepseek-v3.2" and results[0]["moved"] > 0


def test_demo_refuses_to_overwrite_a_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "month.db"
    path.write_text("keep me")
    assert main(["demo", "--calls", "10", "--ledger", str(path), "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err and path.read_text() == "keep me"
