"""`Residency`: where data of each sensitivity level may be sent (a hard gate)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigurationError
from ..policy import RouteContext, Target
from ._core import BuiltinPolicy, Memo, StepResult, Targets, make_step

__all__ = ["Residency"]

_KINDS = ("jurisdiction", "provider", "deployment", "model")


@dataclass(frozen=True, slots=True)
class _Rule:
    """One level's allow (or deny) list, parsed."""

    entries: tuple[str, ...]
    everything: bool
    jurisdictions: frozenset[str]
    providers: frozenset[str]
    deployments: frozenset[str]
    models: frozenset[str]

    def match(self, target: Target) -> str | None:
        """The entry that covers `target`, or None."""
        if self.everything:
            return "*"
        jurisdiction = target.jurisdiction.casefold()
        if jurisdiction in self.jurisdictions:
            return target.jurisdiction
        if target.provider.name in self.providers:
            return f"provider:{target.provider.name}"
        if target.deployment.name in self.deployments:
            return f"deployment:{target.deployment.name}"
        if self.models:
            for name in target.model.names():
                if name in self.models:
                    return f"model:{name}"
        return None

    def describe(self) -> str:
        return ", ".join(self.entries) if self.entries else "nowhere"


def _rule(where: str, entries: Iterable[str] | str) -> _Rule:
    if isinstance(entries, str):
        entries = [entries]
    listed: list[str] = []
    sets: dict[str, set[str]] = {kind: set() for kind in _KINDS}
    everything = False
    for raw in entries:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigurationError(f"{where}: expected non-empty strings, got {raw!r}")
        entry = raw.strip()
        listed.append(entry)
        if entry == "*":
            everything = True
            continue
        kind, sep, value = entry.partition(":")
        if not sep:
            kind, value = "jurisdiction", entry
        if kind not in sets or not value:
            raise ConfigurationError(
                f"{where}: {entry!r} is not a jurisdiction, '*', or one of "
                + ", ".join(f"'{k}:NAME'" for k in _KINDS)
            )
        sets[kind].add(value.casefold() if kind == "jurisdiction" else value)
    return _Rule(
        tuple(listed),
        everything,
        frozenset(sets["jurisdiction"]),
        frozenset(sets["provider"]),
        frozenset(sets["deployment"]),
        frozenset(sets["model"]),
    )


