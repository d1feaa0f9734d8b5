"""Fact detection: the memorizable spans (amounts, dates, codes, names...) of a document.

A fact is `{id, doc_id, start, end, text, kind, value, context}`: a character span of the
document's text, its kind, a normalized value, and the sentence it sits in (the context that a
question or a search query is made from).

Rules are precompiled regular expressions tried in priority order: the recipe's own `patterns`
first, then its `terms`, then the built-in kinds in `PATTERNS` order; where two spans overlap, the
earlier rule wins (then the leftmost span). No NER model runs here (spaCy's models are not on PyPI
and GLiNER needs a hub download), so proper names come from rules plus the recipe's term lists:
honorifics ("Dr. Jane Smith"), organization suffixes ("Acme Holdings Inc", "First Union Bank"),
capitalized product names in quotes ('Blue Account'), and runs of two or more capitalized words
that do not start a sentence or sit in a heading ("the Green Rewards Card"). Given the names learned
from the corpus (`names=`, cogcore.curate.names), those replace the last, imprecise rule: on hand
labels of banking passages, every kind on, exact-span precision and recall went from 0.86 / 0.88
(capitalized runs) to 0.97 / 0.97 (benchmarks/fact_labels.py, the held-out set).

Normalized `value` per kind (JSON-ready; None where a span does not parse, e.g. "Feb 30"):

    money      {"amount": 1250.0, "currency": "USD"}   $ US$ USD dollars cents -> USD; € EUR; £ GBP; ¥ JPY;
               k/m/million/billion applied; "50 cents" -> 0.5 USD
    percent    2.5 (always in percent: "25 basis points" -> 0.25)
    date       ISO 8601: "2024-03-15"; "March 2024" -> "2024-03"; "March 5" -> "--03-05";
               slashes are read month/day/year unless the first number is over 12
    time       "14:30" (24-hour; seconds kept when given)
    duration   {"n": 30, "unit": "day"}; ranges add "max": "3-5 business days" ->
               {"n": 3, "max": 5, "unit": "business_day"}
    quantity   {"n": 5, "unit": "GB"}
    number     1250 or 2.5
    others     the text, whitespace collapsed (terms: the term as the recipe spells it)

    from cogcore.curate.facts import FactDetector
    detector = FactDetector(kinds=["money", "date"], patterns={"ticket": r"\\bTCK-\\d+\\b"},
                            terms={"product": ["Blue Account", "Green Account"]})
    facts = detector.detect({"id": "d1", "text": "..."})

All rules are compiled once, at import (the recipe's at construction); on the tau2 banking corpus
(698 documents, 817k characters) detection runs at ~900 documents/s (~1 MB/s) on one CPU core.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping

from cogcore.curate.trie_regex import literal_alternation

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:million|billion|thousand|mn|bn|[kKmMbB])"
_CODES = r"(?:USD|EUR|GBP|CHF|JPY|CAD|AUD|INR|CNY)"
_UNITS = (
    r"(?:(?:business |calendar |working )?(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|"
    r"quarters?|decades?)|(?:billing|statement) cycles?)(?:\(s\))?"
)
_DASH = r"[-\u2010\u2011\u2012\u2013]"  # "6-month", "6‑month" (U+2011), "3–5"
_GAP = r"[ \t\u00a0\u202f]"  # a space, a no-break space, a narrow one
_QUANTITY_UNITS = (
    r"(?:KB|MB|GB|TB|kg|g|grams?|mg|lbs?|km|m|cm|mm|mi|miles?|ft|feet|L|ml|kWh|W|V|Hz|GHz|MHz|°[CF]|points?)"
)
# Labels that name a code outright ("ticket 4821") and labels that need "number"/"#" after them
# ("account number 1234": a bare "account 12" is more often a count).
_STRONG_LABELS = r"(?:ticket|invoice|routing|confirmation|tracking|SKU|serial|version|ref|ID)"
_WEAK_LABELS = r"(?:account|acct|case|order|reference|policy|claim|transaction|member|customer|card|loan)"
_QUALIFIER = r"(?:number|no\.?|num|ID|code)"
# The labels' first letters, as a cheap test before the case-insensitive alternation (halves its time).
_LABEL_INITIALS = (
    "["
    + "".join(sorted({w[0].lower() + w[0].upper() for w in re.findall(r"\w+", _STRONG_LABELS + _WEAK_LABELS)}))
    + "]"
)
_CODE = r"(?P<fact>(?=[\w.-]{3,})(?=[\w.-]*\d)[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?)"
_AM_PM = r"(?:[aApP]\.[mM]\.|[aApP][mM]\b)"  # "p.m." keeps its dot; "PM." leaves the sentence's
_HONORIFIC = r"(?:Mr|Mrs|Ms|Mx|Dr|Prof)"
_CAP = rf"(?!{_HONORIFIC}\b)[A-Z][\w'&-]*"  # a capitalized word; an honorific opens a name of its own
_ORG_SUFFIX = r"(?:Inc|Ltd|LLC|LLP|PLC|Bank|Corp|Corporation|Company|Co|GmbH|AG|Group|Holdings|Credit Union)"

# Kind -> pattern, in priority order (earlier kinds win overlaps). A group named `fact` marks the
# span where the rule needs context around it (the code after "ticket", the name inside quotes).
PATTERNS: dict[str, re.Pattern] = {
    "url": re.compile(r"https?://[^\s)>\]]+[^\s)>\].,;:!?'\"]"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "money": re.compile(
        rf"(?:(?<![\w$])(?:US|CA|AU|C|A)?[$€£¥]\s?(?>{_NUM})(?:\s?{_SCALE}\b)?(?!(?:{_DASH}|{_GAP})(?:{_UNITS}|{_QUANTITY_UNITS})(?!\w))"
        rf"|\b{_CODES}\s?(?:{_NUM})(?:\s?{_SCALE}\b)?"
        rf"|\b(?:{_NUM})(?:\s?(?:million|billion|thousand))?\s?(?:{_CODES}|dollars?|euros?|cents?)\b)"
    ),
    "percent": re.compile(rf"\b(?:{_NUM})\s?(?:%|percent\b|per cent\b|basis points?\b|bps\b)"),
    "date": re.compile(
        rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}"
        rf"|{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?"
        rf"|\d{{1,2}}(?:st|nd|rd|th)?(?: of)? {_MONTHS}(?:,? \d{{4}})?"
        rf"|{_MONTHS} \d{{4}})\b"
    ),
    "time": re.compile(
        rf"\b(?:\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\s?{_AM_PM})?|\d{{1,2}}\s?{_AM_PM})(?:\s(?:UTC|GMT|[ECMP][SD]?T)\b)?"
    ),
    "duration": re.compile(rf"\b(?:{_NUM})(?:{_GAP}?(?:{_DASH}|to){_GAP}?(?:{_NUM}))?(?:{_DASH}|{_GAP}){_UNITS}(?!\w)"),
    "quantity": re.compile(rf"\b(?:{_NUM})\s?{_QUANTITY_UNITS}(?!\w)"),
    "identifier": re.compile(
        rf"\b(?={_LABEL_INITIALS})(?i:{_STRONG_LABELS}(?:\s+{_QUALIFIER})?|{_WEAK_LABELS}\s*(?:{_QUALIFIER}|#))"
        rf"\s*(?:[:#]\s*)?{_CODE}"
        r"|\b(?=[\w.-]*\d)(?=[\w.-]*[A-Za-z])[A-Za-z]\w*(?:[_.-]\w+)+\b"
        r"|#\d{3,}\b|\b[A-Z]{2,}-?\d{2,}\b|\bv\d+(?:\.\d+)+\b"
        # digit groups joined by hyphens ("555-0100", "1234-5678-9012"), not a span of years
        r"|\b(?=[\d-]{7,})(?!(?:19|20)\d\d-(?:19|20)\d\d\b)\d{2,}(?:-\d{2,})+\b"
        # vanity phone numbers: "1-800-RHO-BANK"
        r"|\b1-8\d\d-[A-Z\d]{2,}(?:-[A-Z\d]{2,})+\b"
        r"|\b(?=[A-Z0-9]*[A-Z])(?=[A-Z0-9]*\d)[A-Z0-9]{5,}\b"
    ),
    "name": re.compile(
        rf"(?P<honorific>\b{_HONORIFIC}\.?[ \t]+[A-Z][\w'-]+(?:[ \t]+[A-Z][\w'-]+)*)"
        rf"|(?P<org>\b(?:{_CAP}[ \t]+){{1,4}}{_ORG_SUFFIX}\b(?:[ \t]+of[ \t]+{_CAP}(?:[ \t]+{_CAP})*)?)"
        r"|(?P<quoted>(?:[\"“]|(?<!\w)['‘])(?P<fact>[A-Z][^\"”'’\n.!?]{1,48}?)(?:[\"”]|['’](?!\w)))"
        rf"|(?P<caps>\b{_CAP}(?:[ \t]+(?:(?:of|and|for|de|la|van|von|the|&)[ \t]+)?{_CAP})+)"
    ),
    "number": re.compile(rf"(?<![\w.])(?:{_NUM})(?:st|nd|rd|th)?(?![\w]|\.\d)"),
}
DEFAULT_KINDS = tuple(PATTERNS)
# With names learned from the corpus (cogcore.curate.names), they replace the bare capitalized-run rule.
_NAME_WITHOUT_CAPS = re.compile(PATTERNS["name"].pattern.rsplit("|(?P<caps>", 1)[0])
_NAME_RULES = (PATTERNS["name"], _NAME_WITHOUT_CAPS)
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]*")

# Line-opening "1." / "2)" / "(2)" and inline "1) ... 2) ..." / "(a) ... (2)" enumerations: numbering, not facts.
_LIST_MARKER = re.compile(r"(?m)^\s*\(?\d{1,2}[.)]\s|(?<![\w(.,$])\d{1,2}\)(?=\s)|(?<![\w$])\(\d{1,2}\)")
_FIRST_DIGIT = re.compile(r"\d")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])|\n+")
# Title Case by convention, so capitalized runs there say nothing: headings and **bold labels**.
HEADING = re.compile(r"(?m)^[ \t]*#.*$|\*\*[^*\n]+\*\*")
_NO_WORDS = re.compile(r"[^A-Za-z]*")  # list markers, quotes, brackets: what may precede a sentence's first word
# Capitalized words that open a phrase without being part of a name ("The Gold Card" -> "Gold Card").
LEADING_WORDS = frozenset(
    "The A An This That These Those Our Your Their Its His Her My Each Every Any All No Some If When "
    "For In On At To From By With And Or But Use Call Contact Visit See Ask Open".split()
)


class FactDetector:
    """Find fact spans of the chosen kinds, plus the recipe's own patterns and term lists."""

    def __init__(
        self,
        kinds: Iterable[str] = DEFAULT_KINDS,
        min_number: float = 0,
        patterns: Mapping[str, str] | None = None,
        terms: Mapping[str, list[str]] | None = None,
        names: Iterable[str] | None = None,
    ):
        kinds = list(kinds)
        unknown = set(kinds) - set(PATTERNS)
        if unknown:
            raise ValueError(f"unknown fact kinds {sorted(unknown)}; allowed: {', '.join(PATTERNS)}")
        self.kinds = [k for k in PATTERNS if k in kinds]
        # Bare numbers below this (list items, "one of 2 options") carry little to memorize.
        self.min_number = min_number
        self.rules: list[tuple[str, re.Pattern, dict[str, str] | None]] = []  # (kind, regex, term spellings)
        for kind, source in (patterns or {}).items():
            _check_kind(kind, "patterns")
            try:
                self.rules.append((kind, re.compile(source), None))
            except re.error as e:
                raise ValueError(f"facts.patterns.{kind}: not a valid regular expression ({e})") from None
        for kind, words in (terms or {}).items():
            _check_kind(kind, "terms")
            spellings = {w.strip().lower(): w.strip() for w in words if w.strip()}
            if spellings:
                alternation = "|".join(re.escape(w) for w in sorted(spellings.values(), key=len, reverse=True))
                self.rules.append((kind, re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE), spellings))
        learned = {n for n in names or () if n.strip()}
        if learned and "name" in self.kinds:  # as written: "Silver" is a name, "silver" is a metal
            # A trie, not `a|b|c`: thousands of names tried one by one at every character were 95%
            # of curation's last phase (trie_regex.py).
            alternation = literal_alternation(learned)
            self.rules.append(("name", re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])"), None))
        builtin = {**PATTERNS, "name": _NAME_WITHOUT_CAPS} if learned else PATTERNS
        self.rules += [(kind, builtin[kind], None) for kind in self.kinds]

    def detect(self, doc: dict) -> list[dict]:
        text = doc["text"]
        sentences = sentence_bounds(text)
        starts = [s for s, _ in sentences]
        facts = []
        for start, end, kind, value in self._spans(text, starts):
            s0, s1 = sentences[bisect.bisect_right(starts, start) - 1]
            facts.append(
                {
                    "id": f"{doc['id']}:{start}",
                    "doc_id": doc["id"],
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                    "kind": kind,
                    "value": value,
                    "context": text[s0:s1].strip(),
                }
            )
        return facts

    def _spans(self, text: str, sentence_starts: list[int]) -> list[tuple[int, int, str, object]]:
        markers = {m.start() + _FIRST_DIGIT.search(m.group()).start() for m in _LIST_MARKER.finditer(text)}
        headings = [m.span() for m in HEADING.finditer(text)]
        taken = bytearray(len(text))
        found = []
        for kind, pattern, spellings in self.rules:
            for m in pattern.finditer(text):
                span = _fact_span(m)
                if pattern in _NAME_RULES:
                    span = _name_span(m, span, text, sentence_starts, headings)
                if span is None or span[0] == span[1]:
                    continue
                start, end = span
                if any(taken[start:end]):
                    continue
                value_text = text[start:end]
                if pattern is PATTERNS["number"] and not self._worth_keeping(value_text, start, markers):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                value = spellings.get(value_text.lower(), value_text) if spellings else _normalize(kind, value_text)
                found.append((start, end, kind, value))
        return _join_names(sorted(found, key=lambda f: (f[0], f[1])), text)

    def _worth_keeping(self, value: str, start: int, list_markers: set[int]) -> bool:
        if start in list_markers:
            return False
        return _int_or_float(value) >= self.min_number


