"""What a search returns, and the interface every searchable index implements.

`Hit` is one retrieved chunk with its provenance (document, section, character span), its score
and how it was found. `Searcher` is the seam between the search tool and the index behind it:
`SearchIndex` (dense, BM25 or hybrid) implements it, and anything else that implements the same
two methods is usable by the tool, the training-data builder and the evaluation unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk; doc_text[start:end] == text for the document doc_id.

    `score` is on the scale of `mode`: cosine similarity ("dense"), BM25 ("lexical"), reciprocal
    rank fusion ("hybrid") or the reranker's ("rerank"). `dense_rank` and `lexical_rank` are the
    chunk's 1-based ranks in the first-stage lists it was fused from (None: not in that list).
    """

    score: float
    chunk_id: str
    doc_id: str
    source: str
    title: str
    section: str
    start: int
    end: int
    text: str
    mode: str = "dense"
    dense_rank: int | None = None
    lexical_rank: int | None = None

    @classmethod
    def from_chunk(
        cls,
        chunk: dict,
        score: float,
        mode: str = "dense",
        dense_rank: int | None = None,
        lexical_rank: int | None = None,
    ) -> Hit:
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
            mode=mode,
            dense_rank=dense_rank,
            lexical_rank=lexical_rank,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Searcher(Protocol):
    """Anything the search tool can query: best hits first."""

    def search(self, query: str, k: int = 5) -> list[Hit]: ...

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]: ...
