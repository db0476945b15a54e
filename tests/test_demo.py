"""`llmroute demo`: the month-in-a-minute workload on the emulator, its report, --json, --html, --live."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter
from typing import Any

import pytest

from llmroute.cli import main
from llmroute.demo import workload
from llmroute.demo.fleet import LIVE_KEYS, SEED_TABLE, build_policy
from llmroute.demo.runner import Outcome
from llmroute.demo.summary import WireRequest, summarize_run
from llmroute.tokens import TokenizerFallbackWarning, count_messages

CALLS = "150"  # small: about a second


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def text_report() -> tuple[int, str]:
    code, out, _ = run("--calls", CALLS, "--seed", "3", "--no-progress")
    return code, out


@pytest.fixture(scope="module")
def json_and_html(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str]:
    page = tmp_path_factory.mktemp("demo") / "report.html"
    code, out, _ = run("--calls", CALLS, "--json", "--html", str(page))
    return code, json.loads(out), page.read_text(encoding="utf-8")


def test_the_demo_runs_and_reports_every_section(text_report: tuple[int, str]) -> None:
    code, out = text_report
    assert code == 0, out
    for section in (
        "llmroute demo",
        "Workload",
        "1. Where calls went and why",
        "2. The hard gate",
        "3. Faults survived",
        "4. Truncated answers",
        "5. Prompt cache",
        "6. The bill",
        "What if:",
    ):
        assert section in out, section
    assert "Sent to CN: 0 [OK]" in out
    assert "Every call answered" in out
    for deployment in ("openai", "deepseek", "onprem"):
        assert deployment in out
    assert "Residency removed deepseek" in out and "seed table: 1st choice" in out


def test_no_personal_data_reaches_china(json_and_html: tuple[int, dict[str, Any], str]) -> None:
    code, summary, _ = json_and_html
    gate = summary["gate"]
    assert code == 0 and summary["ok"]
    assert gate["pii_calls"] > 0 and gate["removed_by_residency"] == gate["pii_calls"]
    assert gate["sent_to_cn"] == 0 and gate["ledger_rows_to_cn"] == 0
    assert gate["requests_to_cn"] > 0  # DeepSeek did get traffic: only not the personal data
    assert gate["requests_with_pii"]["deepseek (CN)"] == 0
    assert sum(gate["requests_with_pii"].values()) >= gate["pii_calls"]


def test_faults_are_injected_and_survived(json_and_html: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = json_and_html
    faults = summary["faults"]
    kinds = {k["kind"].split(" (")[0] for k in faults["by_kind"]}
    assert "rate limited" in kinds and "outage" in kinds
    assert faults["failed_calls"] == 0 and faults["retries"] > 0 and faults["fallbacks"] > 0
    assert any(c["deployment"] == "openai" for c in faults["cooldowns_opened"])
    assert summary["truncation"]["cut_attempts"]
    assert set(summary["truncation"]["final_verdicts"]) <= {"complete", "suspected"}


def test_the_summary_adds_up(json_and_html: tuple[int, dict[str, Any], str]) -> None:
    _, summary, _ = json_and_html
    assert summary["calls"] == sum(w["calls"] for w in summary["workload"])
    assert summary["calls"] == sum(r["calls"] for r in summary["routing"])
    assert summary["attempts"] >= summary["calls"]
    bill = summary["bill"]
    assert float(bill["most_expensive"]) > float(bill["actual"]) > 0
    assert bill["most_expensive_model"] in bill["everything_on"]
    assert summary["cache"]["hit_share"] > 0
    assert summary["whatif"].startswith("This month cost $")


def test_the_html_page_has_the_figures(json_and_html: tuple[int, dict[str, Any], str]) -> None:
    _, summary, page = json_and_html
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") >= 4
    for heading in ("Where calls went", "The hard gate", "Faults survived", "Truncated answers", "The bill"):
        assert heading in page
    assert summary["bill"]["actual_money"] in page
    assert f"{summary['gate']['pii_calls']:,}" in page and "Sent to CN: <b>0</b>" in page
    assert "<script" not in page


def test_live_refuses_without_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIVE_KEYS:
        monkeypatch.delenv(name, raising=False)
    code, out, err = run("--live")
    assert code == 2 and out == ""
    assert all(name in err for name in LIVE_KEYS) and "--live" in err and "emulator" in err


def test_live_names_only_the_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    code, _, err = run("--live")
    first_line = err.split(". ")[0]
    assert code == 2 and "ANTHROPIC_API_KEY" in first_line and "OPENAI_API_KEY" not in first_line


def test_bad_scale_is_a_usage_error() -> None:
    assert run("--scale", "0")[0] == 2
    assert run("--scale", "0.1", "--calls", "10")[0] == 2  # one or the other


def test_the_workload_keeps_the_seed_mix_and_sizes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TokenizerFallbackWarning)
        jobs, helper, stable = workload.build_jobs(0.1, seed=11)
        assert Counter(j.task for j in jobs) == {
            "code_review": 50,
            "complex_debugging": 20,
            "documentation": 100,
            "chat": 200,
        }
        assert [j.at for j in jobs] == sorted(j.at for j in jobs)
        assert all(0 <= j.at < 30 * workload.DAY for j in jobs)
        sizes = {t.name: t.input_tokens for t in workload.TASKS}
        for task, seed_size in sizes.items():
            counted = [count_messages(j.kwargs["messages"], "gpt-5.4").tokens for j in jobs if j.task == task]
            assert abs(sum(counted) / len(counted) - seed_size) < 0.1 * seed_size, task
    assert helper == "llmroute.prefix.PromptLayout" and 2_000 < stable < 3_000
    pii = [j for j in jobs if j.pii]
    assert pii and all(workload.PII_MARKER in json.dumps(j.kwargs) for j in pii)
    assert not any(workload.PII_MARKER in json.dumps(j.kwargs) for j in jobs if not j.pii)
    assert {j.task for j in pii} <= {"code_review", "complex_debugging", "chat"}
    again, _, _ = workload.build_jobs(0.1, seed=11)
    assert [j.kwargs for j in again] == [j.kwargs for j in jobs]


def test_the_policy_is_made_of_built_ins() -> None:
    names = [p.name for p in getattr(build_policy(), "policies", ())]
    assert names[:5] == ["Residency", "Capabilities", "ContextWindow", "Cheapest", "TaskType"]
    assert SEED_TABLE["code_review"][0] == "deepseek-v3.2" and SEED_TABLE["complex_debugging"][0] == "gpt-5.4"


def test_the_gate_check_reads_the_wire_not_the_ledger() -> None:
    """A request carrying a customer record to DeepSeek fails the demo, whatever the ledger says."""
    from llmroute.catalog import default_catalog

    job = workload.Job(0, "chat", 0.0, "pii", {"messages": []})
    leaked = [WireRequest("deepseek", '{"content": "ana.00001@example.com"}', 200)]
    summary, _, _ = summarize_run(
        [Outcome(job, deployment="openai")],
        leaked,
        default_catalog(),
        {},
        mode="emulated",
        scale=0.01,
        elapsed=0.0,
        prompt_layout="test",
    )
    assert summary.gate["sent_to_cn"] == 1 and summary.gate["ledger_rows_to_cn"] == 0
    assert not summary.ok
