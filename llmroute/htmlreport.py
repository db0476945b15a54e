"""`llmroute report --html FILE`: one self-contained HTML file with inline SVG charts.

No JavaScript, no fonts or styles from the network: the file opens anywhere, offline, and prints.
Charts: cost over time by model (stacked bars per day), cache hit share by model, and the what-if
comparison (recorded cost against each alternative). Hovering a bar shows its figure (SVG `<title>`).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from decimal import Decimal

from .pricing import money
from .reports import Report, Stats
from .whatif import Repricing

__all__ = ["render_html"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
_E = html.escape


def _fmt_share(value: float) -> str:
    return f"{value:.1%}"


def _stacked_cost_chart(by_day_model: Sequence[Stats], width: int = 760, height: int = 260) -> str:
    days = sorted({s.key[0] for s in by_day_model})
    models = sorted({str(s.key[1]) for s in by_day_model})
    if not days:
        return "<p>No priced rows.</p>"
    cost = {(s.key[0], str(s.key[1])): s.cost for s in by_day_model}
    totals = {d: sum((cost.get((d, m), Decimal(0)) for m in models), Decimal(0)) for d in days}
    top = max(totals.values()) or Decimal(1)
    left, bottom, plot_h = 70, 40, height - 60
    plot_w = width - left - 20
    step = plot_w / len(days)
    bar = min(48.0, max(2.0, step * 0.7))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 20 * len(models)}" '
        f'width="{width}" role="img" aria-label="Cost over time by model">'
    ]
    for i in range(5):  # grid and axis labels
        y = 10 + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_E(money(top * i / 4))}</text>"
        )
    for n, day in enumerate(days):
        x = left + n * step + (step - bar) / 2
        y = 10 + plot_h
        for m, model in enumerate(models):
            value = cost.get((day, model), Decimal(0))
            if not value:
                continue
            h = float(value / top) * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[m % len(PALETTE)]}"><title>{_E(str(day))} {_E(str(model))}: '
                f"{_E(money(value))}</title></rect>"
            )
        if len(days) <= 16 or n % max(1, len(days) // 12) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 34}" text-anchor="middle" '
                f'font-size="10">{_E(str(day)[5:])}</text>'
            )
    unpriced = {m for m in models if not any(s.priced for s in by_day_model if str(s.key[1]) == m)}
    for m, model in enumerate(models):
        y = height + 20 * m
        parts.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{PALETTE[m % len(PALETTE)]}"/>')
        name = model + (" (unpriced)" if model in unpriced else "")
        parts.append(f'<text x="{left + 18}" y="{y + 10}" font-size="12">{_E(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bars(
    items: Sequence[tuple[str, float, str]],
    width: int = 760,
    label: str = "",
    colors: Sequence[str] | None = None,
) -> str:
    """Horizontal bars: (name, value 0..max, text shown)."""
    if not items:
        return "<p>Nothing to show.</p>"
    top = max(v for _, v, _ in items) or 1.0
    row_h, left = 26, 200
    plot_w = width - left - 150
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {row_h * len(items) + 10}" '
        f'width="{width}" role="img" aria-label="{_E(label)}">'
    ]
    for n, (name, value, text) in enumerate(items):
        y = 5 + n * row_h
        w = max(1.0, plot_w * value / top) if value else 0.0
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_E(name)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="16" '
            f'fill="{colors[n] if colors else PALETTE[n % len(PALETTE)]}">'
            f"<title>{_E(name)}: {_E(text)}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="12">{_E(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_E(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_E(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _stats_rows(stats: Sequence[Stats]) -> list[list[str]]:
    return [
        [
            str(s.key),
            f"{s.calls:,}",
            f"{s.attempts:,}",
            f"{s.usage.input_tokens:,}",
            f"{s.usage.cache_read_tokens:,}",
            f"{s.usage.output_tokens:,}",
            _fmt_share(s.cache_hit_share),
            money(s.cost_or_none, s.unpriced if s.priced else 0),
            money(s.cost_per_call) if s.cost_per_call is not None else "-",
            f"{s.latency_p95:.3f}s" if s.latency_p95 is not None else "-",
            _fmt_share(s.failure_rate),
            f"{s.truncated:,}",
        ]
        for s in stats
    ]


_HEADER = (
    "",
    "calls",
    "attempts",
    "input",
    "cached",
    "output",
    "cache hit",
    "cost",
    "per call",
    "p95",
    "failed attempts",
    "truncated",
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;
  max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #999}
tbody tr:nth-child(odd){background:#f6f6f6}.kpi{display:inline-block;margin:0 28px 8px 0}
.kpi b{display:block;font-size:20px}.note{color:#666;font-size:12px}
"""


