"""Framework integration tests: each module skips when its framework is not installed (the main
`tests` session); `nox -s integrations` installs them from PyPI and runs these."""

from __future__ import annotations

import os
import runpy
import tempfile
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "integrations"

# llama-index-core 0.10 downloads NLTK's stopwords and punkt tables when imported (they serve its
# keyword extraction, not the LLM). Tests may not reach the network: point NLTK_DATA at a folder
# where those tables are found (empty), so importing it stays offline.
if "NLTK_DATA" not in os.environ:
    _nltk = Path(tempfile.mkdtemp(prefix="llmroute-nltk-"))
    (_nltk / "corpora" / "stopwords").mkdir(parents=True)
    (_nltk / "tokenizers" / "punkt").mkdir(parents=True)
    os.environ["NLTK_DATA"] = str(_nltk)


def run_example(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run examples/integrations/<name>.py as a script; return what it printed."""
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"
    return out
