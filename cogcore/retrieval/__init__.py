"""Retrieval: chunk curated documents, index them (dense + BM25), and serve the search tool.

    from cogcore.retrieval import Embedder, SearchIndex, build_index, run_search_tool, SEARCH_TOOL

See index.py for the files an index folder holds and how a search runs (hybrid by default),
dense.py and lexical.py for the two retrievers, fusion.py and rerank.py for how their results are
combined, and tool.py for the tool the model calls.
"""

from cogcore.retrieval.chunking import chunk_document, find_headings, split_spans
from cogcore.retrieval.dense import FLAT_MAX_CHUNKS, HNSW_MAX_CHUNKS, INDEX_TYPES, choose_index_type
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.fusion import K_RRF, reciprocal_rank_fusion
from cogcore.retrieval.hits import Hit, Searcher
from cogcore.retrieval.index import DEFAULT_MODE, SearchIndex, build_index, fusion_depth, read_chunks
from cogcore.retrieval.index_files import MODE_ALIASES, MODES, IndexInfo, IndexStats, SearchSettings, canonical_mode
from cogcore.retrieval.lexical import LexicalIndex, tokenize
from cogcore.retrieval.rerank import CrossEncoderReranker, Reranker
from cogcore.retrieval.tool import (
    DEFAULT_K,
    MAX_K,
    SEARCH_TOOL,
    format_hits,
    parse_search_arguments,
    run_search_tool,
    shorten,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MODE",
    "FLAT_MAX_CHUNKS",
    "HNSW_MAX_CHUNKS",
    "INDEX_TYPES",
    "K_RRF",
    "MAX_K",
    "MODES",
    "MODE_ALIASES",
    "SEARCH_TOOL",
    "CrossEncoderReranker",
    "Embedder",
    "Hit",
    "IndexInfo",
    "IndexStats",
    "LexicalIndex",
    "Reranker",
    "SearchIndex",
    "SearchSettings",
    "Searcher",
    "build_index",
    "canonical_mode",
    "choose_index_type",
    "chunk_document",
    "find_headings",
    "format_hits",
    "fusion_depth",
    "parse_search_arguments",
    "read_chunks",
    "reciprocal_rank_fusion",
    "run_search_tool",
    "shorten",
    "split_spans",
    "tokenize",
]
