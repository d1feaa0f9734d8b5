"""Boilerplate lines: lines repeated across many documents (headers, footers, navigation, notices).

Two phases, so that phase 1 runs in parallel workers and only small arrays travel:

1. `line_hashes(doc)` per document: the 64-bit hashes of its distinct lines (8 bytes a line);
   a `LineCounter` adds them up into a document frequency per line, then
   `frequent(min_docs, min_fraction)` names the lines that are boilerplate.
2. `BoilerplateRemover(those hashes)` is an ordinary mapper step that deletes those lines from
   every document, records how many in `meta["boilerplate_lines_removed"]`, and drops a document
   left empty (`only_boilerplate`).

A line is keyed by its text with surrounding whitespace stripped, inner runs of whitespace
collapsed and letters lower-cased (as C4's line deduplication does), so "Contact  us" and
"contact us" are one line. Lines shorter than `min_line_chars` (10 by default) or without a
letter are never counted nor removed: they are mostly structure ("---", "| --- | --- |", "```",
"Yes.", "## FAQ"), which repeats everywhere without being boilerplate, and deleting it would
break tables, code blocks and lists. Repeated section headings ("## Overview", "| Item | Value |")
are longer and do count, so thresholds must stay well above how often a heading recurs: in the
tau2 banking KB the most common heading ("## Best practices") is in 4.6% of the documents.

    counter = LineCounter()
    for doc in docs:
        counter.add(line_hashes(doc))
    remover = BoilerplateRemover(counter.frequent(min_docs=5, min_fraction=0.1))
    kept, dropped = remover.run(docs)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from cogcore.curate.steps import at_most_one_blank_line

MIN_LINE_CHARS = 10
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class BoilerplateSettings:
    """A line is boilerplate when it is in at least `min_docs` documents and `min_fraction` of them all."""

    min_docs: int
    min_fraction: float


def line_key(line: str, min_line_chars: int = MIN_LINE_CHARS) -> int | None:
    """64-bit hash of a line's normalized text; None for a line too short or without a letter."""
    text = " ".join(line.split()).lower()
    if len(text) < min_line_chars or not _LETTER.search(text):
        return None
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def line_hashes(doc: dict | str, min_line_chars: int = MIN_LINE_CHARS) -> np.ndarray:
    """Sorted distinct hashes (uint64) of a document's lines: phase 1, small and picklable."""
    text = doc["text"] if isinstance(doc, dict) else doc
    keys = {line_key(line, min_line_chars) for line in text.split("\n")}
    keys.discard(None)
    return np.array(sorted(keys), dtype=np.uint64)


class LineCounter:
    """Document frequency of every line hash, kept as two sorted arrays (hash, count).

    Memory: 12 bytes per distinct line (8-byte hash, 4-byte count), plus the not-yet-merged
    hashes (8 bytes each, at most `buffer_lines`), and about three times that while merging. Ten
    million distinct lines take about 120 MB. Counters built over shards combine with `merge`.
    """

    def __init__(self, buffer_lines: int = 1 << 22):
        self.n_docs = 0
        self.buffer_lines = buffer_lines
        self._keys = np.empty(0, dtype=np.uint64)
        self._counts = np.empty(0, dtype=np.uint32)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, hashes: np.ndarray) -> None:
        """Count one document, given its distinct line hashes (`line_hashes`)."""
        self.n_docs += 1
        if len(hashes):
            self._pending.append(np.asarray(hashes, dtype=np.uint64))
            self._pending_n += len(hashes)
            if self._pending_n >= self.buffer_lines:
                self._compact()

    def merge(self, other: LineCounter) -> None:
        """Add the counts of another counter (one built over another shard)."""
        other._compact()
        self._compact()
        self.n_docs += other.n_docs
        self._keys, self._counts = _sum_by_key(
            np.concatenate([self._keys, other._keys]), np.concatenate([self._counts, other._counts])
        )

    def frequent(self, min_docs: int, min_fraction: float) -> np.ndarray:
        """Hashes of lines found in at least `min_docs` documents and `min_fraction` of them all."""
        self._compact()
        need = max(min_docs, min_fraction * self.n_docs - 1e-9)  # tolerance: 0.3 * 30 is 9, not 9.000001
        return self._keys[self._counts >= need]

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct hashes, number of documents holding each)."""
        self._compact()
        return self._keys, self._counts

    def __len__(self) -> int:
        self._compact()
        return len(self._keys)

    def _compact(self) -> None:
        if not self._pending:
            return
        pending = np.concatenate(self._pending)
        self._pending, self._pending_n = [], 0
        self._keys, self._counts = _sum_by_key(
            np.concatenate([self._keys, pending]), np.concatenate([self._counts, np.ones(len(pending), np.uint32)])
        )


def _sum_by_key(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(keys) == 0:
        return keys, counts
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(counts, starts).astype(np.uint32)


class BoilerplateRemover:
    """Delete the given boilerplate lines from each document; drop documents left empty.

    Every document gets `meta["boilerplate_lines_removed"]` (0 when nothing was removed). Blank
    lines left doubled by a removal are collapsed, as `Normalize` would. Only a document that the
    removal empties is dropped; one that came in empty is left to the length filter.
    """

    name = "boilerplate_lines"

    def __init__(self, hashes, min_line_chars: int = MIN_LINE_CHARS):
        self.hashes = {int(h) for h in np.asarray(hashes, dtype=np.uint64).tolist()}
        self.min_line_chars = min_line_chars

    def run(self, docs):
        kept, dropped = [], []
        for doc in docs:
            text, removed = self.clean(doc["text"])
            doc["meta"]["boilerplate_lines_removed"] = removed
            if removed and not text:
                dropped.append((doc, "only_boilerplate"))
                continue
            doc["text"] = text
            kept.append(doc)
        return kept, dropped

    def clean(self, text: str) -> tuple[str, int]:
        """(text without the boilerplate lines, how many lines were removed)."""
        if not self.hashes:
            return text, 0
        lines = text.split("\n")
        keep = [line for line in lines if line_key(line, self.min_line_chars) not in self.hashes]
        removed = len(lines) - len(keep)
        if not removed:
            return text, 0
        return at_most_one_blank_line("\n".join(keep)), removed
