"""Build a retrieval index over curated documents (dense + BM25), and search it.

`build_index` chunks the documents, embeds the chunks, indexes them twice and writes the folder:

    chunks.jsonl   one chunk record per line (see cogcore.retrieval.chunking), in vector order;
                   what is embedded and BM25-indexed is each chunk under its "title / section"
                   header (chunking.searchable_text) unless header=False
    index.faiss    inner-product faiss index over the unit vectors (see cogcore.retrieval.dense:
                   flat to 50k chunks, HNSW to 2M, IVF-PQ beyond or on request)
    bm25/          the BM25 matrix over the same chunks (see cogcore.retrieval.lexical)
    index.json     {"embedder", "embedder_name", "dim", "n_chunks", "n_docs", "index_type",
                    "chunk_chars", "overlap", "lexical": {...}, "search": {"mode", "rrf_k", ...}}

index.json is written last, and any old one is removed before the other files are replaced, so a
build killed half-way leaves a folder that `SearchIndex.load` refuses instead of a wrong index.

Search runs in one of three modes: "dense" (embedding similarity), "lexical" (BM25: exact words,
identifiers, numbers; "bm25" is accepted as its other name, the one recipes and the command line
use) or "hybrid" (the default: reciprocal rank fusion of both, see
cogcore.retrieval.fusion, with the chunks that hold every identifier of the query, such as
"ACC-12345", ranked first), optionally followed by a reranker (cogcore.retrieval.rerank).

    docs = (json.loads(line) for line in open("runs/demo/curate/docs.jsonl"))
    stats = build_index(docs, Path("runs/demo/index"), Embedder(get_model_path()))
    hits = SearchIndex.load("runs/demo/index").search("monthly fee of ACC-12345", k=5)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import faiss
import numpy as np

from cogcore.io import read_jsonl, replace_folder_atomic, write_atomic
from cogcore.retrieval.chunking import chunk_document, searchable_text
from cogcore.retrieval.dense import (
    FLAT_MAX_CHUNKS,
    HNSW_MAX_CHUNKS,
    INDEX_TYPES,
    build_faiss_index,
    choose_index_type,
    tune_faiss_index,
)
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.fusion import K_RRF, reciprocal_rank_fusion
from cogcore.retrieval.hits import Hit
from cogcore.retrieval.lexical import BM25_PARAMS, TOKENIZER, LexicalIndex
from cogcore.retrieval.rerank import CrossEncoderReranker, Reranker

MODES = ("hybrid", "dense", "lexical")
MODE_ALIASES = {"bm25": "lexical"}
DEFAULT_MODE = "hybrid"
RERANK_TOP = 20
LEXICAL_FOLDER = "bm25"


def fusion_depth(k: int) -> int:
    """How many candidates each retriever hands to the fusion for a top-k answer: a chunk that
    both rank moderately must be in both lists to be found, so each list goes well past k."""
    return max(4 * k, 20)


def _chunk_all(docs: Iterable[dict], chunk_chars: int, overlap: int) -> tuple[list[dict], int]:
    chunks, seen = [], set()
    for doc in docs:
        if doc["id"] in seen:
            raise ValueError(f"duplicate document id {doc['id']!r}: chunk ids would collide")
        seen.add(doc["id"])
        chunks.extend(chunk_document(doc, chunk_chars, overlap))
    return chunks, len(seen)


def canonical_mode(mode: str) -> str:
    """The mode's name in MODES ("bm25" -> "lexical"); ValueError for an unknown one."""
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {(*MODES, *MODE_ALIASES)}, got {mode!r}")
    return mode


def _check_search_settings(mode: str, rrf_k: int, weights: Sequence[float],
                           rerank_top: int) -> None:
    canonical_mode(mode)
    if rrf_k < 0 or rerank_top < 1:
        raise ValueError(f"rrf_k must be >= 0 and rerank_top >= 1, got {rrf_k}, {rerank_top}")
    if len(weights) != 2 or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"fusion_weights must be two weights >= 0 (dense, BM25), not both 0; "
                         f"got {list(weights)}")


