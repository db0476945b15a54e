"""Every ```python block in the docs and the README runs, and so does every example script.

Blocks fenced as ```python are executed in order, one namespace per page; ```py blocks are
illustrations (they would need real provider keys) and are not run.
"""

from __future__ import annotations

import os
import re
import runpy
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    warnings.resetwarnings()


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_doc_blocks_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for i, code in enumerate(blocks(page)):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip(), f"{script.name} printed nothing"


def test_the_configuration_reference_parses() -> None:
    """The TOML in docs/configuration.md is a valid config file (keys are checked strictly)."""
    import tomllib

    from llmroute.routing.config import config_from_data

    (block,) = re.findall(
        r"^```toml\n(.*?)^```", (ROOT / "docs" / "configuration.md").read_text(), re.M | re.S
    )
    kwargs = config_from_data(tomllib.loads(block), "docs/configuration.md")
    assert [d.name for d in kwargs["deployments"]] == ["openai", "deepseek", "gpu-box"]


def test_readme_quickstart_is_the_example_and_short() -> None:
    quickstart = blocks(ROOT / "README.md")[0]
    assert len(quickstart.strip().splitlines()) <= 20
    assert quickstart in (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
