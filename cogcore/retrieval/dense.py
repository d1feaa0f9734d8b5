"""The faiss index behind dense retrieval: which kind for how many chunks, built and tuned.

All three search unit vectors by inner product (cosine). What each costs per chunk, for d-dim
float32 vectors (d = 384 for MiniLM), measured in benchmarks/README.md:

    flat   exact; 4d bytes (1,536 B); query time linear in n (fine to FLAT_MAX_CHUNKS)
    hnsw   graph, M=32, efSearch 64; 4d + ~2*M*4 bytes (~1.8 KB); sub-millisecond to millions
    ivfpq  inverted lists + product codes (d/8 bytes of code, 48 B, plus an 8-byte id): ~30x
           smaller than flat, for corpora that do not fit in memory otherwise; approximate, so
           recall is lower than hnsw (nprobe trades it against speed)

`choose_index_type(n)` picks flat up to 50k chunks and hnsw above; ivfpq is chosen by size only
past HNSW_MAX_CHUNKS (2M) or when asked for (`index_type="ivfpq"`).

`fill_faiss_index` builds any of them from vectors that come in batches (the shard files of an
index build), so only the index itself is held whole; `build_faiss_index` is the same over one array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import faiss
import numpy as np

FLAT_MAX_CHUNKS = 50_000
HNSW_MAX_CHUNKS = 2_000_000
INDEX_TYPES = ("flat", "hnsw", "ivfpq")

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
# Inverted lists: about 4 sqrt(n) of them, each with at least 39 training points (faiss's floor).
IVF_NPROBE = 32
IVF_TRAIN_PER_LIST = 64


def choose_index_type(n_chunks: int, flat_max: int = FLAT_MAX_CHUNKS, hnsw_max: int = HNSW_MAX_CHUNKS) -> str:
    """flat while exact search is cheap, then hnsw, then ivfpq when hnsw would not fit."""
    if n_chunks <= flat_max:
        return "flat"
    return "hnsw" if n_chunks <= hnsw_max else "ivfpq"


def _pq_shape(n: int, dim: int) -> tuple[int, int, int]:
    """(nlist, m, nbits) for IVF-PQ over n vectors: 8-bit codes of d/8 sub-vectors when there is
    data enough to train 256 centroids per sub-quantizer (39 points each), fewer on small ones."""
    if n < 16:
        raise ValueError(f"ivfpq needs at least 16 chunks to train, got {n}; use flat")
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
    nbits = max(4, min(8, int(math.log2(n / 39))))
    m = next(m for m in range(max(dim // 8, 1), 0, -1) if dim % m == 0)
    return nlist, m, nbits


def build_faiss_index(vectors: np.ndarray, index_type: str, seed: int = 0) -> tuple[faiss.Index, dict]:
    """A faiss index of index_type holding vectors (row i is chunk i), and its settings for
    index.json."""
    n, dim = vectors.shape
    return fill_faiss_index(n, dim, index_type, [vectors], lambda rows: vectors[rows], seed)


def fill_faiss_index(
    n: int,
    dim: int,
    index_type: str,
    batches: Iterable[np.ndarray],
    take_rows: Callable[[np.ndarray], np.ndarray],
    seed: int = 0,
) -> tuple[faiss.Index, dict]:
    """build_faiss_index over n vectors that come in batches (row order), one batch in memory at
    a time: ivfpq is first trained on a sample that take_rows(sorted positions) reads, the same
    sample whatever the batches. Returns the index and its settings for index.json."""
    index, params = _empty_index(n, dim, index_type)
    if index_type == "ivfpq":
        index.train(take_rows(_training_rows(n, params["nlist"], seed)))
    added = 0
    for batch in batches:
        index.add(batch)
        added += len(batch)
    if added != n:
        raise ValueError(f"faiss index: {added} vectors came for the {n} announced")
    tune_faiss_index(index, index_type, params)
    return index, params


def _empty_index(n: int, dim: int, index_type: str) -> tuple[faiss.Index, dict]:
    """An empty (for ivfpq: untrained) index of index_type for n vectors, and its settings."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
    if index_type == "flat":
        return faiss.IndexFlatIP(dim), {}
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index, {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}
    nlist, m, nbits = _pq_shape(n, dim)
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x{nbits}", faiss.METRIC_INNER_PRODUCT)
    return index, {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": min(IVF_NPROBE, nlist)}


def _training_rows(n: int, nlist: int, seed: int) -> np.ndarray:
    """The sorted positions IVF-PQ trains on: all of them, or a seeded sample of IVF_TRAIN_PER_LIST
    per list where there are more (training on everything only costs time)."""
    if n <= nlist * IVF_TRAIN_PER_LIST:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, nlist * IVF_TRAIN_PER_LIST, replace=False))


def tune_faiss_index(index: faiss.Index, index_type: str, params: dict) -> None:
    """Set the search-time knobs faiss does not save with the index."""
    if index_type == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    elif index_type == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]