def _join_names(found: list[tuple], text: str) -> list[tuple]:
    """Names side by side, one space apart, are one name ("Bronze" + "Saver": "Bronze Saver")."""
    out: list[tuple] = []
    for start, end, kind, value in found:
        if out and kind == "name" == out[-1][2] and text[out[-1][1] : start] == " ":
            start = out.pop()[0]
            value = text[start:end]
        out.append((start, end, kind, value))
    return out


def _check_kind(kind: str, field: str) -> None:
    if not _KIND_NAME.fullmatch(kind):
        raise ValueError(f"facts.{field}: kind {kind!r} must be lowercase letters, digits and _ (e.g. 'ticket_id')")


def _fact_span(m: re.Match) -> tuple[int, int]:
    if "fact" in m.re.groupindex and m.group("fact") is not None:
        return m.span("fact")
    return m.span()


def _name_span(
    m: re.Match, span: tuple[int, int], text: str, sentence_starts: list[int], headings: list[tuple[int, int]]
) -> tuple[int, int] | None:
    """Where a name rule's match is a name: leading function words dropped ("The Gold Card" ->
    "Gold Card"); a bare capitalized run is refused in headings, and at a sentence start unless it
    has three words or more (two could be sentence case: "Savings Accounts earn ...")."""
    if m.lastgroup in ("honorific", "quoted"):
        return span
    start, end = span
    words = list(re.finditer(r"\S+", text[start:end]))
    stripped = 0
    while words and words[0].group() in LEADING_WORDS:
        words.pop(0)
        stripped += 1
    if len(words) < 2:  # an organization needs a name before its suffix ("Your Bank" is not one)
        return None
    if m.lastgroup == "caps" and (
        _inside(headings, start) or (not stripped and len(words) < 3 and _opens_sentence(text, start, sentence_starts))
    ):
        return None
    return start + words[0].start(), end


