"""Truncation verdicts: was this answer complete, or was it cut?

`detect()` reads one response (its text, the normalised and raw stop reasons, and a few request facts)
and returns a `Verdict`. Explicit signals come first (each provider's stop reasons): a length stop, a content
filter, a refusal, a stream that ended without a finish reason. When the provider says it finished
normally, heuristics look for *silent* truncation: an unclosed code fence, unbalanced brackets or
quotes, JSON that does not parse, an answer that stops mid-sentence, an empty answer, an answer far
shorter than the request demanded. Every heuristic that fires is named in `Verdict.reasons`.

The detector is pure, never raises and runs on every response: typical answers take microseconds,
and every pass is linear (no backtracking regular expressions), so a 1 MB answer is fine too.
What to *do* about a verdict is the router's business; `TruncationPolicy` is the table it reads.
See docs/truncation.md for each heuristic, an example of each, and measured precision and recall.
"""

# full-width and typographic punctuation is the point of this module

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from ._textchecks import _heuristics

if TYPE_CHECKING:
    from .request import ChatRequest
    from .usage import FinishReason

__all__ = ["TruncationAction", "TruncationPolicy", "Verdict", "VerdictKind", "detect", "judge"]

VerdictKind = Literal["complete", "length", "content_filter", "refusal", "stream_cut", "suspected"]
TruncationAction = Literal["return", "raise", "retry_larger", "fallback", "continue"]
"""What the router does with a truncated answer: `return` it with the verdict attached, `raise`
`TruncatedResponse` carrying the partial answer, `retry_larger` on the same target with a larger
`max_tokens`, `fallback` to the next target, or `continue` the generation and join the parts."""

