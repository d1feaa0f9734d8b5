"""The search tool: schema shape, argument validation as data, and the result text."""

import json

import pytest

from cogcore.retrieval import MAX_K, SEARCH_TOOL, Hit, SearchIndex, format_hits, run_search_tool


@pytest.fixture(scope="module")
def index(tiny_index_dir, tiny_embedder):
    return SearchIndex.load(tiny_index_dir, tiny_embedder)


def test_schema_shape():
    assert json.loads(json.dumps(SEARCH_TOOL)) == SEARCH_TOOL
    assert SEARCH_TOOL["type"] == "function"
    function = SEARCH_TOOL["function"]
    assert function["name"] == "search" and function["description"].startswith("Search the")
    params = function["parameters"]
    assert params["type"] == "object" and params["required"] == ["query"]
    assert params["properties"]["query"]["type"] == "string"
    assert params["properties"]["k"]["type"] == "integer"
    assert all(p["description"] for p in params["properties"].values())
    assert set(params["required"]) <= set(params["properties"])


@pytest.mark.parametrize(
    "arguments",
    [
        "{not json",
        "[1, 2]",
        "42",
        {},
        {"query": 7},
        {"query": "   "},
        {"query": "fee", "k": "3"},
        {"query": "fee", "k": True},
        {"query": "fee", "k": 2.5},
        {"query": "fee", "extra": 1},
        {"query": "x" * 5000},
    ],
)
def test_bad_arguments_give_error_text(index, arguments):
    result = run_search_tool(index, arguments)
    assert result.startswith("error: ") and "\n" not in result


def test_valid_arguments_give_numbered_passages(index):
    result = run_search_tool(index, '{"query": "A new card arrives within 5 working days."}')
    lines = result.split("\n")
    assert len(lines) == 3  # DEFAULT_K
    assert lines[0].startswith("1. [cards | Lost cards] ")
    assert "5 working days" in lines[0]
    assert [line.split(".")[0] for line in lines] == ["1", "2", "3"]


def test_k_is_clamped(index):
    assert len(run_search_tool(index, {"query": "fee", "k": 50}).split("\n")) == MAX_K
    assert len(run_search_tool(index, {"query": "fee", "k": 0}).split("\n")) == 1
    assert len(run_search_tool(index, {"query": "fee", "k": None}).split("\n")) == 3


def test_format_hits_truncates_and_handles_no_results():
    hit = Hit(
        score=0.9,
        chunk_id="d#0",
        doc_id="d",
        source="d.md",
        title="",
        section="",
        start=0,
        end=60,
        text="alpha beta\n\ngamma " * 20,
    )
    text = format_hits([hit], max_chars=40)
    assert text.startswith("1. [d] alpha beta gamma") and text.endswith(" ...")
    assert len(text) <= len("1. [d] ") + 40 + len(" ...")
    assert format_hits([]) == "no results"
