"""Stalls: when a call against a misbehaving server ends, the router against the raw SDK.

Against the raw asyncio server of the tests (`tests/_badserver.py`, a real socket): headers then
nothing (`stall`), one content chunk then only SSE keep-alive comments every 0.2 s (`ping`), the body
trickled at one byte a second (`trickle`). For each case, streaming and not, OpenAI and Anthropic
wire formats, the router (one attempt, `timeout=--timeout`) and the raw SDK (`openai`, or `anthropic`
for the Anthropic format; same `timeout`, no retries) make the same call at the same time, each in its
own thread. Prints when each ended and how, and the router's end time over its timeout. A raw call
still running after `--horizon` seconds is reported as such and abandoned (the server is closed).
`--async` runs the async clients instead. About a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
from tenacity import stop_after_attempt

import llmroute

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import _badserver  # the tests' server: see sys.path above
from _badserver import BadServer

KEY_OPENAI = "sk-bench-0000000000000000"
KEY_ANTHROPIC = "sk-ant-bench-0000000000000000"
USER = [{"role": "user", "content": "Say something."}]
CASES = [
    (mode, stream, wire)
    for wire in ("openai", "anthropic")
    for mode, stream in (
        ("stall", False),
        ("stall", True),
        ("ping", True),
        ("trickle", False),
        ("trickle", True),
    )
]


def _router(server: BadServer, mode: str, wire: str, asynchronous: bool) -> Any:
    if wire == "anthropic":
        deployment = llmroute.Deployment(
            "bad", model="claude-sonnet-4.6", base_url=server.base_url(mode, True), api_key=KEY_ANTHROPIC
        )
    else:
        deployment = llmroute.Deployment(
            "bad", model="gpt-5.4", base_url=server.base_url(mode), api_key=KEY_OPENAI
        )
    kind = llmroute.AsyncRouter if asynchronous else llmroute.Router
    return kind([deployment], retry=llmroute.RetryPolicy(stop=stop_after_attempt(1)))


def _raw(server: BadServer, mode: str, wire: str, timeout: float, asynchronous: bool) -> tuple[Any, Any]:
    """The raw SDK client and the `create` to call with `_args`."""
    if wire == "anthropic":
        kind: Any = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
        client = kind(
            base_url=server.base_url(mode, True), api_key=KEY_ANTHROPIC, timeout=timeout, max_retries=0
        )
        return client, client.messages.create
    kind = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    client = kind(base_url=server.base_url(mode), api_key=KEY_OPENAI, timeout=timeout, max_retries=0)
    return client, client.chat.completions.create


def _args(wire: str, stream: bool) -> dict[str, Any]:
    if wire == "anthropic":
        return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": USER, "stream": stream}
    return {"model": "gpt-5.4", "messages": USER, "stream": stream}


def _sync_case(
    server: BadServer, mode: str, stream: bool, wire: str, timeout: float, horizon: float
) -> list[str]:
    ends: dict[str, tuple[float, str]] = {}
    started = time.monotonic()

    def run(name: str, call: Any) -> None:
        try:
            reply = call()
            if stream:
                for _ in reply:
                    pass
            outcome = "ok"
        except Exception as e:  # the outcome is what is reported
            outcome = type(e).__name__
        ends[name] = (time.monotonic() - started, outcome)

    router = _router(server, mode, wire, asynchronous=False)
    client, create = _raw(server, mode, wire, timeout, asynchronous=False)
    calls = {
        "router": lambda: router.chat.completions.create(
            model="bad", messages=USER, stream=stream, timeout=timeout
        ),
        "raw SDK": lambda: create(**_args(wire, stream)),
    }
    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, started + horizon - time.monotonic()))
    row = _row(ends, timeout, horizon)
    router.close()
    client.close()
    return row


async def _async_case(
    server: BadServer, mode: str, stream: bool, wire: str, timeout: float, horizon: float
) -> list[str]:
    ends: dict[str, tuple[float, str]] = {}
    started = time.monotonic()
    router = _router(server, mode, wire, asynchronous=True)
    client, create = _raw(server, mode, wire, timeout, asynchronous=True)

    async def run(name: str, call: Any) -> None:
        try:
            reply = await call()
            if stream:
                async for _ in reply:
                    pass
            outcome = "ok"
        except Exception as e:  # the outcome is what is reported
            outcome = type(e).__name__
        ends[name] = (time.monotonic() - started, outcome)

    tasks = [
        asyncio.create_task(
            run(
                "router",
                lambda: router.chat.completions.create(
                    model="bad", messages=USER, stream=stream, timeout=timeout
                ),
            )
        ),
        asyncio.create_task(run("raw SDK", lambda: create(**_args(wire, stream)))),
    ]
    await asyncio.wait(tasks, timeout=horizon)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    row = _row(ends, timeout, horizon)
    await router.close()
    await client.close()
    return row


def _row(ends: dict[str, tuple[float, str]], timeout: float, horizon: float) -> list[str]:
    cells = []
    for name in ("router", "raw SDK"):
        if name in ends:
            seconds, outcome = ends[name]
            cells.append(f"{seconds:6.2f} s {outcome}")
        else:
            cells.append(f"still waiting at {horizon:g} s")
    router_end = ends.get("router", (float("inf"), ""))[0]
    cells.append(f"{router_end / timeout:.2f}x")
    return cells


async def _warm(asynchronous: bool) -> None:
    """First use imports the SDKs' lazy modules and loads tokenizers (seconds on a loaded machine):
    paid once, before the table, for both wires and both clients."""
    with BadServer() as server:
        server.answers["warm-openai"] = _badserver._OPENAI_ANSWER
        server.answers["warm-anthropic"] = _badserver._ANTHROPIC_ANSWER
        for wire in ("openai", "anthropic"):
            mode = f"answer-warm-{wire}"
            router = _router(server, mode, wire, asynchronous)
            client, create = _raw(server, mode, wire, 5.0, asynchronous)
            if asynchronous:
                await router.chat.completions.create(model="bad", messages=USER)
                await create(**_args(wire, False))
                await router.close()
                await client.close()
            else:
                router.chat.completions.create(model="bad", messages=USER)
                create(**_args(wire, False))
                router.close()
                client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timeout", type=float, default=2.5, help="the calls' timeout (above 1 s: the trickle)"
    )
    parser.add_argument("--horizon", type=float, default=15.0, help="how long a raw call is waited for")
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="the async clients")
    args = parser.parse_args()
    kind = "async" if args.asynchronous else "sync"
    print(f"{kind} clients, timeout={args.timeout:g} s, one attempt each; pid {os.getpid()}")
    header = f"{'wire':<10} {'case':<16} {'router ended':<32} {'raw SDK ended':<32} {'router/timeout':>14}"
    print(header)
    print("-" * len(header))
    asyncio.run(_warm(args.asynchronous))
    for mode, stream, wire in CASES:
        with BadServer() as server:
            if args.asynchronous:
                cells = asyncio.run(_async_case(server, mode, stream, wire, args.timeout, args.horizon))
            else:
                cells = _sync_case(server, mode, stream, wire, args.timeout, args.horizon)
        case = f"{mode}{' stream' if stream else ''}"
        print(f"{wire:<10} {case:<16} {cells[0]:<32} {cells[1]:<32} {cells[2]:>14}")


if __name__ == "__main__":
    main()
