"""Parsing a model's tool calls is bounded: deep nesting, huge calls and long whitespace runs are
rejected or read in linear time, never a crash or a hang."""

from __future__ import annotations

import time

import pytest

from cogcore.tool_protocol import MAX_CALL_CHARS, MAX_CALL_DEPTH, MAX_CALLS, parse_tool_calls


@pytest.mark.parametrize(
    "raw, says",
    [
        ("[" * 100_000, "too long"),
        ("{" * 5_000, "nested"),
        ('{"name": "search", "arguments": ' + "[" * 100_000 + "]" * 100_000 + "}", "too long"),
        ('{"name": "search", "arguments": ' + "[" * 100 + "]" * 100 + "}", "nested"),
        ('{"name": "search", "arguments": "' + "[" * 5_000 + '"}', "nested"),
        ('{"name": "search", "arguments": "' + '{\\"a\\": ' * 100 + "1" + "}" * 100 + '"}', "nested"),
        ('{"name": "search", "arguments": {"query": "' + "x" * MAX_CALL_CHARS + '"}}', "too long"),
    ],
)
def test_absurd_calls_are_errors(raw, says):
    content, calls, errors = parse_tool_calls(f"<tool_call>{raw}</tool_call>")
    assert calls == [] and len(errors) == 1 and says in errors[0] and len(errors[0]) < 400


def test_nesting_up_to_the_limit_is_a_call():
    arguments = {"query": "fee", "filters": {"a": {"b": ["c"]}}}
    assert MAX_CALL_DEPTH >= 4
    _, calls, errors = parse_tool_calls(
        '<tool_call>{"name": "search", "arguments": {"query": "fee", "filters": {"a": {"b": ["c"]}}}}</tool_call>'
    )
    assert errors == [] and calls == [{"name": "search", "arguments": arguments}]


def test_brackets_inside_strings_are_not_nesting():
    query = "[" * 500 + "{" * 500
    text = '<tool_call>{"name": "search", "arguments": {"query": "' + query + '"}}</tool_call>'
    _, calls, errors = parse_tool_calls(text)
    assert errors == [] and calls[0]["arguments"]["query"] == query


def test_too_many_calls_run_the_first_ones_and_report_the_rest():
    one = '<tool_call>{"name": "search", "arguments": {"query": "fee"}}</tool_call>'
    _, calls, errors = parse_tool_calls(one * (MAX_CALLS + 3))
    assert len(calls) == MAX_CALLS and len(errors) == 1 and "3" in errors[0]


@pytest.mark.parametrize(
    "text", ["<tool_call>x" + " " * 50_000 + "y", "<tool_call>" * 20_000, "<tool_call>" + "\n" * 50_000 + "</tool_call"]
)
def test_parsing_is_linear(text):
    began = time.perf_counter()
    parse_tool_calls(text)
    assert time.perf_counter() - began < 1.0
