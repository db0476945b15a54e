"""`Cascade`: try the cheap model first; escalate when a check rejects its answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..policy import Choice, Policy, RouteContext, Target
from ._core import matches

__all__ = ["Cascade", "escalation_rate"]

Check = Callable[[Any], "bool | str | None"]
"""Called with each answer (a `ChatCompletion`): True / None accepts it; False or a string (the
reason) rejects it, and the router asks the next target."""


class Cascade(Policy):
    """Answers from the first target are checked; a rejected one escalates to the next.

    ```python
    def looks_right(completion):
        text = completion.choices[0].message.content or ""
        return True if text.strip().endswith("}") else "not a JSON object"

    router = Router(deployments, policy=Cascade(looks_right, ["deepseek-v3.2", "gpt-5.4"]))
    ```

    - `check(completion)`: a validator, a confidence score threshold, even a judge call of your own.
      It runs on every non-streaming answer the call gets; streams are not checked (their content
      has already reached the caller).
    - `order`: models or deployments from cheapest to strongest; they are tried first, in this order
      (other candidates keep their place after them). Without it the candidates' order is the chain.
    - The ledger shows every rung: a rejected answer is a row with outcome `"rejected"` (billed, but
      no failure of the deployment: it does not cool down). The escalation rate is the share of
      calls with such a row (`escalation_rate(ledger)`). If the last rung is rejected too, its
      answer is returned, flagged by the rejected rows before it.
    """

    def __init__(self, check: Check, order: Sequence[str] = ()) -> None:
        if not callable(check):
            raise TypeError("Cascade needs a check(completion) callable")
        self.check = check
        self.order = tuple(order)

    def rank(self, ctx: RouteContext) -> Iterable[Choice]:
        ranked: list[Target] = []
        for name in self.order:
            ranked.extend(t for t in ctx.candidates if t not in ranked and matches(t, name))
        rest = [t for t in ctx.candidates if t not in ranked]
        rungs = [t.keep(f"cascade rung {i + 1}") for i, t in enumerate(ranked)]
        return rungs + [t.keep("after the cascade's rungs") for t in rest]

    def accept(self, completion: Any) -> str | None:
        """None if `completion` passes the check, else the reason it was rejected."""
        verdict = self.check(completion)
        if verdict is True or verdict is None:
            return None
        return verdict if isinstance(verdict, str) and verdict else "rejected by the cascade's check"


def escalation_rate(rows: Iterable[Any]) -> float:
    """The share of calls in `rows` (ledger rows) in which a cascade rejected an answer."""
    calls: set[str] = set()
    escalated: set[str] = set()
    for row in rows:
        calls.add(row.call_id)
        if row.outcome == "rejected":
            escalated.add(row.call_id)
    return len(escalated) / len(calls) if calls else 0.0
