"""The demo's workload: a 10-developer team's month of LLM calls, from the seed analyses.

Task mix and token sizes per call (the seed's "startup scenario": 500 code reviews, 200 debugging
sessions, 1,000 documentation files and 2,000 chat queries a month), scaled down with the same
proportions. Calls are spread over a simulated month (weekdays busier than weekends, office hours),
and some carry personal data: each such prompt contains a synthetic customer record whose e-mail
address (`...@example.com`) is the marker the hard-gate check looks for in what was sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DAY",
    "FULL_MONTH",
    "MONTH_START",
    "PII_MARKER",
    "TASKS",
    "Job",
    "Task",
    "build_jobs",
    "counts",
    "layout_helper",
    "month_label",
]

MONTH_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
"""The simulated month: November 2026 (30 days, starting on a Sunday)."""
DAYS = 30
DAY = 86_400.0
PII_MARKER = "@example.com"
"""Every synthetic customer record contains an address at this domain, and nothing else does."""


@dataclass(frozen=True, slots=True)
class Task:
    """One kind of call: how many a month, its size, how often it carries personal data."""

    name: str
    monthly: int
    input_tokens: int
    output_tokens: int
    pii_share: float
    max_tokens: int
    """The `max_tokens` the team's code sends (a few documentation files outgrow theirs)."""
    sizes: str
    """Where the sizes come from."""


TASKS: tuple[Task, ...] = (
    Task(
        "code_review", 500, 8_500, 400, 0.10, 1_024, "seed: 2K system + 500 instructions + 6K diff; 400 out"
    ),
    Task("complex_debugging", 200, 3_000, 1_500, 0.30, 4_096, "seed: 3K in, 1,500 out"),
    Task("documentation", 1_000, 2_000, 2_000, 0.0, 4_096, "seed: 2K in, 2K out per file"),
    Task(
        "chat", 2_000, 500, 200, 0.10, 1_024, "not in the seed: 500 in, 200 out (examples/seed_workload.toml)"
    ),
)
FULL_MONTH = sum(t.monthly for t in TASKS)
"""Calls in the full month (3,700)."""


def counts(scale: float) -> dict[str, int]:
    """Calls per task at `scale` (a share of the month), at least one of each."""
    return {t.name: max(1, round(t.monthly * scale)) for t in TASKS}


def month_label(at: float) -> str:
    """A simulated time as `Thu 12 Nov 14:00`."""
    return (MONTH_START + dt.timedelta(seconds=at)).strftime("%a %d %b %H:%M")


@dataclass(frozen=True, slots=True)
class Job:
    """One call of the workload."""

    index: int
    task: str
    at: float
    """Seconds since `MONTH_START` in the simulated month."""
    sensitivity: str | None
    kwargs: dict[str, Any] = field(repr=False)
    """`create()` keyword arguments without `model` and `route`: `messages`, `max_tokens`, ..."""
    output_tokens: int = 0

    @property
    def pii(self) -> bool:
        return self.sensitivity == "pii"

    @property
    def route(self) -> dict[str, Any]:
        return {"task": self.task, "sensitivity": self.sensitivity}


# -- text ------------------------------------------------------------------------------------------

_CODE_TEXT = (
    "def return self if else for in not None True False raise try except with as import from class "
    "async await yield lambda config request response cache retry timeout client session handler "
    "payment invoice refund account ledger amount currency rate total user order queue worker lock "
    "parse validate serialize encode decode connect close open read write flush commit rollback"
)
_PROSE_TEXT = (
    "the function returns a value when the input list is empty and the cache key depends on the user "
    "so each request misses while the retry loop holds a lock during network calls which blocks other "
    "threads we should parse the config before start validate the schema handle the timeout close "
    "file descriptors release pool connections log errors with context and measure latency per "
    "endpoint"
)
_CODE = _CODE_TEXT.split()
_PROSE = _PROSE_TEXT.split()
_NAMES = ("Ana Silva", "Ben Okafor", "Chen Wei", "Dara Novak", "Eli Haddad", "Fatima Khan", "Gus Moreau")


def _raw_words(rng: random.Random, vocab: list[str], words: int) -> str:
    return " ".join(rng.choice(vocab) for _ in range(max(1, words)))


def _raw_code(rng: random.Random, words: int) -> str:
    lines: list[str] = []
    left = words
    while left > 0:
        n = min(left, rng.randint(6, 14))
        lines.append(("+    " if rng.random() < 0.6 else "     ") + _raw_words(rng, _CODE, n))
        left -= n
    return "\n".join(lines)


@functools.cache
def _tokens_per_word(kind: str) -> float:
    """Tokens per generated word under the demo's fixed estimator (the approximate encoder, measured
    once), so the prompts, and every figure of the demo, are the same whether tiktoken's files are
    installed or not."""
    from ..tokens import APPROX, encoder_for

    sample = (
        _raw_code(random.Random(0), 4_000) if kind == "code" else _raw_words(random.Random(0), _PROSE, 4_000)
    )
    return encoder_for("gpt-5.4", APPROX).count(sample) / 4_000


def _words(rng: random.Random, vocab: list[str], tokens: int) -> str:
    """About `tokens` tokens of words from `vocab`."""
    return _raw_words(rng, vocab, round(tokens / _tokens_per_word("prose")))


def _code(rng: random.Random, tokens: int) -> str:
    """About `tokens` tokens of diff-like code lines."""
    return _raw_code(rng, round(tokens / _tokens_per_word("code")))