def build_index(
    docs: Iterable[dict],
    out_dir: Path,
    embedder: Embedder,
    chunk_chars: int = 800,
    overlap: int = 100,
    index_type: str | None = None,
    header: bool = True,
    mode: str = DEFAULT_MODE,
    rrf_k: int = K_RRF,
    fusion_weights: tuple[float, float] = (1.0, 1.0),
    reranker: str | Path | None = None,
    rerank_top: int = RERANK_TOP,
    flat_max_chunks: int = FLAT_MAX_CHUNKS,
    hnsw_max_chunks: int = HNSW_MAX_CHUNKS,
) -> dict:
    """Chunk, embed and index docs into out_dir; returns build stats (n_docs, n_chunks, dim,
    seconds, embed_seconds, dense_seconds, lexical_seconds, index_type, truncated_chunks).

    index_type is "flat", "hnsw" or "ivfpq"; None or "auto" picks by size (flat up to
    flat_max_chunks, hnsw up to hnsw_max_chunks, ivfpq beyond). header: index each chunk under
    its document title and section (the hits' text is the bare chunk either way). mode, rrf_k,
    fusion_weights (dense, BM25), reranker (a local cross-encoder folder; None: no reranking)
    and rerank_top are how `SearchIndex.load` searches the index unless told otherwise; they are
    recorded in index.json.
    """
    if index_type not in (None, "auto", *INDEX_TYPES):
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, 'auto' or None, "
                         f"got {index_type!r}")
    mode = canonical_mode(mode)
    _check_search_settings(mode, rrf_k, fusion_weights, rerank_top)
    if reranker is not None and not Path(reranker).expanduser().is_dir():
        raise FileNotFoundError(f"reranker path {str(reranker)!r} is not a local folder")
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.json").unlink(missing_ok=True)  # the old index is invalid from here on

    chunks, n_docs = _chunk_all(docs, chunk_chars, overlap)
    if not chunks:
        raise ValueError(f"no text to index: {n_docs} documents gave no chunks")
    texts = [searchable_text(c, header) for c in chunks]
    embed_began = time.perf_counter()
    vectors = embedder.encode(texts, show_progress=True)
    embed_seconds = time.perf_counter() - embed_began
    truncated = embedder.count_truncated(texts)
    if truncated:
        warnings.warn(f"{truncated} of {len(chunks)} chunks exceed {embedder.name}'s "
                      f"{embedder.max_seq_length} tokens and are embedded truncated; "
                      "lower chunk_chars")
    if index_type in (None, "auto"):
        index_type = choose_index_type(len(chunks), flat_max_chunks, hnsw_max_chunks)
    dense_began = time.perf_counter()
    index, faiss_params = build_faiss_index(vectors, index_type)
    lexical_began = time.perf_counter()
    lexical = LexicalIndex.build(texts)
    lexical_seconds = time.perf_counter() - lexical_began

    def write_chunks(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(json.dumps(chunk, ensure_ascii=False) + "\n")

    write_atomic(out_dir / "chunks.jsonl", write_chunks)
    write_atomic(out_dir / "index.faiss", lambda tmp: faiss.write_index(index, str(tmp)))
    replace_folder_atomic(out_dir / LEXICAL_FOLDER, lexical.save)

    info = {
        "embedder": embedder.path,
        "embedder_name": embedder.name,
        "dim": embedder.dim,
        "n_chunks": len(chunks),
        "n_docs": n_docs,
        "index_type": index_type,
        "metric": "inner_product",
        "chunk_chars": chunk_chars,
        "overlap": overlap,
        "chunk_header": header,
        "max_seq_length": embedder.max_seq_length,
        "truncated_chunks": truncated,
        "lexical": {"folder": LEXICAL_FOLDER, "tokenizer": TOKENIZER, "library": "bm25s",
                    "library_version": lexical.library_version, "vocab_size": len(lexical.vocab),
                    **BM25_PARAMS},
        "search": {"mode": mode, "rrf_k": rrf_k, "fusion_weights": list(fusion_weights),
                   "rerank_top": rerank_top,
                   "reranker": str(Path(reranker).expanduser().resolve()) if reranker else None},
    }
    if faiss_params:
        info[index_type] = faiss_params
    write_atomic(out_dir / "index.json",
                        lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    return {"n_docs": n_docs, "n_chunks": len(chunks), "dim": embedder.dim,
            "seconds": time.perf_counter() - began, "embed_seconds": embed_seconds,
            "dense_seconds": lexical_began - dense_began, "lexical_seconds": lexical_seconds,
            "index_type": index_type, "truncated_chunks": truncated}


def read_chunks(path: Path) -> list[dict]:
    return read_jsonl(path)


class SearchIndex:
    """A built index loaded for search: faiss vectors, the BM25 matrix, their chunk records, the
    embedder, and how to search (mode, rrf_k, an optional reranker)."""

    def __init__(self, index: faiss.Index, chunks: list[dict], embedder: Embedder, info: dict,
                 lexical: LexicalIndex | None = None, reranker: Reranker | None = None):
        if index.ntotal != len(chunks) or index.d != embedder.dim:
            raise ValueError(f"faiss index ({index.ntotal} x {index.d}) does not match "
                             f"{len(chunks)} chunks and embedder dim {embedder.dim}")
        if lexical is not None and len(lexical) != len(chunks):
            raise ValueError(f"BM25 index has {len(lexical)} documents for {len(chunks)} chunks")
        self.index, self.chunks, self.embedder, self.info = index, chunks, embedder, info
        self.lexical, self.reranker = lexical, reranker
        search = info.get("search", {})
        # An index built before BM25 was added searches dense only.
        self.mode = (canonical_mode(search.get("mode", DEFAULT_MODE)) if lexical is not None
                     else "dense")
        self.rrf_k = search.get("rrf_k", K_RRF)
        self.fusion_weights = tuple(search.get("fusion_weights", (1.0, 1.0)))
        self.rerank_top = search.get("rerank_top", RERANK_TOP)
        _check_search_settings(self.mode, self.rrf_k, self.fusion_weights, self.rerank_top)

    @classmethod
    def load(cls, index_dir: str | Path, embedder: Embedder | None = None,
             reranker: Reranker | None = None, mode: str | None = None,
             mmap: bool = False) -> SearchIndex:
        """Load an index folder. The embedder and reranker default to those index.json names,
        mode to the one it was built with; mmap leaves the BM25 matrix on disk."""
        index_dir = Path(index_dir)
        info_path = index_dir / "index.json"
        if not info_path.exists():
            raise FileNotFoundError(f"{info_path} missing: no complete index in {index_dir} "
                                    "(the build did not finish; rebuild it)")
        info = json.loads(info_path.read_text())
        embedder = embedder or Embedder(info["embedder"])
        if embedder.dim != info["dim"]:
            raise ValueError(f"embedder {embedder.name} has dim {embedder.dim}, but the index at "
                             f"{index_dir} was built with {info['embedder_name']} "
                             f"(dim {info['dim']})")
        if embedder.name != info["embedder_name"]:
            warnings.warn(f"index built with {info['embedder_name']!r}, searched with "
                          f"{embedder.name!r}: scores are only meaningful with the same model")
        index = faiss.read_index(str(index_dir / "index.faiss"))
        tune_faiss_index(index, info["index_type"], info.get(info["index_type"], {}))
        chunks = read_chunks(index_dir / "chunks.jsonl")
        if len(chunks) != info["n_chunks"]:
            raise ValueError(f"{index_dir}: index.json says {info['n_chunks']} chunks, "
                             f"chunks.jsonl has {len(chunks)}; rebuild the index")
        lexical = None
        if "lexical" in info:
            lexical = LexicalIndex.load(index_dir / info["lexical"]["folder"], mmap=mmap)
        search = dict(info.get("search", {}))
        if reranker is None and search.get("reranker"):
            reranker = CrossEncoderReranker(search["reranker"])
        if mode is not None:
            search["mode"] = canonical_mode(mode)
        return cls(index, chunks, embedder, {**info, "search": search}, lexical, reranker)

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        """The k chunks best matching query, best first (mode: "hybrid", "dense" or "lexical"
        (or "bm25"); None: the index's own)."""
        return self.search_many([query], k, mode)[0]

    def search_many(self, queries: Sequence[str], k: int = 5,
                    mode: str | None = None) -> list[list[Hit]]:
        """search() for many queries, embedding them in batches (what evaluation needs)."""
        mode = canonical_mode(mode or self.mode)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if mode != "dense" and self.lexical is None:
            raise ValueError(f"this index has no BM25 part (built by an older cogcore), so it "
                             f"cannot search in {mode!r} mode, which needs it; rebuild it")
        if len(queries) == 0:
            return []
        _check_queries(queries)
        depth = max(k, self.rerank_top) if self.reranker else k
        n = min(fusion_depth(depth) if mode == "hybrid" else depth, len(self.chunks))
        dense = self._dense(queries, n) if mode != "lexical" else [None] * len(queries)
        lexical = (self.lexical.search_many(queries, n) if mode != "dense"
                   else [None] * len(queries))
        results = [self._hits(q, d, lx, mode, depth) for q, d, lx in zip(queries, dense, lexical)]
        if self.reranker:
            results = [self._rerank(q, hits, k) for q, hits in zip(queries, results)]
        return results

    def _dense(self, queries: Sequence[str], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        scores, ids = self.index.search(self.embedder.encode(list(queries)), n)
        return [(row_ids[row_ids >= 0], row_scores[row_ids >= 0])
                for row_ids, row_scores in zip(ids, scores)]

    def _hits(self, query: str, dense, lexical, mode: str, k: int) -> list[Hit]:
        if mode != "hybrid":
            ids, scores = dense if mode == "dense" else lexical
            rank_field = "dense_rank" if mode == "dense" else "lexical_rank"
            return [Hit.from_chunk(self.chunks[i], s, mode, **{rank_field: r})
                    for r, (i, s) in enumerate(zip(ids[:k], scores[:k]), 1)]
        fused = reciprocal_rank_fusion([dense[0], lexical[0]], self.rrf_k, self.fusion_weights)
        # Exact identifier matches first (stable: fused order within each group).
        exact = self.lexical.holding_identifiers(query, np.array([f[0] for f in fused]))
        if exact.any():
            fused = [fused[i] for i in np.argsort(~exact, kind="stable")]
        return [Hit.from_chunk(self.chunks[i], s, "hybrid", dense_rank=dr, lexical_rank=lr)
                for i, s, (dr, lr) in fused[:k]]

    def _rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        # The reranker reads what the retrievers indexed: the chunk under its header.
        header = self.info.get("chunk_header", False)
        scores = self.reranker.score(query, [searchable_text(asdict(h), header) for h in hits])
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:k]
        return [replace(hits[i], score=float(scores[i]), mode="rerank") for i in order]


def _check_queries(queries: Sequence[str]) -> None:
    """ValueError naming the first query that is not text: the embedder's tokenizer would fail on
    it with a TypeError that names nothing (a lone surrogate is what bytes that are not UTF-8
    become in a command line's arguments)."""
    for n, query in enumerate(queries):
        if not isinstance(query, str):
            raise ValueError(f"query {n} is a {type(query).__name__}, not text")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"query {n} is not valid text: character {e.start} is a lone surrogate, what "
                             "bytes that are not UTF-8 become (re-encode the query as UTF-8)") from None