_ACTIONS: Final = frozenset(get_args(TruncationAction))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The detector's answer for one response.

    `kind` is `complete` or how the answer was cut; `reasons` names, in words, every signal or
    heuristic that fired; `confidence` (0..1) is how sure the detector is of `kind`: 1.0 for a
    provider's explicit signal, lower for heuristics (several agreeing heuristics raise it).
    """

    kind: VerdictKind
    reasons: tuple[str, ...] = ()
    confidence: float = 1.0

    @property
    def truncated(self) -> bool:
        """True for every kind except `complete`."""
        return self.kind != "complete"


@dataclass(frozen=True, slots=True)
class TruncationPolicy:
    """The action for each kind of truncated verdict; the defaults change nothing a caller sees
    except that a filtered answer moves to the next target and a cut stream raises.

    `min_confidence` applies to `suspected` verdicts only: below it, the answer is treated as
    complete (the heuristics are evidence, not proof).
    """

    length: TruncationAction = "return"
    content_filter: TruncationAction = "fallback"
    refusal: TruncationAction = "return"
    stream_cut: TruncationAction = "raise"
    suspected: TruncationAction = "return"
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        for name in ("length", "content_filter", "refusal", "stream_cut", "suspected"):
            value = getattr(self, name)
            if value not in _ACTIONS:
                raise ValueError(f"{name}: unknown action {value!r}; expected one of {sorted(_ACTIONS)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")

    def action(self, verdict: Verdict) -> TruncationAction:
        """The action for `verdict`; a complete answer (or a weak suspicion) is returned."""
        kind = verdict.kind
        if kind == "complete" or (kind == "suspected" and verdict.confidence < self.min_confidence):
            return "return"
        action: TruncationAction = getattr(self, kind)
        return action


# -- explicit signals ------------------------------------------------------------------------------

# Normalised finish reasons and every provider's raw values (PROVIDERS.md section 3, plus Gemini's
# native values and TGI's), lower-cased. Anything else is "unknown", never "stop".
_FINISH: Final = {
    raw: kind
    for kind, raws in (
        ("stop", "stop end_turn eos eos_token"),
        ("stop_sequence", "stop_sequence"),  # the caller's own stop sequence: nothing to check
        ("length", "length max_tokens model_context_window_exceeded insufficient_system_resource"),
        ("content_filter", "content_filter safety recitation blocklist prohibited_content spii"),
        ("refusal", "refusal"),
        ("tool_calls", "tool_calls tool_use function_call"),
        ("pause_turn", "pause_turn"),
    )
    for raw in raws.split()
}
# When the normalised and the raw reason disagree, the more specific (worse) one wins.
_ORDER: Final = ("unknown", "stop", "stop_sequence", "tool_calls", "pause_turn", "length", "content_filter")
_RANK: Final[dict[str | None, int]] = {None: 0, "refusal": 99, **{r: i for i, r in enumerate(_ORDER, 1)}}


def _finish(value: object) -> str | None:
    if value is None:
        return None
    return _FINISH.get(str(value).strip().lower(), "unknown")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def detect(
    text: str | None,
    finish_reason: str | None,
    *,
    raw_finish_reason: str | None = None,
    stream_cut: bool = False,
    json_mode: bool = False,
    tool_calls: bool = False,
    refusal: str | None = None,
    output_tokens: int | None = None,
    max_tokens: int | None = None,
    min_expected_tokens: int | None = None,
) -> Verdict:
    """Judge whether one answer is complete. Never raises.

    `finish_reason` is the normalised stop reason (`llmroute.usage.FinishReason`) and
    `raw_finish_reason` the provider's own value; raw provider values are also understood in
    `finish_reason`. `stream_cut` says a stream ended with no chunk carrying a finish reason.
    `json_mode` says the request asked for JSON output; `tool_calls` that the answer carries tool calls.
    `refusal` is the message's refusal field (OpenAI). `output_tokens`, `max_tokens` and
    `min_expected_tokens` (the least output the request demanded) enable the budget and length checks.
    """
    try:
        answer = _text(text)
        normalised, raw = _finish(finish_reason), _finish(raw_finish_reason)
        finish = raw if _RANK[raw] > _RANK[normalised] else normalised
        named = str(raw_finish_reason if finish == raw and raw is not None else finish_reason)
        refused = _text(refusal).strip()
        if refused or finish == "refusal":
            why = "the model refused" + (f": {refused[:120]}" if refused else f" (stop reason {named!r})")
            return Verdict("refusal", (why,), 1.0)
        if finish == "content_filter":
            return Verdict(
                "content_filter", (f"the provider's content filter stopped the answer ({named!r})",)
            )
        if finish == "length":
            return Verdict("length", (f"the provider stopped at a token limit ({named!r})",))
        if stream_cut:
            return Verdict("stream_cut", ("the stream ended without a finish reason",))
        if finish == "pause_turn":
            return Verdict("suspected", ("the provider paused the turn (pause_turn): continue it",), 0.95)
        if finish in ("tool_calls", "stop_sequence") or tool_calls:
            return Verdict("complete", (), 0.95)
        found: list[tuple[str, float]] = []
        if finish is None or finish == "unknown":
            if finish is None:
                found.append(("no finish reason", 0.6))
            else:
                found.append((f"unknown finish reason {str(raw_finish_reason or finish_reason)[:40]!r}", 0.6))
            if not answer.strip():
                found.append(("no content", 0.5))
                return _suspected(found)
        elif _int(output_tokens) and _int(max_tokens) and _int(output_tokens) >= _int(max_tokens):
            used = f"{_int(output_tokens)}/{_int(max_tokens)}"
            return Verdict("length", (f"the answer used its whole max_tokens budget ({used})",), 0.9)
        _heuristics(answer, json_mode, found)
        expected = _int(min_expected_tokens)
        if expected and answer.strip():
            produced = _int(output_tokens) or _estimate_tokens(answer)
            if produced * 2 < expected:
                found.append((f"far shorter than requested ({produced} of at least {expected} tokens)", 0.6))
        if not found:
            return Verdict("complete", (), 0.9)
        return _suspected(found)
    except Exception as e:  # a bug here must never break a response
        return Verdict("complete", (f"not analysed: internal error ({type(e).__name__})",), 0.5)


def _suspected(found: list[tuple[str, float]]) -> Verdict:
    doubt = 1.0
    for _, weight in found:
        doubt *= 1.0 - weight
    return Verdict("suspected", tuple(reason for reason, _ in found), round(1.0 - doubt, 3))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _estimate_tokens(text: str) -> int:
    """About 4 characters a token for ASCII, one token per CJK character."""
    if text.isascii():
        return len(text) // 4
    extra = len(text.encode("utf-8", "surrogatepass")) - len(text)
    return (len(text) - extra // 2) // 4 + extra // 2


_JSON_FORMATS = frozenset({"json_object", "json_schema"})


def judge(
    request: ChatRequest, text: str | None, finish: FinishReason | None, raw: str | None, **facts: Any
) -> Verdict:
    """The truncation verdict for an answer to `request`."""
    fmt = request.body.get("response_format")
    json_mode = isinstance(fmt, dict) and fmt.get("type") in _JSON_FORMATS
    if raw == "stop" and request.body.get("stop") is not None:
        raw = "stop_sequence"  # the caller's own stop sequences may end an answer anywhere
    return detect(
        text,
        finish,
        raw_finish_reason=raw,
        json_mode=json_mode,
        max_tokens=request.max_output_tokens,
        **facts,
    )
