"""The :class:`Emulator`: state (bill, request log, caches, faults, settings) and request handling."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Literal

from llmroute.tokens import Encoder, encoder_for, prompt_segments

from . import _generate as gen
from ._anthropic import AnthropicWire
from ._cache import BlockCache, BreakpointCache, PrefixCache, SlotCache
from ._chat import ChatWire
from ._engine import (
    SDK_ADDS_V1,
    ApiError,
    CacheRule,
    HeaderWire,
    Job,
    Outcome,
    Result,
    Wire,
    default_reply,
    generate,
)
from ._faults import Fault, FaultSchedule
from ._types import ZERO, Bill, BillLine, ModelConfig, ReplyContext, ReplyFn, RequestRecord

if TYPE_CHECKING:
    import httpx2

    from ._server import EmulatorServer
    from ._transport import EmulatorTransport

__all__ = ["Emulator"]

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_NO_CONFIG = ModelConfig()
_REQUEST_ID_HEADER = {"anthropic": "request-id"}
"""provider -> the header carrying the request id (default ``x-request-id``)."""


def _presented_key(provider: str, headers: Mapping[str, str]) -> str | None:
    """The API key a request carries: Anthropic's ``x-api-key`` (which wins, as at the real API),
    else an ``Authorization: Bearer`` key (what ``openai`` and ``anthropic`` 2.x SDKs send)."""
    if provider == "anthropic" and "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization")
    return auth[7:] if auth is not None and auth.startswith("Bearer ") else None


class Emulator:
    """A fake LLM provider that speaks the real wire formats, in-process or on a local socket.

    Paths are ``/{provider}/v1/chat/completions`` (``/v1`` optional) for the providers ``openai``,
    ``deepseek``, ``vllm``, ``ollama`` and ``llamacpp``, and ``/anthropic/v1/messages`` (Anthropic's
    Messages API, see ``_anthropic``); each answers in its own dialect (usage fields, reasoning
    fields, cache rules, error shapes). Everything is deterministic given ``seed``: the same request
    gets the same answer.

    Token counts agree with :mod:`llmroute.tokens`: ``prompt_tokens`` equals
    ``count_messages(messages, model, tools=tools).tokens`` and the output tokens equal
    ``count_text`` of the exact texts returned (plus hidden reasoning tokens), under the same
    encoder (``encoding`` forces one, e.g. ``"approx"``).

    Args:
        seed: seeds answers, ids and nothing else random.
        simulate_latency: make the in-process transport sleep like the socket server does.
        vllm_prompt_details: vLLM reports ``prompt_tokens_details.cached_tokens`` (as when started
            with ``--enable-prompt-tokens-details``); otherwise it reports (and bills) none.
        encoding: tokenizer for every model (default: by model family, see ``encoder_for``).
        clock: monotonic clock for cache TTLs and request times (tests may pass a fake one).
        max_requests: keep only the latest N request records (``None``: all).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        simulate_latency: bool = False,
        vllm_prompt_details: bool = False,
        encoding: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_requests: int | None = None,
    ) -> None:
        self.seed = seed
        self.simulate_latency = simulate_latency
        self.encoding = encoding
        self.api_keys: dict[str, str] = {}
        """provider -> the one API key it accepts; other keys get a 401 (unset: any key). Keys come as
        ``Authorization: Bearer``; Anthropic's ``x-api-key`` also counts (and wins)."""
        self.models: dict[str, Collection[str]] = {}
        """provider -> the model names it serves; others get a 404 ``model_not_found`` (unset: any)."""
        self.bill = Bill()
        self._clock = clock
        self._records: deque[RequestRecord] = deque(maxlen=max_requests)
        self._faults = FaultSchedule()
        self._reply: ReplyFn | None = None
        self._latency: dict[tuple[str, str | None], tuple[float, float]] = {}
        self._limits: dict[tuple[str, str | None], int] = {}
        self._windows: dict[tuple[str, str | None], deque[float]] = {}
        self._configs: dict[tuple[str, str | None], ModelConfig] = {}
        self._caches: dict[tuple[str, str], PrefixCache] = {}
        self._ids = random.Random(seed)
        self._lock = threading.RLock()
        chat = ChatWire(vllm_prompt_details=vllm_prompt_details)
        self._wires: dict[str, Wire] = dict.fromkeys(
            ("openai", "deepseek", "vllm", "ollama", "llamacpp"), chat
        )
        self._wires["anthropic"] = AnthropicWire()
        self._transport: EmulatorTransport | None = None

    # ------------------------------------------------------------------ clients

    def base_url(self, provider: str) -> str:
        """Base URL for the in-process transport, e.g. ``http://emulator.invalid/openai/v1``, and
        ``http://emulator.invalid/anthropic`` for Anthropic (its SDK appends ``/v1/messages``)."""
        if provider in SDK_ADDS_V1:
            return f"http://emulator.invalid/{provider}"
        return f"http://emulator.invalid/{provider}/v1"

    @property
    def transport(self) -> EmulatorTransport:
        """An in-process transport, both ``httpx2.BaseTransport`` and ``AsyncBaseTransport``."""
        if self._transport is None:
            from ._transport import EmulatorTransport

            self._transport = EmulatorTransport(self)
        return self._transport

    def http_client(self, **kwargs: Any) -> httpx2.Client:
        """An ``httpx2.Client`` on the in-process transport (pass it as ``http_client=``)."""
        import httpx2

        return httpx2.Client(transport=self.transport, **kwargs)

    def async_http_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        """An ``httpx2.AsyncClient`` on the in-process transport."""
        import httpx2

        return httpx2.AsyncClient(transport=self.transport, **kwargs)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        """A real HTTP/1.1 server for this emulator; use as ``with emu.serve() as server:``."""
        from ._server import EmulatorServer

        return EmulatorServer(self, host, port)

    # ------------------------------------------------------------------ behaviour

    def inject(
        self,
        fault: Fault,
        provider: str | None = None,
        model: str | None = None,
        times: int = 1,
        stream: bool | None = None,
    ) -> None:
        """The next ``times`` requests matching provider/model/stream (``None``: any) get ``fault``.

        Scripted faults take precedence over :meth:`fault_rate` and run in the order injected.
        """
        self._faults.inject(fault, provider, model, times, stream)

    def fault_rate(
        self,
        rate: float,
        faults: list[Fault] | tuple[Fault, ...],
        provider: str | None = None,
        model: str | None = None,
        stream: bool | None = None,
        seed: int | None = None,
    ) -> None:
        """A random share ``rate`` of matching requests get one of ``faults`` (seeded: reproducible)."""
        self._faults.add_rate(rate, faults, provider, model, stream, self.seed if seed is None else seed)

    def clear_faults(self) -> None:
        """Remove all scripted and random faults."""
        self._faults.clear()

    def set_reply(self, fn: ReplyFn | None) -> None:
        """Decide answers: ``fn(ctx) -> Reply | None`` (``None``: the default generator)."""
        self._reply = fn

    def set_latency(
        self, provider: str, model: str | None = None, ttft: float = 0.0, per_token: float = 0.0
    ) -> None:
        """Seconds before the first token and per output token. The socket server sleeps them
        (without blocking other connections); the in-process transport only with
        ``simulate_latency=True``."""
        self._latency[(provider, model)] = (ttft, per_token)

    def set_rate_limit(self, provider: str, rpm: int | None, key: str | None = None) -> None:
        """Enforce `rpm` requests per minute (a sliding 60-second window) for `provider`, per API
        key when `key` is given (an account), else for every key together. Answers then carry the
        OpenAI-style `x-ratelimit-limit-requests` / `-remaining-requests` / `-reset-requests`
        headers, and a request over the limit gets a 429 with `retry-after`. `None` removes it."""
        with self._lock:
            if rpm is None:
                self._limits.pop((provider, key), None)
            else:
                if rpm < 1:
                    raise ValueError("rpm must be >= 1")
                self._limits[(provider, key)] = rpm
            self._windows.pop((provider, key), None)

    def _rate_limit(self, provider: str, headers: Mapping[str, str]) -> tuple[bool, list[tuple[str, str]]]:
        """Count one request against its limit: (over the limit?, rate-limit headers)."""
        key = _presented_key(provider, headers)
        scope = (provider, key) if (provider, key) in self._limits else (provider, None)
        limit = self._limits.get(scope)
        if limit is None:
            return False, []
        now = self._clock()
        window = self._windows.setdefault(scope, deque())
        while window and window[0] <= now - 60.0:
            window.popleft()
        over = len(window) >= limit
        if not over:
            window.append(now)
        reset = max(0.0, window[0] + 60.0 - now) if window else 0.0
        return over, [
            ("x-ratelimit-limit-requests", str(limit)),
            ("x-ratelimit-remaining-requests", str(max(0, limit - len(window)))),
            ("x-ratelimit-reset-requests", f"{reset:.3f}s"),
        ]

    def configure(
        self,
        provider: str,
        model: str | None = None,
        *,
        reasoning: Literal["hidden", "visible", False] | None = None,
        cache_min_tokens: int | None = None,
        cache_ttl: float | None = None,
        served_model: str | None = None,
    ) -> None:
        """Per-model (or, with ``model=None``, per-provider) settings; see :class:`ModelConfig`.

        Model settings override provider settings field by field. Clears that provider's caches.
        """
        self._configs[(provider, model)] = ModelConfig(reasoning, cache_min_tokens, cache_ttl, served_model)
        with self._lock:
            for key in [k for k in self._caches if k[0] == provider]:
                del self._caches[key]

    def model_config(self, provider: str, model: str) -> ModelConfig:
        """The effective settings of ``model`` at ``provider`` (unset fields are ``None``)."""
        base = self._configs.get((provider, None))
        own = self._configs.get((provider, model))
        if base is None or own is None:
            return own or base or _NO_CONFIG
        changes = {f.name: getattr(own, f.name) for f in fields(own) if getattr(own, f.name) is not None}
        return replace(base, **changes)

    # ------------------------------------------------------------------ observation

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Forget the bill, the request log, all prefix caches and all faults (settings stay)."""
        with self._lock:
            self.bill.reset()
            self._records.clear()
            self._caches.clear()
            self._faults.clear()

    # ------------------------------------------------------------------ handling

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Answer one HTTP request (``headers`` with lower-case names). Used by both transports."""
        with self._lock:
            request_id = f"req_{self._ids.getrandbits(128):032x}"
            outcome = self._handle(method, path, headers, body, request_id)
        provider = path.split("?", 1)[0].strip("/").split("/", 1)[0]
        outcome.headers.append((_REQUEST_ID_HEADER.get(provider, "x-request-id"), request_id))
        return outcome

    def _resource(
        self,
        wire: ChatWire,
        provider: str,
        method: str,
        endpoint: str,
        headers: Mapping[str, str],
        raw: bytes,
    ) -> Outcome:
        """``GET /v1/models`` and ``POST /v1/embeddings`` (see ``_resources``), under the same key check."""
        from . import _resources

        wanted = "GET" if endpoint == "models" else "POST"
        if method != wanted:
            return wire.render_error(provider, ApiError(405, f"Method {method} not allowed."))
        key = self.api_keys.get(provider)
        if key is not None and _presented_key(provider, headers) != key:
            return wire.render_error(provider, wire.fault_error(provider, Fault.auth(), ""))
        if endpoint == "models":
            return _resources.models(self.models.get(provider))
        out = _resources.embeddings(raw)
        return wire.render_error(provider, out) if isinstance(out, ApiError) else out

    def _handle(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes, request_id: str
    ) -> Outcome:
        parts = path.split("?", 1)[0].strip("/").split("/")
        provider, rest = parts[0], parts[1:]
        if rest and rest[0] == "v1":
            rest = rest[1:]
        endpoint = "/".join(rest)
        wire = self._wires.get(provider)
        authorized = "authorization" in headers or (provider == "anthropic" and "x-api-key" in headers)
        record = _Recorder(self, provider, path, request_id, authorized, raw)
        if isinstance(wire, ChatWire) and endpoint in ("models", "embeddings"):
            return record.done(self._resource(wire, provider, method, endpoint, headers, raw), None)
        if wire is None or endpoint not in wire.endpoints:
            err = ApiError(404, f"Invalid URL ({method} {path})")
            return record.done(self._wires["openai"].render_error("openai", err), None)
        if method != "POST":
            return record.done(
                wire.render_error(provider, ApiError(405, f"Method {method} not allowed.")), None
            )
        key = self.api_keys.get(provider)
        if key is not None and _presented_key(provider, headers) != key:
            return record.done(
                wire.render_error(provider, wire.fault_error(provider, Fault.auth(), "")), None
            )
        if isinstance(wire, HeaderWire):
            job = wire.parse_request(provider, headers, raw)
        else:
            job = wire.parse(provider, raw)
        if isinstance(job, ApiError):
            return record.done(wire.render_error(provider, job), None)
        record.job = job
        served = self.models.get(provider)
        if served is not None and job.model not in served:
            message = f"The model `{job.model}` does not exist or you do not have access to it."
            err = ApiError(404, message, code="model_not_found")
            return record.done(wire.render_error(provider, err), None)
        over, limit_headers = self._rate_limit(provider, headers)
        if over:
            reset = float(limit_headers[2][1].rstrip("s"))
            limited = Fault.rate_limit(retry_after=reset)  # its headers say: 0 remaining, reset
            return record.done(
                wire.render_error(provider, wire.fault_error(provider, limited, job.model)), None
            )
        fault = self._faults.pick(provider, job.model, job.stream)
        if fault is not None and fault.is_error:
            return record.done(
                wire.render_error(provider, wire.fault_error(provider, fault, job.model)), fault
            )
        if fault is not None and fault.kind == "timeout":
            err = ApiError(504, "Gateway timeout.", "server_error")
            out = wire.render_error(provider, err)
            out.action, out.wait = "timeout", fault.delay
            return record.done(out, fault, status=None)
        if fault is not None and fault.kind == "connection_reset":
            return record.done(Outcome(0, [], action="reset"), fault, status=None)
        result = self._run(wire, job, fault)
        line = BillLine(
            requests=1,
            input_tokens=result.prompt_tokens,
            cached_tokens=result.cached_tokens,
            cache_write_tokens=result.cache_write_tokens,
            output_tokens=result.completion_tokens,
            reasoning_tokens=result.reasoning_tokens,
        )
        self.bill.add(provider, job.model, line)
        latency = (
            self._latency.get((provider, job.model)) or self._latency.get((provider, None)) or (0.0, 0.0)
        )
        out = wire.render(provider, job, result, latency)
        out.headers.extend(limit_headers)
        return record.done(out, fault, billed=line, finish=result.finish_reason)

    def _run(self, wire: Wire, job: Job, fault: Fault | None) -> Result:
        provider, model = job.provider, job.model
        cfg = self.model_config(provider, model)
        enc = encoder_for(model, self.encoding, warn=False)
        written = written_1h = 0
        if job.prompt is not None:
            prompt_tokens, cached, written, written_1h = self._explicit(job, cfg, enc)
            prompt_text = job.prompt.text
        else:
            segments = prompt_segments(job.messages, job.tools)
            count = enc.count
            prompt_tokens = 0
            for seg in segments:
                prompt_tokens += seg if isinstance(seg, int) else count(seg)
            cached = self._cached(wire, job, cfg, enc, segments, prompt_tokens)
            prompt_text = "\x1e".join(s for s in segments if isinstance(s, str))
        rng = gen.rng_for(self.seed, model, prompt_text)
        reply = None
        if self._reply is not None:
            ctx = ReplyContext(provider, model, job.messages, job.body, job.stream)
            reply = self._reply(ctx)
        if reply is None:
            reply = default_reply(job, enc, rng, prompt_text)
        mode = job.reasoning
        if mode is None:
            mode = cfg.reasoning if cfg.reasoning is not None else wire.default_reasoning(provider, model)
        result = generate(job, reply, enc=enc, rng=rng, reasoning=mode, fault=fault)
        result.prompt_tokens = prompt_tokens
        result.cached_tokens = wire.reported_cached(provider, cached)
        result.cache_write_tokens = written
        result.cache_write_1h_tokens = written_1h
        result.response_id = "chatcmpl-" + "".join(self._ids.choices(_ALNUM, k=29))
        result.created = int(time.time())
        result.model = cfg.served_model or model
        result.usage_on_cut = fault is not None and fault.kind == "stream_cut" and fault.final_chunk
        return result

    def _cached(
        self, wire: Wire, job: Job, cfg: ModelConfig, enc: Encoder, segments: list[str | int], n: int
    ) -> int:
        rule = wire.cache_rule(job.provider)
        if rule.kind in ("none", "breakpoint"):  # breakpoint caches come with Job.prompt: see _explicit
            return 0
        if rule.kind == "block" and cfg.cache_min_tokens is not None:
            rule = CacheRule("block", rule.block, cfg.cache_min_tokens)
        if rule.kind == "block" and n < max(rule.min_tokens, 1):
            return 0  # too short to ever be cached: skip rendering
        key = (job.provider, job.model)
        cache = self._caches.get(key)
        if cache is None:
            cache = (
                BlockCache(rule.block, rule.min_tokens, self._clock)
                if rule.kind == "block"
                else SlotCache(self._clock)
            )
            self._caches[key] = cache
        seq: list[int] = []
        tokens = enc.tokens
        for seg in segments:
            if isinstance(seg, int):
                seq.extend(range(-1, -seg - 1, -1))
            else:
                seq.extend(tokens(seg))
        return cache.lookup_store((job.model, *job.cache_extra), seq, cfg.cache_ttl)

    def _explicit(self, job: Job, cfg: ModelConfig, enc: Encoder) -> tuple[int, int, int, int]:
        """``(prompt, read, written, written_1h)`` tokens of a prompt cached at explicit breakpoints."""
        prompt = job.prompt
        assert prompt is not None
        count = enc.count
        total = 0
        ends: list[int] = []
        prefixes: list[int] = []
        h = hash((job.model, *job.cache_extra))
        for key, segments in prompt.blocks:
            for seg in segments:
                total += seg if isinstance(seg, int) else count(seg)
            h = hash((h, key))
            ends.append(total)
            prefixes.append(h)
        if not prompt.breakpoints:
            return total + prompt.tail, 0, 0, 0
        cache_key = (job.provider, job.model)
        cache = self._caches.get(cache_key)
        if not isinstance(cache, BreakpointCache):
            minimum = cfg.cache_min_tokens if cfg.cache_min_tokens is not None else prompt.min_tokens
            cache = self._caches[cache_key] = BreakpointCache(minimum, self._clock)
        read, written, written_1h = cache.lookup_write(prefixes, ends, prompt.breakpoints)
        return total + prompt.tail, read, written, written_1h