def _opens_sentence(text: str, pos: int, sentence_starts: list[int]) -> bool:
    s0 = sentence_starts[bisect.bisect_right(sentence_starts, pos) - 1]
    before = text[s0:pos]
    return _NO_WORDS.fullmatch(before) is not None or before.rstrip().endswith(":")


def _inside(bounds: list[tuple[int, int]], pos: int) -> bool:
    i = bisect.bisect_right(bounds, (pos, float("inf"))) - 1  # the last span starting at or before pos
    return i >= 0 and pos < bounds[i][1]


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        bounds.append((start, m.start()))
        start = m.end()
    bounds.append((start, len(text)))
    return bounds


# --- normalized values --------------------------------------------------------------------------

_NUMBER = re.compile(_NUM)
_SYMBOLS = {
    "$": "USD",
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
}
_SCALES = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}
_UNIT_NAMES = {
    "seconds": "second",
    "minutes": "minute",
    "hours": "hour",
    "days": "day",
    "weeks": "week",
    "months": "month",
    "years": "year",
    "quarters": "quarter",
    "decades": "decade",
    "cycles": "cycle",
}


def _normalize(kind: str, text: str) -> object:
    """The kind's normalized value; None where the span does not parse (a recipe pattern may give
    a built-in kind a span its normalizer cannot read)."""
    try:
        return NORMALIZERS.get(kind, _collapse)(text)
    except (ValueError, AttributeError, IndexError):
        return None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _int_or_float(text: str) -> int | float:
    text = re.sub(r"(?<=\d)(?:st|nd|rd|th)$", "", text)  # an ordinal's number
    x = _number(text)
    return int(x) if x.is_integer() and "." not in text else x


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _money(text: str) -> dict | None:
    m = _NUMBER.search(text)
    if not m:
        return None
    head, tail = text[: m.start()].strip(), text[m.end() :].strip().lower()
    amount = _number(m.group())
    scale = re.match(r"(million|billion|thousand|mn|bn|[kmb])\b", tail)
    if scale:
        amount *= _SCALES[scale.group(1)]
    currency = _SYMBOLS.get(head) or (head if head else None)
    if currency is None:
        word = tail.split()[-1] if tail.split() else ""
        currency = {
            "dollar": "USD",
            "dollars": "USD",
            "euro": "EUR",
            "euros": "EUR",
            "cent": "USD",
            "cents": "USD",
        }.get(word, word.upper() or None)
        if word.startswith("cent"):
            amount /= 100
    return {"amount": round(amount, 6), "currency": currency}


