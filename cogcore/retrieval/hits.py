"""What a search returns, and the interface every searchable index implements.

`Hit` is one retrieved chunk with its provenance (document, section, character span) and score.
`Searcher` is the seam between the search tool and the index behind it: the dense
`SearchIndex` implements it today, and a lexical (BM25) or hybrid index only has to implement the
same two methods for the tool, the training-data builder and the evaluation to use it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk; doc_text[start:end] == text for the document doc_id."""

    score: float
    chunk_id: str
    doc_id: str
    source: str
    title: str
    section: str
    start: int
    end: int
    text: str

    @classmethod
    def from_chunk(cls, chunk: dict, score: float) -> Hit:
        return cls(
            score=float(score),
            chunk_id=chunk["chunk_id"],
            doc_id=chunk["doc_id"],
            source=chunk["source"],
            title=chunk["title"],
            section=chunk["section"],
            start=chunk["start"],
            end=chunk["end"],
            text=chunk["text"],
        )

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Searcher(Protocol):
    """Anything the search tool can query: best hits first."""

    def search(self, query: str, k: int = 5) -> list[Hit]: ...

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]: ...
