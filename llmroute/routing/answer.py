"""One non-streaming attempt at one target, including what its truncation settings ask for.

`answer_flow` is a generator with no I/O, like the engine: it yields the request to send, receives
the adapter's `Completed` (or the `ProviderError`), judges the answer (`llmroute.truncation.detect`)
and applies the router's `TruncationPolicy`:

- `return`: hand the answer back, flagged (`route.verdict`, `route.truncated`);
- `raise`: raise `TruncatedResponse` carrying the answer;
- `fallback`: try the next target; if none is left, the flagged answer is returned;
- `retry_larger`: ask the same target again with twice the output limit (up to the model's maximum);
- `continue`: ask the same target to continue where it stopped and join the parts (text answers).

Every request sent is its own ledger row. The sync and async routers drive the flow in a few lines.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ..errors import AnswerRejected, ProviderError, Retryability, TruncatedResponse
from ..providers.base import request_for
from ..usage import Usage
from .engine import Attempt

if TYPE_CHECKING:
    from ..money.ledger import LedgerRow
    from ..policy import Decision
    from ..providers.base import Completed
    from ..request import ChatRequest
    from ..truncation import Verdict
    from .core import RouterCore
    from .engine import Call

__all__ = ["MAX_EXTRA_REQUESTS", "answer_flow"]

MAX_EXTRA_REQUESTS = 2
"""At most this many extra requests (larger retries or continuations) per attempt."""

CONTINUE_PROMPT = "Continue exactly where your previous answer stopped. Do not repeat anything."


def _judge_completed(request: ChatRequest, done: Completed) -> Verdict:
    from ..truncation import judge  # its patterns compile on first use, not at `import llmroute`

    choice = done.completion.choices[0] if done.completion.choices else None
    message = choice.message if choice is not None else None
    return judge(
        request,
        message.content if message is not None else None,
        done.finish_reason,
        choice.finish_reason if choice is not None else None,
        tool_calls=bool(message is not None and message.tool_calls),
        refusal=message.refusal if message is not None else None,
        output_tokens=done.usage.output_tokens,
    )


def _estimated_usage(request: ChatRequest, call: Call, done: Completed) -> Usage:
    """Count the tokens ourselves, flagged `estimated`, when a provider reports no usage."""
    from .. import tokens
    from ..money.estimate import estimate_prompt_tokens

    prompt, _ = estimate_prompt_tokens(request, call.target)
    message = done.completion.choices[0].message if done.completion.choices else None
    # the SDK does not validate answers: count what is text, and tool calls that are objects
    content = getattr(message, "content", None)
    text = content if isinstance(content, str) else ""
    listed = getattr(message, "tool_calls", None)
    calls = "".join(
        json.dumps(c.model_dump(mode="json", warnings=False), default=str)
        for c in (listed if isinstance(listed, list) else [])
        if isinstance(c, BaseModel)
    )
    output = tokens.count_text(text + calls, call.target.api_name, encoding=call.target.model.tokenizer)
    return Usage(prompt, output, estimated=True, raw=done.usage.raw)  # impossible numbers stay on record


def _stalled_usage(request: ChatRequest, call: Call, error: ProviderError) -> Usage:
    """An answer that stalled after its headers was being generated: its prompt was processed and
    may be billed, so the row counts it (estimated). Other failures bill nothing."""
    if error.type != "stalled":  # llmroute.providers._watchdog.STALLED
        return Usage()
    from ..money.estimate import estimate_prompt_tokens

    prompt, _ = estimate_prompt_tokens(request, call.target)
    return Usage(prompt, 0, estimated=True)


def _rejection(core: RouterCore, done: Completed) -> str | None:
    for acceptor in core.acceptors:
        reason: str | None = acceptor.accept(done.completion)
        if reason:
            return reason
    return None


def _with_limit(request: ChatRequest, limit: int) -> ChatRequest:
    body = {k: v for k, v in request.body.items() if k not in ("max_tokens", "max_completion_tokens")}
    body["max_completion_tokens"] = limit
    return dataclasses.replace(request, body=body)


def _larger(request: ChatRequest, call: Call, done: Completed) -> ChatRequest | None:
    current = request.max_output_tokens or done.usage.output_tokens
    ceiling = call.target.model.max_output
    bigger = current * 2 if ceiling is None else min(current * 2, ceiling)
    return _with_limit(request, bigger) if bigger > current else None


def _continuation(original: ChatRequest, text: str) -> ChatRequest:
    messages = [
        *original.messages,
        {"role": "assistant", "content": text},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]
    return dataclasses.replace(original, messages=messages)


def _joined(parts: list[Completed], last: Completed) -> Completed:
    """The last answer with the text of every part before it in front, and their usage added."""
    text = "".join(p.completion.choices[0].message.content or "" for p in parts)
    message = last.completion.choices[0].message
    choice = last.completion.choices[0].model_copy(
        update={"message": message.model_copy(update={"content": text + (message.content or "")})}
    )
    usage = last.usage
    api_usage = last.completion.usage
    for part in parts:
        usage = usage + part.usage
        if api_usage is not None and part.completion.usage is not None:
            api_usage = api_usage.model_copy(
                update={
                    "prompt_tokens": api_usage.prompt_tokens + part.completion.usage.prompt_tokens,
                    "completion_tokens": api_usage.completion_tokens
                    + part.completion.usage.completion_tokens,
                    "total_tokens": api_usage.total_tokens + part.completion.usage.total_tokens,
                }
            )
    completion = last.completion.model_copy(update={"choices": [choice], "usage": api_usage})
    return dataclasses.replace(last, completion=completion, usage=usage)


def answer_flow(
    core: RouterCore,
    call_id: str,
    call: Call,
    request: ChatRequest,
    decision: Decision,
    rows: list[LedgerRow],
) -> Generator[ChatRequest, Completed | ProviderError, Attempt[Completed]]:
    """The attempt's state machine: yields requests to send, returns the engine's `Attempt`."""
    policy = core.truncation
    current = request
    parts: list[Completed] = []
    extra = 0
    while True:
        started = time.perf_counter()
        outcome = yield current
        if isinstance(outcome, ProviderError):
            rows.append(
                core.row(
                    call_id,
                    call,
                    current,
                    usage=_stalled_usage(current, call, outcome),
                    outcome="error",
                    started=started,
                    error=outcome,
                    decision=decision,
                )
            )
            return Attempt(error=outcome)
        done = outcome
        if not done.usage.total_tokens:
            done.usage = _estimated_usage(current, call, done)  # the provider sent none (or garbage)
        verdict = _judge_completed(current, done)
        rejection = _rejection(core, done)
        rows.append(
            core.answered(call_id, call, current, started, done, verdict, decision, rejection is not None)
        )
        if rejection is not None:
            done.verdict = verdict
            rejected_error = AnswerRejected(
                f"the cascade rejected the answer: {rejection}",
                request=request_for(call.target, done.http_response),
                provider=call.target.provider.name,
                deployment=call.target.deployment.name,
                model=call.target.model.id,
                retryable=Retryability.NEXT_TARGET,
                request_id=done.request_id,
            )
            rejected_error.completion = done.completion
            return Attempt(result=done, error=rejected_error)  # escalate; the last rung's answer if none left
        action = policy.action(verdict)
        if action == "retry_larger" and verdict.kind == "length" and extra < MAX_EXTRA_REQUESTS:
            bigger = _larger(current, call, done)
            if bigger is not None:
                extra += 1
                current = bigger
                continue
        if (
            action == "continue"
            and verdict.truncated
            and extra < MAX_EXTRA_REQUESTS
            and not done.completion.choices[0].message.tool_calls
        ):
            parts.append(done)
            extra += 1
            text = "".join(p.completion.choices[0].message.content or "" for p in parts)
            current = _continuation(request, text)
            continue
        if parts:
            done = _joined(parts, done)
            verdict = _judge_completed(request, done)
        done.verdict = verdict
        if not verdict.truncated or action in ("return", "retry_larger", "continue"):
            return Attempt(result=done)
        error = TruncatedResponse.of(done, verdict, call.target)
        if action == "raise":
            error.retryable = Retryability.FATAL
            return Attempt(error=error)
        return Attempt(result=done, error=error)  # fallback: the next target, or this answer
