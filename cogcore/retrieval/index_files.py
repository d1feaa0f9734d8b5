"""What an index build records about itself: index.json (`IndexInfo`) and stats.json (`IndexStats`).

`build_index` (index.py) writes both; `SearchIndex.load` reads index.json, so that every later stage
searches the way the recipe said the index should be searched:

    info = IndexInfo.read(run / "index" / "index.json")   # None when no build has finished
    info.search.mode, info.embedder_name, info.n_chunks

A file that is cut off, damaged, or written by another version of cogcore (a field missing or of
another type) raises RunFileError naming the file and the stage to re-run; there is no fallback for
an older shape. This module imports no other part of the retrieval package (no faiss, no torch).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from cogcore.io import write_atomic, write_json_atomic
from cogcore.stage_files import RunFileError, check_fields, read_json_object, rerun

INFO_FILE = "index.json"
STATS_FILE = "stats.json"
STAGE = "index"
MODES = ("hybrid", "dense", "lexical")
MODE_ALIASES = {"bm25": "lexical"}


def canonical_mode(mode: str) -> str:
    """The mode's name in MODES ("bm25" -> "lexical"); ValueError for an unknown one."""
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {(*MODES, *MODE_ALIASES)}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class SearchSettings:
    """index.json's `search`: how the index is searched unless a caller says otherwise.

    mode: "hybrid", "dense" or "lexical"; rrf_k and fusion_weights (dense, BM25): how hybrid search
    fuses the two rankings; reranker: a local cross-encoder folder that rescores the first
    `rerank_top` hits, or None.
    """

    mode: str
    rrf_k: int
    fusion_weights: list[float]
    rerank_top: int
    reranker: str | None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.rrf_k < 0 or self.rerank_top < 1:
            raise ValueError(f"rrf_k must be >= 0 and rerank_top >= 1, got {self.rrf_k}, {self.rerank_top}")
        weights = self.fusion_weights
        if len(weights) != 2 or min(weights) < 0 or max(weights) <= 0:
            raise ValueError(f"fusion_weights must be two weights >= 0 (dense, BM25), not both 0; got {weights}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> SearchSettings:
        check_fields(cls, data, where=where, stage=STAGE)
        try:
            return cls(**data)
        except ValueError as e:
            raise RunFileError(f"{where}: search: {e}; {rerun(STAGE)}") from None


@dataclass(frozen=True)
class LexicalInfo:
    """index.json's `lexical`: the BM25 part's folder (in the index folder), tokenizer, library and
    parameters."""

    folder: str
    tokenizer: str
    library: str
    library_version: str
    vocab_size: int
    method: str
    k1: float
    b: float

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> LexicalInfo:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)


@dataclass(frozen=True)
class IndexInfo:
    """index/index.json: what the index holds, what made it, and how to search it."""

    embedder: str  # the embedder's folder, loaded again to embed queries
    embedder_name: str
    dim: int
    n_chunks: int
    n_docs: int
    index_type: str  # flat | hnsw | ivfpq
    metric: str
    chunk_chars: int
    overlap: int
    chunk_header: bool  # chunks embedded and BM25-indexed under their "title / section" header
    max_seq_length: int
    truncated_chunks: int  # chunks longer than the embedder reads, embedded cut short
    lexical: LexicalInfo
    search: SearchSettings
    faiss_params: dict[str, int]  # the index type's knobs (hnsw, ivfpq), saved under its name; {} for flat
    # "static": `embedder` is a model2vec table distilled from `embedder_source` (a sentence-transformers
    # folder) with this fingerprint (cogcore.retrieval.static_embedder). Files from before these
    # fields have none: a transformer.
    embedder_kind: str = "transformer"
    embedder_source: str | None = None
    embedder_fingerprint: str | None = None

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "faiss_params"}
        data.update(lexical=self.lexical.to_json(), search=self.search.to_json())
        if self.faiss_params:
            data[self.index_type] = self.faiss_params  # "hnsw": {"M": 32, "ef_construction": 80, ...}
        return data

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> IndexInfo:
        data = dict(data)
        faiss_params = data.pop(data["index_type"], {}) if isinstance(data.get("index_type"), str) else {}
        check_fields(cls, data, where=where, stage=STAGE, required=_SAVED)
        return cls(
            **{
                **data,
                "lexical": LexicalInfo.from_json(data["lexical"], where),
                "search": SearchSettings.from_json(data["search"], where),
                "faiss_params": faiss_params,
            }
        )

    def write(self, path: Path) -> None:
        """Indented, in field order (not sorted): the file people open to see what an index is."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        write_atomic(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def read(cls, path: Path) -> IndexInfo | None:
        """The record in `path`; None when it does not exist (no build has finished)."""
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, where=path)


_SAVED = [f.name for f in fields(IndexInfo) if f.name != "faiss_params" and f.default is MISSING]


@dataclass(frozen=True)
class IndexStats:
    """index/stats.json: what a build made and how long it took."""

    n_docs: int
    n_chunks: int
    dim: int
    index_type: str
    truncated_chunks: int
    seconds: float  # the whole build
    embed_seconds: float
    dense_seconds: float  # building the faiss index
    lexical_seconds: float  # building the BM25 matrix
    # Throughput. A resumed build embeds only the shards a killed run had not committed: the
    # embedding figures are over those (embedded_chunks), the whole build's over every chunk.
    # text_mb: the UTF-8 megabytes of every chunk's searchable text.
    chunk_seconds: float = 0.0  # reading and chunking the documents
    text_mb: float = 0.0
    embedded_chunks: int = 0
    embed_chunks_per_s: float = 0.0
    embed_mb_per_s: float = 0.0
    chunks_per_s: float = 0.0
    mb_per_s: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str | Path) -> IndexStats:
        check_fields(cls, data, where=where, stage=STAGE)
        return cls(**data)

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> IndexStats | None:
        data = read_json_object(path)
        return None if data is None else cls.from_json(data, where=path)
