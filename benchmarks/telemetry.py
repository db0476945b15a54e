"""What llmroute's OpenTelemetry hooks cost, against the raw `openai` SDK on the same emulator server.

    python benchmarks/telemetry.py            # about a minute on 2 cores
    python benchmarks/telemetry.py --quick    # smoke run

Each mode runs in a fresh interpreter (whether `opentelemetry` was ever imported is part of the mode),
timing the raw SDK and `llmroute.Router` interleaved in rounds against one emulator server (a child
process on 127.0.0.1):

- `absent`: `opentelemetry` never imported (as without the `otel` extra);
- `no provider`: `opentelemetry.trace` / `.metrics` imported, no provider set (the API's no-op
  proxies: what a library user who has the API installed but configured nothing gets);
- `sdk`: the SDK's TracerProvider (a BatchSpanProcessor to an exporter that drops the spans) and
  MeterProvider (an in-memory reader): every span and metric point is really built.

Printed per mode: median wall time per call of each, the router/raw ratio, and the router's
overhead over `absent` (the ratio divided by `absent`'s ratio, each measured against the raw SDK in
its own process). Then, in one process, the hooks alone (no I/O): what `Telemetry.call` and
`attempt_done` add per call with no provider, in microseconds and as a share of a raw SDK call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import EmulatorProcess, Table, header, machine, run_json

CHILD = r"""
import json, os, statistics, sys, time
sys.path.insert(0, {bench!r})
mode = {mode!r}
if mode != "absent":
    from opentelemetry import metrics, trace
if mode == "sdk":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
import openai
import llmroute
from _common import interleave, median

base = {base!r}
messages = [{{"role": "user", "content": "Say something about routing."}}]
raw = openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)
router = llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4", base_url=base, api_key="sk-bench")])
assert ("opentelemetry" in sys.modules) == (mode != "absent")
results = interleave(
    {{
        "raw": lambda: raw.chat.completions.create(model="gpt-5.4", messages=messages),
        "router": lambda: router.chat.completions.create(model="gpt-5.4", messages=messages),
    }},
    rounds={rounds},
    per_round={per_round},
)
print(json.dumps({{name: median(s.wall) for name, s in results.items()}}))
"""

HOOKS = r"""
import json, sys, timeit
from opentelemetry import metrics, trace
sys.path.insert(0, {bench!r})
import openai
import llmroute
from llmroute.telemetry import TELEMETRY
from _common import interleave, median

base = {base!r}
messages = [{{"role": "user", "content": "Say something about routing."}}]
raw = openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)
router = llmroute.Router([llmroute.Deployment("gpt", model="gpt-5.4", base_url=base, api_key="sk-bench")])
reply = router.chat.completions.create(model="gpt-5.4", messages=messages)
row = reply.route.attempts[0]
target = reply.route.decision.targets[0]
request, _ = router._core.prepare({{"model": "gpt-5.4", "messages": messages}})
ident = lambda kwargs: None
n = 200_000
call = min(timeit.repeat(lambda: TELEMETRY.call(ident, {{}}), number=n, repeat=5)) / n
bare = min(timeit.repeat(lambda: ident({{}}), number=n, repeat=5)) / n
attempt = min(timeit.repeat(lambda: TELEMETRY.attempt_done(row, target, request), number=n, repeat=5)) / n
decided = min(timeit.repeat(lambda: TELEMETRY.decided(request, reply.route.decision), number=n, repeat=5)) / n
sdk = interleave({{"raw": lambda: raw.chat.completions.create(model="gpt-5.4", messages=messages)}},
                 rounds=5, per_round=60)
print(json.dumps({{"hooks": call - bare + attempt + decided, "raw": median(sdk["raw"].wall)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, per_round = (4, 40) if args.quick else (12, 100)
    bench = os.path.dirname(os.path.abspath(__file__))
    print(json.dumps(machine()))
    modes = ("absent", "no provider", "sdk")
    with EmulatorProcess() as server:
        base = server.base_url("openai")
        medians: dict[str, dict[str, float]] = {}
        for repeat in range(2):  # each mode twice, in alternating order: drift shows as disagreement
            for mode in modes if repeat == 0 else reversed(modes):
                code = CHILD.format(bench=bench, mode=mode, base=base, rounds=rounds, per_round=per_round)
                result = run_json(code)
                if mode in medians:
                    medians[mode] = {k: min(v, result[k]) for k, v in medians[mode].items()}
                else:
                    medians[mode] = result
        hooks = run_json(HOOKS.format(bench=bench, base=base))

    header("Sequential non-streaming calls, per mode (each mode's own raw SDK baseline)")
    table = Table("mode", "raw SDK", "Router", "Router / raw", "vs absent")
    absent = medians["absent"]["router"] / medians["absent"]["raw"]
    for mode in modes:
        m = medians[mode]
        r = m["router"] / m["raw"]
        raw_us, router_us = f"{m['raw'] * 1e6:.0f} us", f"{m['router'] * 1e6:.0f} us"
        table.row(mode, raw_us, router_us, f"{r:.3f}x", f"{r / absent:.3f}x")
    table.print()
    header("The hooks alone, no provider set (Telemetry.call + decided + attempt_done per call)")
    share = hooks["hooks"] / hooks["raw"]
    added, call = hooks["hooks"] * 1e6, hooks["raw"] * 1e6
    print(f"  {added:.2f} us per call = {share * 100:.3f}% of a raw SDK call ({call:.0f} us)")
    print("  target: <= 2% with no provider")


if __name__ == "__main__":
    main()
