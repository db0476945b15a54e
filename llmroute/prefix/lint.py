"""The prompt linter: what breaks prompt caching in one prompt, or in a sequence of recorded prompts.

```python
findings = lint_prompt({"model": "gpt-5.4", "messages": messages, "tools": tools})
report = lint_sequence(recorded_requests)     # where each call's common prefix with the last ends
print(report.format())
```

One prompt (`lint_prompt`) is checked for:

- `volatile`: content that changes from call to call inside the stable prefix (the tools and the
  leading system/developer messages): ISO timestamps, dates, times of day, UUIDs, request ids, Unix
  timestamps, random-looking hex or ids, counters. Everything after it is re-billed at full price.
- `short_prefix`: a stable prefix below the model's minimum cacheable length (catalog
  `cache_min_tokens`): it is never cached on its own.
- `late_system` (info): a system/developer message after the conversation started.

A sequence (`lint_sequence`) also gets, for each consecutive pair, the token where their common
prefix ends, the field it ends in (`tools[2]`, `messages[0].content`...) and why: `tools_reordered`,
`tools_keys_reordered`, `tools_changed`, `volatile_changed` (what changed, e.g. a timestamp),
`counter`, `whitespace`, `keys_reordered` (JSON in a message with its keys in another order),
`system_changed`, `history_changed`, `messages_changed`, `cache_key_changed`,
`response_format_changed`; or an expected end: `new_turn`, `extends` (a conversation growing),
`identical`, `model_changed`.

Token positions are counted like `llmroute.tokens.count_messages` (the emulator's rendering), under
the model's tokenizer, or the approximate one when tiktoken's files are missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..tokens import Encoder, encoder_for
from ._canon import STABLE_ROLES, as_request_parts, canonical_json, dumps, located_segments, tool_name

if TYPE_CHECKING:
    from ..request import ChatRequest

__all__ = [
    "VOLATILE_PATTERNS",
    "Finding",
    "PrefixBreak",
    "SequenceReport",
    "lint_prompt",
    "lint_sequence",
    "main",
]

Severity = Literal["warning", "info"]
RequestLike = Any  # ChatRequest | Mapping[str, Any] | Sequence[Mapping[str, Any]]

_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DAYS = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
VOLATILE_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    (
        "timestamp",
        "ISO timestamp",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?(?![\w:])"
        ),
    ),
    (
        "uuid",
        "UUID",
        re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ),
    (
        "request_id",
        "request id",
        re.compile(
            r"\b(?:req|request|msg|call|chatcmpl|run|trace|span|sess|session|conv|txn|evt|job)[_-]"
            r"(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{6,}\b"
            r"|(?i:\b(?:request|trace|correlation|session|run|call)[ _-]?id\s*[:=#]\s*[\w-]{4,})"
        ),
    ),
    (
        "date",
        "date",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}\.\d{1,2}\.\d{4}\b"
            rf"|(?i:\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b)"
            rf"|(?i:\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+\d{{4}}\b)"
            rf"|(?i:\b(?:today is|it is|it's)\s+{_DAYS}\b)"
        ),
    ),
    (
        "time",
        "time of day",
        re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp]\.?[Mm]\.?)?(?![\d:])"),
    ),
    ("epoch", "Unix timestamp", re.compile(r"\b1[4-9]\d{8}(?:\d{3})?(?:\.\d+)?\b")),
    (
        "hex",
        "random-looking hex string",
        re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}\b"),
    ),
    (
        "random_id",
        "random-looking id",
        re.compile(r"\b(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{16,}\b"),
    ),
    (
        "counter",
        "counter",
        re.compile(
            r"(?i)\b(?:request|call|attempt|iteration|run|invocation|turn)\s*(?:#|no\.?\s*|number\s*)\d+\b"
        ),
    ),
)
"""`(kind, label, pattern)` of content that usually changes from call to call."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that breaks (or may break) prompt caching.

    `where`: the field (`messages[0].content`, `tools[1]`...); `token`: where the problem starts in
    the rendered prompt (the common prefix length, for a sequence); `text`: the offending text;
    `request`: in a sequence, the first request that showed it, and `count` how many did.
    """

    kind: str
    message: str
    where: str = ""
    severity: Severity = "warning"
    token: int | None = None
    text: str | None = None
    request: int | None = None
    count: int = 1

    def __str__(self) -> str:
        at = f" (token {self.token})" if self.token is not None else ""
        req = f"request {self.request}: " if self.request is not None else ""
        times = f" [{self.count} times]" if self.count > 1 else ""
        return f"{self.severity:<7} {req}{self.where or '-'}{at}: {self.message}{times}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
            "token": self.token,
            "text": self.text,
            "request": self.request,
            "count": self.count,
        }


@dataclass(frozen=True, slots=True)
class PrefixBreak:
    """Where the common prefix of request `request - 1` and request `request` ends, and why."""

    request: int
    common_tokens: int
    prompt_tokens: int
    where: str
    reason: str
    detail: str
    expected: bool

    @property
    def share(self) -> float:
        """The common prefix as a share of this request's prompt."""
        return self.common_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "common_tokens": self.common_tokens,
            "prompt_tokens": self.prompt_tokens,
            "where": self.where,
            "reason": self.reason,
            "detail": self.detail,
            "expected": self.expected,
        }


