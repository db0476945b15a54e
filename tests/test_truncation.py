"""Truncation verdicts: explicit signals, each silent-truncation heuristic, no false alarms on complete
answers of every form, and a detector that never raises and stays linear on huge or hostile input."""

# ruff: noqa: RUF001  # multilingual answers: full-width punctuation is the point

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmroute.truncation import TruncationPolicy, Verdict, detect

# -- explicit signals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "raw", "kind"),
    [
        ("stop", None, "complete"),
        ("length", None, "length"),
        ("length", "insufficient_system_resource", "length"),  # DeepSeek ran out of resources
        ("length", "max_tokens", "length"),  # Anthropic
        ("length", "model_context_window_exceeded", "length"),  # Anthropic
        ("unknown", "insufficient_system_resource", "length"),
        ("content_filter", None, "content_filter"),
        ("content_filter", "refusal", "refusal"),  # Anthropic refusal, normalised to content_filter
        ("stop", "end_turn", "complete"),
        ("tool_calls", "tool_use", "complete"),
        ("function_call", None, "complete"),
        ("stop", "stop_sequence", "complete"),  # the caller's stop sequence: structure may be open
        ("unknown", "pause_turn", "suspected"),
        # raw provider values passed as the finish reason are understood too
        ("max_tokens", None, "length"),
        ("MAX_TOKENS", None, "length"),  # Gemini native
        ("SAFETY", None, "content_filter"),
        ("end_turn", None, "complete"),
        ("refusal", None, "refusal"),
    ],
)
def test_explicit_stop_reasons(finish: str, raw: str | None, kind: str) -> None:
    verdict = detect("The answer is complete.", finish, raw_finish_reason=raw)
    assert verdict.kind == kind
    assert verdict.truncated is (kind != "complete")
    if kind in ("length", "content_filter", "refusal"):
        assert verdict.confidence == 1.0
        assert verdict.reasons


def test_stop_sequence_skips_the_heuristics() -> None:
    # `stop=["```"]` ends the answer inside a fence on purpose
    assert detect("```python\nprint(1)\n", "stop", raw_finish_reason="stop_sequence").kind == "complete"


def test_refusal_field() -> None:
    verdict = detect(None, "stop", refusal="I can't help with that.")
    assert verdict.kind == "refusal"
    assert "I can't help with that." in verdict.reasons[0]
    assert detect("Fine.", "stop", refusal="").kind == "complete"


def test_stream_cut() -> None:
    verdict = detect("Partial answ", None, stream_cut=True)
    assert verdict == Verdict("stream_cut", ("the stream ended without a finish reason",), 1.0)


@pytest.mark.parametrize("finish", [None, "unknown", "abort", "weird_new_reason"])
def test_missing_or_unknown_finish_reason_is_never_complete(finish: str | None) -> None:
    verdict = detect("A complete-looking answer.", finish)
    assert verdict.kind == "suspected"
    assert "finish reason" in verdict.reasons[0]
    assert detect("", finish).kind == "suspected"


def test_unknown_finish_names_the_raw_value() -> None:
    assert "'abort'" in detect("Hi.", "unknown", raw_finish_reason="abort").reasons[0]


def test_heuristics_add_to_a_missing_finish_reason() -> None:
    verdict = detect("The answer stops in the", None)
    assert len(verdict.reasons) == 2
    assert verdict.confidence > detect("The answer is complete.", None).confidence


def test_tool_calls_make_a_preface_complete() -> None:
    assert detect("Let me look that up:", "tool_calls").kind == "complete"
    assert detect("", "stop", tool_calls=True).kind == "complete"  # Ollama reports stop with tool calls


def test_whole_budget_used_reads_as_length() -> None:
    verdict = detect("A complete-looking answer.", "stop", output_tokens=256, max_tokens=256)
    assert verdict.kind == "length"
    assert "256/256" in verdict.reasons[0]
    assert detect("A complete-looking answer.", "stop", output_tokens=255, max_tokens=256).kind == "complete"


def test_far_shorter_than_requested() -> None:
    verdict = detect("Here is a short essay.", "stop", min_expected_tokens=2000)
    assert verdict.kind == "suspected"
    assert "far shorter than requested" in verdict.reasons[0]
    assert (
        detect("Here is a short essay.", "stop", output_tokens=1500, min_expected_tokens=2000).kind
        == "complete"
    )
    long = "word " * 3000 + "end."
    assert detect(long, "stop", min_expected_tokens=2000).kind == "complete"


