"""The demo's report on the terminal: `rich` tables when installed, plain aligned text otherwise
(`LLMROUTE_PLAIN=1` forces it)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ..money.pricing import money
from .fleet import MODELS
from .summary import Summary

__all__ = ["print_report"]


def _rich() -> bool:
    return not os.environ.get("LLMROUTE_PLAIN") and importlib.util.find_spec("rich") is not None


class _Out:
    def __init__(self) -> None:
        self.console: Any = None
        if _rich():
            from rich.console import Console

            width = None if sys.stdout.isatty() else 200
            self.console = Console(file=sys.stdout, width=width, highlight=False, soft_wrap=False)

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(text)

    def heading(self, text: str) -> None:
        self.line()
        if self.console is not None:
            self.console.print(text, style="bold", markup=False)
        else:
            print(text)
            print("=" * len(text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> None:
        if self.console is not None:
            from rich.table import Table

            table = Table(header_style="bold", box=None, pad_edge=False, padding=(0, 2, 0, 0))
            for i, name in enumerate(header):
                table.add_column(name, justify="right" if i in right else "left", overflow="fold")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(
                str(c).rjust(w) if i in right else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        print(fmt(header))
        print(fmt(["-" * w for w in widths]))
        for row in rows:
            print(fmt(row))


def _usd(value: str | None) -> str:
    return money(Decimal(value)) if value is not None else "unpriced"


def _n(value: int) -> str:
    return f"{value:,}"


def print_report(s: Summary) -> None:
    """Print every section of the summary."""
    out = _Out()
    where = "the built-in emulator" if s.mode == "emulated" else "the real providers (--live)"
    out.line(
        f"llmroute demo: a 10-developer team's month on {where}, scale {s.scale:.3g}: "
        f"{_n(s.calls)} calls, {_n(s.attempts)} attempts in {s.elapsed_s:.1f}s"
    )
    out.line(
        "Deployments: openai gpt-5.4 (US), deepseek deepseek-v3.2 (CN), anthropic claude-sonnet-4.6 (US), "
        "onprem qwen3-coder-32b (self-hosted vLLM, the team's price row)"
    )
    out.line(f"Policy: {s.policy} (Residency keeps PII out of CN; TaskType is the seed's routing table)")
    for incident in s.incidents:
        out.line(f"Incident: {incident}")

    out.heading("Workload (the seed's task mix and sizes; tokens measured from the ledger)")
    out.table(
        ["task", "calls", "PII", "avg in", "avg out", "sizes"],
        [
            [
                w["task"],
                _n(w["calls"]),
                _n(w["pii"]),
                _n(w["input_tokens"]),
                _n(w["output_tokens"]),
                w["seed"],
            ]
            for w in s.workload
        ],
        right=(1, 2, 3, 4),
    )

    out.heading("1. Where calls went and why")
    deployments = [d for d in MODELS if any(d in p for p in s.placement.values())]
    deployments += sorted({d for p in s.placement.values() for d in p} - set(deployments))
    out.table(
        ["task", *deployments],
        [[task, *(_n(p.get(d, 0)) for d in deployments)] for task, p in s.placement.items()],
        right=range(1, len(deployments) + 1),
    )
    out.line()
    out.table(
        [
            "task",
            "data",
            "answered by",
            "calls",
            "why (the policy's reasons; the engine's retries and fallbacks)",
        ],
        [[r["task"], r["data"], r["deployment"], _n(r["calls"]), r["why"]] for r in s.routing],
        right=(3,),
    )

    g = s.gate
    out.heading("2. The hard gate: personal data never goes to a provider in China")
    by_task = ", ".join(f"{t} {n}" for t, n in g["pii_by_task"].items())
    out.line(
        f"{_n(g['pii_calls'])} calls carried a customer record ({by_task}); Residency removed DeepSeek (CN) "
        f"from {_n(g['removed_by_residency'])} of their decisions, fallbacks included."
    )
    carrying = ", ".join(f"{p} {_n(n)}" for p, n in g["requests_with_pii"].items()) or "none"
    log = "the emulator's request log" if s.mode == "emulated" else "the requests as they left"
    out.line(f"Requests carrying personal data, from {log}: {carrying}.")
    verdict = "OK" if g["sent_to_cn"] == 0 else "VIOLATION"
    out.line(
        f"Sent to CN: {g['sent_to_cn']} [{verdict}] - DeepSeek received {_n(g['requests_to_cn'])} "
        f"requests, {g['sent_to_cn']} with personal data; ledger rows of PII calls at DeepSeek: "
        f"{g['ledger_rows_to_cn']}."
    )
    out.line(
        f"The rule's price: the PII calls cost {_usd(g['pii_cost'])}; on DeepSeek they would have cost "
        f"{_usd(g['pii_cost_on_deepseek'])}."
    )

    f = s.faults
    out.heading("3. Faults survived")
    out.table(
        ["fault (as answered)", "provider", "requests", "then"],
        [[k["kind"], k["provider"], _n(k["requests"]), k["then"]] for k in f["by_kind"]]
        or [["none", "-", "0", "-"]],
        right=(2,),
    )
    opened = (
        ", ".join(f"{c['deployment']} {c['times']}x ({c['cause']})" for c in f["cooldowns_opened"]) or "none"
    )
    out.line(
        f"{_n(f['faulty_requests'])} faulty answers: {_n(f['retries'])} retries on the same deployment, "
        f"{_n(f['fallbacks'])} calls moved to another deployment, {_n(f['calls_past_a_cooling_deployment'])} "
        f"calls went straight past a cooling deployment."
    )
    out.line(f"Cooldowns opened: {opened}.")
    out.line(f"Calls that failed anyway: {f['failed_calls']}.")

    t = s.truncation
    out.heading("4. Truncated answers")
    if t["cut_attempts"]:
        out.table(
            ["verdict", "attempts", "then"],
            [[c["verdict"], _n(c["attempts"]), c["then"]] for c in t["cut_attempts"]],
            right=(1,),
        )
    else:
        out.line("No answer was cut.")
    final = ", ".join(f"{k} {_n(v)}" for k, v in t["final_verdicts"].items())
    out.line(f"Verdicts on the answers the callers got: {final}.")
    missed = t["silent_stops_undetected"]
    if missed:
        out.line(
            f"{missed} of {t['injected'].get('silent_stop', 0)} silent stops went undetected: the cut fell "
            "at the end of a sentence, and the answer looks finished."
        )

    c = s.cache
    out.heading("5. Prompt cache")
    tasks = ", ".join(f"{k} {v:.0%}" for k, v in c["by_task"].items())
    out.line(
        f"{c['hit_share']:.1%} of all input tokens were read from a provider's cache "
        f"({_n(c['cached_tokens'])} of {_n(c['input_tokens'])}); by task: {tasks}."
    )
    if "code_review_cacheable_hit_share" in c:
        out.line(
            f"Code reviews ({s.prompt_layout}: the {s.stable_tokens:,}-token guidelines and instructions "
            "first, the diff after): "
            f"{c['code_review_cacheable_hit_share']:.1%} of their cacheable tokens hit; caching saved "
            f"{_usd(c.get('saved'))} in all."
        )
    else:
        out.line(f"Code-review prompts: {s.prompt_layout}.")

    b = s.bill
    out.heading("6. The bill")
    by_dep = ", ".join(f"{d} {_usd(v)}" for d, v in b["by_deployment"].items())
    out.line(f"Routed: {_usd(b['actual'])} ({by_dep}).")
    ratio = f", {b['times_cheaper']:.1f}x what routing cost" if b["times_cheaper"] else ""
    out.line(
        f"Everything on {b['most_expensive_model']}, the most expensive of the four: "
        f"{_usd(b['most_expensive'])}{ratio}."
    )
    others = ", ".join(
        f"{m} {_usd(v)}{' (est.)' if b['estimates'].get(m) else ''}" for m, v in b["everything_on"].items()
    )
    out.line(f"Everything on one model: {others}.")
    if b["full_month_actual"] is not None and s.scale != 1:
        out.line(
            f"A full month ({_n(b['full_month_calls'])} calls) at this mix: about "
            f"{_usd(b['full_month_actual'])} routed, {_usd(b['full_month_most_expensive'])} on "
            f"{b['most_expensive_model']}."
        )
    if s.whatif:
        out.line(f"What if: {s.whatif} (The PII calls may not go there: the gate would keep them away.)")

    out.line()
    if s.failed:
        out.line(f"FAILED: {len(s.failed)} calls failed unexpectedly; first: {s.failed[0]}")
    elif s.gate.get("sent_to_cn"):
        out.line("FAILED: personal data reached a provider in China.")
    else:
        out.line("Every call answered; no personal data left for China.")
