"""What a passage states, as values that two passages can be compared on: the fact gate reads a
source and its rewrite with this and compares the two.

A passage's `Statement` holds
- its facts, each keyed by kind and normalized value as the fact detector reads them ("$1,250.00"
  and "1250 dollars" are both `("money", 1250, "USD")`; "March 3, 2024" and "2024-03-03" both
  `("date", "2024-03-03")`); an all-digit identifier is keyed as a number ("ticket #48213" and "48213"
  say the same), names compare case-insensitively;
- its loose digits: digit runs that no detected fact covers ("2-5x", "P2P", a code too short for a
  rule), so that a value the detector misses still cannot change unseen;
- its capitalized runs ("the Platinum Plus Card"): a rewrite's run that the source never writes is
  a name it made up, even where the detector knows only the corpus's learned names.

List markers ("1.", "2)", "(3)" opening a line; "1) ... 2) ..." inline) are structure in any text, as
the detector has them. A numbered label opening a line ("Q1:", "Question 2:", "**Step 3.**"; "A1"
anywhere) is the rewrite's own numbering: a Q&A or a list numbers its items as it likes, so a value
written only as a label's number is never invented (`labels_only`), and never keeps a source's
value either ("Question 2:" does not keep "2 free withdrawals") unless the source writes the same
label ("## Step 5: ..." kept by "Step 5:").

    statement = read_statement(text, detector)   # detector: .detect({"id", "text"}) -> fact dicts
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# List markers: numbering in any text (the detector leaves them out of its facts too).
LIST_MARKERS = re.compile(
    r"(?m)^[ \t>*•-]*\(?\d{1,2}[.)][ \t]"  # "1. ", "2) ", "(3) " opening a line
    r"|(?<![\w(.,$])\d{1,2}\)(?=\s|$)|(?<![\w$])\(\d{1,2}\)"  # inline "1) ... 2) ...", "(2)"
)
# Numbered labels: the numbering a rewrite adds as it likes ("Q1:", "Question 2:", "**Step 3.**", "A1").
_LABELS = r"(?:Q|A|Question|Answer|Step|Fact|Item|Point|Part|Rule|Section|Tip|Note|Example)"
NUMBERED_LABELS = re.compile(
    rf"(?im)^[ \t>*#•-]*(?:\*\*)?{_LABELS}[ \t]?\d{{1,2}}(?=[ \t]*(?:[:.)\u2013-]|\*\*|$))"  # opening a line
    r"|(?-i:\b[QA]\d{1,2}\b)"  # "Q1", "A12" anywhere
    r"|^[ \t>*#•-]*\d{1,2}(?=:[ \t])"  # "4: " opening a line
)
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[a-z]+")
# A run of capitalized words, as the detector's name rule spells one, allowing "of", "and", "&".
_CAPITALIZED_RUN = re.compile(r"\b[A-Z][\w'&-]*(?:[ \t]+(?:(?:of|and|for|the|&)[ \t]+)?[A-Z][\w'&-]*)+")
_HEADING = re.compile(r"(?m)^[ \t]*#.*$|\*\*[^*\n]+\*\*")
_FUNCTION_WORDS = frozenset(
    "The A An This That These Those Our Your Their Its His Her My Each Every Any All No Some If When For In On At "
    "To From By With And Or But Use Call Contact Visit See Ask Open Q Question Answer Step Fact Item Note".split()
)
_CALENDAR = frozenset(
    "January February March April May June July August September October November December "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
)


@dataclass(frozen=True)
class Value:
    """One stated value: its comparison key, and where it was first written (for the report)."""

    key: tuple
    kind: str
    text: str
    context: str  # the sentence it sits in
    number: float | None = None  # its magnitude, for telling a changed unit ("5 days" -> "5 hours")

    def to_json(self) -> dict:
        return {"kind": self.kind, "text": self.text, "key": list(self.key), "context": self.context}


@dataclass(frozen=True)
class Statement:
    text: str
    facts: dict[tuple, Value]  # key -> first occurrence, numbered labels included
    labels_only: frozenset[tuple]  # keys written only as a numbered label's number ("Step 3:")
    label_of: dict[tuple, str]  # key -> the label it is written in ("step 3"), where it is
    label_phrases: frozenset[str]  # every numbered label, lower case ("step 3", "q1")
    loose_digits: dict[str, Value]  # digit runs (no leading zeros) outside facts, list markers and labels
    digits: frozenset[str]  # every digit run outside list markers and labels, in a fact or not
    names: dict[str, Value]  # capitalized runs (lower case) -> first occurrence
    sentences: tuple[tuple[frozenset[str], dict[tuple, Value]], ...] = ()  # (words, its values) per sentence


def read_statement(text: str, detector) -> Statement:
    """The facts, loose digits, labels and capitalized runs of `text`, list markers left out."""
    markers = [m.span() for m in LIST_MARKERS.finditer(text)]
    labels = {m.span(): _label_phrase(m.group()) for m in NUMBERED_LABELS.finditer(text)}
    covered = bytearray(len(text))
    facts: dict[tuple, Value] = {}
    by_sentence: dict[str, dict[tuple, Value]] = {}
    label_of, outside_labels = {}, set()
    for f in detector.detect({"id": "passage", "text": text}):
        covered[f["start"] : f["end"]] = b"\x01" * (f["end"] - f["start"])
        label = _inside(labels, f["start"]) if _inside(labels, f["end"] - 1) else None  # "Step 3", "Q14"
        if f["kind"] == "number" and _inside(markers, f["start"]):
            continue  # "0)" closing a text: the detector's enumerator rule wants a space after it
        key = fact_key(f)
        value = Value(key, f["kind"], f["text"], f.get("context", ""), _magnitude(f))
        facts.setdefault(key, value)
        by_sentence.setdefault(value.context, {}).setdefault(key, value)
        if label is None:
            outside_labels.add(key)
        else:
            label_of.setdefault(key, label)
    loose, digits = {}, set()
    for m in _DIGITS.finditer(text):
        if _inside(markers, m.start()) or _inside(labels, m.start()):
            continue
        run = m.group().lstrip("0") or "0"
        digits.add(run)
        if not any(covered[m.start() : m.end()]):
            loose.setdefault(run, Value(("digits", run), "digits", m.group(), _line(text, m.start()), float(run)))
    return Statement(
        text=text,
        facts=facts,
        labels_only=frozenset(facts) - outside_labels,
        label_of=label_of,
        label_phrases=frozenset(labels.values()),
        loose_digits=loose,
        digits=frozenset(digits),
        names=_capitalized_runs(text),
        sentences=tuple((words(context), values) for context, values in by_sentence.items()),
    )


def fact_key(fact: dict) -> tuple:
    """A fact's comparison key: (kind, normalized value), so that equal values written differently
    compare equal and a changed unit, currency or digit does not."""
    kind, value, text = fact["kind"], fact["value"], fact["text"]
    if value is None:  # a span the normalizer could not read ("Feb 30"): compare as written
        return (kind, " ".join(text.split()).lower())
    if kind == "money":
        return (kind, _canonical(value["amount"]), value["currency"])
    if kind in ("duration", "quantity"):
        return (kind, _canonical(value["n"]), _canonical(value.get("max")), value["unit"])
    if kind in ("number", "percent"):
        return (kind, _canonical(value))
    if kind == "identifier":
        code = str(value).lstrip("#").lower()
        return ("number", int(code)) if code.isdigit() else (kind, code)
    if kind == "url":
        return (kind, str(value).rstrip("/"))
    return (kind, _plain_name(str(value)) if kind == "name" else str(value).lower())


def written_in(phrase: str, text: str) -> bool:
    """Is `phrase` written in `text` as whole words, case aside? (A name the detector found on one
    side may sit where its rules do not look on the other: a sentence's first words, a heading.)"""
    pattern = r"(?<![\w-])" + re.escape(_plain_name(phrase)) + r"(?:'s|s|es)?(?![\w-])"
    return re.search(pattern, text.lower()) is not None


def words(sentence: str) -> frozenset[str]:
    """A sentence's words, lower case, a plural's or a verb's final "s" dropped ("refunds arrive" ~
    "refund arrives"), digits and punctuation aside."""
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _WORD.findall(sentence.lower()))