# -- each heuristic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty answer"),
        ("   \n ", "empty answer"),
        ("Here is the code:\n\n```python\ndef add(a, b):\n    return a", "unclosed code fence"),
        ("~~~\nplain\n", "unclosed code fence"),
        ('{"name": "Ada", "langs": ["en", "fr"', "JSON stops before it is complete"),
        ('[{"id": 1}, {"id": 2, "ok": tr', "JSON stops before it is complete"),
        ('{"note": "an unfinished str', "JSON stops before it is complete"),
        ("The call returns a tuple (status, body", "unbalanced brackets: '(' is never closed"),
        ("See the [documentation](https://docs.python.org/3/li", "unbalanced brackets"),
        ("使用虚拟环境（推荐", "unbalanced brackets"),
        ('He said "we will meet tomorrow at the', 'unclosed quotation mark (")'),
        ("Sie sagte: „Wir sehen uns morgen", "unclosed quotation mark („)"),
        ("Il a dit : « nous verrons demain", "unclosed quotation mark («)"),
        ("彼は「明日会いましょう", "unclosed quotation mark (「)"),
        ("The docs call it “the happy path", "unclosed quotation mark (“)"),
        ("- **Speed:** fast\n- **Cost:** low\n- **Support", "unclosed bold text"),
        ("Run `pip install llmroute and then", "unclosed inline code"),
        ("The formula is $$E = mc^2", "unclosed math block"),
        ("The capital of France is Paris and the capital of Germany is", "ends mid-sentence"),
        ("Photosynthesis converts light energy into chemical energy stored in the", "'the'"),
        ("Paris is the capital of France, and", "'and'"),
        ("First, install the package. Then, configure the client,", "ends with a comma"),
        ("To install it, run the following command:", "ends with a colon"),
        ("It is a state-of-the-", "mid-word (trailing hyphen)"),
        ("北京是中国的首都。这个函数在找不到元素时返回一个", "ends mid-sentence"),
        ("東京は日本の首都です。とても大きな都市で", "ends mid-sentence"),
        ("Die Hauptstadt von Deutschland ist Berlin. Der Zug fährt jeden Morgen um 7 Uhr und", "'und'"),
        ("La capitale de la France est Paris. Le musée est fermé le lundi et", "'et'"),
        ("La capital de España es Madrid. El museo está cerrado los lunes y", "'y'"),
        ("Here is the plan.\n\n## Next steps", "ends with a heading"),
        ("- One thing.\n- Another thing.\n- A third thing that stops", "lacks the closing punctuation"),
        ("Shopping list:\n\n- Apples\n- Pears\n- ", "ends with an empty list item"),
        ("Steps:\n\n1. Install\n2. Configure\n3", "ends with an empty list item"),
        ("Here are the main points:\n\n- Caching the result avoids recomputing", "ends mid-sentence"),
        ("| Model | Price |\n|---|---|\n| gpt | $1.25 |\n| deepseek | $0.2", "last table row is cut off"),
        ("| Model | Price | Region |\n|---|---|---|\n| gpt | $1.25 |", "fewer cells than the header"),
        ("| Model | Price |\n|---|---|", "a table with no rows"),
        ("Comparison:\n\n| Model | Price |", "a table header with no rows"),
        ("def area(r):\n    pi = 3.14159\n    return pi *", "code ends in the middle of an expression"),
        ("def area(r):\n    if r < 0:", "code ends with a block opener"),
        ("import os\nimport sys\n\ndef main(argv: list[str]) -> None", "inside a 'def' statement"),
        ("const a = 1;\nconst b = 2;\nconst c = compute(a, b)", "lacks the ';'"),
        ('x = 1\nname = "unfinished', "unterminated string"),
        ("x = compute()\ny = x + 1  # fall back to the", "code comment stops mid-sentence"),
        ("function area(r) {\n  const pi = 3.14;\n  return pi * r", "unbalanced brackets: '{'"),
        ("const a = 1;\nconst total", "inside a 'const' declaration"),
        ("async function getTotal", "inside a 'function' statement"),
        ("try:\n    x = 1\nexcept", "code ends on the keyword 'except'"),
        ("Intro.\n\n- **Speed:** fast.\n- **", "ends with an empty list item"),
        ("Some code:\n\n```js\nf();\n```\n\n**", "stray formatting mark"),
        ("Acme Corp\n123 Main Street\nand then the", "'the'"),
        ("The setting is documented\nin the reference and can\nbe changed at any time", "ends mid-sentence"),
    ],
)
def test_each_heuristic_fires(text: str, reason: str) -> None:
    verdict = detect(text, "stop")
    assert verdict.kind == "suspected", verdict
    assert any(reason in r for r in verdict.reasons), verdict.reasons
    assert 0.0 < verdict.confidence < 1.0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "blank answer in JSON mode"),
        ("    \n   ", "blank answer in JSON mode"),  # DeepSeek replaces invalid JSON with spaces
        ('{"a": 1, "b": [1, 2', "JSON stops before it is complete"),
        ('{"a": 1} trailing words', "JSON output does not parse"),
        ("Sure! Here is the JSON you asked for.", "JSON output does not parse"),
        ('```json\n{"a": 1', "unclosed code fence"),
    ],
)
def test_json_mode(text: str, reason: str) -> None:
    verdict = detect(text, "stop", json_mode=True)
    assert verdict.kind == "suspected"
    assert any(reason in r for r in verdict.reasons), verdict.reasons


