"""Retrieval: chunk curated documents, embed them, index them, and serve the search tool.

    from cogcore.retrieval import Embedder, SearchIndex, build_index, run_search_tool, SEARCH_TOOL

See index.py for the files an index folder holds and tool.py for the tool the model calls.
"""

from cogcore.retrieval.chunking import chunk_document, find_headings, split_spans
from cogcore.retrieval.embedder import Embedder
from cogcore.retrieval.hits import Hit, Searcher
from cogcore.retrieval.index import FLAT_MAX_CHUNKS, SearchIndex, build_index, read_chunks
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
    "FLAT_MAX_CHUNKS",
    "MAX_K",
    "SEARCH_TOOL",
    "Embedder",
    "Hit",
    "SearchIndex",
    "Searcher",
    "build_index",
    "chunk_document",
    "find_headings",
    "format_hits",
    "parse_search_arguments",
    "read_chunks",
    "run_search_tool",
    "shorten",
    "split_spans",
]
