"""Curation steps: small classes with one method, in the manner of DataTrove.

A step's `run(docs)` takes a batch of document records and returns `(kept, dropped)`, where
`dropped` is a list of `(doc, reason)` with snake_case reasons. Filters only implement
`keep(doc) -> True | reason`. Global steps (exact dedup) keep their state across batches.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import re
import unicodedata
from typing import Protocol

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b]+")
_BLANKS = re.compile(r"\n{3,}")


class Step(Protocol):
    name: str

    def run(self, docs: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]: ...


class Normalize:
    """Unicode NFC, unified newlines, runs of spaces collapsed, at most one blank line in a row."""

    name = "normalize"

    def run(self, docs):
        for doc in docs:
            doc["text"] = normalize_text(doc["text"])
        return docs, []


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).rstrip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


class Filter(ABC):
    """Base for filters: subclasses implement `keep(doc)` returning True or a drop reason."""

    name = "filter"

    @abstractmethod
    def keep(self, doc: dict) -> bool | str: ...

    def run(self, docs):
        kept, dropped = [], []
        for doc in docs:
            verdict = self.keep(doc)
            (kept.append(doc) if verdict is True else dropped.append((doc, verdict)))
        return kept, dropped


class LengthFilter(Filter):
    """Drop empty documents and documents shorter than `min_chars`."""

    name = "length_filter"

    def __init__(self, min_chars: int):
        self.min_chars = min_chars

    def keep(self, doc):
        n = len(doc["text"].strip())
        if n == 0:
            return "empty"
        return True if n >= self.min_chars else "too_short"


class ExactDedup:
    """Keep the first document of each normalized text; later copies are `exact_duplicate`.

    The hash is taken over lower-cased, whitespace-collapsed text, so copies that differ only in
    case or spacing count as one. The kept document's id is recorded in the dropped one's meta.
    """

    name = "exact_dedup"

    def __init__(self):
        self.seen: dict[str, str] = {}

    def run(self, docs):
        kept, dropped = [], []
        for doc in docs:
            key = hashlib.sha1(" ".join(doc["text"].lower().split()).encode()).hexdigest()
            if key in self.seen:
                doc["meta"]["duplicate_of"] = self.seen[key]
                dropped.append((doc, "exact_duplicate"))
            else:
                self.seen[key] = doc["id"]
                kept.append(doc)
        return kept, dropped


class DuplicateIdFilter(Filter):
    """Two different documents under one id would make every later stage ambiguous."""

    name = "unique_ids"

    def __init__(self):
        self.ids: set[str] = set()

    def keep(self, doc):
        if doc["id"] in self.ids:
            return "duplicate_id"
        self.ids.add(doc["id"])
        return True
