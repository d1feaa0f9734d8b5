"""The training split of the curated corpus as train.cpt reads it: each document with its facts,
read from curate/docs.jsonl and facts.jsonl a shard at a time, never the whole corpus at once.

`CuratedIndex` is one pass over each file that keeps, per training document, only its id, source,
`meta.upsample` and where its line and its facts' lines lie (byte offsets; curate writes a
document's facts together, in document order, so that is one range each). The training order
(the select stage's choice, its mixture's resampling, rebalancing's repeats, the curriculum) is
worked out on those ids alone, by the same functions as on whole documents, and `StreamedCorpus`
reads the documents back in that order. `ListedCorpus` serves the steps that rewrite documents
across the whole split (canaries, the Toolformer filter), which hold it in memory as they choose.

    index = CuratedIndex.build(run / "curate", "train")
    corpus = StreamedCorpus(index, order=range(len(index)))
    for doc, facts, calls in corpus.records(): ...
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from cogcore.train.cpt_data import PlannedCall, Record


class CuratedIndex:
    """Where each document of one split, and each of its facts, lies in curate's files."""

    def __init__(self, docs_path: Path, facts_path: Path):
        self.docs_path, self.facts_path = Path(docs_path), Path(facts_path)
        self.ids: list[str] = []
        self.sources: list[str] = []
        self.upsample = array("l")
        self.offsets = array("q")
        self.fact_ranges: dict[str, list[list[int]]] = {}  # doc id -> [[start, end), ...] in facts.jsonl

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, curate_dir: Path, split: str) -> CuratedIndex:
        index = cls(Path(curate_dir) / "docs.jsonl", Path(curate_dir) / "facts.jsonl")
        interned: dict[str, str] = {}  # a few sources, repeated by every document
        for offset, line in _lines(index.docs_path):
            doc = json.loads(line)
            if doc["meta"]["split"] != split:
                continue
            index.ids.append(doc["id"])
            index.sources.append(interned.setdefault(doc.get("source", ""), doc.get("source", "")))
            index.upsample.append(doc["meta"].get("upsample", 1))
            index.offsets.append(offset)
        wanted = set(index.ids)
        for offset, line in _lines(index.facts_path):
            doc_id = json.loads(line)["doc_id"]
            if doc_id in wanted:
                ranges = index.fact_ranges.setdefault(doc_id, [])
                if ranges and ranges[-1][1] == offset:
                    ranges[-1][1] = offset + len(line)  # the next fact of the same document
                else:
                    ranges.append([offset, offset + len(line)])
        return index

    def stubs(self, positions: Iterable[int]) -> list[dict]:
        """{id, source, pos} per position: what ordering by id and source needs of a document."""
        return [{"id": self.ids[p], "source": self.sources[p], "pos": p} for p in positions]

    def read(self, positions: Iterable[int]) -> Iterator[tuple[dict, list[dict]]]:
        """(document, its facts in file order) at each position, read from the files."""
        with open(self.docs_path, "rb") as docs, open(self.facts_path, "rb") as facts:
            for p in positions:
                docs.seek(self.offsets[p])
                doc = json.loads(docs.readline())
                ranges = self.fact_ranges.get(doc["id"], ())
                yield doc, [json.loads(x) for start, end in ranges for x in _read(facts, start, end)]


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of each non-blank line."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield offset, line
            offset += len(line)


def _read(f, start: int, end: int) -> list[bytes]:
    f.seek(start)
    return [x for x in f.read(end - start).splitlines() if x.strip()]


class StreamedCorpus:
    """The training documents in `order` (positions in the index, repeats allowed), read as they go."""

    def __init__(self, index: CuratedIndex, order: Iterable[int]):
        self.index, self.order = index, array("q", order)

    def groups(self) -> list[str]:
        return sorted({self.index.sources[p] for p in self.order})

    def count(self, group: str | None = None) -> int:
        return len(self.order) if group is None else sum(self.index.sources[p] == group for p in self.order)

    def records(self, group: str | None = None) -> Iterator[Record]:
        positions = self.order if group is None else (p for p in self.order if self.index.sources[p] == group)
        for doc, facts in self.index.read(positions):
            yield doc, facts, None


class ListedCorpus:
    """Training documents held in memory (after canaries or the Toolformer filter rewrote them), with
    their facts joined by document id and, where the filter chose them, their calls."""

    def __init__(self, docs: list[dict], facts: list[dict], calls: dict[str, list[PlannedCall]] | None = None):
        self.docs, self.calls = docs, calls
        self.facts_of: dict[str, list[dict]] = defaultdict(list)
        for f in facts:
            self.facts_of[f["doc_id"]].append(f)

    def groups(self) -> list[str]:
        return sorted({d["source"] for d in self.docs})

    def count(self, group: str | None = None) -> int:
        return len(self.docs) if group is None else sum(d["source"] == group for d in self.docs)

    def records(self, group: str | None = None) -> Iterator[Record]:
        for doc in self.docs:
            if group is None or doc["source"] == group:
                calls = None if self.calls is None else self.calls.get(doc["id"], [])
                yield doc, self.facts_of.get(doc["id"], []), calls
