"""The search tool: its JSON-schema definition, argument checking, and the text the model reads.

`SEARCH_TOOL` is the one definition (OpenAI function format) that the model is trained with, that
goes into its chat template, and that evaluation offers it, so all three agree:

    tokenizer.apply_chat_template(messages, tools=[SEARCH_TOOL], ...)
    result = run_search_tool(SearchIndex.load("runs/demo/index"), call["function"]["arguments"])

The arguments come from a model, so they are treated as untrusted data: parsed as JSON, checked
against the schema by hand, never evaluated. Bad arguments give an "error: ..." string that is
returned to the model as the tool result (so it can retry) rather than an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from cogcore.retrieval.hits import Hit, Searcher

# A small model has a 2k-8k token context: a few short passages is what fits beside the dialogue.
DEFAULT_K = 3
MAX_K = 10
MAX_PASSAGE_CHARS = 400
MAX_QUERY_CHARS = 1000

SEARCH_TOOL: dict = {
    "type": "function",
    "function": {
        "name": "search",
        "description": (
            "Search the company's documents and return the most relevant passages. Use it to "
            "look up facts (numbers, dates, amounts, names, identifiers, policy details) "
            "instead of guessing them."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to look for, in a few words or a question.",
                },
                "k": {
                    "type": "integer",
                    "description": f"How many passages to return (1-{MAX_K}, default {DEFAULT_K}).",
                    "minimum": 1,
                    "maximum": MAX_K,
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}


def parse_search_arguments(arguments: dict | str) -> tuple[str, int]:
    """(query, k) from a tool call's arguments; ValueError says what is wrong with them."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise ValueError(f"arguments are not valid JSON ({e.msg})") from None
        except RecursionError:  # Python's parser recurses per level: `[[[[...` ~1000 deep
            raise ValueError("arguments are nested too deeply to read") from None
    if not isinstance(arguments, dict):
        raise ValueError('arguments must be a JSON object like {"query": "..."}')
    allowed = SEARCH_TOOL["function"]["parameters"]["properties"]
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ValueError(f"unknown argument(s) {', '.join(unknown)}; allowed: query, k")
    query = arguments.get("query")
    problem = query_problem(query)
    if problem:
        raise ValueError(problem)
    k = arguments.get("k")
    if k is None:
        k = DEFAULT_K
    elif isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f'"k" must be an integer from 1 to {MAX_K}')
    return query.strip(), min(max(k, 1), MAX_K)


def query_problem(query) -> str | None:
    """Why `query` cannot be searched, or None: the one check of the search tool, the MCP server
    and `cogcore search`, so that all three refuse the same queries with the same words."""
    if not isinstance(query, str) or not query.strip():
        return '"query" is required and must be a non-empty string'
    if len(query) > MAX_QUERY_CHARS:
        return f'"query" is too long ({len(query)} chars, at most {MAX_QUERY_CHARS})'
    bad = _SURROGATE.search(query)
    if bad:  # the embedder's tokenizer fails on these with a TypeError that names nothing
        return (
            f'"query" is not valid text: character {bad.start()} is a lone surrogate, what bytes that '
            "are not UTF-8 become (re-encode the query as UTF-8)"
        )
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def shorten(text: str, max_chars: int) -> str:
    """Whitespace collapsed (newlines cost tokens too) and cut at a word boundary."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars].rstrip() + " ..."


def format_hits(hits: Sequence[Hit], max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """The tool result the model reads: numbered passages, each "[doc_id | title]" then text."""
    if not hits:
        return "no results"
    passages = []
    for n, hit in enumerate(hits, 1):
        label = f"{hit.doc_id} | {hit.title}" if hit.title else hit.doc_id
        passages.append(f"{n}. [{label}] {shorten(hit.text, max_chars)}")
    return "\n".join(passages)


def run_search_tool(index: Searcher, arguments: dict | str, max_chars: int = MAX_PASSAGE_CHARS) -> str:
    """Execute one search call from a model and return its result text (or "error: ...")."""
    try:
        query, k = parse_search_arguments(arguments)
    except ValueError as e:
        return f"error: {e}"
    return format_hits(index.search(query, k), max_chars)
