"""`llmroute emulator` (also `python -m llmroute.testing`): the provider emulator on a local port, in the
foreground until Ctrl-C.

```
llmroute emulator [--port 8765] [--host 127.0.0.1] [--seed 0] [--fault KIND ... --fault-rate 0.1]
```

It prints the base URLs to point the SDKs (or any OpenAI-compatible tool) at, as `export` lines for a
shell; any API key is accepted. Ctrl-C (or SIGTERM) closes every connection and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from ._faults import Fault

__all__ = ["FAULTS", "add_options", "main", "run"]

FAULTS: dict[str, Callable[[], Fault]] = {
    "rate_limit": lambda: Fault.rate_limit(retry_after=1.0),
    "quota": Fault.quota,
    "server_error": Fault.server_error,
    "overloaded": Fault.overloaded,
    "timeout": lambda: Fault.timeout(delay=30.0),
    "connection_reset": Fault.connection_reset,
    "stream_cut": Fault.stream_cut,
    "content_filter": Fault.content_filter,
    "silent_stop": Fault.silent_stop,
}
"""`--fault` names -> the fault injected (see `llmroute.testing.Fault`)."""

PROVIDERS = (
    ("OPENAI_BASE_URL", "openai"),
    ("ANTHROPIC_BASE_URL", "anthropic"),
    ("DEEPSEEK_BASE_URL", "deepseek"),
    ("VLLM_BASE_URL", "vllm"),
    ("OLLAMA_BASE_URL", "ollama"),
)
"""Environment variable -> the emulated provider it points at (the SDKs and `Router.from_env` read
the first three)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0: any)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the answers and the faults (default 0)")
    parser.add_argument(
        "--fault",
        action="append",
        choices=sorted(FAULTS),
        metavar="KIND",
        help=f"inject this fault at random (repeatable): {', '.join(sorted(FAULTS))}",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=None,
        metavar="R",
        help="share of requests that get one of the --fault kinds (default 0.1 with --fault)",
    )
    parser.add_argument("--provider", help="inject faults only on this provider (e.g. openai)")


def run(args: argparse.Namespace, out: Callable[[str], None] | None = None) -> int:
    """Serve until interrupted; returns the exit code (0 on Ctrl-C / SIGTERM, 2 on a bad option,
    1 when the port cannot be bound)."""
    from ._core import Emulator

    say = out or (lambda text: print(text, flush=True))
    rate = args.fault_rate if args.fault_rate is not None else (0.1 if args.fault else 0.0)
    if not 0.0 <= rate <= 1.0:
        print("llmroute emulator: --fault-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if rate and not args.fault:
        print("llmroute emulator: --fault-rate needs at least one --fault KIND", file=sys.stderr)
        return 2
    emu = Emulator(seed=args.seed)
    if args.fault and rate:
        emu.fault_rate(rate, [FAULTS[name]() for name in args.fault], provider=args.provider)
    server = emu.serve(args.host, args.port)
    try:
        server.start()
    except OSError as e:
        where = f"{args.host}:{args.port}"
        print(f"llmroute emulator: cannot listen on {where}: {e.strerror or e}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGINT and SIGTERM both only set `stop` (no KeyboardInterrupt landing mid-shutdown), and are
    # unblocked: a mask blocking them is inherited across exec from whatever started this process.
    previous = {}
    if _main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, on_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, previous)
    try:
        say(f"llmroute emulator listening on {server.url} (seed {args.seed}); Ctrl-C to stop.")
        if args.fault and rate:
            where = f" on {args.provider}" if args.provider else ""
            say(f"faults: {rate:.0%} of requests{where} get one of {', '.join(args.fault)}")
        say("Point the SDKs at it (any API key works):")
        for variable, provider in PROVIDERS:
            say(f"export {variable}={server.base_url(provider)}")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
    say(f"llmroute emulator: stopped after {len(emu.requests)} requests.")
    return 0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmroute.testing",
        description="Serve llmroute's provider emulator on a local port until Ctrl-C and print the "
        "base URLs to set as OPENAI_BASE_URL, ANTHROPIC_BASE_URL and DEEPSEEK_BASE_URL.",
    )
    add_options(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    return run(args)
