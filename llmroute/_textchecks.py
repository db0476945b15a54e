# ruff: noqa: RUF001  # the heuristics name CJK and typographic punctuation on purpose
"""The silent-truncation heuristics behind `llmroute.truncation.detect`: text that says an answer
was cut although its stop reason says it finished (unclosed fences, brackets and quotes, JSON that
does not parse, an end mid-sentence...). Each check appends `(reason, weight)` to a list. Linear time.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from itertools import chain
from typing import Final, Literal

# -- silent truncation heuristics ------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TERMINAL: Final = frozenset(".!?…。！？｡．‼⁉؟।။።~～")
_CLOSERS: Final = ")]}\"'”’“»›」』）】〉》*_` \t"
_SOFT: Final = {
    **dict.fromkeys(",，、", "a comma"),
    **dict.fromkeys(";；", "a semicolon"),
    **dict.fromkeys(":：", "a colon"),
    **dict.fromkeys("–—", "a dash"),
    **{"-": "a hyphen", "&": "'&'", "+": "'+'", "=": "'='", "/": "a slash"},
}
# Words that (almost) never end a sentence: articles, conjunctions, possessives, prepositions that are
# not also particles ("log in", "sign up" and German separable verbs end sentences; these do not).
_CONNECTIVES: Final = _words(
    """a an the and or but nor of to for with from into onto upon than as by at because although though
    whereas unless until via per its their our your my very during among including
    und oder aber der die den dem des ein eine einen einem einer dass weil für von zum zur im
    le la les un une des du de et ou mais pour par avec dans sur au aux dont
    el los las una unos unas del y o pero para por con en al sin sobre entre"""
)
_EMOTICONS: Final = (":)", ":-)", ";)", ":D", ":P", "^^", "<3", "xD", "XD", ":(", ":-(", ":'(")
_SENTENCE_BREAKS: Final = (". ", "! ", "? ", "。", "！", "？")
_NO_PUNCTUATION_SCRIPTS: Final = (("\u0e00", "\u0eff"), ("\u1780", "\u17ff"))  # Thai, Lao, Khmer
_LIST: Final = re.compile(r"[ \t]*(?:[-*+•‣◦]|\d{1,3}[.)])(?:[ \t]+|$)")
_HEADING: Final = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_RUN: Final = re.compile(r"`+|~+")
_INLINE_CODE: Final = re.compile(r"`[^`\n]*`")
# String literals (closed or not: an unclosed one runs to the end of its line, so no position is
# scanned twice) and comments, for bracket counting in code.
_CODE_STRINGS: Final = re.compile(
    r"\"(?:[^\"\\\n]|\\.)*(?P<dq>\")?|'(?:[^'\\\n]|\\.)*(?P<sq>')?|`[^`]*(?P<bq>`)?"
    r"|(?<![:\w])//[^\n]*|#(?![\w{\[(])[^\n]*|/\*.*?(?:\*/|\Z)",
    re.DOTALL,
)
_LITERAL_PART: Final = re.compile(r"[\w.+-]{0,40}")
_LAST_WORD: Final = re.compile(r"(?<![-'’])[^\W\d_]+$")
_CITATION: Final = re.compile(r"(?:\[\^?\d{1,3}\])+$")
_URL_END: Final = re.compile(r"(?:https?://|www\.)\S+$")
_OPENERS: Final = "([{（【［｛〔"
_CLOSE_BRACKETS: Final = ")]}）】］｝〕"
_BRACKETS: Final = re.compile(r"[(\[{（【［｛〔)\]}）】］｝〕]")
_CODE_KEYWORDS: Final = _words(
    """def class import from return if elif else for while try except finally with async await raise
    yield pass const let var function export public private static fn func package use struct impl
    match case switch print console.log"""
)
_CODE_STARTS: Final = _words(
    "def class import from function const let var async export try print console.log SELECT INSERT UPDATE"
)
_CODE_OPERATORS: Final = (" = ", "==", "!=", "=>", "->", "+=", "-=", "&&", "||")
_CALL: Final = re.compile(r"[\w.$]+\(.*\)")
_CODE_MODIFIERS: Final = _words("async export default public private protected static")
_CODE_HEADERS: Final = _words("def class if elif else for while try except finally with function switch")
_CODE_DANGLING: Final = _words(
    "def class if elif else for while import from with function const let var new and or not in is "
    "lambda async await try except case switch"
)

Found = list[tuple[str, float]]


def _heuristics(text: str, json_mode: bool, found: Found) -> None:
    t = text.strip()
    if json_mode:
        _check_json_mode(t, found)
    elif not t:
        found.append(("empty answer although the provider reported a normal stop", 0.8))
    elif t[0] in "{[" and (state := _json_state(t)) != "invalid":
        if state == "cut":
            found.append(("JSON stops before it is complete", 0.95))
    else:
        _check_markup(t, found)


def _check_json_mode(t: str, found: Found) -> None:
    if not t:
        found.append(("blank answer in JSON mode (DeepSeek blanks out invalid JSON)", 0.9))
        return
    if t.startswith(("```", "~~~")):  # some models fence JSON even in JSON mode
        body = t.split("\n", 1)[1].rstrip() if "\n" in t else ""
        if body.endswith(t[:3]):
            t = body[:-3].strip()
        else:
            found.append(("unclosed code fence", 0.95))
            t = body
    state = _json_state(t)
    if state == "cut":
        found.append(("JSON stops before it is complete", 0.95))
    elif state == "invalid":
        found.append(("JSON output does not parse", 0.85))


def _json_state(t: str) -> Literal["valid", "cut", "invalid"]:
    """Valid JSON, JSON that stops before it is complete, or text that is not JSON."""
    try:
        json.loads(t)
    except json.JSONDecodeError as e:
        if e.msg.startswith("Unterminated string"):
            return "cut"
        if e.msg != "Extra data" and _LITERAL_PART.fullmatch(t[e.pos : e.pos + 41]):
            return "cut"  # stops at the end, or inside a final number or true/false/null
        return "invalid"
    except (RecursionError, ValueError):  # nested too deep for the parser
        return "cut" if _unclosed(_CODE_STRINGS.sub(" ", t))[0] else "invalid"
    return "valid"


def _unclosed(t: str) -> tuple[int, str]:
    """How many brackets are left open at the end, and the last one. A stray closer (the ')' of
    '1)' or of the half-open '[0, 1)') closes nothing; any closer closes the innermost opener."""
    if not any(c in t for c in _OPENERS):
        return 0, ""
    stack: list[str] = []
    for c in _BRACKETS.findall(t):
        if c in _OPENERS:
            stack.append(c)
        elif stack:
            stack.pop()
    return len(stack), (stack[-1] if stack else "")


def _fences(t: str) -> tuple[int, list[tuple[int, int]]]:
    """Closed code blocks as (start, end) spans, and where an unclosed one starts (-1 if none)."""
    spans: list[tuple[int, int]] = []
    opener: tuple[str, int, int] | None = None
    pos, n = 0, len(t)
    ticks, tildes = t.find("```"), t.find("~~~")
    while True:
        if 0 <= ticks < pos:  # each kind's next position is searched again only once passed
            ticks = t.find("```", pos)
        if 0 <= tildes < pos:
            tildes = t.find("~~~", pos)
        i = min(ticks, tildes) if ticks >= 0 and tildes >= 0 else max(ticks, tildes)
        if i < 0:
            break
        run = _RUN.match(t, i)
        pos = run.end() if run else i + 3
        start = t.rfind("\n", max(0, i - 40), i) + 1
        if (start == 0 and i > 40) or t[start:i].strip(" \t"):
            continue  # not at the start of a line
        end = t.find("\n", pos)
        end = n if end < 0 else end
        mark, info, pos = t[i], t[pos:end], end
        if opener is None:
            if mark != "`" or "`" not in info:  # a backtick fence's info string has no backticks
                opener = (mark, pos - i - len(info), start)
        elif mark == opener[0] and pos - i - len(info) >= opener[1] and not info.strip():
            spans.append((opener[2], end))
            opener = None
    return (opener[2] if opener else -1), spans


def _lines_back(t: str, end: int, limit: int) -> Iterator[str]:
    """Up to `limit` lines of t before position `end` (the start of a line), nearest first."""
    while end > 0 and limit > 0:
        start = t.rfind("\n", 0, end - 1) + 1
        yield t[start : end - 1]
        end, limit = start, limit - 1


def _check_markup(t: str, found: Found) -> None:
    open_at, spans = _fences(t) if ("```" in t or "~~~" in t) else (-1, [])
    if open_at >= 0:
        found.append(("unclosed code fence", 0.95))
    prose = t
    if spans or open_at >= 0:  # brackets and quotes inside code blocks are the code's business
        bounds = [0, *(i for span in spans for i in span), open_at if open_at >= 0 else len(t)]
        prose = "\n".join(t[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2))
    last_start = t.rfind("\n") + 1
    if open_at < 0 and not spans and _looks_like_code(t, last_start):
        depth, last = _unclosed(_CODE_STRINGS.sub(" ", t))
        if depth:
            found.append((f"unbalanced brackets: {last!r} is never closed", 0.85))
        _check_code_end(t, last_start, found)
        return
    # A cut leaves its open bracket or quote in the last paragraph: read only that (and not all
    # of a huge one), so a stray mark earlier in a long answer is no alarm.
    para = prose[prose.rfind("\n\n") + 1 :]
    if len(para) > 4000:
        para = para[para.find("\n", len(para) - 4000) + 1 :]
    _check_pairs(_INLINE_CODE.sub("", para) if "`" in para else para, found)
    if open_at < 0 and not (spans and spans[-1][1] == len(t)):  # not inside or right after code
        _check_end(t, last_start, found)


def _opening(text: str, mark: str) -> bool:
    """Whether the last `mark` opens something: it follows a space or an opener and text follows it."""
    i = text.rfind(mark)
    before = text[i - 1] if i > 0 else " "
    return (before.isspace() or before in "([{") and bool(text[i + len(mark) :].strip())


def _check_pairs(para: str, found: Found) -> None:
    if ":(" in para or ":-(" in para:
        para = para.replace(":-(", "").replace(":(", "")
    depth, last = _unclosed(para)
    if depth:
        found.append((f"unbalanced brackets: {last!r} is never closed", 0.8))
    if '"' in para and para.count('"') % 2 and _opening(para, '"'):
        found.append(('unclosed quotation mark (")', 0.6))
    if "„" in para:  # German „…“: “ closes
        if para.rfind("„") > max(para.rfind("“"), para.rfind("”")):
            found.append(("unclosed quotation mark („)", 0.75))
    elif "“" in para and para.rfind("“") > para.rfind("”"):
        found.append(("unclosed quotation mark (“)", 0.75))
    for opener, closer in (("«", "»"), ("「", "」"), ("『", "』"), ("‘", "’")):
        if opener in para and para.rfind(opener) > para.rfind(closer):
            found.append((f"unclosed quotation mark ({opener})", 0.75))
    if "**" in para and para.count("**") % 2 and _opening(para, "**"):
        found.append(("unclosed bold text (**)", 0.6))
    if "`" in para and para.count("`") % 2:
        found.append(("unclosed inline code (`)", 0.6))
    if "$$" in para and para.count("$$") % 2:
        found.append(("unclosed math block ($$)", 0.7))


def _tail(s: str) -> tuple[Literal["terminal", "soft", "bare"], str]:
    """How a line of prose ends: with closing punctuation (or an emoji), with something that cannot
    end a sentence (and what), or bare."""
    if s.endswith(_EMOTICONS) or ("://" in s[-300:] and _URL_END.search(s[-300:])):
        return "terminal", ""  # a smiley; a link
    core = s.rstrip(_CLOSERS).rstrip("\ufe0f\u200d")
    if core.endswith("]"):
        core = _CITATION.sub("", core).rstrip(_CLOSERS)  # "... as shown.[1]"
    if not core:
        return "bare", ""
    ch = core[-1]
    if ch in _TERMINAL:
        return "terminal", ""
    if ch == ";" and (core.count(" ") < 6 or any(c in core for c in "(=[{")):
        return "terminal", ""  # code or SQL; prose rarely ends an answer on a semicolon
    if ch in _SOFT:
        if ch == "-" and len(core) > 1 and core[-2].isalpha():
            return "soft", "ends mid-word (trailing hyphen)"
        return "soft", f"ends with {_SOFT[ch]}"
    m = _LAST_WORD.search(core[-40:])
    word = m.group() if m else ""
    if word.lower() in _CONNECTIVES and not (len(word) == 1 and word.isupper()):  # "Plan A" is fine
        return "soft", f"ends with {word!r}, a word that does not end a sentence"
    if ord(ch) >= 0x2100 and unicodedata.category(ch) in ("So", "Sk", "Sm"):
        return "terminal", ""  # an emoji or a symbol closes the thought
    return "bare", ""


_BARE = "ends mid-sentence: no closing punctuation"


def _check_end(t: str, last_start: int, found: Found) -> None:
    line = t[last_start:]
    s = line.strip()
    if _HEADING.match(line) and last_start:
        found.append(("ends with a heading and nothing under it", 0.7))
    elif "|" in s and (s.startswith("|") or s.count("|") >= 2):
        _check_table(t, last_start, s, found)
    elif s in ("---", "***", "___", "- - -", "* * *") or (len(s) > 3 and not s.strip(s[0]) and s[0] in "-*_"):
        return  # a horizontal rule
    elif m := _LIST.match(line):
        _check_list_item(t, last_start, line, s[len(m.group().strip()) :].strip(), found)
    elif s.isdigit() and len(s) <= 3 and _LIST.match(next(_lines_back(t, last_start, 1), "")):
        found.append(("ends with an empty list item", 0.8))  # "1. First\n2"
    else:
        s = s.lstrip("> ")  # a block quote
        if s and not s.strip("*_`~"):
            found.append(("ends with a stray formatting mark", 0.7))  # "**" of a bold label, cut
            return
        kind, why = _tail(s) if s else ("terminal", "")
        if kind == "soft":
            found.append((why, 0.8))
        elif kind == "bare" and not _bare_is_fine(t, last_start, s):
            found.append((_BARE, 0.7))


def _bare_is_fine(t: str, last_start: int, s: str) -> bool:
    """A last line with no closing punctuation that can still end an answer."""
    words = s.split()
    short = last_start == 0 and len(words) <= 3 and len(s) <= 40 and _cjk(s) <= 4
    if short and not any(mark in s for mark in _SENTENCE_BREAKS):
        return True  # a short answer: "Paris", "42 km", "Not enough information", "巴黎"
    if s.endswith(("$", "\\]", "\\)", ">", "}", "]")) or (s[0] in "*_" and s[-1] == s[0] and len(s) > 2):
        return True  # math, a tag, JSON lines; a line in italics or bold (a caption, a note)
    if (s.endswith(")") and "](" in s[-300:]) or (s[0] == "[" and "]: " in s):
        return True  # a markdown link: "[ISC](./LICENSE)"; a link reference: "[1]: https://…"
    if all(w.startswith(("#", "@")) for w in words) or (s[0] in "—–" and len(words) <= 6):
        return True  # hashtags; a quotation's attribution or a signature: "— Albert Einstein"
    if any(lo <= s[-1] <= hi for lo, hi in _NO_PUNCTUATION_SCRIPTS):
        return True  # Thai, Lao and Khmer do not mark the end of a sentence
    label, colon, value = s.rpartition(":")
    if colon and value.strip() and len(value.split()) <= 3 and "," not in value and len(label.split()) <= 3:
        return True  # "**Final answer:** 42"
    raw = list(_lines_back(t, last_start, 3))
    previous = [line.strip() for line in raw]
    if len(words) <= 4 and previous and previous[0].endswith((",", "，")):
        return True  # a sign-off: "Best regards,\nAlice"
    identifiers = len(words) <= 2 and all(w.isupper() or any(c.isdigit() for c in w) for w in words)
    if identifiers and len(previous) >= 2 and not previous[0] and _HEADING.match(previous[1]):
        return True  # a section of one identifier: "## License\n\nMIT"
    if (
        t[last_start] in " \t"
        and s[0].islower()
        and previous
        and (_LIST.match(raw[0]) or raw[0][:1] in " \t")
    ):
        return True  # a list item wrapped onto an indented line
    # Line-broken text (a poem, an address, CSV): short lines that do not end sentences and do not
    # continue one another (a wrapped paragraph's next line starts in lower case).
    lines = [s, *previous[:2]]
    return len(lines) == 3 and all(
        p and len(p) <= 60 and _tail(p)[0] != "terminal" and (not p[0].islower() or " " not in p)
        for p in lines
    )


def _cjk(s: str) -> int:
    return sum(c >= "\u3000" for c in s[:200])


def _check_list_item(t: str, last_start: int, line: str, content: str, found: Found) -> None:
    if not content.strip("*_`~ "):
        found.append(("ends with an empty list item", 0.8))
        return
    kind, why = _tail(content)
    if kind != "bare":
        if kind == "soft":
            found.append((why, 0.8))
        return
    indent = len(line) - len(line.lstrip())
    siblings = punctuated = 0
    item_end = ""
    for previous in _lines_back(t, last_start, 60):
        if not previous.strip():
            continue
        item_end = item_end or previous
        depth = len(previous) - len(previous.lstrip())
        if _LIST.match(previous) and depth <= indent:
            if depth < indent:
                break  # the parent item
            siblings += 1
            punctuated += _tail(item_end.strip())[0] == "terminal"
            item_end = ""
            if siblings >= 8:
                break
        elif depth <= indent and not _LIST.match(previous):
            break  # the paragraph before the list
    if siblings and punctuated * 4 >= siblings * 3:
        found.append(("the last list item lacks the closing punctuation the others have", 0.7))
    elif not siblings and not indent and len(content.split()) + _cjk(content) // 2 >= 2:
        found.append((_BARE, 0.6))  # a list of one item that stops mid-sentence


def _check_table(t: str, last_start: int, row: str, found: Found) -> None:
    rows = [row]
    for previous in _lines_back(t, last_start, 2000):
        if "|" not in previous:
            break
        rows.append(previous.strip())
    header = rows[-1]
    if len(rows) == 1:
        if row.startswith("|") and row.endswith("|"):
            found.append(("a table header with no rows", 0.6))
        elif row.startswith("|"):
            found.append(("the last table row is cut off", 0.8))
    elif len(rows) == 2 and not row.strip("|:- "):
        found.append(("a table with no rows", 0.7))
    elif header.endswith("|") and not row.endswith("|"):
        found.append(("the last table row is cut off", 0.9))
    elif row.count("|") < header.count("|"):
        found.append(("the last table row has fewer cells than the header", 0.8))


def _looks_like_code(t: str, last_start: int) -> bool:
    """Whether the answer ends in unfenced code: most of its last lines look like code, none like prose."""
    last = t[last_start:]
    if (last[-1] in _TERMINAL and not any(c in last for c in "(=;{")) or last[0] == "|" or _LIST.match(last):
        return False  # the usual cases: the last line ends a sentence, is a table row, a list item
    code = neutral = seen = 0
    for line in chain((t[last_start:],), _lines_back(t, last_start, 11)):
        s = line.strip()
        if not s:
            continue
        seen += 1
        if s.startswith(("#", "//", "/*", "* ")) or _LIST.match(line):
            neutral += 1  # a comment or a heading, a list item
            continue
        if s[-1] in ".!?" and s.count(" ") >= 4 and not s.endswith(("..", "()")):
            return False  # a sentence
        first = s.split(None, 1)[0].split("(", 1)[0].rstrip(":")
        code += (
            s[-1] in ";{}"
            or first in _CODE_KEYWORDS
            or any(op in s for op in _CODE_OPERATORS)
            or s[0] == "@"
            or (s[-1] in ",([" and line[:1] in " \t")  # inside a multi-line call or literal
            or bool(_CALL.fullmatch(s))
        )
    if seen == 1:
        return t.split(None, 1)[0].split("(", 1)[0] in _CODE_STARTS
    return code >= 2 and code * 10 >= (seen - neutral) * 7


def _check_code_end(t: str, last_start: int, found: Found) -> None:
    line = t[last_start:]
    last = None
    for last in _CODE_STRINGS.finditer(line):  # noqa: B007  # the last match is the one we want
        pass
    if last is not None and last.end() >= len(line.rstrip()):
        mark = last.group()[0]
        if (
            mark in "\"'`"
            and last.group("dq") is None
            and last.group("sq") is None
            and last.group("bq") is None
        ):
            found.append(("the last line of code has an unterminated string", 0.8))
            return
        if mark in "#/" and (comment := _tail(last.group().lstrip("#/ ")))[0] == "soft":
            found.append((f"a code comment stops mid-sentence ({comment[1]})", 0.6))
            return
    s = _CODE_STRINGS.sub(" ", line).strip()
    if not s:
        return
    words = s.split()
    while len(words) > 1 and words[0] in _CODE_MODIFIERS:
        del words[0]
    first, end = words[0], s[-1]
    if end in "=+-*/%&|^<>,.\\" and not (end == ">" and "<" in s):  # not a tag
        found.append(("code ends in the middle of an expression", 0.8))
    elif end == ":":
        found.append(("code ends with a block opener and no body", 0.8))
    elif words[-1] in _CODE_DANGLING:
        found.append((f"code ends on the keyword {words[-1]!r}", 0.7))
    elif first in ("const", "let", "var") and "=" not in s:
        found.append((f"code stops inside a {first!r} declaration", 0.7))
    elif first in _CODE_HEADERS and end not in ":{;)" and ": " not in s[s.rfind(")") + 1 :]:
        found.append((f"code stops inside a {first!r} statement", 0.7))
    elif end not in ";{}" and not line.lstrip().startswith(("//", "#", "/*", "*")):
        previous = [p.rstrip() for p in _lines_back(t, last_start, 8) if p.strip()]
        if any(p.endswith(";") for p in previous):
            found.append(("the last statement lacks the ';' the others end with", 0.6))
