"""The search tool (and the MCP server, which shares its argument checking) refuses a query that
is not text with a clear error instead of failing deep in the embedder; deep JSON arguments are
an error result."""

import pytest

from cogcore.retrieval import SearchIndex, parse_search_arguments, run_search_tool


@pytest.fixture(scope="module")
def index(tiny_index_dir, tiny_embedder):
    return SearchIndex.load(tiny_index_dir, tiny_embedder)


@pytest.mark.parametrize("query", ["\udcff", "fee \udcff\udcfe", "\ud800 lone"])
def test_a_query_with_surrogates_is_an_error_result(index, query):
    result = run_search_tool(index, {"query": query})
    assert result.startswith("error: ") and "UTF-8" in result
    with pytest.raises(ValueError, match="UTF-8"):
        parse_search_arguments({"query": query})


def test_searching_the_index_directly_says_what_is_wrong(index):
    with pytest.raises(ValueError, match="query 1 .*UTF-8"):
        index.search_many(["fee", "fee \udcff"], k=2)


def test_deeply_nested_string_arguments_are_an_error_result(index):
    result = run_search_tool(index, '{"query": ' + "[" * 100_000)
    assert result.startswith("error: ") and len(result) < 300
