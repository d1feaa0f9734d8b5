"""Curation steps: small classes with one method, in the manner of DataTrove.

A step's `run(docs)` takes a batch of document records and returns `(kept, dropped)`, where
`dropped` is a list of `(doc, reason)` with snake_case reasons. Filters only implement
`keep(doc) -> True | reason`. A step that must see every batch (unique ids) keeps its state across
batches; deduplication is decided over the whole corpus at once (dedup.py, global_steps.py).
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
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
    return at_most_one_blank_line("\n".join(lines))


def at_most_one_blank_line(text: str) -> str:
    """Runs of blank lines collapsed to one, outer whitespace stripped: how every rewriting step
    leaves a text."""
    return _BLANKS.sub("\n\n", text).strip()


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