def context_overlap(a: str, b: str) -> float:
    """Share of the shorter sentence's words that the other holds (digits aside)."""
    wa, wb = words(a), words(b)
    return len(wa & wb) / min(len(wa), len(wb)) if wa and wb else 0.0


def _canonical(x):
    if isinstance(x, float):
        x = round(x, 6)
        return int(x) if x.is_integer() else x
    return x


def _magnitude(fact: dict) -> float | None:
    value = fact["value"]
    if isinstance(value, dict):
        x = value.get("amount", value.get("n"))
    else:
        x = value if fact["kind"] in ("number", "percent") else None
    return float(x) if isinstance(x, int | float) else None


def _plain_name(name: str) -> str:
    name = " ".join(name.split()).lower()
    return re.sub(r"(?:'s|’s)$", "", name)


def _inside(spans, pos: int):
    """The first span holding `pos` (its value, for a dict of spans), else None."""
    for span in spans:
        if span[0] <= pos < span[1]:
            return spans[span] if isinstance(spans, dict) else span
    return None


def _label_phrase(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower()).strip()


def _line(text: str, pos: int) -> str:
    return text[text.rfind("\n", 0, pos) + 1 : (text.find("\n", pos) + 1 or len(text) + 1) - 1].strip()


def _capitalized_runs(text: str) -> dict[str, Value]:
    """Runs of two or more capitalized words in running text: headings and **bold labels** left
    out, leading function words dropped ("The Gold Card" -> "Gold Card"), acronyms at either end
    dropped ("APY"), and a two-word run that opens a sentence left out (it may be sentence case)."""
    blanked = _HEADING.sub(lambda m: " " * len(m.group()), text)
    runs: dict[str, Value] = {}
    for m in _CAPITALIZED_RUN.finditer(blanked):
        words = list(re.finditer(r"\S+", m.group()))
        dropped = 0
        while words and (words[0].group() in _FUNCTION_WORDS or _acronym(words[0].group())):
            words.pop(0)
            dropped += 1
        while words and _acronym(words[-1].group()):
            words.pop()
        if len(words) < 2 or all(w.group() in _CALENDAR for w in words):
            continue
        if not dropped and len(words) < 3 and _opens_sentence(blanked, m.start()):
            continue
        run = m.group()[words[0].start() : words[-1].end()]
        key = _plain_name(run)
        runs.setdefault(key, Value(("name", key), "name", run, _line(text, m.start())))
    return runs


def _opens_sentence(text: str, pos: int) -> bool:
    """Nothing but markup, numbering or punctuation since the line's start or the last . ! ? : ;"""
    i = pos
    while i > 0 and not text[i - 1].isalpha():
        i -= 1
    gap = text[i:pos]
    return i == 0 or "\n" in gap or any(c in ".!?:;" for c in gap)


def _acronym(word: str) -> bool:
    return len(word) > 1 and word.rstrip("s").isupper()