class Residency(BuiltinPolicy):
    """Hard gate: each sensitivity level may only be sent where its allow list says.

    ```python
    residency = Residency(
        {
            "public": ["*"],
            "internal": ["*"],
            "pii": ["US", "EU", "self-hosted"],
            "phi": ["self-hosted", "deployment:azure-eu"],
        },
        default="internal",
    )
    router = Router(deployments, policy=residency | Requested(["gpt-5.4"]))
    router.chat.completions.create(model="deepseek-v3.2", messages=..., route={"sensitivity": "pii"})
    # DeepSeek's jurisdiction is "CN": removed, "pii data may not be sent to CN (...)"; gpt-5.4 serves.
    ```

    - `allow`: level -> where its data may go. Each entry is a jurisdiction as the catalog writes
      it (`"US"`, `"EU"`, `"CN"`, `"self-hosted"`, `"unknown"`; a deployment's `jurisdiction=`
      overrides its provider's), `"*"` (anywhere, unknown jurisdictions included),
      `"provider:NAME"`, `"deployment:NAME"` or `"model:NAME"` (catalog id, API name or alias).
      An empty list means the level may go nowhere.
    - `deny`: level -> entries that are refused even if `allow` covers them (deny wins), e.g.
      `Residency({"internal": ["*"]}, deny={"internal": ["CN"]})`.
    - `default`: the level of requests without a `sensitivity` hint. It must be in `allow`
      (checked at construction: `ConfigurationError` otherwise).
    - `unknown`: what a request labelled with a level that is not in `allow` gets.
      `"strictest"` (the default): it may only go where EVERY level may go and no level is denied,
      so a new or misspelt label is never less protected than the strictest known one.
      `"refuse"`: every candidate is removed and the call fails with `NoRoute` naming the label.

    Levels and jurisdictions are matched case-insensitively; provider, deployment and model names
    exactly. The gate runs before any fallback is chosen, so it applies to fallbacks and retries
    too. Drop reasons name the level and the target's jurisdiction.
    """

    def __init__(
        self,
        allow: Mapping[str, Iterable[str] | str],
        *,
        default: str = "internal",
        deny: Mapping[str, Iterable[str] | str] | None = None,
        unknown: Literal["strictest", "refuse"] = "strictest",
    ) -> None:
        if not isinstance(allow, Mapping) or not allow:
            raise ConfigurationError("Residency: allow must map at least one sensitivity level to a list")
        self._allow: dict[str, _Rule] = {}
        for level, entries in allow.items():
            key = str(level).casefold()
            if key in self._allow:
                raise ConfigurationError(
                    f"Residency: level {level!r} is given twice (levels are case-insensitive)"
                )
            self._allow[key] = _rule(f"Residency: allow[{level!r}]", entries)
        self._deny: dict[str, _Rule] = {}
        for level, entries in (deny or {}).items():
            key = str(level).casefold()
            if key not in self._allow:
                raise ConfigurationError(
                    f"Residency: deny names level {level!r}, which allow does not define "
                    f"(levels: {', '.join(self._allow)})"
                )
            self._deny[key] = _rule(f"Residency: deny[{level!r}]", entries)
        if not isinstance(default, str) or default.casefold() not in self._allow:
            raise ConfigurationError(
                f"Residency: default level {default!r} is not in allow (levels: {', '.join(self._allow)}); "
                "add it to allow or pass default= one of them"
            )
        if unknown not in ("strictest", "refuse"):
            raise ConfigurationError(f"Residency: unknown must be 'strictest' or 'refuse', got {unknown!r}")
        self.default = default.casefold()
        self.unknown = unknown
        self._memo: Memo[StepResult] = Memo()

    @property
    def levels(self) -> tuple[str, ...]:
        """The known levels (case-folded), in the order given."""
        return tuple(self._allow)

    def allowed(self, level: str | None, target: Target) -> tuple[bool, str]:
        """Whether `level` data may go to `target`, and why."""
        key = self.default if level is None else level.casefold()
        allow = self._allow.get(key)
        where = f"{target.jurisdiction} ({target.provider.name})"
        if allow is None:
            if self.unknown == "refuse":
                return False, f"unknown sensitivity level {level!r} (known: {', '.join(self._allow)})"
            for name, rule in self._allow.items():
                if rule.match(target) is None:
                    return False, (
                        f"unknown sensitivity {level!r} is held to every level: "
                        f"{name} data may not be sent to {where}"
                    )
            for name, rule in self._deny.items():
                entry = rule.match(target)
                if entry is not None:
                    return (
                        False,
                        f"unknown sensitivity {level!r} is held to every level: {name} denies {entry}",
                    )
            return True, f"unknown sensitivity {level!r}: every level allows {where}"
        label = key if level is not None else f"{key} (default)"
        deny = self._deny.get(key)
        if deny is not None:
            entry = deny.match(target)
            if entry is not None:
                return False, f"{label} data may not be sent to {where}: denied by {entry!r}"
        entry = allow.match(target)
        if entry is None:
            return False, f"{label} data may not be sent to {where}; allowed: {allow.describe()}"
        return True, f"{label} allowed in {where}" if entry != "*" else f"{label} allowed anywhere"

    def _step(self, ctx: RouteContext, candidates: Targets) -> StepResult:
        level = ctx.hints.sensitivity
        found = self._memo.get(candidates, level)
        if found is not None:
            return found
        kept: list[Target] = []
        reasons: list[str] = []
        dropped: list[tuple[Target, str]] = []
        for target in candidates:
            ok, reason = self.allowed(level, target)
            if ok:
                kept.append(target)
                reasons.append(reason)
            else:
                dropped.append((target, reason))
        result = make_step(self.name, kept, reasons, dropped)
        if not dropped:
            result = (result[0], candidates)
        return self._memo.put(candidates, level, result)

    def __repr__(self) -> str:
        levels = {k: list(r.entries) for k, r in self._allow.items()}
        return f"Residency({levels!r}, default={self.default!r})"