def render_html(
    report: Report,
    by_day_model: Sequence[Stats],
    whatifs: Sequence[Repricing] = (),
    *,
    title: str = "llmroute cost report",
    narrative: str = "",
) -> str:
    """The report as one HTML document. `by_day_model`: `breakdown(rows, ("day", "model"))`."""
    total = report.total
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    span = ""
    if total.first is not None and total.last is not None:
        first = dt.datetime.fromtimestamp(total.first, dt.UTC).strftime("%Y-%m-%d")
        last = dt.datetime.fromtimestamp(total.last, dt.UTC).strftime("%Y-%m-%d")
        span = f"{first} to {last}"
    kpis = [
        ("cost", money(total.cost_or_none, total.unpriced if total.priced else 0)),
        ("calls", f"{total.calls:,}"),
        ("attempts", f"{total.attempts:,}"),
        ("cache hit share", _fmt_share(total.cache_hit_share)),
        ("p95 latency", f"{total.latency_p95:.3f}s" if total.latency_p95 is not None else "-"),
        ("failed calls", _fmt_share(total.call_failure_rate)),
        ("fallbacks", _fmt_share(total.fallback_rate)),
        ("truncated", f"{total.truncated:,}"),
    ]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_E(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_E(title)}</h1><p class='note'>{_E(span)} &middot; generated {generated}</p>",
        "<div>" + "".join(f"<div class='kpi'>{_E(k)}<b>{_E(v)}</b></div>" for k, v in kpis) + "</div>",
    ]
    if narrative:
        out.append(f"<p>{_E(narrative)}</p>")
    out.append("<h2>Cost over time by model</h2>")
    out.append(_stacked_cost_chart(by_day_model))
    models = report.groups.get("model", [])
    out.append("<h2>Cache hit share by model</h2>")
    order = sorted({str(s.key[1]) for s in by_day_model})  # the cost chart's colours, model by model
    colors = [
        PALETTE[order.index(str(s.key)) % len(PALETTE)] if str(s.key) in order else "#999" for s in models
    ]
    out.append(
        _bars(
            [(str(s.key), s.cache_hit_share, _fmt_share(s.cache_hit_share)) for s in models],
            label="Cache hit share by model",
            colors=colors,
        )
    )
    if whatifs:
        out.append("<h2>What if</h2>")
        base = whatifs[0]
        items = [("recorded", float(base.actual), money(base.actual, base.actual_unpriced))]
        for w in whatifs:
            shown = money(w.hypothetical, w.hypothetical_unpriced) + (" (estimate)" if w.estimate else "")
            items.append((w.label, float(w.hypothetical), shown))
        out.append(_bars(items, label="What-if comparison"))
        notes = sorted({n for w in whatifs for n in w.notes})
        if notes:
            out.append("<ul class='note'>" + "".join(f"<li>{_E(n)}</li>" for n in notes) + "</ul>")
    for name, stats in report.groups.items():
        out.append(f"<h2>By {_E(name)}</h2>")
        out.append(_table(_HEADER, _stats_rows(stats)))
    drifted = [d for d in report.drift if d.drifted]
    out.append("<h2>Served-model drift</h2>")
    if drifted:
        out.append(
            _table(
                ("deployment", "model", "served versions", "changes"),
                [
                    [
                        d.deployment,
                        d.model,
                        ", ".join(f"{v.served_model} ({v.attempts})" for v in d.versions),
                        str(len(d.changes)),
                    ]
                    for d in drifted
                ],
            )
        )
    else:
        out.append("<p>Every deployment answered with one model version.</p>")
    out.append(
        "<p class='note'>Unpriced rows are shown as unpriced, never as $0. "
        "Costs are computed from the catalog's prices at the time of each attempt.</p>"
    )
    out.append("</body></html>")
    return "\n".join(out)