class _Recorder:
    """Builds the :class:`RequestRecord` of one request."""

    __slots__ = ("authorized", "emu", "job", "path", "provider", "raw", "request_id")

    def __init__(
        self, emu: Emulator, provider: str, path: str, request_id: str, authorized: bool, raw: bytes
    ) -> None:
        self.emu = emu
        self.raw = raw
        self.provider = provider
        self.path = path
        self.request_id = request_id
        self.authorized = authorized
        self.job: Job | None = None

    def done(
        self,
        out: Outcome,
        fault: Fault | None,
        *,
        status: int | Literal["auto"] | None = "auto",
        billed: BillLine = ZERO,
        finish: str | None = None,
    ) -> Outcome:
        job = self.job
        body = job.body if job else _loose_json(self.raw)
        record = RequestRecord(
            time=self.emu._clock(),
            provider=self.provider,
            model=job.model if job else str(body.get("model") or ""),
            stream=job.stream if job else False,
            status=out.status if status == "auto" else status,
            fault=fault.kind if fault else None,
            body=body,
            billed=billed,
            request_id=self.request_id,
            path=self.path,
            authorized=self.authorized,
            finish_reason=finish,
        )
        self.emu._records.append(record)
        return out


def _loose_json(raw: bytes) -> dict[str, Any]:
    """The body as a dict when it is a JSON object, else ``{}`` (for records of bad requests)."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
