"""Render `llmroute demo --html` and `llmroute report --html` (on the demo's month) and screenshot both
with Debian's headless chromium, to look at them as a browser shows them.

Usage: ``python scripts/report_screenshot.py [OUT_DIR]`` (default ``.cache/report``); needs
``chromium`` on the PATH (``apt-get install -y chromium``). Writes ``demo.html``, ``demo.png``,
``report.html``, ``report.png``; exit code 1 when chromium is missing or fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / ".cache" / "report"
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 1
    from llmroute.cli import main as llmroute

    ledger = out / "month.db"
    ledger.unlink(missing_ok=True)
    demo = ["demo", "--calls", "400", "--html", str(out / "demo.html"), "--ledger", str(ledger), "--json"]
    if llmroute([*demo, "--no-progress"]) not in (0, 1):
        return 1
    if llmroute(
        ["report", "--db", str(ledger), "--whatif", "deepseek-v3.2", "--html", str(out / "report.html")]
    ):
        return 1
    for name in ("demo", "report"):
        with tempfile.TemporaryDirectory(prefix="llmroute-chromium-") as profile:
            shot = out / f"{name}.png"
            flags = [*FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,5200"]
            subprocess.run(
                [chromium, *flags, (out / f"{name}.html").as_uri()], capture_output=True, check=True
            )
        print(f"{shot} ({shot.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
