"""The HTML reports (`llmroute demo --html`, `llmroute report --html`): one colour per provider and
model on every chart of a page, the what-if caveats folded, the cost axis at round amounts, and,
where Debian's chromium is installed, a real browser renders the page."""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from llmroute.cli import main
from llmroute.demo.fleet import MODELS
from llmroute.money.htmlreport import Colors, nice_ticks


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("html") / "demo.html"
    assert main(["demo", "--calls", "120", "--html", str(path), "--no-progress", "--json"]) in (0, 1)
    return path.read_text("utf-8")


def _fills(page: str) -> dict[str, set[str]]:
    """Series name -> the fills of every bar whose tooltip names it, over all charts."""
    out: dict[str, set[str]] = {}
    for fill, title in re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"><title>([^<]*)</title>', page):
        head = title.split(":")[0]
        name = head.split(" / ")[-1].split(" ")[-1]  # "day model", "task / deployment", "model"
        out.setdefault(name, set()).add(fill)
    return out


def test_one_colour_per_model_and_its_deployment_everywhere(page: str) -> None:
    fills = _fills(page)
    for deployment, model in MODELS.items():
        if model in fills:
            assert len(fills[model]) == 1, (model, fills[model])  # cost, cache, what-if charts agree
            if deployment in fills:
                assert fills[deployment] == fills[model], deployment  # "where calls went" agrees
    used = [next(iter(fills[m])) for m in MODELS.values() if m in fills]
    assert len(used) == len(set(used)) >= 3  # and the models are told apart


def test_what_if_caveats_are_folded(page: str) -> None:
    what_if = page.split("<h2>What if</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<details" in what_if and "<summary>" in what_if
    assert what_if.count("<li>") >= 2 and "<ul class='note'>" not in what_if


def test_cost_axis_ticks_are_round(page: str) -> None:
    chart = page.split("<h2>Cost over time by model</h2>", 1)[1].split("</svg>", 1)[0]
    labels = re.findall(r'text-anchor="end" font-size="11">\$([0-9.,]+)</text>', chart)
    values = [float(v.replace(",", "")) for v in labels]
    assert values[0] == 0 and len(values) >= 3
    step = values[1]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)
    assert all(abs(v - i * step) < 1e-9 for i, v in enumerate(values))


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0.173, [0, 0.05, 0.1, 0.15, 0.2]),
        (7.36, [0, 2, 4, 6, 8]),
        (1.0, [0, 0.25, 0.5, 0.75, 1.0]),
        (2150, [0, 1000, 2000, 3000]),
        (0.0, [0, 1]),
    ],
)
def test_nice_ticks(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == pytest.approx(ticks)


def test_colors_by_provider() -> None:
    colors = Colors(aliases={"onprem": "qwen3-coder-32b"}, providers={"qwen3-coder-32b": "vllm"})
    gpt, mini = colors("gpt-5.4"), colors("gpt-5.4-mini")
    assert gpt != mini and colors("openai") == gpt == colors("openai (US)")  # the provider: its first model
    assert colors("onprem") == colors("qwen3-coder-32b") == colors("vllm (self-hosted)")
    assert len({gpt, colors("deepseek-v3.2"), colors("claude-sonnet-4.6"), colors("onprem")}) == 4
    assert colors("something-else") not in (gpt, mini)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_a_real_browser_renders_the_demo_page(tmp_path: Path, page: str) -> None:
    assert CHROMIUM is not None
    html = tmp_path / "demo.html"
    html.write_text(page, "utf-8")
    shot = screenshot(CHROMIUM, html, tmp_path / "demo.png", tmp_path / "profile", (1100, 2400))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1100, 2400)
    assert len(data) > 50_000  # charts and tables, not a blank page (a white one is ~10 KB)


def screenshot(chromium: str, html: Path, png: Path, profile: Path, size: tuple[int, int]) -> Path:
    """A headless chromium screenshot of `html` (no network, no sync, a throwaway profile)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={size[0]},{size[1]}",
    ]
    subprocess.run([chromium, *flags, html.as_uri()], capture_output=True, timeout=120, check=True)
    return png
