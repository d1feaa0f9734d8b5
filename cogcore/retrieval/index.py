"""Build a retrieval index over curated documents (dense + BM25), and search it.

`build_index` chunks the documents, embeds the chunks, indexes them twice and writes the folder:

    chunks.jsonl   one chunk record per line (see cogcore.retrieval.chunking), in vector order;
                   what is embedded and BM25-indexed is each chunk under its "title / section"
                   header (chunking.searchable_text) unless header=False
    index.faiss    inner-product faiss index over the unit vectors (see cogcore.retrieval.dense:
                   flat to 50k chunks, HNSW to 2M, IVF-PQ beyond or on request)
    bm25/          the BM25 matrix over the same chunks (see cogcore.retrieval.lexical)
    index.json     what the index holds, what made it and how to search it: an `IndexInfo`
                   (see cogcore.retrieval.index_files; the build's cost goes to `IndexStats`)

index.json is written last, and any old one is removed before the other files are replaced, so a
build killed half-way leaves a folder that `SearchIndex.load` refuses instead of a wrong index.

The build streams, in memory bounded by what the index itself holds (the faiss vectors, the BM25
matrix): documents are read one at a time and their chunks written to `.build/chunks.jsonl` as
they are made; the chunks are embedded a shard (SHARD_CHUNKS) at a time into `.build/vectors-*.npy`,
each committed atomically (cogcore.retrieval.vector_shards); faiss is filled shard by shard (IVF-PQ
trained first on a seeded sample); BM25 is built in two passes over the texts
(cogcore.retrieval.lexical_streamed). A build killed at any point, kill -9 included, and run again
with the same embedder and settings keeps every shard committed for the same texts, and ends with
the same files, byte for byte, as a build that was never killed (tested for flat; faiss inserts
HNSW vertices on several threads, and does not promise the same graph every time). `.build/` is
removed when the build succeeds.

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
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import asdict, replace
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from cogcore.io import iter_jsonl, read_jsonl, replace_folder_atomic, write_atomic, write_json_atomic
from cogcore.retrieval.chunking import chunk_document, searchable_text
from cogcore.retrieval.dense import (
    FLAT_MAX_CHUNKS,
    HNSW_MAX_CHUNKS,
    INDEX_TYPES,
    choose_index_type,
    fill_faiss_index,
    tune_faiss_index,
)
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.embedders import saved_embedder
from cogcore.retrieval.fusion import K_RRF, reciprocal_rank_fusion
from cogcore.retrieval.hits import Hit
from cogcore.retrieval.index_files import (
    INFO_FILE,
    IndexInfo,
    IndexStats,
    LexicalInfo,
    SearchSettings,
    canonical_mode,
)
from cogcore.retrieval.lexical import BM25_PARAMS, TOKENIZER, LexicalIndex
from cogcore.retrieval.lexical_streamed import build_lexical_streamed
from cogcore.retrieval.products import ProductNames, compact, doc_product, product_pattern
from cogcore.retrieval.rerank import CrossEncoderReranker, Reranker
from cogcore.retrieval.vector_shards import SHARD_CHUNKS, embed_shards, embedder_identity

DEFAULT_MODE = "hybrid"
RERANK_TOP = 20
LEXICAL_FOLDER = "bm25"
CHUNKS_FILE = "chunks.jsonl"
BUILD_FOLDER = ".build"  # a build under way: its chunks, vector shards and settings; removed when it succeeds
BUILD_FILE = "build.json"  # the embedder and settings the shards were made with
EXECUTORS = ("local", "ray")  # where the chunks are embedded (index.executor)
PRODUCTS_FILE = "products.json"  # the domain's names, and each document's product
# What a full product match adds to a chunk's fused score (with rrf_k 60, rank 1 scores 2/61 where
# both retrievers agree, rank 20 about 1/80 from one): it lifts a chunk of the named product past
# several others.
PRODUCT_BOOST = 0.01


def fusion_depth(k: int) -> int:
    """How many candidates each retriever hands to the fusion for a top-k answer: a chunk that
    both rank moderately must be in both lists to be found, so each list goes well past k."""
    return max(4 * k, 20)


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
    names: Sequence[str] = (),
    shard_chunks: int = SHARD_CHUNKS,
    progress: bool | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> IndexStats:
    """Chunk, embed and index docs into out_dir; returns what the build cost and made.

    index_type is "flat", "hnsw" or "ivfpq"; None or "auto" picks by size (flat up to
    flat_max_chunks, hnsw up to hnsw_max_chunks, ivfpq beyond). header: index each chunk under
    its document title and section (the hits' text is the bare chunk either way). mode, rrf_k,
    fusion_weights (dense, BM25), reranker (a local cross-encoder folder; None: no reranking)
    and rerank_top are how `SearchIndex.load` searches the index unless told otherwise; they are
    recorded in index.json. names: the domain's proper names (curation learns them); with them,
    each document's product is recorded (products.json) and a query naming a product ranks that
    product's chunks first (cogcore.retrieval.products).

    The build streams (see the module docstring): docs may be any iterable, read once, one
    document at a time. shard_chunks: chunks per committed vector shard (what a kill can lose);
    progress: bars with rate and ETA (None: on a terminal only). executor: "local" embeds here, "ray"
    embeds the shards not committed yet on Ray Data (cogcore.retrieval.index_ray; ray_address: a
    cluster, None: a local Ray instance); the files are the same either way.
    """
    began = time.perf_counter()
    if index_type not in (None, "auto", *INDEX_TYPES):
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, 'auto' or None, got {index_type!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"index.executor must be one of {EXECUTORS}, got {executor!r}")
    search = _search_settings(mode, rrf_k, fusion_weights, rerank_top, reranker)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INFO_FILE).unlink(missing_ok=True)  # the old index is invalid from here on
    build = _build_folder(out_dir, embedder, chunk_chars, overlap, header, shard_chunks)
    chunks_path = build / CHUNKS_FILE
    # 1. Chunks, streamed to a file; the text each is searched by (under its header, or bare).
    (n_docs, n_chunks, products), chunk_seconds = _timed(
        lambda: _write_chunks(docs, chunks_path, chunk_chars, overlap, names, progress)
    )

    def texts() -> Iterator[str]:
        return (searchable_text(chunk, header) for chunk in iter_jsonl(chunks_path))

    # 2. Their vectors, shard by shard (those a killed build committed are kept), and the two
    # indexes: faiss filled from the shards, BM25 over the texts.
    if executor == "ray":  # imported only then: the ray extra
        from cogcore.retrieval.index_ray import embed_shards_on_ray

        shards = embed_shards_on_ray(texts, build, embedder, shard_chunks, n_chunks, progress, address=ray_address)
    else:
        shards = embed_shards(texts(), build, embedder, shard_chunks, total=n_chunks, progress=progress)
    truncated = _warn_truncated(embedder, shards.truncated, n_chunks)
    if index_type in (None, "auto"):
        index_type = choose_index_type(n_chunks, flat_max_chunks, hnsw_max_chunks)
    (dense, faiss_params), dense_seconds = _timed(
        lambda: fill_faiss_index(n_chunks, embedder.dim, index_type, shards.batches(), shards.rows)
    )
    lexical, lexical_seconds = _timed(lambda: build_lexical_streamed(texts, total=n_chunks, progress=progress))
    # 3. The files, index.json last: its presence means that the rest is complete.
    os.replace(chunks_path, out_dir / CHUNKS_FILE)
    write_atomic(out_dir / "index.faiss", lambda tmp: faiss.write_index(dense, str(tmp)))
    replace_folder_atomic(out_dir / LEXICAL_FOLDER, lexical.save)
    write_json_atomic(out_dir / PRODUCTS_FILE, {"names": sorted(set(names)), "products": products})
    IndexInfo(
        embedder=embedder.path,
        embedder_name=embedder.name,
        dim=embedder.dim,
        n_chunks=n_chunks,
        n_docs=n_docs,
        index_type=index_type,
        metric="inner_product",
        chunk_chars=chunk_chars,
        overlap=overlap,
        chunk_header=header,
        max_seq_length=embedder.max_seq_length,
        truncated_chunks=truncated,
        lexical=_lexical_info(lexical),
        search=search,
        faiss_params=faiss_params,
        embedder_kind=embedder.kind,
        embedder_source=embedder.source,
        embedder_fingerprint=embedder.fingerprint,
    ).write(out_dir / INFO_FILE)
    shutil.rmtree(build)
    seconds = time.perf_counter() - began
    return IndexStats(
        n_docs=n_docs,
        n_chunks=n_chunks,
        dim=embedder.dim,
        index_type=index_type,
        truncated_chunks=truncated,
        seconds=seconds,
        embed_seconds=shards.seconds,
        dense_seconds=dense_seconds,
        lexical_seconds=lexical_seconds,
        chunk_seconds=chunk_seconds,
        text_mb=shards.text_bytes / 1e6,
        embedded_chunks=shards.embedded_chunks,
        embed_chunks_per_s=_rate(shards.embedded_chunks, shards.seconds),
        embed_mb_per_s=_rate(shards.embedded_bytes / 1e6, shards.seconds),
        chunks_per_s=_rate(n_chunks, seconds),
        mb_per_s=_rate(shards.text_bytes / 1e6, seconds),
    )


def _build_folder(out_dir: Path, embedder: Embedder, chunk_chars: int, overlap: int, header: bool, shards: int) -> Path:
    """out_dir/.build: kept from a killed build with the same embedder and settings (its shards
    are then checked one by one against the texts), else emptied and stamped with them."""
    settings = {
        "format": 1,
        "embedder": embedder_identity(embedder),
        "chunk_chars": chunk_chars,
        "overlap": overlap,
        "header": header,
        "shard_chunks": shards,
    }
    build = out_dir / BUILD_FOLDER
    try:
        same = json.loads((build / BUILD_FILE).read_text()) == settings
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        write_json_atomic(build / BUILD_FILE, settings)
    return build


def _search_settings(
    mode: str, rrf_k: int, fusion_weights: Sequence[float], rerank_top: int, reranker: str | Path | None
) -> SearchSettings:
    """The settings, checked; a reranker is recorded as its absolute folder."""
    mode = canonical_mode(mode)
    if reranker is not None and not Path(reranker).expanduser().is_dir():
        raise FileNotFoundError(f"reranker path {str(reranker)!r} is not a local folder")
    return SearchSettings(
        mode=mode,
        rrf_k=rrf_k,
        fusion_weights=list(fusion_weights),
        rerank_top=rerank_top,
        reranker=str(Path(reranker).expanduser().resolve()) if reranker else None,
    )


def _write_chunks(
    docs: Iterable[dict], path: Path, chunk_chars: int, overlap: int, names: Sequence[str], progress: bool | None
) -> tuple[int, int, dict[str, str]]:
    """Chunk docs one at a time into path (one record a line); returns (documents, chunks, each
    document's product). Only the ids and products of the documents stay in memory."""
    pattern = product_pattern(names)
    seen, products, n_chunks = set(), {}, 0
    total = len(docs) if isinstance(docs, Sized) else None
    bar = tqdm(docs, total=total, desc="chunking", unit="doc", unit_scale=True, disable=_hidden(progress))

    def write(tmp: Path) -> None:
        nonlocal n_chunks
        with open(tmp, "w", encoding="utf-8") as f:
            for doc in bar:
                if doc["id"] in seen:
                    raise ValueError(f"duplicate document id {doc['id']!r}: chunk ids would collide")
                seen.add(doc["id"])
                product = doc_product(doc, pattern)
                if product:
                    products[doc["id"]] = product
                for chunk in chunk_document(doc, chunk_chars, overlap):
                    # "Prescription discount program" is about the Gold Years Account: say so
                    if product and compact(product) not in compact(chunk["title"]):
                        chunk["product"] = product
                    f.write(json.dumps(chunk, ensure_ascii=False) + "\n")
                    n_chunks += 1

    with bar:
        write_atomic(path, write)
    if not n_chunks:
        raise ValueError(f"no text to index: {len(seen)} documents gave no chunks")
    return len(seen), n_chunks, products


def _timed(make: Callable):
    """(what make() returns, the seconds it took)."""
    began = time.perf_counter()
    return make(), time.perf_counter() - began


def _rate(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else 0.0


def _hidden(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides a bar where stderr is not a terminal."""
    return None if progress is None else not progress


def _warn_truncated(embedder: Embedder, truncated: int, n_chunks: int) -> int:
    if truncated:
        warnings.warn(
            f"{truncated} of {n_chunks} chunks exceed {embedder.name}'s "
            f"{embedder.max_seq_length} tokens and are embedded truncated; lower chunk_chars",
            stacklevel=3,
        )
    return truncated


def _lexical_info(lexical: LexicalIndex) -> LexicalInfo:
    return LexicalInfo(
        folder=LEXICAL_FOLDER,
        tokenizer=TOKENIZER,
        library="bm25s",
        library_version=lexical.library_version,
        vocab_size=len(lexical.vocab),
        **BM25_PARAMS,
    )


def read_chunks(path: Path) -> list[dict]:
    return read_jsonl(path)


class SearchIndex:
    """A built index loaded for search: faiss vectors, the BM25 matrix, their chunk records, the
    embedder, and how to search (`info.search`: mode, rrf_k, fusion weights, an optional reranker)."""

    def __init__(
        self,
        index: faiss.Index,
        chunks: list[dict],
        embedder: Embedder,
        info: IndexInfo,
        lexical: LexicalIndex,
        reranker: Reranker | None = None,
        products: ProductNames | None = None,
    ):
        if index.ntotal != len(chunks) or index.d != embedder.dim:
            raise ValueError(
                f"faiss index ({index.ntotal} x {index.d}) does not match "
                f"{len(chunks)} chunks and embedder dim {embedder.dim}"
            )
        if len(lexical) != len(chunks):
            raise ValueError(f"BM25 index has {len(lexical)} documents for {len(chunks)} chunks")
        self.index, self.chunks, self.embedder, self.info = index, chunks, embedder, info
        self.lexical, self.reranker = lexical, reranker
        self.products = products or ProductNames([], {})

    @property
    def mode(self) -> str:
        return self.info.search.mode

    @property
    def rrf_k(self) -> int:
        return self.info.search.rrf_k

    @property
    def fusion_weights(self) -> tuple[float, float]:
        return tuple(self.info.search.fusion_weights)

    @property
    def rerank_top(self) -> int:
        return self.info.search.rerank_top

    @classmethod
    def load(
        cls,
        index_dir: str | Path,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        mode: str | None = None,
        mmap: bool = False,
    ) -> SearchIndex:
        """Load an index folder. The embedder and reranker default to those index.json names,
        mode to the one it was built with; mmap leaves the BM25 matrix on disk."""
        index_dir = Path(index_dir)
        info = IndexInfo.read(index_dir / INFO_FILE)
        if info is None:
            raise FileNotFoundError(
                f"{index_dir / INFO_FILE} missing: no complete index in {index_dir} "
                "(the build did not finish; rebuild it)"
            )
        if mode is not None:
            info = replace(info, search=replace(info.search, mode=canonical_mode(mode)))
        embedder = embedder or saved_embedder(info.embedder, info.embedder_kind)
        if embedder.dim != info.dim:
            raise ValueError(
                f"embedder {embedder.name} has dim {embedder.dim}, but the index at "
                f"{index_dir} was built with {info.embedder_name} (dim {info.dim})"
            )
        if embedder.name != info.embedder_name:
            warnings.warn(
                f"index built with {info.embedder_name!r}, searched with "
                f"{embedder.name!r}: scores are only meaningful with the same model",
                stacklevel=2,
            )
        index = faiss.read_index(str(index_dir / "index.faiss"))
        tune_faiss_index(index, info.index_type, info.faiss_params)
        chunks = read_chunks(index_dir / "chunks.jsonl")
        if len(chunks) != info.n_chunks:
            raise ValueError(
                f"{index_dir}: index.json says {info.n_chunks} chunks, "
                f"chunks.jsonl has {len(chunks)}; rebuild the index"
            )
        lexical = LexicalIndex.load(index_dir / info.lexical.folder, mmap=mmap)
        if reranker is None and info.search.reranker:
            reranker = CrossEncoderReranker(info.search.reranker)
        path = index_dir / PRODUCTS_FILE  # indexes built before products were recorded have none
        named = json.loads(path.read_text()) if path.exists() else {}
        products = ProductNames(named.get("names", []), named.get("products", {}))
        return cls(index, chunks, embedder, info, lexical, reranker, products)

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        """The k chunks best matching query, best first (mode: "hybrid", "dense" or "lexical"
        (or "bm25"); None: the index's own)."""
        return self.search_many([query], k, mode)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, mode: str | None = None, by_product: bool = True
    ) -> list[list[Hit]]:
        """search() for many queries, embedding them in batches (what evaluation needs). by_product:
        hybrid search ranks the chunks of a product the query names first (off: fusion alone)."""
        mode = canonical_mode(mode or self.mode)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if len(queries) == 0:
            return []
        _check_queries(queries)
        depth = max(k, self.rerank_top) if self.reranker else k
        n = min(fusion_depth(depth) if mode == "hybrid" else depth, len(self.chunks))
        dense = self._dense(queries, n) if mode != "lexical" else [None] * len(queries)
        lexical = self.lexical.search_many(queries, n) if mode != "dense" else [None] * len(queries)
        results = [self._hits(q, d, lx, mode, depth, by_product) for q, d, lx in zip(queries, dense, lexical)]
        if self.reranker:
            results = [self._rerank(q, hits, k) for q, hits in zip(queries, results)]
        return results

    def _dense(self, queries: Sequence[str], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        scores, ids = self.index.search(self.embedder.encode(list(queries)), n)
        return [(row_ids[row_ids >= 0], row_scores[row_ids >= 0]) for row_ids, row_scores in zip(ids, scores)]

    def _hits(self, query: str, dense, lexical, mode: str, k: int, by_product: bool) -> list[Hit]:
        if mode != "hybrid":
            ids, scores = dense if mode == "dense" else lexical
            rank_field = "dense_rank" if mode == "dense" else "lexical_rank"
            return [
                Hit.from_chunk(self.chunks[i], s, mode, **{rank_field: r})
                for r, (i, s) in enumerate(zip(ids[:k], scores[:k]), 1)
            ]
        fused = reciprocal_rank_fusion([dense[0], lexical[0]], self.rrf_k, self.fusion_weights)
        # The product the query names lifts its chunks' fused scores; then exact identifier matches
        # go first (stable: fused order within each group).
        ids = np.array([f[0] for f in fused])
        match = self.products.match(query, [self.chunks[i]["doc_id"] for i in ids]) if by_product else None
        if match is not None and match.any():
            scores = np.array([f[1] for f in fused]) + PRODUCT_BOOST * match
            order = np.argsort(-scores, kind="stable")
            fused = [(fused[i][0], float(scores[i]), fused[i][2]) for i in order]
            ids = ids[order]
        exact = self.lexical.holding_identifiers(query, ids)
        if exact.any():
            fused = [fused[i] for i in np.argsort(~exact, kind="stable")]
        return [
            Hit.from_chunk(self.chunks[i], s, "hybrid", dense_rank=dr, lexical_rank=lr) for i, s, (dr, lr) in fused[:k]
        ]

    def _rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        # The reranker reads what the retrievers indexed: the chunk under its header.
        header = self.info.chunk_header
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
            raise ValueError(
                f"query {n} is not valid text: character {e.start} is a lone surrogate, what "
                "bytes that are not UTF-8 become (re-encode the query as UTF-8)"
            ) from None