def _customer(rng: random.Random, index: int) -> str:
    name = rng.choice(_NAMES)
    email = f"{name.split()[0].lower()}.{index:05d}{PII_MARKER}"
    return (
        f"customer: {name} <{email}>, phone +1-555-01{index % 100:02d}, card ending {rng.randint(1000, 9999)}"
    )


def _jitter(rng: random.Random, mean: int, spread: float = 0.25) -> int:
    return max(1, round(mean * rng.uniform(1 - spread, 1 + spread)))


# -- prompts -----------------------------------------------------------------------------------------

Render = Callable[[str, str], dict[str, Any]]
"""(user turn, volatile context) -> `messages` (and whatever else the layout adds)."""


def layout_helper(system: str) -> tuple[Render, str]:
    """The code-review prompt builder: `llmroute.prefix.PromptLayout` when that module is there
    (stable instructions first, canonical, volatile context after everything cacheable), else the
    same order by hand. Returns the builder and its name for the report."""
    try:
        from ..prefix import PromptLayout
    except ImportError:  # the layout helper is optional here: keep the stable system prompt first

        def by_hand(turn: str, context: str) -> dict[str, Any]:
            return {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"{context}\n\n{turn}"},
                ]
            }

        return by_hand, "system prompt first (by hand)"
    layout = PromptLayout(system=system)

    def laid_out(turn: str, context: str) -> dict[str, Any]:
        return layout.render([], turn, context=context)

    return laid_out, "llmroute.prefix.PromptLayout"


def _review_system() -> str:
    rng = random.Random(2026)  # the same guidelines every run: they are the team's
    rules = "\n".join(f"- Rule {n}: {_words(rng, _PROSE, 34)}." for n in range(1, 51))  # ~2,000 tokens
    steps = _words(rng, _PROSE, 470)  # ~500 tokens of instructions
    return (
        "You are the team's senior code reviewer. Review guidelines:\n"
        f"{rules}\n\nInstructions: {steps}.\n"
        "Answer with a one-line summary, then the comments, most severe first."
    )


_SYSTEMS = {
    "complex_debugging": "You are a debugging assistant. Find the root cause, then propose a minimal fix.",
    "documentation": "You write reference documentation for the given source file: overview, API, examples.",
    "chat": "You are the team's coding assistant. Answer briefly and precisely.",
}


@dataclass(slots=True)
class _Builder:
    rng: random.Random
    live: bool
    review: Render
    system_tokens: int

    def directive(self, output: int) -> str:
        # The emulator answers with exactly this many tokens; a real model is asked in words.
        return f"(Answer in about {output * 3 // 4} words.)" if self.live else f"[[emulator:tokens={output}]]"

    def build(self, task: Task, index: int, pii: bool) -> tuple[dict[str, Any], int]:
        rng = self.rng
        if task.name == "documentation":  # about 3% of the files are long: they outgrow max_tokens
            output = (
                _jitter(rng, task.output_tokens, 0.15) if rng.random() > 0.03 else rng.randint(4_300, 5_200)
            )
        else:
            output = _jitter(rng, task.output_tokens)
        head = self.directive(output)
        record = f"\n{_customer(rng, index)}\n" if pii else ""
        if task.name == "code_review":
            diff = _code(rng, _jitter(rng, task.input_tokens - self.system_tokens, 0.2))
            context = f"Repository payments-api, pull request #{1000 + index}, author dev{rng.randint(1, 10)}"
            kwargs = self.review(f"{head} Review this diff:{record}\n{diff}", context)
        else:
            tokens = _jitter(rng, task.input_tokens - 40, 0.2)
            if task.name == "complex_debugging":
                trace = _code(rng, tokens // 2)
                body = f"Traceback and logs:{record}\n{trace}\n{_words(rng, _PROSE, tokens // 2)}"
            elif task.name == "documentation":
                body = f"Document this file:\n{_code(rng, tokens)}"
            else:
                body = f"{_words(rng, _PROSE, tokens)}?{record}"
            kwargs = {
                "messages": [
                    {"role": "system", "content": _SYSTEMS[task.name]},
                    {"role": "user", "content": f"{head} {body}"},
                ]
            }
        kwargs["max_tokens"] = task.max_tokens
        return kwargs, output


def _times(rng: random.Random, n: int) -> list[float]:
    """`n` moments in the month: weekdays five times as busy as weekends, 08:00-19:00 UTC."""
    weights = [0.2 if (MONTH_START + dt.timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(DAYS)]
    days = rng.choices(range(DAYS), weights=weights, k=n)
    return sorted(d * DAY + rng.uniform(8, 19) * 3600 for d in days)


def build_jobs(scale: float, seed: int, *, live: bool = False) -> tuple[list[Job], str, int]:
    """The scaled month's calls in time order, the name of the code-review prompt builder, and the
    tokens of the code reviews' stable part (guidelines and instructions)."""
    rng = random.Random(seed)
    from ..tokens import APPROX, encoder_for

    system = _review_system()
    review, helper = layout_helper(system)
    builder = _Builder(rng, live, review, encoder_for("gpt-5.4", APPROX).count(system))
    plan = [(task, rng.random() < task.pii_share) for task in TASKS for _ in range(counts(scale)[task.name])]
    rng.shuffle(plan)
    jobs = []
    for index, ((task, pii), at) in enumerate(zip(plan, _times(rng, len(plan)), strict=True)):
        kwargs, output = builder.build(task, index, pii)
        jobs.append(Job(index, task.name, at, "pii" if pii else None, kwargs, output))
    return jobs, helper, builder.system_tokens
