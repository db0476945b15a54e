"""What the sync and async routers share: resolving names to targets, deciding, and recording.

Nothing here performs I/O. `RouterCore.prepare` turns `create(**kwargs)` into a validated request
and a ranked decision; `RouterCore.row` turns an attempt's facts into a ledger row and feeds health
and the policy. The routers in `router.py` only drive the engine and call adapters.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _fork
from .._config_checks import IgnoredModelNotes, check_fallbacks
from ..catalog import (
    Catalog,
    Deployment,
    ModelSpec,
    ProviderSpec,
    default_catalog,
    unpriced_model,
)
from ..errors import ConfigurationError, InvalidRequest, ProviderError, Rejection, UnknownModel
from ..hinting import RouteHints, current_hints
from ..money.estimate import DEFAULT_OUTPUT_TOKENS, estimate_prompt_tokens
from ..money.ledger import Ledger, LedgerRow, Outcome
from ..policy import Chain, Decision, Policy, Requested, RouteContext, Step, Target
from ..providers.base import Adapter, Completed
from ..request import ChatRequest
from ..response import RouteInfo, call_cost
from ..telemetry import TELEMETRY
from ..usage import FinishReason, Usage
from .balance import Balancer, LoadStore, LoadTracker, Ticket, WeightedRandom
from .cooldown import Cooldowns
from .engine import Call, Io, RetryPolicy, Sleep, plan
from .health import Health

if TYPE_CHECKING:
    from ..money.budget import Budgets, Reservation
    from ..truncation import TruncationPolicy, Verdict

__all__ = ["RouterCore"]

_NO_USAGE = Usage()


class RouterCore:
    """Configuration and pure logic shared by `Router` and `AsyncRouter`."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        catalog: Catalog | None = None,
        models: Iterable[ModelSpec] = (),
        providers: Iterable[ProviderSpec] = (),
        policy: Policy | None = None,
        fallbacks: Sequence[str] | None = (),
        ledger: Ledger | None = None,
        retry: RetryPolicy | None = None,
        health: Health | None = None,
        cooldowns: Cooldowns | None = None,
        balancer: Balancer | None = None,
        queue_timeout: float = 0.0,
        truncation: TruncationPolicy | None = None,
        budgets: Budgets | None = None,
        cache_hints: bool = True,
        load: LoadStore | None = None,
    ) -> None:
        base = catalog if catalog is not None else default_catalog()
        models, providers = tuple(models), tuple(providers)
        self.catalog = base.with_rows(models, providers) if models or providers else base
        if models or providers:
            self.catalog.check()
        self.deployments: dict[str, Deployment] = {}
        for deployment in deployments:
            if not isinstance(deployment, Deployment):
                raise ConfigurationError(f"expected Deployment objects, got {type(deployment).__name__}")
            if deployment.name in self.deployments:
                raise ConfigurationError(f"two deployments are named {deployment.name!r}")
            self.deployments[deployment.name] = deployment
        if not self.deployments:
            raise ConfigurationError("a router needs at least one deployment")
        self.fallbacks = check_fallbacks(policy, fallbacks)
        self.policy: Policy = policy if policy is not None else Requested(self.fallbacks)
        members = self.policy.policies if isinstance(self.policy, Chain) else (self.policy,)
        self.acceptors: tuple[Any, ...] = tuple(p for p in members if callable(getattr(p, "accept", None)))
        """Policies that judge answers (a `Cascade`): a rejected answer escalates to the next target."""
        self._model_notes = IgnoredModelNotes()
        self.ledger = ledger if ledger is not None else Ledger()
        self.budgets = budgets
        self.cache_hints = cache_hints
        if budgets is not None:
            budgets.watch(self.ledger)  # each attempt's row settles its reservation
        self.retry = retry if retry is not None else RetryPolicy()
        self.health = health if health is not None else Health()
        self.cooldowns = cooldowns if cooldowns is not None else Cooldowns()
        self.default_timeout: float | None = None
        self.balancer = balancer if balancer is not None else WeightedRandom()
        self.load: LoadStore = load if load is not None else LoadTracker()
        if queue_timeout < 0:
            raise ConfigurationError("queue_timeout must be >= 0")
        self.queue_timeout = queue_timeout
        if truncation is None:
            from ..truncation import TruncationPolicy

            truncation = TruncationPolicy()
        self.truncation = truncation
        self._providers = {d.name: self._provider_of(d) for d in self.deployments.values()}
        self._concrete: tuple[Target, ...] = tuple(
            self._target(d, self._spec_of(d)) for d in self.deployments.values() if not d.wildcard
        )
        self._by_name: dict[str, tuple[Target, ...]] = {}
        self._auto_served: tuple[Target, ...] | None = None
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()
        self.telemetry = TELEMETRY  # OpenTelemetry spans and metrics: no-ops without a provider
        for name in self.fallbacks:
            self.resolve(name)  # unknown fallback names fail at construction, not at the first call
        _fork.track(self)

    def _after_fork_in_child(self) -> None:
        _fork.reset_core(self)  # fresh SDK clients, locks and in-flight state in a forked child

    # -- configuration ---------------------------------------------------------------------------

    def _provider_of(self, deployment: Deployment) -> ProviderSpec:
        name = deployment.provider
        if name is None:
            spec = self.catalog.model(deployment.model)
            if spec is not None:
                name = spec.provider
            else:
                family = self.catalog.provider_for(deployment.model.split("|")[0].rstrip("*?"))
                if family is None:
                    raise ConfigurationError(
                        f"deployment {deployment.name!r}: cannot tell which provider serves "
                        f"{deployment.model!r}; set provider= "
                        f"(known: {sorted(p.name for p in self.catalog.providers())})"
                    )
                name = family.name
        provider = self.catalog.provider(name)
        if provider is not None:
            return provider
        if deployment.dialect is None or deployment.base_url is None:
            raise ConfigurationError(
                f"deployment {deployment.name!r}: provider {name!r} is not in the catalog; give dialect= "
                f"and base_url= (known providers: {sorted(p.name for p in self.catalog.providers())})"
            )
        return ProviderSpec(
            name=name,
            dialect=deployment.dialect,
            base_url=deployment.base_url,
            api_key_env=deployment.api_key_env,
            jurisdiction=deployment.jurisdiction or "unknown",
        )

    def _spec_of(self, deployment: Deployment) -> ModelSpec:
        provider = self._providers[deployment.name]
        spec = self.catalog.model(deployment.model)
        return spec if spec is not None else unpriced_model(deployment.model, provider.name)

    def _target(self, deployment: Deployment, spec: ModelSpec, api_name: str | None = None) -> Target:
        provider = self._providers[deployment.name]
        if api_name is None:
            api_name = deployment.model if self.catalog.model(deployment.model) is None else spec.api_name
            if deployment.model in spec.aliases and deployment.model != spec.id:
                api_name = deployment.model  # the user pinned an alias (a dated snapshot): send it as is
        name = deployment.name if not deployment.wildcard else f"{deployment.name}/{api_name}"
        return Target(deployment, spec, provider, api_name, name)

    def resolve(self, name: str) -> tuple[Target, ...]:
        """The targets that serve `name`: a deployment, a catalog model or alias, or a raw API name."""
        cached = self._by_name.get(name)
        if cached is not None:
            return cached
        targets = self._resolve(name)
        if not targets:
            raise UnknownModel(name, self.known_names())
        self._by_name[name] = targets
        return targets

    def _resolve(self, name: str) -> tuple[Target, ...]:
        deployment = self.deployments.get(name)
        if deployment is not None and not deployment.wildcard:
            return tuple(t for t in self._concrete if t.deployment is deployment)
        spec = self.catalog.model(name)
        if spec is not None:
            direct = tuple(t for t in self._concrete if t.model.id == spec.id)
            if direct:
                return direct
            return tuple(
                self._target(d, spec, spec.api_name if name == spec.id else name)
                for d in self._wildcards()
                if self._providers[d.name].name == spec.provider and d.matches(spec.api_name)
            )
        direct = tuple(t for t in self._concrete if t.deployment.model == name)
        if direct:
            return direct
        return tuple(
            self._target(d, unpriced_model(name, self._providers[d.name].name), name)
            for d in self._wildcards()
            if d.matches(name)
        )

    def _wildcards(self) -> list[Deployment]:
        return [d for d in self.deployments.values() if d.wildcard]

    def known_names(self) -> list[str]:
        names = set(self.deployments)
        for target in self._concrete:
            names.update(target.model.names())
        for deployment in self._wildcards():
            names.add(f"{deployment.model} (via {deployment.name})")
        names.add("auto")
        return sorted(names)

    def candidates(self, requested: tuple[Target, ...]) -> tuple[Target, ...]:
        """Every target a policy may choose among for this call."""
        extra = [t for t in requested if t.deployment.wildcard]
        if not requested:  # model="auto": wildcard deployments offer every catalog model they serve
            extra.extend(self._served_by_wildcards())
        for name in self.fallbacks:
            extra.extend(t for t in self.resolve(name) if t.deployment.wildcard)
        if not extra:
            return self._concrete
        seen = {t.name for t in self._concrete}
        merged = list(self._concrete)
        for target in extra:
            if target.name not in seen:
                seen.add(target.name)
                merged.append(target)
        return tuple(merged)

    def _served_by_wildcards(self) -> tuple[Target, ...]:
        served = self._auto_served
        if served is None:
            served = tuple(
                self._target(d, spec, spec.api_name)
                for d in self._wildcards()
                for spec in self.catalog.models()
                if self._providers[d.name].name == spec.provider and d.matches(spec.api_name)
            )
            self._auto_served = served
        return served

    def adapter(self, target: Target) -> Adapter:
        name = target.deployment.name
        adapter = self._adapters.get(name)
        if adapter is None:
            with self._lock:
                adapter = self._adapters.get(name)
                if adapter is None:
                    adapter = _make_adapter(target.deployment, target.provider)
                    self._adapters[name] = adapter
        return adapter

    # -- per call ----------------------------------------------------------------------------------

    def prepare(self, kwargs: dict[str, Any]) -> tuple[ChatRequest, Decision]:
        """Validate the call and rank its targets. Raises before any network call."""
        route = kwargs.pop("route", None)
        hints = current_hints()
        if route is not None:
            hints = hints.merged(RouteHints.coerce(route))
        if self.default_timeout is not None and kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        request = ChatRequest.from_kwargs(kwargs, hints)
        requested = () if request.model == "auto" else self.resolve(request.model)
        candidates, balanced = self._balanced(self.candidates(requested))
        ctx = RouteContext(
            request=request,
            hints=hints,
            candidates=candidates,
            requested=requested,
            health=self.health,
            ledger=self.ledger,
        )
        decision = self.policy.decide(ctx)
        shadow = _shadow(decision, candidates)
        if shadow is not None:
            decision = Decision(decision.targets, decision.steps, shadow)
        if balanced is not None:
            decision = Decision(decision.targets, (balanced, *decision.steps), decision.shadow)
        decision = self._check_adapters(self._skip_cooling(decision), request)
        decision = self._model_notes.check(decision, requested, request.model, self.policy.name)
        for target in decision.targets:
            if request.stream and target.dialect not in _STREAMING_DIALECTS:
                raise InvalidRequest("stream", f"deployment {target.deployment.name!r} cannot stream")
        self.telemetry.decided(request, decision)
        return request, decision

    def _skip_cooling(self, decision: Decision) -> Decision:
        """Move targets that are closed off (breaker open, or paused by a 429) behind the others,
        soonest to reopen first, recording why in the decision trace. Nothing is removed: the engine
        tries them when nothing else is left (see `plan`)."""
        cooldowns = self.cooldowns
        held = {t.name: b for t in decision.targets if (b := cooldowns.blocked(t.name)) is not None}
        if not held:
            return decision
        kept = [t for t in decision.targets if t.name not in held]
        deferred = sorted((t for t in decision.targets if t.name in held), key=lambda t: held[t.name].seconds)
        dropped = tuple(
            Rejection(t.name, "Cooldown", f"deferred: {held[t.name].describe()}") for t in deferred
        )
        step = Step("Cooldown", tuple((t.name, "available") for t in kept), dropped)
        return Decision((*kept, *deferred), (*decision.steps, step), decision.shadow)

    def _check_adapters(self, decision: Decision, request: ChatRequest) -> Decision:
        """Drop targets whose adapter refuses the request (an argument its provider cannot take),
        with the reason in the trace; if every target refuses, raise the first refusal."""
        refused: dict[str, InvalidRequest] = {}
        for target in decision.targets:
            try:
                self.adapter(target).check(request)
            except InvalidRequest as e:
                refused[target.name] = e
        if not refused:
            return decision
        kept = tuple(t for t in decision.targets if t.name not in refused)
        if not kept:
            raise next(iter(refused.values()))
        dropped = tuple(Rejection(name, "Adapter", str(e)) for name, e in refused.items())
        step = Step("Adapter", tuple((t.name, "") for t in kept), dropped)
        return Decision(kept, (*decision.steps, step), decision.shadow)

    def _balanced(self, candidates: tuple[Target, ...]) -> tuple[tuple[Target, ...], Step | None]:
        """The balancer orders the deployments of each model among the candidates, in the slots
        those deployments already hold. It runs before the policy, whose preferences are stable: a
        policy that does not tell two deployments of a model apart keeps the balancer's order; one
        that does (cache affinity, `Prefer("a-deployment")`) overrides it."""
        groups: dict[str, list[Target]] = {}
        for target in candidates:
            groups.setdefault(target.model.id, []).append(target)
        if len(groups) == len(candidates):
            return candidates, None
        balancer = self.balancer
        ordered = {
            model: iter(balancer.order(group, self.load, self.health) if len(group) > 1 else group)
            for model, group in groups.items()
        }
        result = tuple(next(ordered[t.model.id]) for t in candidates)
        return result, Step(balancer.name, tuple((t.name, "") for t in result), ())

    def plan(self, decision: Decision, request: ChatRequest) -> Generator[Call | Sleep | Io, Any, Any]:
        """The engine's state machine for this call."""
        return plan(
            decision.targets,
            self.retry,
            gate=lambda target, force: self.cooldowns.acquire(target.name, force),
            admit=self.admitter(request),
            queue_timeout=self.queue_timeout,
            release=self.load.release,
        )

    def hinted(self, request: ChatRequest, target: Target) -> ChatRequest:
        """`request` with the prompt-cache hints of `target`'s provider (Anthropic breakpoints, an
        OpenAI `prompt_cache_key`), unless the router was built with `cache_hints=False`."""
        if not self.cache_hints:
            return request
        from ..prefix.layout import cache_hints

        return cache_hints(request, target)

    def shadow_call(self, call_id: str, decision: Decision) -> tuple[Call, Decision] | None:
        """The attempt to make in the background for a shadowed call, labelled for the ledger."""
        target = decision.shadow
        if target is None or target in decision.targets[:1]:
            return None
        labels = {target.name: {"shadow": "candidate", "shadow_of": call_id}}
        return Call(target, 1, 1), Decision((target,), (Step("Shadow", ((target.name, ""),), (), labels),))

    def record_shadow(
        self,
        call: Call,
        decision: Decision,
        request: ChatRequest,
        started: float,
        outcome: Completed | ProviderError,
    ) -> None:
        """Record the background attempt's ledger row (its own call id, linked by `shadow_of`)."""
        call_id = new_call_id()
        if isinstance(outcome, ProviderError):
            self.row(
                call_id, call, request, outcome="error", started=started, error=outcome, decision=decision
            )
            return
        from ..truncation import judge

        message = outcome.completion.choices[0].message
        verdict = judge(
            request, message.content, outcome.finish_reason, outcome.completion.choices[0].finish_reason
        )
        self.answered(call_id, call, request, started, outcome, verdict, decision)

    def reserve(self, call_id: str, call: Call, request: ChatRequest) -> Reservation | None:
        """Reserve the attempt's estimated cost under every budget it falls in (raises
        `BudgetExceeded` before anything is sent); the attempt's ledger row settles it."""
        if self.budgets is None:
            return None
        claim = getattr(call.ticket, "claim", None)  # fleet mode: reserved with the admission
        if claim is not None:
            return claim((call_id, call.number))  # type: ignore[no-any-return]
        return self.budgets.reserve_for(request, call.target, key=(call_id, call.number))

    async def areserve(self, call_id: str, call: Call, request: ChatRequest) -> Reservation | None:
        """`reserve` on the event loop: a fleet's budgets await their round trip there."""
        if self.budgets is None:
            return None
        claim = getattr(call.ticket, "claim", None)
        if claim is not None:
            return claim((call_id, call.number))  # type: ignore[no-any-return]
        return await self.budgets.areserve_for(request, call.target, key=(call_id, call.number))

    def available(self, target: Target) -> bool:
        return self.cooldowns.blocked(target.name) is None

    def admitter(self, request: ChatRequest) -> Callable[[Target], tuple[Ticket | None, float | None] | Io]:
        """Admission under client-side limits for this request's attempts (see `LoadTracker`). A fleet
        store (`admit_call`) also reserves the budget in the same round trip (docs/fleet.md)."""
        load = self.load
        admit_call = getattr(load, "admit_call", None)

        def admit(target: Target) -> tuple[Ticket | None, float | None] | Io:
            tokens = 0
            if target.deployment.tpm is not None:
                prompt, _ = estimate_prompt_tokens(request, target)
                tokens = prompt + (request.max_output_tokens or DEFAULT_OUTPUT_TOKENS)
            if admit_call is not None:
                return admit_call(target, tokens, request)  # type: ignore[no-any-return]
            return load.admit(target, tokens)

        return admit

    def row(
        self,
        call_id: str,
        call: Call,
        request: ChatRequest,
        *,
        usage: Usage = _NO_USAGE,
        outcome: Outcome,
        started: float,
        ttft_s: float | None = None,
        finish: FinishReason | None = None,
        error: ProviderError | None = None,
        served_model: str | None = None,
        request_id: str | None = None,
        decision: Decision | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> LedgerRow:
        """Record one attempt in the ledger, release its load ticket, and feed health, cooldowns,
        headroom and the policy. Every attempt ends here exactly once."""
        target = call.target
        if call.ticket is not None:
            self.load.release(call.ticket, usage.total_tokens)
        if headers is None and error is not None and error.response is not None:
            headers = error.response.headers
        self.load.observe_headers(target.deployment.name, headers)
        latency = time.perf_counter() - started
        price = target.model.price
        row = LedgerRow(
            call_id=call_id,
            attempt=call.number,
            timestamp=time.time(),
            deployment=target.deployment.name,
            provider=target.provider.name,
            requested_model=request.model,
            model=target.model.id,
            served_model=served_model,
            hints=request.hints,
            usage=usage,
            price=price,  # the row prices itself when read: lighter to keep
            latency_s=latency,
            outcome=outcome,
            ttft_s=ttft_s,
            stream=request.stream,
            finish_reason=finish,
            error=type(error).__name__ if error is not None else None,
            status_code=error.status_code if error is not None else None,
            request_id=request_id if error is None else error.request_id,
            labels=decision.labels_for(target) if decision is not None else {},
        )
        self.ledger.record(row)
        self.telemetry.attempt_done(row, target, request)
        self.health.observe(
            target.name,
            ok=error is None,
            latency_s=latency,
            ttft_s=ttft_s,
            error=row.error,
        )
        self.cooldowns.observe(target.name, error, latency)
        self.policy.observe(row)
        return row

    def answered(
        self,
        call_id: str,
        call: Call,
        request: ChatRequest,
        started: float,
        done: Completed,
        verdict: Verdict,
        decision: Decision,
        rejected: bool = False,
    ) -> LedgerRow:
        """The ledger row of an answered request."""
        return self.row(
            call_id,
            call,
            request,
            usage=done.usage,
            outcome="rejected" if rejected else ("truncated" if verdict.truncated else "ok"),
            started=started,
            finish=done.finish_reason,
            served_model=done.served_model,
            request_id=done.request_id,
            decision=decision,
            headers=done.headers,
        )

    def route_info(
        self,
        call_id: str,
        request: ChatRequest,
        decision: Decision,
        rows: Sequence[LedgerRow],
        usage: Usage,
        finish: FinishReason | None,
        served_model: str | None,
        truncated: bool,
        verdict: Verdict | None = None,
    ) -> RouteInfo:
        last = rows[-1]
        attempts = tuple(rows)
        return RouteInfo(
            call_id=call_id,
            deployment=last.deployment,
            provider=last.provider,
            model=last.model,
            requested_model=request.model,
            served_model=served_model,
            attempts=attempts,
            decision=decision,
            usage=usage,
            cost=call_cost(attempts),
            finish_reason=finish,
            truncated=truncated,
            verdict=verdict,
        )

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            await adapter.aclose()


_STREAMING_DIALECTS = frozenset({"openai", "deepseek", "vllm", "ollama", "llamacpp", "anthropic"})


def _shadow(decision: Decision, candidates: tuple[Target, ...]) -> Target | None:
    """The candidate a `Shadow` step labelled, if it survived every gate before that step."""
    for step in decision.steps:
        for name, labels in step.labels.items():
            if labels.get("shadow") == "candidate":
                return next((t for t in candidates if t.name == name), None)
    return None


def new_call_id() -> str:
    return os.urandom(16).hex()  # 32 hex characters like uuid4().hex, a fifth of the cost


def _make_adapter(deployment: Deployment, provider: ProviderSpec) -> Adapter:
    dialect = deployment.dialect or provider.dialect
    if dialect == "anthropic":
        from ..providers.anthropic import AnthropicAdapter

        return AnthropicAdapter(deployment, provider)
    from ..providers.openai_compat import OpenAICompatAdapter

    return OpenAICompatAdapter(deployment, provider)
