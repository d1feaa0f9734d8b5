"""Fact detection: the memorizable spans (amounts, dates, durations, identifiers...) of a document.

A fact is `{id, doc_id, start, end, text, kind, context}`: a character span of the document's
text, its kind, and the sentence it sits in (the context a question or a search query is made
from). Rules are regular expressions tried in priority order; where two spans overlap, the earlier
kind wins, then the longer span. This is the rule-based detector; model-based and NER detectors
are planned on top of the same record.

    from cogcore.curate.facts import FactDetector
    facts = FactDetector(kinds=["money", "date"]).detect(doc)
"""

from __future__ import annotations

import re

_MONTHS = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNITS = (r"(?:business |calendar |working )?(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|"
          r"quarters?|decades?)")

# Kind -> pattern, in priority order (earlier kinds win overlaps).
PATTERNS: dict[str, re.Pattern] = {
    "url": re.compile(r"https?://[^\s)>\]]+[^\s)>\].,;:!?]"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "money": re.compile(
        rf"(?:[$€£¥]\s?(?:{_NUM})(?:\s?(?:million|billion|thousand|[kKmMbB])\b)?"
        rf"|\b(?:{_NUM})\s?(?:USD|EUR|GBP|dollars?|euros?|cents?)\b)"),
    "percent": re.compile(rf"\b(?:{_NUM})\s?(?:%|percent\b|per cent\b|basis points\b|bps\b)"),
    "date": re.compile(
        rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}"
        rf"|{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTHS}(?: \d{{4}})?"
        rf"|{_MONTHS} \d{{4}}|\d{{1,2}}:\d{{2}}(?:\s?[ap]\.?m\.?)?)\b"),
    "duration": re.compile(rf"\b(?:{_NUM})(?:-| )(?:to \d+ )?{_UNITS}\b"),
    "quantity": re.compile(
        rf"\b(?:{_NUM})\s?(?:KB|MB|GB|TB|kg|g|mg|lbs?|km|m|cm|mm|mi|miles?|ft|feet|L|ml|kWh|W|V|Hz|GHz|MHz|°[CF])\b"),
    "identifier": re.compile(
        r"\b(?=[\w.-]*\d)(?=[\w.-]*[A-Za-z])[A-Za-z][\w]*(?:[_.-][\w]+)+\b"
        r"|#\d{3,}\b|\b[A-Z]{2,}-?\d{2,}\b|\bv\d+(?:\.\d+)+\b"),
    "number": re.compile(rf"(?<![\w.])(?:{_NUM})(?![\w]|\.\d)"),
}
_LIST_MARKER = re.compile(r"(?m)^\s*\d{1,2}[.)]\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\[])|\n+")


class FactDetector:
    """Find fact spans of the chosen kinds in a document."""

    def __init__(self, kinds: list[str] | tuple[str, ...] = tuple(PATTERNS), min_number: float = 2):
        unknown = set(kinds) - set(PATTERNS)
        if unknown:
            raise ValueError(f"unknown fact kinds {sorted(unknown)}; allowed: {', '.join(PATTERNS)}")
        self.kinds = [k for k in PATTERNS if k in kinds]
        # Bare numbers below this (list items, "one of 2 options") carry little to memorize.
        self.min_number = min_number

    def detect(self, doc: dict) -> list[dict]:
        text = doc["text"]
        spans = self._spans(text)
        sentences = _sentence_bounds(text)
        facts = []
        for start, end, kind in spans:
            s0, s1 = _enclosing(sentences, start)
            facts.append({"id": f"{doc['id']}:{start}", "doc_id": doc["id"], "start": start, "end": end,
                          "text": text[start:end], "kind": kind, "context": text[s0:s1].strip()})
        return facts

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        markers = {m.start() + len(m.group()) - len(m.group().lstrip()) for m in _LIST_MARKER.finditer(text)}
        taken = bytearray(len(text))
        found = []
        for kind in self.kinds:
            for m in PATTERNS[kind].finditer(text):
                start, end = m.span()
                if any(taken[start:end]) or (kind == "number" and not self._worth_keeping(m.group(), start, markers)):
                    continue
                taken[start:end] = b"\x01" * (end - start)
                found.append((start, end, kind))
        return sorted(found)

    def _worth_keeping(self, value: str, start: int, list_markers: set[int]) -> bool:
        if start in list_markers:
            return False
        return float(value.replace(",", "")) >= self.min_number


def _sentence_bounds(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        bounds.append((start, m.start()))
        start = m.end()
    bounds.append((start, len(text)))
    return bounds


def _enclosing(bounds: list[tuple[int, int]], pos: int) -> tuple[int, int]:
    lo, hi = 0, len(bounds) - 1
    while lo < hi:  # binary search for the sentence that starts at or before pos
        mid = (lo + hi + 1) // 2
        if bounds[mid][0] <= pos:
            lo = mid
        else:
            hi = mid - 1
    return bounds[lo]
