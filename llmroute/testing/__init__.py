"""A fake LLM provider for tests, demos and benchmarks: ``llmroute.testing``.

The :class:`Emulator` speaks the real wire formats of OpenAI and the OpenAI-compatible providers
(DeepSeek, vLLM, Ollama, llama.cpp), so the real ``openai`` SDK runs end to end against it, either
in-process (no socket) or over a real local HTTP server::

    import openai
    from llmroute.testing import Emulator, Fault

    emu = Emulator(seed=0)
    client = openai.OpenAI(api_key="sk-test", base_url=emu.base_url("openai"),
                           http_client=emu.http_client(), max_retries=0)
    emu.inject(Fault.rate_limit(retry_after=2.0), provider="openai")
    ...
    with emu.serve() as server:                       # http://127.0.0.1:PORT/deepseek/v1
        client = openai.OpenAI(api_key="x", base_url=server.base_url("deepseek"), max_retries=0)

What it does (details in each class's docstring):

- Answers: deterministic English-like text from (seed, model, prompt); ``[[emulator:tokens=N]]``
  in a message forces N output tokens; tool calls when ``tool_choice`` forces one or the last user
  message mentions "weather"; JSON for ``response_format``; or whatever :meth:`Emulator.set_reply`
  returns. ``max_completion_tokens``/``max_tokens`` cut at exactly that many tokens
  (``finish_reason="length"``; hidden reasoning counts against the limit), ``stop`` cuts before the
  stop string.
- Usage in each dialect's fields; token counts equal :mod:`llmroute.tokens`' counts under the same
  encoder, so estimates and the bill agree.
- Prefix caching by each provider's rule (see ``_cache``), reasoning tokens (hidden for OpenAI
  o-series/gpt-5, visible for DeepSeek reasoner/pro and Ollama think/r1/qwq models).
- Faults (:class:`Fault`): scripted with :meth:`Emulator.inject`, random with
  :meth:`Emulator.fault_rate`.
- A :class:`Bill` of what the providers would charge, and a :class:`RequestRecord` per request.
"""

from ._core import Emulator
from ._engine import Outcome
from ._faults import Fault, FaultKind
from ._server import EmulatorServer
from ._transport import EmulatorTransport
from ._types import Bill, BillLine, ModelConfig, Reply, ReplyContext, RequestRecord

__all__ = [
    "Bill",
    "BillLine",
    "Emulator",
    "EmulatorServer",
    "EmulatorTransport",
    "Fault",
    "FaultKind",
    "ModelConfig",
    "Outcome",
    "Reply",
    "ReplyContext",
    "RequestRecord",
]
