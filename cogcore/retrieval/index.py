"""Build a dense retrieval index over curated documents, and search it.

`build_index` chunks the documents, embeds the chunks and writes three files to the index folder:

    chunks.jsonl   one chunk record per line (see cogcore.retrieval.chunking), in vector order
    index.faiss    inner-product faiss index over the unit vectors (flat to 50k chunks, else HNSW)
    index.json     {"embedder", "embedder_name", "dim", "n_chunks", "n_docs", "index_type",
                    "chunk_chars", "overlap", "max_seq_length", "truncated_chunks", ...}

index.json is written last, and any old one is removed before the other files are replaced, so a
build killed half-way leaves a folder that `SearchIndex.load` refuses instead of a wrong index.

    docs = (json.loads(line) for line in open("runs/demo/curate/docs.jsonl"))
    stats = build_index(docs, Path("runs/demo/index"), Embedder(get_model_path()))
    hits = SearchIndex.load("runs/demo/index").search("monthly account fee", k=5)
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np

from cogcore.retrieval.chunking import chunk_document
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.hits import Hit

# Exact search is fast enough below this many chunks (~0.25 ms/query at 2k, linear in n);
# above it HNSW keeps queries sub-millisecond at recall close to 1.
FLAT_MAX_CHUNKS = 50_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
INDEX_TYPES = ("flat", "hnsw")


def _replace_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over path."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_faiss_index(vectors: np.ndarray, index_type: str) -> faiss.Index:
    dim = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(vectors)
    return index


def _chunk_all(docs: Iterable[dict], chunk_chars: int, overlap: int) -> tuple[list[dict], int]:
    chunks, seen = [], set()
    for doc in docs:
        if doc["id"] in seen:
            raise ValueError(f"duplicate document id {doc['id']!r}: chunk ids would collide")
        seen.add(doc["id"])
        chunks.extend(chunk_document(doc, chunk_chars, overlap))
    return chunks, len(seen)


def build_index(
    docs: Iterable[dict],
    out_dir: Path,
    embedder: Embedder,
    chunk_chars: int = 800,
    overlap: int = 100,
    index_type: str | None = None,
) -> dict:
    """Chunk, embed and index docs into out_dir; returns build stats (n_docs, n_chunks, dim,
    seconds, embed_seconds, index_type, truncated_chunks).

    index_type is "flat" or "hnsw"; None picks by size (flat up to FLAT_MAX_CHUNKS chunks).
    """
    if index_type not in (None, *INDEX_TYPES):
        raise ValueError(f"index_type must be one of {INDEX_TYPES} or None, got {index_type!r}")
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "index.json").unlink(missing_ok=True)  # the old index is invalid from here on

    chunks, n_docs = _chunk_all(docs, chunk_chars, overlap)
    if not chunks:
        raise ValueError(f"no text to index: {n_docs} documents gave no chunks")
    embed_began = time.perf_counter()
    vectors = embedder.encode([c["text"] for c in chunks], show_progress=True)
    embed_seconds = time.perf_counter() - embed_began
    truncated = embedder.count_truncated([c["text"] for c in chunks])
    if truncated:
        warnings.warn(f"{truncated} of {len(chunks)} chunks exceed {embedder.name}'s "
                      f"{embedder.max_seq_length} tokens and are embedded truncated; "
                      "lower chunk_chars")
    index_type = index_type or ("flat" if len(chunks) <= FLAT_MAX_CHUNKS else "hnsw")
    index = _new_faiss_index(vectors, index_type)

    def write_chunks(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(json.dumps(chunk, ensure_ascii=False) + "\n")

    _replace_atomically(out_dir / "chunks.jsonl", write_chunks)
    _replace_atomically(out_dir / "index.faiss", lambda tmp: faiss.write_index(index, str(tmp)))
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
        "max_seq_length": embedder.max_seq_length,
        "truncated_chunks": truncated,
    }
    if index_type == "hnsw":
        info["hnsw"] = {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                        "ef_search": HNSW_EF_SEARCH}
    _replace_atomically(out_dir / "index.json",
                        lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    return {"n_docs": n_docs, "n_chunks": len(chunks), "dim": embedder.dim,
            "seconds": time.perf_counter() - began, "embed_seconds": embed_seconds,
            "index_type": index_type, "truncated_chunks": truncated}


def read_chunks(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class SearchIndex:
    """A built index loaded for search: faiss vectors, their chunk records and the embedder."""

    def __init__(self, index: faiss.Index, chunks: list[dict], embedder: Embedder, info: dict):
        if index.ntotal != len(chunks) or index.d != embedder.dim:
            raise ValueError(f"faiss index ({index.ntotal} x {index.d}) does not match "
                             f"{len(chunks)} chunks and embedder dim {embedder.dim}")
        self.index, self.chunks, self.embedder, self.info = index, chunks, embedder, info

    @classmethod
    def load(cls, index_dir: str | Path, embedder: Embedder | None = None) -> SearchIndex:
        """Load an index folder; the embedder defaults to the one index.json names."""
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
        if info["index_type"] == "hnsw":
            index.hnsw.efSearch = info["hnsw"]["ef_search"]
        chunks = read_chunks(index_dir / "chunks.jsonl")
        if len(chunks) != info["n_chunks"]:
            raise ValueError(f"{index_dir}: index.json says {info['n_chunks']} chunks, "
                             f"chunks.jsonl has {len(chunks)}; rebuild the index")
        return cls(index, chunks, embedder, info)

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The k chunks most similar to query, best first."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """search() for many queries, embedding them in batches (what evaluation needs)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if len(queries) == 0:
            return []
        vectors = self.embedder.encode(list(queries))
        scores, ids = self.index.search(vectors, min(k, len(self.chunks)))
        return [
            [Hit.from_chunk(self.chunks[i], s) for s, i in zip(row_scores, row_ids) if i >= 0]
            for row_scores, row_ids in zip(scores, ids)
        ]
