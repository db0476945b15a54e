"""Route hints from a context manager, merged with the route= argument."""

import asyncio

import llmroute
from llmroute.hinting import RouteHints, current_hints


def test_nested_contexts_merge_and_restore() -> None:
    with llmroute.hints(task="code_review", tags=["a"]):
        with llmroute.hints(sensitivity="pii", tags=["b"]):
            inner = current_hints()
            assert (inner.task, inner.sensitivity, inner.tags) == ("code_review", "pii", ("a", "b"))
        assert current_hints().sensitivity is None
    assert current_hints() == RouteHints()


def test_route_argument_wins_over_context() -> None:
    base = RouteHints(task="chat", user="u1")
    merged = base.merged(RouteHints(task="code_review"))
    assert (merged.task, merged.user) == ("code_review", "u1")


async def test_hints_are_task_local() -> None:
    async def worker(task: str) -> str | None:
        with llmroute.hints(task=task):
            await asyncio.sleep(0)
            return current_hints().task

    assert await asyncio.gather(worker("a"), worker("b")) == ["a", "b"]