@pytest.mark.parametrize(
    "text", ['{"a": 1}', "[1, 2, 3]", ' {"a": {"b": [true, null]}}\n', '```json\n{"a": 1}\n```']
)
def test_json_mode_complete(text: str) -> None:
    assert detect(text, "stop", json_mode=True).kind == "complete"


def test_several_heuristics_raise_the_confidence() -> None:
    one = detect("The answer stops in the", "stop")
    two = detect('The answer (which "stops', "stop")
    assert len(two.reasons) > len(one.reasons)
    assert two.confidence > one.confidence


# -- no false alarms on complete answers ------------------------------------------------------------

COMPLETE = {
    "prose": [
        "The Eiffel Tower was completed in 1889. It was built for the World's Fair in Paris.",
        "Short answer: yes. Longer answer: it depends on how often the data changes.",
        "Happy coding! 🚀",
        "That's a great question! Compound interest means you earn interest on interest. 😊",
        "Let me know if you need anything else :)",
        "Water boils at 100 °C at sea level (212 °F).",
        'As the saying goes, "measure twice, cut once."',
        "The so-called “happy path” is the case where nothing goes wrong.",
        "Is there anything else I can help with?",
        "The meeting is at 3 p.m. in the U.S. office.",
        "Well…",
        "Studies show the effect is small.[1][2]",
        "Yes, it is",
        "I can't access that website, sorry :(",
        "The interval [0, 1) contains 0 but not 1.",
        "Choose one: a) the fast option, b) the cheap option.",
        'He is 6\'2" tall and owns a 27" monitor.',
        "Python 2**10 equals 1024.",
        "Prices went up 5%—again.",
        "That's all.\n\n---",
        "Done.\n\n* * *",
    ],
    "short": [
        "Paris",
        "42",
        "Yes",
        "B",
        "Not enough information",
        "Positive",
        "The Eiffel Tower",
        "巴黎",
        "はい",
    ],
    "markdown": [
        "## Summary\n\nThe migration is done.\n\n## Next steps\n\n"
        "- Update the docs\n- Tell the team\n- Remove the flag",
        "# Title\n\nSome text.\n\n---\n\n*Generated on 2026-01-01*",
        "Here is a comparison:\n\n| Option | Price |\n|--------|-------|\n| A | $1 |\n| B | $2 |",
        "Key facts:\n\n1. It is fast.\n2. It is cheap.\n3. It is reliable.",
        "**Answer:** 42",
        "**Final answer:** $\\boxed{7}$",
        "The answer is \\(x = 7\\)",
        "The sum is:\n\n$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$",
        "> Imagination is more important than knowledge.\n\n— Albert Einstein",
        "Sources:\n\n- https://docs.python.org/3/\n- https://peps.python.org/pep-0008/",
        "See the [official guide](https://docs.python.org/3/tutorial/index.html)",
        "<details>\n<summary>More</summary>\n\nHidden text.\n\n</details>",
        "Requirements:\n\n* Python 3.11 or newer\n* A GitHub account\n"
        "  * with two-factor auth\n  * and an SSH key",
        "1) Open the app. 2) Tap Settings. 3) Done!",
        "#python #llm #devtools",
        "Thanks,\nAlex",
        "Best regards,\nThe Support Team",
        "Roses are red\nViolets are blue\nSugar is sweet\nAnd so are you",
        "The woods are lovely, dark and deep,\nBut I have promises to keep,\nAnd miles to go before I sleep",
        "Acme Corp\n123 Main Street\nSpringfield, IL 62701",
        "# My project\n\nIt does things.\n\n## License\n\nMIT",
        "See the docs.\n\n[1]: https://example.com/docs",
        "Install it:\n\n* from [PyPI](https://pypi.org/project/llmroute/): the released\n  version",
    ],
    "code": [
        "Here's an example:\n\n```python\ndef add(a, b):\n    return a + b\n```",
        "Use this:\n\n```js\nconst x = [1, 2, 3].map((n) => n * 2);\n```\n\nThat doubles every item.",
        "````markdown\n```python\nprint('nested')\n```\n````",
        "Run:\n\n```bash\npip install llmroute\n```\n\nThen import it.",
        "def add(a, b):\n    return a + b",
        "import json\n\n\ndef load(path):\n    with open(path) as fh:\n        return json.load(fh)\n",
        "function add(a, b) {\n  return a + b;\n}\n\nconsole.log(add(1, 2));",
        "SELECT name, email\nFROM users\nWHERE active = true\nORDER BY name;",
        "SELECT name FROM users WHERE id = 1",
        "pip install requests",
        "x = 1  # don't change this\ny = x + 1",
        "body { color: #333; }\n.card { margin: 0 auto; }",
        "name: app\nversion: 1.2.0\ndependencies:\n  - flask\n  - requests",
        "name,age\nAlice,30\nBob,25",
        "<ul>\n  <li>One</li>\n  <li>Two</li>\n</ul>",
    ],
    "json": [
        '{"name": "Ada", "langs": ["en", "fr"], "note": "uses (brackets) and [more]"}',
        "[1, 2, 3]",
        '{"a": 1}\n{"a": 2}\n{"a": 3}',
        'Here is the data:\n\n```json\n{"ok": true}\n```',
        '{\n  "text": "He said \\"hi\\" (twice)",\n  "count": 2\n}',
    ],
    "multilingual": [
        "北京是中国的首都。",
        "这个函数在找不到元素时返回一个空列表。如果还有其他问题，请随时告诉我！",
        "日本の首都は東京です。とても良い質問です！",
        "彼は「明日オフィスで会いましょう」と言いました。",
        "Er sagte: „Wir sehen uns morgen im Büro.“",
        "Die Hauptstadt von Deutschland ist Berlin. Fais-le maintenant.",
        "Comme le dit le proverbe, « petit à petit, l'oiseau fait son nid ».",
        "Pourquoi le programme plante-t-il au démarrage ?",
        "¿Por qué falla la prueba solo en mi ordenador? ¡Es una pregunta excelente!",
        "Como dice el refrán, «más vale tarde que nunca».",
        "감사합니다.",
        "ขอบคุณมากครับ ยินดีที่ได้ช่วยเหลือ",
        "هل يمكنك مساعدتي؟",
        "यह एक अच्छा प्रश्न है।",
    ],
    "lists": [
        "- Apples\n- Bananas\n- Cherries",
        "Tips:\n\n1. Sleep well.\n2. Drink water.\n3. Exercise daily.",
        "- **Speed:** fast.\n- **Cost:** low.\n- **Support:** 24/7.",
        "* Log in to the dashboard\n* Sign up for the newsletter\n* Opt out of tracking",
        "Pros:\n- Fast\n- Cheap\n\nCons:\n- Beta only\n- EU only",
        "- [x] Write tests\n- [ ] Ship it",
        "- Option A\n- Option B\n- Plan C",
    ],
}
CURATED = [(form, text) for form, texts in COMPLETE.items() for text in texts]


