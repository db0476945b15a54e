"""Running the workload: one call per job, in the month's order, with a progress bar."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..errors import LLMRouteError
from ..money.ledger import LedgerRow
from ..policy import Decision
from ..router import Router
from .workload import MONTH_START, Job, month_label

__all__ = ["Outcome", "Progress", "run_jobs"]


@dataclass(slots=True)
class Outcome:
    """What happened to one job: where it was answered, the decision, every attempt."""

    job: Job
    deployment: str | None = None
    decision: Decision | None = None
    verdict: str = "-"
    verdict_reasons: tuple[str, ...] = ()
    rows: list[LedgerRow] = field(default_factory=list)
    """Every attempt's ledger row, in order."""
    error: str | None = None
    wall: float = 0.0
    """When the call started (`time.time()`)."""

    def month_rows(self) -> list[LedgerRow]:
        """The rows restamped at the job's moment in the simulated month (plus however long into the
        call each attempt came), for reports by day."""
        base = MONTH_START.timestamp() + self.job.at
        return [dataclasses.replace(r, timestamp=base + max(0.0, r.timestamp - self.wall)) for r in self.rows]


class Progress:
    """A progress bar on stderr: `rich` when it is installed and stderr is a terminal, else a plain
    counter on a terminal, else nothing (output captured or piped)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        tty = enabled and sys.stderr.isatty()
        self._rich: Any = None
        self._task: Any = None
        self._plain = False
        if tty and not os.environ.get("LLMROUTE_PLAIN") and importlib.util.find_spec("rich") is not None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
            )
        else:
            self._plain = tty

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
            self._task = self._rich.add_task("calls", total=self.total)
        return self

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self._rich is not None:
            self._rich.update(self._task, advance=1, description=f"calls  {note}")
        elif self._plain and (self.done % 10 == 0 or self.done == self.total):
            print(f"\r  calls {self.done:,}/{self.total:,}  {note}   ", end="", file=sys.stderr, flush=True)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self._plain:
            print(file=sys.stderr)


def run_jobs(
    router: Router,
    jobs: Sequence[Job],
    *,
    before: Callable[[Job], None] | None = None,
    progress: bool = True,
) -> tuple[list[Outcome], float]:
    """Send every job through `router` (model `"auto"`: the policy chooses). Returns the outcomes
    and the wall time. `before(job)` runs before each call (the incidents switch phases there)."""
    current: list[LedgerRow] = []
    router.ledger.subscribe(current.append)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    try:
        with Progress(len(jobs), progress) as bar:
            for job in jobs:
                if before is not None:
                    before(job)
                current.clear()
                outcome = Outcome(job, wall=time.time())
                try:
                    reply = router.chat.completions.create(model="auto", route=job.route, **job.kwargs)
                except LLMRouteError as e:
                    outcome.error = f"{type(e).__name__}: {e}"
                else:
                    route = reply.route
                    outcome.deployment = route.deployment
                    outcome.decision = route.decision
                    if route.verdict is not None:
                        outcome.verdict = route.verdict.kind
                        outcome.verdict_reasons = route.verdict.reasons
                outcome.rows = list(current)
                outcomes.append(outcome)
                bar.advance(month_label(job.at)[:10])
    finally:
        router.ledger.unsubscribe(current.append)
    return outcomes, time.perf_counter() - started
