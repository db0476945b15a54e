"""`llmroute report --html FILE`: one self-contained HTML file with inline SVG charts.

No JavaScript, no fonts or styles from the network: the file opens anywhere, offline, and prints.
Charts: cost over time by model (stacked bars per day, the y axis at round amounts), cache hit
share by model, and the what-if comparison (recorded cost against each alternative). Hovering a bar
shows its figure (SVG `<title>`). Every chart of a page colours a provider and each of its models the
same way (`Colors`): a provider has a hue, its models shades of it, and a deployment, or a label like
"openai (US)", takes the colour of the model or provider it names.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from .pricing import money
from .reports import Report, Stats
from .whatif import Repricing

__all__ = ["Colors", "nice_ticks", "render_html"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
PROVIDER_COLORS = {
    "openai": "#4e79a7",
    "deepseek": "#59a14f",
    "anthropic": "#e15759",
    "vllm": "#f28e2b",
    "ollama": "#b07aa1",
    "llamacpp": "#9c755f",
}
"""A hue per provider; a provider's models are shades of it (`Colors`)."""
_OTHER = ("#76b7b2", "#edc948", "#ff9da7", "#bab0ac", "#8cd17d", "#d4a6c8")
_E = html.escape


class Colors:
    """One colour per provider and per model, for every chart of a page.

    `Colors(aliases={"onprem": "qwen3-coder-32b"}, providers={"qwen3-coder-32b": "vllm"})`:
    `aliases` maps other names (deployments) to a model or provider; `providers` maps models the
    catalog does not know to their provider. A model takes its provider's hue, lightened for the
    second, third... model of that provider in the order they are first asked for; a name that is
    neither gets a colour of its own. `"openai (US)"` is read as `"openai"`.
    """

    def __init__(
        self, aliases: Mapping[str, str] | None = None, providers: Mapping[str, str] | None = None
    ) -> None:
        self.aliases = dict(aliases or {})
        self.providers = dict(providers or {})
        self._given: dict[str, str] = {}
        self._shades: dict[str, int] = {}
        self._others = 0

    def _provider(self, model: str) -> str | None:
        if model in PROVIDER_COLORS:
            return model
        if model in self.providers:
            return self.providers[model]
        from ..catalog import default_catalog

        spec = default_catalog().model(model)
        return spec.provider if spec is not None else None

    def __call__(self, name: str) -> str:
        key = name.split(" (", maxsplit=1)[0].strip()
        key = self.aliases.get(key, key)
        found = self._given.get(key)
        if found is not None:
            return found
        provider = self._provider(key)
        if provider is not None and provider in PROVIDER_COLORS:
            if key == provider:  # the provider itself: its first model's colour
                model = next((m for m in self._given if self._provider(m) == provider), None)
                color = self._given[model] if model is not None else PROVIDER_COLORS[provider]
            else:
                n = self._shades.get(provider, 0)
                self._shades[provider] = n + 1
                color = _lighten(PROVIDER_COLORS[provider], min(0.6, 0.3 * n))
        else:
            color = _OTHER[self._others % len(_OTHER)]
            self._others += 1
        self._given[key] = color
        return color


def _lighten(color: str, share: float) -> str:
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * share):02x}" for c in rgb)


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Axis ticks from 0 at a round step (1, 2, 2.5 or 5 times a power of ten) reaching `top`."""
    if not top > 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(n + 1)]


def _fmt_share(value: float) -> str:
    return f"{value:.1%}"


def _stacked_cost_chart(
    by_day_model: Sequence[Stats], colors: Colors, width: int = 760, height: int = 260
) -> str:
    days = sorted({s.key[0] for s in by_day_model})
    models = sorted({str(s.key[1]) for s in by_day_model})
    if not days:
        return "<p>No priced rows.</p>"
    cost = {(s.key[0], str(s.key[1])): s.cost for s in by_day_model}
    totals = {d: sum((cost.get((d, m), Decimal(0)) for m in models), Decimal(0)) for d in days}
    ticks = nice_ticks(float(max(totals.values())))
    top = Decimal(str(ticks[-1]))
    left, bottom, plot_h = 70, 40, height - 60
    plot_w = width - left - 20
    step = plot_w / len(days)
    bar = min(48.0, max(2.0, step * 0.7))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 20 * len(models)}" '
        f'width="{width}" role="img" aria-label="Cost over time by model">'
    ]
    for tick in ticks:  # grid and axis labels, at round amounts
        y = 10 + plot_h - plot_h * float(Decimal(str(tick)) / top)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_E(_axis_money(tick))}</text>"
        )
    for n, day in enumerate(days):
        x = left + n * step + (step - bar) / 2
        y = 10 + plot_h
        for model in models:
            value = cost.get((day, model), Decimal(0))
            if not value:
                continue
            h = float(value / top) * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colors(model)}"><title>{_E(str(day))} {_E(str(model))}: '
                f"{_E(money(value))}</title></rect>"
            )
        if len(days) <= 16 or n % max(1, len(days) // 12) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 34}" text-anchor="middle" '
                f'font-size="10">{_E(str(day)[5:])}</text>'
            )
    unpriced = {m for m in models if not any(s.priced for s in by_day_model if str(s.key[1]) == m)}
    for m, model in enumerate(models):  # the legend
        y = height + 20 * m
        parts.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{colors(model)}"/>')
        name = model + (" (unpriced)" if model in unpriced else "")
        parts.append(f'<text x="{left + 18}" y="{y + 10}" font-size="12">{_E(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _axis_money(value: float) -> str:
    """`$0`, `$0.05`, `$0.025`, `$2.50`, `$1,000`: a round axis amount, as short as it is exact."""
    if value == 0:
        return "$0"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"${value:,.{max(decimals, 2) if decimals else 0}f}"


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
h1{font-size:22px}h1.part{font-size:20px;margin-top:40px;padding-top:12px;border-top:3px solid #999}
h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
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
    colors: Colors | None = None,
) -> str:
    """The report as one HTML document. `by_day_model`: `breakdown(rows, ("day", "model"))`;
    `colors`: the page's colours (pass the one the page's other charts use)."""
    colors = colors if colors is not None else Colors()
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
    out.append(_stacked_cost_chart(by_day_model, colors))
    models = report.groups.get("model", [])
    out.append("<h2>Cache hit share by model</h2>")
    out.append(
        _bars(
            [(str(s.key), s.cache_hit_share, _fmt_share(s.cache_hit_share)) for s in models],
            label="Cache hit share by model",
            colors=[colors(str(s.key)) for s in models],
        )
    )
    if whatifs:
        out.append("<h2>What if</h2>")
        base = whatifs[0]
        items = [("recorded", float(base.actual), money(base.actual, base.actual_unpriced))]
        for w in whatifs:
            shown = money(w.hypothetical, w.hypothetical_unpriced) + (" (estimate)" if w.estimate else "")
            items.append((w.label, float(w.hypothetical), shown))
        shades = ["#555", *(colors(w.label) for w in whatifs)]  # recorded: dark grey
        out.append(_bars(items, label="What-if comparison", colors=shades))
        notes = sorted({n for w in whatifs for n in w.notes})
        if notes:  # folded: the same few caveats, repeated per model, would bury the chart
            estimates = sum(1 for w in whatifs if w.estimate)
            out.append(
                f"<details class='note'><summary>{estimates} of {len(whatifs)} figures are estimates "
                f"({len(notes)} caveats)</summary><ul>"
                + "".join(f"<li>{_E(n)}</li>" for n in notes)
                + "</ul></details>"
            )
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