@pytest.mark.parametrize(("form", "text"), CURATED, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CURATED)])
def test_complete_answers_are_not_flagged(form: str, text: str) -> None:
    verdict = detect(text, "stop")
    assert verdict.kind == "complete", (form, verdict.reasons)
    assert verdict.reasons == ()


def test_complete_json_in_json_mode() -> None:
    for text in COMPLETE["json"][:2]:
        assert detect(text, "stop", json_mode=True).kind == "complete"


# -- robustness -------------------------------------------------------------------------------------

FINISHES = st.one_of(
    st.none(),
    st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call", "unknown"]),
    st.sampled_from(["end_turn", "max_tokens", "refusal", "pause_turn", "insufficient_system_resource"]),
    st.text(max_size=20),
)
TEXTS = st.one_of(
    st.none(),
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", errors="replace")),
    st.text(alphabet="()[]{}\"'`*#|-:;,.\n \\/<>$~„“”«»「」（）", max_size=200),
)


@settings(max_examples=600, deadline=None)
@given(
    text=TEXTS,
    finish=FINISHES,
    raw=FINISHES,
    json_mode=st.booleans(),
    tool_calls=st.booleans(),
    stream_cut=st.booleans(),
    refusal=st.one_of(st.none(), st.text(max_size=10)),
    output_tokens=st.one_of(st.none(), st.integers(-5, 5000)),
    max_tokens=st.one_of(st.none(), st.integers(-5, 5000)),
    min_expected=st.one_of(st.none(), st.integers(-5, 5000)),
)
def test_never_raises_and_is_stable(
    text: str | None,
    finish: str | None,
    raw: str | None,
    json_mode: bool,
    tool_calls: bool,
    stream_cut: bool,
    refusal: str | None,
    output_tokens: int | None,
    max_tokens: int | None,
    min_expected: int | None,
) -> None:
    def judge() -> Verdict:
        return detect(
            text,
            finish,
            raw_finish_reason=raw,
            stream_cut=stream_cut,
            json_mode=json_mode,
            tool_calls=tool_calls,
            refusal=refusal,
            output_tokens=output_tokens,
            max_tokens=max_tokens,
            min_expected_tokens=min_expected,
        )

    verdict = judge()
    assert verdict == judge()  # same input, same verdict
    assert verdict.kind in ("complete", "length", "content_filter", "refusal", "stream_cut", "suspected")
    assert 0.0 <= verdict.confidence <= 1.0
    assert all(isinstance(r, str) and r for r in verdict.reasons)
    assert not any(r.startswith("not analysed") for r in verdict.reasons)  # no internal error
    assert verdict.truncated is (verdict.kind != "complete")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1))
