"""Import time of `from llmroute import Router` against `import openai` (DESIGN.md: at most 1.15x).

Fresh interpreters, interleaved (A, B, B, A, ...), timed inside the child (wall time and the child's
CPU time, which a loaded machine disturbs less); median of `--runs`. Then,
from one `python -X importtime` run, the llmroute modules that cost the most (self time, and
cumulative time without what they import from other packages), to see what the first call should be
left to import.

    python benchmarks/import_time.py [--runs 9] [--top 15]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median

TARGET = 1.15
CASES = {
    "import openai": "import openai",
    "from llmroute import Router": "from llmroute import Router",
    "import llmroute": "import llmroute",
}


def importtime(code: str) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) from `python -X importtime -c CODE`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((match.group(4), int(match.group(1)), int(match.group(2))))
    return rows


def timed(cases: dict[str, str], runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """name -> (wall seconds, CPU seconds) of the import, measured inside fresh interpreters."""
    probe = (
        "import time as _t\n_w, _c = _t.perf_counter(), _t.process_time()\n{code}\n"
        "print(_t.perf_counter() - _w, _t.process_time() - _c)"
    )
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for r in range(runs + 1):  # the first round warms the file cache and __pycache__
        names = list(cases) if r % 2 == 0 else list(cases)[::-1]
        for name in names:
            done = subprocess.run(
                [sys.executable, "-c", probe.format(code=cases[name])],
                capture_output=True,
                text=True,
                check=True,
            )
            wall, cpu = map(float, done.stdout.split()[-2:])
            if r:
                out[name][0].append(wall)
                out[name][1].append(cpu)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--top", type=int, default=15)
    options = parser.parse_args()
    times = timed(CASES, options.runs)
    load = os.getloadavg()[0]
    print(f"import time, median of {options.runs} interleaved fresh interpreters (load {load:.1f})")
    ratios = []
    for kind, index in (("wall", 0), ("CPU", 1)):
        base = median(times["import openai"][index])
        for name in CASES:
            value = median(times[name][index])
            print(f"  {kind:<4} {name:<30} {value * 1000:7.1f} ms  {value / base:5.2f}x import openai")
        ratios.append(median(times["from llmroute import Router"][index]) / base)
    for kind, ratio in zip(("wall", "CPU"), ratios, strict=True):
        verdict = "OK" if ratio <= TARGET else "over"
        name = f"from llmroute import Router / import openai ({kind})"
        print(f"{name} = {ratio:.2f}x (target <= {TARGET}x): {verdict}")
    rows = importtime("from llmroute import Router")
    ours = sorted((r for r in rows if r[0].startswith("llmroute")), key=lambda r: -r[1])
    print(f"\nllmroute modules by self time (one -X importtime run; {len(ours)} modules imported):")
    for module, own, total in ours[: options.top]:
        print(f"  {module:<40} self {own / 1000:6.1f} ms  cumulative {total / 1000:6.1f} ms")
    print(f"  total self time of llmroute modules: {sum(r[1] for r in ours) / 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