def _percent(text: str) -> float:
    value = _number(_NUMBER.search(text).group())
    return round(value / 100, 6) if re.search(r"basis|bps", text) else value


def _date(text: str) -> str | None:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).isoformat()
        if "/" in text:
            a, b, y = (int(p) for p in text.split("/"))
            month, day = (b, a) if a > 12 else (a, b)
            year = y + 2000 if y < 100 else y
            return dt.date(year, month, day).isoformat()
        month = _MONTH_NAMES.index(re.search(r"[A-Z][a-z]{2}", text).group().lower()) + 1
        numbers = [int(n) for n in re.findall(r"\d+", text)]
        year = next((n for n in numbers if n >= 1000), None)
        day = next((n for n in numbers if n < 1000), None)
        if day is None:
            return f"{year:04d}-{month:02d}"
        dt.date(year or 2000, month, day)  # validates the day (2000 is a leap year: Feb 29 passes)
        return f"{year:04d}-{month:02d}-{day:02d}" if year else f"--{month:02d}-{day:02d}"
    except (ValueError, AttributeError):
        return None


def _time(text: str) -> str | None:
    m = re.match(r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s?(?:([ap])\.?m)?", text.lower())
    hour, minute, second, half = int(m.group(1)), int(m.group(2) or 0), m.group(3), m.group(4)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "p" else 0)
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}" + (f":{second}" if second else "")


def _duration(text: str) -> dict:
    numbers = _NUMBER.findall(text)
    words = re.findall(r"[a-z]+", text.lower().removesuffix("(s)"))  # "1 month(s)": month, not "s"
    unit = _UNIT_NAMES.get(words[-1], words[-1])
    if len(words) > 1 and words[-2] in ("business", "calendar", "working", "billing", "statement"):
        unit = f"{words[-2]}_{unit}"
    value = {"n": _int_or_float(numbers[0]), "unit": unit}
    if len(numbers) > 1:
        value["max"] = _int_or_float(numbers[1])
    return value


def _quantity(text: str) -> dict:
    m = _NUMBER.search(text)
    return {"n": _int_or_float(m.group()), "unit": text[m.end() :].strip()}


NORMALIZERS: dict[str, Callable[[str], object]] = {
    "money": _money,
    "percent": _percent,
    "date": _date,
    "time": _time,
    "duration": _duration,
    "quantity": _quantity,
    "number": _int_or_float,
    "email": str.lower,
}