def test_text_heuristics_never_hit_an_internal_error(text: str) -> None:
    for json_mode in (False, True):
        assert not any(
            r.startswith("not analysed") for r in detect(text, "stop", json_mode=json_mode).reasons
        )


@pytest.mark.parametrize("bad", [b"bytes \xff answer.", 12345, ["a", "list"]])
def test_wrong_types_do_not_raise(bad: object) -> None:
    detect(bad, "stop")  # type: ignore[arg-type]
    detect("text", 42, output_tokens="many", max_tokens=object())  # type: ignore[arg-type]


MB = 1_000_000
HOSTILE: dict[str, Callable[[], str]] = {
    "prose": lambda: "The quick brown fox jumps over the lazy dog. " * (MB // 45) + "and then",
    "one word": lambda: "a" * MB,
    "openers": lambda: "(" * MB,
    "brackets": lambda: "([{" * (MB // 3),
    "escaped quotes": lambda: '\\"' * (MB // 2),
    "quotes": lambda: "\"'`" * (MB // 3),
    "comments": lambda: "/*" * (MB // 2),
    "fences": lambda: "```\n" * (MB // 4) + "x",
    "fence run": lambda: "`" * MB,
    "inline fences": lambda: "a```" * (MB // 4),
    "json nesting": lambda: "[" * MB,
    "json": lambda: json.dumps([{"k": "v" * 20, "n": i} for i in range(MB // 30)])[:-5],
    "list": lambda: "- item\n" * (MB // 7),
    "table": lambda: "| a | b |\n" * (MB // 10),
    "code": lambda: "x = f(y);\n" * (MB // 10),
    "blank lines": lambda: "\n" * MB,
    "cjk": lambda: "北京是中国的首都" * (MB // 8),
    "lines of one char": lambda: "a\n" * (MB // 2),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_one_megabyte_in_bounded_time(name: str) -> None:
    text = HOSTILE[name]()
    for json_mode in (False, True):
        start = time.perf_counter()
        detect(text, "stop", json_mode=json_mode)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"{name}: {elapsed:.2f}s for {len(text)} characters (quadratic?)"


# -- the policy -------------------------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = TruncationPolicy()
    assert policy.action(Verdict("complete")) == "return"
    assert policy.action(Verdict("length")) == "return"
    assert policy.action(Verdict("content_filter")) == "fallback"
    assert policy.action(Verdict("refusal")) == "return"
    assert policy.action(Verdict("stream_cut")) == "raise"
    assert policy.action(Verdict("suspected", ("x",), 0.7)) == "return"


def test_policy_overrides_and_confidence_threshold() -> None:
    policy = TruncationPolicy(length="retry_larger", suspected="continue", min_confidence=0.8)
    assert policy.action(Verdict("length")) == "retry_larger"
    assert policy.action(Verdict("suspected", ("x",), 0.7)) == "return"
    assert policy.action(Verdict("suspected", ("x",), 0.9)) == "continue"


def test_policy_rejects_unknown_actions() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        TruncationPolicy(length="retry")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_confidence"):
        TruncationPolicy(min_confidence=2)
