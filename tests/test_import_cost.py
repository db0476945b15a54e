"""What `from llmroute import Router` leaves for later: the catalog's TOML parser (its regexes cost
~10 ms at import) is loaded by the first `Router(...)`, which reads the catalog; `anthropic`,
`tiktoken` and the SQLite store are never imported by the import itself.
(Timing: benchmarks/import_time.py.)"""

from __future__ import annotations

import subprocess
import sys

DEFERRED = ("tomllib", "anthropic", "tiktoken", "sqlite3", "llmroute.money.store", "llmroute.money.budget")


def test_router_import_defers_what_construction_and_calls_need() -> None:
    code = (
        "import sys\n"
        "from llmroute import Router, Deployment\n"
        f"early = [m for m in {DEFERRED!r} if m in sys.modules]\n"
        "router = Router([Deployment('gpt', model='gpt-5.4', api_key='sk-x')])\n"
        "print(early, 'tomllib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split("]")[0] == "[" and out.stdout.strip().endswith("True"), out.stdout