@dataclass(slots=True)
class SequenceReport:
    """`lint_sequence`'s result: one `PrefixBreak` per consecutive pair, and the findings (problems
    seen in single prompts and unexpected prefix breaks, each once with its count)."""

    requests: int
    breaks: list[PrefixBreak] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No warnings."""
        return not any(f.severity == "warning" for f in self.findings)

    @property
    def common_share(self) -> float:
        """Tokens shared with the previous request, as a share of all prompt tokens after the first."""
        total = sum(b.prompt_tokens for b in self.breaks)
        return sum(b.common_tokens for b in self.breaks) / total if total else 0.0

    def format(self) -> str:
        lines = [
            f"{self.requests} request(s); common prefix with the previous request: "
            f"{self.common_share:.0%} of prompt tokens"
        ]
        for b in self.breaks:
            mark = "ok  " if b.expected else "BREAK"
            lines.append(
                f"  {mark} #{b.request}: {b.common_tokens}/{b.prompt_tokens} tokens shared, "
                f"ends at {b.where}: {b.reason}{' (' + b.detail + ')' if b.detail else ''}"
            )
        if self.findings:
            lines.append("findings:")
            lines.extend(f"  {f}" for f in self.findings)
        else:
            lines.append("no findings")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "common_share": self.common_share,
            "breaks": [b.as_dict() for b in self.breaks],
            "findings": [f.as_dict() for f in self.findings],
        }


# ---------------------------------------------------------------- helpers


class _Prompt:
    """One request, parsed and rendered to located segments with token counts."""

    __slots__ = ("body", "counts", "enc", "messages", "model", "segments", "stable_messages", "tools")

    def __init__(self, request: RequestLike, tools: Any, model: str | None) -> None:
        messages, found_tools, body, request_model = as_request_parts(request, tools)
        self.messages = messages
        self.tools = found_tools
        self.body = body
        self.model = model or request_model
        self.enc = _encoder(self.model)
        self.segments = located_segments(messages, found_tools)
        count = self.enc.count
        self.counts = [s.segment if isinstance(s.segment, int) else count(s.segment) for s in self.segments]
        n = 0
        for message in messages:
            if message.get("role") not in STABLE_ROLES:
                break
            n += 1
        self.stable_messages = n

    @property
    def total(self) -> int:
        return sum(self.counts)

    def stable_tokens(self) -> int:
        total = 0
        for seg, count in zip(self.segments, self.counts, strict=True):
            if seg.message is None and seg.where != "tools":
                break
            if seg.message is not None and seg.message >= self.stable_messages:
                break
            total += count
        return total

    def token_at(self, index: int, offset: int = 0) -> int:
        """The token index of character `offset` of segment `index`."""
        before = sum(self.counts[:index])
        seg = self.segments[index].segment
        if isinstance(seg, str) and offset:
            before += self.enc.count(seg[:offset])
        return before


def _encoder(model: str | None) -> Encoder:
    from ..catalog import default_catalog

    spec = default_catalog().model(model) if model else None
    if spec is not None:
        return encoder_for(spec.api_name, spec.tokenizer)
    return encoder_for(model or "")


def _volatile(text: str) -> list[tuple[str, str, re.Match[str]]]:
    """Volatile matches in `text`, earliest first, overlaps dropped (the first pattern listed wins)."""
    found: list[tuple[str, str, re.Match[str]]] = []
    for kind, label, pattern in VOLATILE_PATTERNS:
        for match in pattern.finditer(text):
            if any(m.start() < match.end() and match.start() < m.end() for _, _, m in found):
                continue
            found.append((kind, label, match))
    return sorted(found, key=lambda f: f[2].start())


def _snippet(text: str, at: int, width: int = 24) -> str:
    start = max(0, at - width)
    piece = text[start : at + width].replace("\n", "\\n")
    return ("..." if start else "") + piece + ("..." if at + width < len(text) else "")


def _common_chars(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _common_tokens(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _min_tokens(model: str | None) -> tuple[int, str] | None:
    from ..catalog import default_catalog
    from .layout import DEFAULT_MIN_TOKENS

    spec = default_catalog().model(model) if model else None
    if spec is None:
        return None
    if spec.cache_min_tokens is not None:
        return spec.cache_min_tokens, spec.id
    minimum = DEFAULT_MIN_TOKENS.get(spec.provider)
    return (minimum, spec.id) if minimum is not None else None


# ---------------------------------------------------------------- one prompt


def lint_prompt(
    request: ChatRequest | Mapping[str, Any] | Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    model: str | None = None,
) -> list[Finding]:
    """What breaks prompt caching in one prompt (see the module docstring for the checks).

    `request`: a `ChatRequest`, a dict of `create()` arguments (or a recorded JSON body), or a list
    of messages with `tools` given apart. `model` (default: the request's) sets the tokenizer and
    the minimum cacheable length; without a known model the length check is skipped.
    """
    return _lint(_Prompt(request, tools, model))


def _lint(prompt: _Prompt) -> list[Finding]:
    findings: list[Finding] = []
    for index, seg in enumerate(prompt.segments):
        stable = seg.where == "tools" or (seg.message is not None and seg.message < prompt.stable_messages)
        if not stable or not isinstance(seg.segment, str):
            continue
        text = seg.segment
        for kind, label, match in _volatile(text):
            where = seg.where
            if where == "tools" and prompt.tools:
                where = _tool_at(prompt.tools, match.start())
            advice = (
                "it changes every call"
                if kind == "counter"
                else "if it changes between calls, nothing after it is cached; move it after the "
                "stable part (e.g. PromptLayout.render(context=...))"
            )
            findings.append(
                Finding(
                    "volatile",
                    f"{label} {match.group()!r} in the stable prefix: {advice}",
                    where,
                    token=prompt.token_at(index, match.start()),
                    text=match.group(),
                )
            )
    for i, message in enumerate(prompt.messages):
        if i > prompt.stable_messages and message.get("role") in STABLE_ROLES:
            findings.append(
                Finding(
                    "late_system",
                    f"a {message.get('role')} message after the conversation started: Anthropic moves "
                    "it into the system prompt (changing the cached prefix when it changes); keep "
                    "instructions first and fixed",
                    f"messages[{i}]",
                    severity="info",
                )
            )
            break
    minimum = _min_tokens(prompt.model)
    stable_tokens = prompt.stable_tokens()
    if minimum is not None:
        least, model_id = minimum
        if stable_tokens == 0:
            findings.append(
                Finding(
                    "no_stable_prefix",
                    "no tools and no leading system/developer message: nothing marks a stable prefix",
                    "messages[0]",
                    severity="info",
                    token=0,
                )
            )
        elif stable_tokens < least:
            findings.append(
                Finding(
                    "short_prefix",
                    f"the stable prefix (tools + leading system messages) is {stable_tokens} tokens, below "
                    f"{model_id}'s minimum cacheable length of {least}: it is not cached on its own",
                    "messages" if prompt.stable_messages else "tools",
                    token=stable_tokens,
                )
            )
    return findings


def _tool_at(tools: Sequence[Mapping[str, Any]], offset: int) -> str:
    """`tools[i] (name)` for character `offset` of the tools' compact JSON."""
    position = 1
    for i, tool in enumerate(tools):
        position += len(dumps(tool)) + 1
        if offset < position:
            return f"tools[{i}] ({tool_name(tool)})"
    return "tools"


# ---------------------------------------------------------------- a sequence


def lint_sequence(
    requests: Iterable[ChatRequest | Mapping[str, Any] | Sequence[Mapping[str, Any]]],
    *,
    model: str | None = None,
) -> SequenceReport:
    """Lint each prompt, and for each consecutive pair report where their common prefix ends and
    why (`PrefixBreak`); unexpected breaks and per-prompt problems become findings, each counted."""
    prompts = [_Prompt(r, None, model) for r in requests]
    report = SequenceReport(len(prompts))
    seen: dict[tuple[str, str, str], Finding] = {}
    order: list[tuple[str, str, str]] = []

    def add(finding: Finding, index: int) -> None:
        # The same kind of volatile value at the same place counts as one finding, whatever its value.
        detail = _volatile_kind(finding.text or "") if finding.kind == "volatile" else ""
        key = (finding.kind, _generic(finding.where), detail)
        old = seen.get(key)
        if old is None:
            seen[key] = Finding(
                finding.kind,
                finding.message,
                finding.where,
                finding.severity,
                finding.token,
                finding.text,
                index,
            )
            order.append(key)
        else:
            seen[key] = Finding(
                old.kind,
                old.message,
                old.where,
                old.severity,
                old.token,
                old.text,
                old.request,
                old.count + 1,
            )

    for i, prompt in enumerate(prompts):
        for finding in _lint(prompt):
            add(finding, i)
        if i == 0:
            continue
        brk = _compare(prompts[i - 1], prompt, i)
        report.breaks.append(brk)
        if not brk.expected:
            add(
                Finding(
                    brk.reason,
                    _BREAK_MESSAGES.get(brk.reason, "the prompt changed")
                    + (f": {brk.detail}" if brk.detail else ""),
                    brk.where,
                    token=brk.common_tokens,
                ),
                i,
            )
    report.findings = [seen[k] for k in order]
    return report


def _generic(where: str) -> str:
    return re.sub(r" \(.*\)$", "", where)


def _volatile_kind(text: str) -> str:
    found = _volatile(text)
    return found[0][0] if found else text


_BREAK_MESSAGES = {
    "tools_reordered": "the tools come in a different order than in the previous call (sort them by name)",
    "tools_keys_reordered": "a tool's JSON has its keys in another order than in the previous call",
    "tools_changed": "the tools differ from the previous call's",
    "volatile_changed": "content that changes from call to call ends the common prefix",
    "counter": "a counter in the prompt ends the common prefix",
    "whitespace": "only whitespace differs from the previous call",
    "keys_reordered": "JSON with its keys in another order than in the previous call",
    "system_changed": "the system prompt differs from the previous call's",
    "history_changed": "an earlier message of the conversation differs from the previous call's",
    "messages_changed": "messages were inserted, removed or changed role",
    "cache_key_changed": "prompt_cache_key differs: the calls use different caches",
    "response_format_changed": "response_format differs: OpenAI caches per response schema",
}


class _Break(Protocol):
    def __call__(
        self, common: int, where: str, reason: str, detail: str = "", expected: bool = False
    ) -> PrefixBreak: ...


def _compare(prev: _Prompt, cur: _Prompt, index: int) -> PrefixBreak:
    total = cur.total

    def brk(common: int, where: str, reason: str, detail: str = "", expected: bool = False) -> PrefixBreak:
        return PrefixBreak(index, common, total, where, reason, detail, expected)

    if prev.model and cur.model and prev.model != cur.model:
        return brk(0, "model", "model_changed", f"{prev.model} -> {cur.model}", expected=True)
    for key, reason in (
        ("prompt_cache_key", "cache_key_changed"),
        ("response_format", "response_format_changed"),
    ):
        a, b = prev.body.get(key), cur.body.get(key)
        if a != b:
            return brk(0, key, reason, f"{_short(a)} -> {_short(b)}")
    a_segs, b_segs = prev.segments[:-1], cur.segments[:-1]  # without the reply priming
    common = 0
    i = 0
    n = min(len(a_segs), len(b_segs))
    while i < n and a_segs[i].segment == b_segs[i].segment:
        common += cur.counts[i]
        i += 1
    if i == len(b_segs):
        reason = "identical" if len(a_segs) == len(b_segs) else "shorter"
        return brk(common, "end", reason, "", expected=True)
    if i == len(a_segs):
        return brk(
            common, b_segs[i].where, "extends", "the previous prompt is a prefix of this one", expected=True
        )
    sa, sb = a_segs[i], b_segs[i]
    offset = 0
    if isinstance(sa.segment, str) and isinstance(sb.segment, str):
        common += _common_tokens(prev.enc.tokens(sa.segment), cur.enc.tokens(sb.segment))
        offset = _common_chars(sa.segment, sb.segment)
    if sb.where == "tools" or sa.where == "tools":
        return _tools_break(prev, cur, common, brk)
    if sa.where != sb.where or not isinstance(sa.segment, str) or not isinstance(sb.segment, str):
        return brk(common, sb.where, "messages_changed", f"{sa.where} -> {sb.where}")
    m = sb.message
    assert m is not None
    last = len(cur.messages) - 1
    if m == last and cur.messages[m].get("role") in ("user", "tool") and m >= len(prev.messages) - 1:
        return brk(common, sb.where, "new_turn", "", expected=True)
    reason, detail = _text_change(sa.segment, sb.segment, offset)
    if reason == "changed":
        reason = "system_changed" if m < cur.stable_messages else "history_changed"
        detail = f"{_snippet(sa.segment, offset)!r} -> {_snippet(sb.segment, offset)!r}"
    return brk(common, sb.where, reason, detail)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if value is not None else "none"
    return text if len(text) <= 40 else text[:37] + "..."


def _text_change(a: str, b: str, offset: int) -> tuple[str, str]:
    """Why `a` and `b` differ from character `offset` on."""
    if re.sub(r"\s+", " ", a).strip() == re.sub(r"\s+", " ", b).strip():
        return "whitespace", "only whitespace differs"
    try:
        if json.loads(a) == json.loads(b):
            return "keys_reordered", "equal JSON, keys in another order"
    except ValueError:
        pass
    hits_a = {k: (label, mt) for k, label, mt in _volatile(a) if mt.start() <= offset <= mt.end()}
    hits_b = {k: (label, mt) for k, label, mt in _volatile(b) if mt.start() <= offset <= mt.end()}
    for kind, (label, match) in hits_b.items():
        if kind in hits_a:  # the same kind of value on both sides: it is what changed
            before, after = hits_a[kind][1].group(), match.group()
            if kind == "counter":
                return "counter", f"{before!r} -> {after!r}"
            return "volatile_changed", f"{label}: {before!r} -> {after!r}"
    num_a = _number_at(a, offset)
    num_b = _number_at(b, offset)
    if num_a is not None and num_b is not None:
        if int(num_b) == int(num_a) + 1:
            return "counter", f"{num_a} -> {num_b}"
        return "volatile_changed", f"number: {num_a} -> {num_b}"
    return "changed", ""


def _number_at(text: str, offset: int) -> str | None:
    start = offset
    while start > 0 and text[start - 1].isdigit():
        start -= 1
    end = offset
    while end < len(text) and text[end].isdigit():
        end += 1
    piece = text[start:end]
    return piece if piece.isdigit() else None


def _tools_break(prev: _Prompt, cur: _Prompt, common: int, brk: _Break) -> PrefixBreak:
    a, b = prev.tools or [], cur.tools or []
    names_a, names_b = [tool_name(t) for t in a], [tool_name(t) for t in b]
    if names_a == names_b:
        for k, (ta, tb) in enumerate(zip(a, b, strict=True)):
            if dumps(ta) != dumps(tb):
                where = f"tools[{k}] ({names_b[k]})"
                if canonical_json(ta) == canonical_json(tb):
                    return brk(
                        common, where, "tools_keys_reordered", "equal definitions, keys in another order"
                    )
                return brk(common, where, "tools_changed", f"{names_b[k]!r} changed")
    if sorted(names_a) == sorted(names_b):
        by_name = {tool_name(t): canonical_json(t) for t in a}
        same = all(by_name.get(tool_name(t)) == canonical_json(t) for t in b)
        k = next(k for k, (x, y) in enumerate(zip(names_a, names_b, strict=True)) if x != y)
        detail = f"{', '.join(names_a)} -> {', '.join(names_b)}"
        reason = "tools_reordered" if same else "tools_changed"
        return brk(common, f"tools[{k}] ({names_b[k]})", reason, detail)
    added = sorted(set(names_b) - set(names_a))
    removed = sorted(set(names_a) - set(names_b))
    detail = "; ".join(
        p for p in (f"added {added}" if added else "", f"removed {removed}" if removed else "") if p
    )
    return brk(common, "tools", "tools_changed", detail)


# ---------------------------------------------------------------- command line


def _read(path: str) -> list[Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        raise ValueError("the file is empty")
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
        requests = []
        for n, line in enumerate(stripped.splitlines(), 1):
            if line.strip():
                try:
                    requests.append(json.loads(line))
                except ValueError as e:
                    raise ValueError(f"line {n}: not JSON ({e})") from e
        return requests
    if isinstance(data, Mapping) and isinstance(data.get("requests"), list):
        return list(data["requests"])
    if isinstance(data, Mapping):
        return [data]
    if isinstance(data, list) and data and all(isinstance(m, Mapping) and "role" in m for m in data):
        return [data]  # one bare list of messages
    if isinstance(data, list):
        return data
    raise ValueError("expected a request object, a list of requests, or JSON lines")


def main(argv: Sequence[str] | None = None) -> int:
    """`llmroute lint-prompt FILE [--model M] [--json]`: lint the request(s) in FILE.

    FILE holds one request (`{"model", "messages", "tools", ...}`, or a recorded `{"body": ...}`),
    a JSON list of them (or `{"requests": [...]}`), or JSON lines; `-` reads stdin. Several requests
    are linted as a sequence. Exit codes: 0 no warnings, 1 warnings found, 2 bad usage or input.
    """
    parser = argparse.ArgumentParser(
        prog="llmroute lint-prompt", description="Find what breaks prompt caching in recorded requests."
    )
    parser.add_argument("file", help="a JSON or JSONL file of Chat Completions requests ('-': stdin)")
    parser.add_argument("--model", help="model for the tokenizer and the minimum cacheable length")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else 2
    if args.model is not None:
        from ..catalog import default_catalog

        if default_catalog().model(args.model) is None:
            parser.print_usage(sys.stderr)
            print(
                f"llmroute lint-prompt: error: unknown model {args.model!r}; "
                "`llmroute prices` lists the known ones",
                file=sys.stderr,
            )
            return 2
    try:
        requests = _read(args.file)
        if not requests:
            raise ValueError("no requests")
        if len(requests) == 1:
            findings = lint_prompt(requests[0], model=args.model)
            report = SequenceReport(1, [], findings)
        else:
            report = lint_sequence(requests, model=args.model)
    except OSError as e:
        print(f"llmroute lint-prompt: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as e:
        print(f"llmroute lint-prompt: {args.file}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    elif report.requests == 1:
        for finding in report.findings:
            print(finding)
        if not report.findings:
            print("no findings")
    else:
        print(report.format())
    return 0 if report.ok else 1
