"""`llmroute demo --html FILE`: the demo's report as one self-contained page with charts.

The ledger part (cost per day by model over the simulated month, cache hit share by model, the
what-if comparison, the breakdown tables) is `llmroute.money.htmlreport.render_html`; the demo's own
sections (where calls went and why, the hard gate, faults, truncation, cache, the bill) are added
before it, with inline SVG charts in the same style. No JavaScript, nothing fetched.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal

from ..money.htmlreport import Colors, render_html
from ..money.ledger import LedgerRow
from ..money.pricing import money
from ..money.reports import breakdown, build_report
from ..money.whatif import Repricing
from .fleet import MODELS, ONPREM
from .summary import Summary

__all__ = ["render_page"]

_E = html.escape


def _usd(value: str | None) -> str:
    return money(Decimal(value)) if value is not None else "unpriced"


def _stacked(
    rows: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    keys: Sequence[str],
    label: str,
    colors: Colors,
    legend: bool = True,
) -> str:
    """Horizontal stacked bars: one bar per row, one colour per key, with a legend."""
    top = max((sum(v for _, v in parts) for _, parts in rows), default=0.0) or 1.0
    width, left, row_h = 760, 170, 26
    plot = width - left - 60
    height = row_h * len(rows) + (30 if legend else 10)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'role="img" aria-label="{_E(label)}">'
    ]
    for n, (name, parts) in enumerate(rows):
        y = 5 + n * row_h
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_E(name)}</text>')
        x = float(left)
        for key, value in parts:
            if not value:
                continue
            w = plot * value / top
            color = colors(key)
            out.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="16" fill="{color}">'
                f"<title>{_E(name)} / {_E(key)}: {value:,.0f}</title></rect>"
            )
            x += w
        total = sum(v for _, v in parts)
        out.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">{total:,.0f}</text>')
    y = 10 + row_h * len(rows)
    x = float(left)
    for key in keys if legend else ():
        out.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{colors(key)}"/>')
        out.append(f'<text x="{x + 16:.0f}" y="{y + 10}" font-size="12">{_E(key)}</text>')
        x += 30 + 7 * len(key)
    out.append("</svg>")
    return "".join(out)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numbers: Sequence[int] = ()) -> str:
    """A table whose text columns are left-aligned and whose `numbers` columns are right-aligned."""

    def cell(tag: str, i: int, value: str) -> str:
        return f"<{tag}{' class=num' if i in numbers else ''}>{_E(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, str(c)) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table class='demo'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = "<style>.demo th,.demo td{text-align:left}.demo .num{text-align:right}</style>"


def _sections(s: Summary, colors: Colors) -> str:
    out: list[str] = [_STYLE]
    out.append(
        f"<p>A 10-developer team's month (the seed's task mix and sizes) at scale {s.scale:.3g}: "
        f"{s.calls:,} calls, {s.attempts:,} attempts, run in {s.elapsed_s:.1f}s on "
        f"{'the built-in emulator' if s.mode == 'emulated' else 'the real providers'}. Policy: "
        f"{_E(s.policy)} (TaskType is the seed's routing table).</p>"
    )
    if s.incidents:
        out.append("<ul class='note'>" + "".join(f"<li>{_E(i)}</li>" for i in s.incidents) + "</ul>")
    out.append("<h2>Where calls went</h2>")
    deployments = [d for d in MODELS if any(d in p for p in s.placement.values())]
    deployments += sorted({d for p in s.placement.values() for d in p} - set(deployments))
    out.append(
        _stacked(
            [(task, [(d, float(p.get(d, 0))) for d in deployments]) for task, p in s.placement.items()],
            deployments,
            "Calls per task by deployment",
            colors,
        )
    )
    out.append("<h2>Why</h2>")
    out.append(
        _table(
            ["task", "data", "answered by", "calls", "why"],
            [[r["task"], r["data"], r["deployment"], f"{r['calls']:,}", r["why"]] for r in s.routing],
            numbers=(3,),
        )
    )
    g = s.gate
    ok = g["sent_to_cn"] == 0
    out.append("<h2>The hard gate: personal data never to CN</h2>")
    out.append(
        f"<p><b>{g['pii_calls']:,}</b> calls carried personal data; Residency removed DeepSeek from "
        f"{g['removed_by_residency']:,} of their decisions. Sent to CN: <b>{g['sent_to_cn']}</b> "
        f"({'OK' if ok else 'VIOLATION'}), checked in the request log: DeepSeek received "
        f"{g['requests_to_cn']:,} requests, none with a customer record. The PII calls cost "
        f"{_E(_usd(g['pii_cost']))}; on DeepSeek, {_E(_usd(g['pii_cost_on_deepseek']))}.</p>"
    )
    pii = list(g["requests_with_pii"].items())
    out.append(
        _stacked(
            [(label, [(label, float(n))]) for label, n in pii],
            [label for label, _ in pii],
            "Requests carrying personal data, by provider",
            colors,
            legend=False,
        )
    )
    f = s.faults
    out.append("<h2>Faults survived</h2>")
    out.append(
        _table(
            ["fault", "provider", "requests", "then"],
            [[k["kind"], k["provider"], f"{k['requests']:,}", k["then"]] for k in f["by_kind"]],
            numbers=(2,),
        )
    )
    opened = (
        ", ".join(f"{c['deployment']} {c['times']}x ({c['cause']})" for c in f["cooldowns_opened"]) or "none"
    )
    out.append(
        f"<p>{f['retries']:,} retries on the same deployment, {f['fallbacks']:,} calls moved to another "
        f"deployment, {f['calls_past_a_cooling_deployment']:,} calls went past a cooling deployment. "
        f"Cooldowns opened: {_E(opened)}. Calls that failed anyway: <b>{f['failed_calls']}</b>.</p>"
    )
    t = s.truncation
    out.append("<h2>Truncated answers</h2>")
    out.append(
        _table(
            ["verdict", "attempts", "then"],
            [[c["verdict"], f"{c['attempts']:,}", c["then"]] for c in t["cut_attempts"]]
            or [["none", "0", "-"]],
            numbers=(1,),
        )
    )
    final = ", ".join(f"{k} {v:,}" for k, v in t["final_verdicts"].items())
    missed = t["silent_stops_undetected"]
    note = f" {missed} silent stops went undetected (cut at the end of a sentence)." if missed else ""
    out.append(f"<p>Verdicts on the answers the callers got: {_E(final)}.{_E(note)}</p>")
    c = s.cache
    out.append("<h2>Prompt cache</h2>")
    text = f"{c['hit_share']:.1%} of all input tokens were read from a provider's cache"
    if "code_review_cacheable_hit_share" in c:
        text += (
            f"; code reviews ({s.prompt_layout}, the {s.stable_tokens:,}-token guidelines first): "
            f"{c['code_review_cacheable_hit_share']:.1%} of their cacheable tokens hit; caching saved "
            f"{_usd(c.get('saved'))}"
        )
    out.append(f"<p>{_E(text)}.</p>")
    b = s.bill
    out.append("<h2>The bill</h2>")
    ratio = f" ({b['times_cheaper']:.1f}x)" if b["times_cheaper"] else ""
    out.append(
        f"<p>Routed: <b>{_E(_usd(b['actual']))}</b>; everything on {_E(b['most_expensive_model'])}, the most "
        f"expensive of the four: <b>{_E(_usd(b['most_expensive']))}</b>{ratio}. A full month "
        f"({b['full_month_calls']:,} calls): about {_E(_usd(b['full_month_actual']))} routed.</p>"
    )
    if s.whatif:
        out.append(f"<p>What if: {_E(s.whatif)}</p>")
    return "\n".join(out)


def render_page(summary: Summary, month_rows: Sequence[LedgerRow], whatifs: Sequence[Repricing]) -> str:
    """The whole page: the demo's sections, then the ledger report of the month's rows."""
    report = build_report(month_rows, by=("model", "deployment", "task"))
    # One colour per provider and model on the whole page: a deployment is coloured as its model.
    colors = Colors(aliases=MODELS, providers={ONPREM.id: ONPREM.provider})
    for model in MODELS.values():  # shades in the fleet's order, whichever chart asks first
        colors(model)
    page = render_html(
        report,
        breakdown(month_rows, ("day", "model")),
        whatifs,
        title="llmroute demo: a 10-developer team's month",
        colors=colors,
    )
    marker = "<h2>Cost over time by model</h2>"
    extra = (
        _sections(summary, colors)
        + "\n<h1 class='part'>The ledger</h1>\n<p class='note'>The month's ledger rows, as "
        "<code>llmroute report --html</code> shows any ledger: cost by day and model, cache hits, "
        "what the month would have cost on each model, and the breakdowns.</p>\n"
    )
    if marker in page:
        return page.replace(marker, extra + marker, 1)
    return page.replace("</body>", extra + "</body>", 1)
