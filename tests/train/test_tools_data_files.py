"""User-supplied conversation files: OpenAI-format lines checked against the declared tools; bad
lines skipped and counted by reason; good ones render with the recipe's tools in the system turn."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from cogcore.recipe import ToolSpec
from cogcore.retrieval import SEARCH_TOOL
from cogcore.tool_protocol import parse_tool_calls
from cogcore.train.chat_template import CHAT_TEMPLATE
from cogcore.train.tools_data import read_conversation_files, tokenize_conversations

RATE = ToolSpec(
    name="exchange_rate",
    description="Today's rate between two currencies.",
    parameters={
        "type": "object",
        "properties": {
            "base": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
            "quote": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
        },
        "required": ["base", "quote"],
        "additionalProperties": False,
    },
)
TOOLS = [SEARCH_TOOL, RATE.schema()]


def _call(name: str, arguments) -> dict:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)},
    }


def _line(*messages, **extra) -> dict:
    return {"messages": list(messages), **extra}


USER = {
    "role": "user",
    "content": [{"type": "text", "text": "How many dollars "}, {"type": "text", "text": "is 100 euros?"}],
}
GOOD_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [_call("exchange_rate", {"base": "EUR", "quote": "USD", "amount": 100})],
}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "1 EUR = 1.08 USD"}
ANSWER = {"role": "assistant", "content": "100 euros are 108 dollars at today's rate."}
GOOD = _line({"role": "system", "content": "You are the bank's assistant."}, USER, GOOD_CALL, RESULT, ANSWER)
BAD = {
    "not_json": '{"messages": [',
    "no_messages": {"conversation": []},
    "bad_keys": {**GOOD, "metadata": {"x": 1}},
    "bad_role": _line({"role": "developer", "content": "x"}, USER, ANSWER),
    "bad_content": _line({"role": "user", "content": ["an", "array"]}, ANSWER),
    "undeclared_tool": _line(
        USER, {"role": "assistant", "content": "", "tool_calls": [_call("shell", {"cmd": "ls"})]}, RESULT, ANSWER
    ),
    "bad_arguments": _line(
        USER,
        {"role": "assistant", "content": "", "tool_calls": [_call("exchange_rate", {"base": "JPY", "quote": "USD"})]},
        RESULT,
        ANSWER,
    ),
    "tool_without_call": _line(USER, RESULT, ANSWER),
    "call_without_result": _line(USER, GOOD_CALL, ANSWER),
    "no_assistant": _line(USER),
    "bad_tool_call": _line(USER, {"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]}, RESULT),
}


@pytest.fixture()
def files(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in [GOOD, *BAD.values()]) + "\n\n")
    also_good = _line(
        USER,
        {"role": "assistant", "content": "", "tool_calls": [_call("search", '{"query": "euro dollar rate"}')]},
        RESULT,
        ANSWER,
    )
    second.write_text(
        json.dumps(also_good, ensure_ascii=False)
        + "\n"
        + json.dumps(_line(USER, {**GOOD_CALL, "weight": 0}, RESULT, ANSWER))
        + "\n"
    )
    return [first, second]


def test_bad_lines_are_skipped_and_counted_by_reason(files):
    conversations, stats = read_conversation_files(files, TOOLS)
    assert stats["lines"] == 1 + len(BAD) + 2 and stats["kept"] == 3 == len(conversations)
    assert stats["skipped"] == {reason: 1 for reason in sorted(BAD)}
    assert stats["lines"] == stats["kept"] + sum(stats["skipped"].values())
    assert (
        stats["examples"]["undeclared_tool"] == "a.jsonl:7: message 1: calls 'shell', which the recipe does not declare"
    )
    assert "'JPY' is not one of" in stats["examples"]["bad_arguments"]
    assert [c["source"] for c in conversations] == ["a.jsonl:1", "b.jsonl:1", "b.jsonl:2"]


def test_kept_lines_are_normalized_for_the_template(files):
    conversations, _ = read_conversation_files(files, TOOLS)
    call = conversations[0]["messages"][2]
    assert call["content"] == ""  # null content with tool calls
    assert conversations[0]["messages"][1]["content"] == "How many dollars is 100 euros?"  # text parts joined
    (tool_call,) = call["tool_calls"]
    assert isinstance(tool_call["function"]["arguments"], str)  # a dict would gain other calls' keys in datasets
    assert json.loads(tool_call["function"]["arguments"]) == {"base": "EUR", "quote": "USD", "amount": 100}


def test_an_undeclared_recipe_tool_is_refused_even_if_the_line_lists_it(files, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({**GOOD, "tools": [RATE.schema()]}) + "\n")
    assert read_conversation_files([path], TOOLS)[1]["kept"] == 1
    assert read_conversation_files([path], [SEARCH_TOOL])[1]["skipped"] == {"undeclared_tool": 1}


def test_recipe_tools_are_listed_and_calls_trained(make_tiny_llm, files):
    tok = AutoTokenizer.from_pretrained(make_tiny_llm([json.dumps(GOOD), "<tool_call> </tool_call>"]))
    tok.chat_template = CHAT_TEMPLATE
    conversations, _ = read_conversation_files(files, TOOLS)
    rows, too_long = tokenize_conversations(tok, conversations, seq_len=100_000, tools=TOOLS)
    assert too_long == 0
    text = tok.decode(rows[0]["input_ids"])
    listed = text.split("<tools>\n")[1].split("\n</tools>")[0]
    assert [json.loads(line) for line in listed.split("\n")] == TOOLS
    trained = tok.decode([t for t in rows[0]["labels"] if t != -100])
    _, calls, errors = parse_tool_calls(trained)
    assert errors == []
    assert calls == [{"name": "exchange_rate", "arguments": {"base": "EUR", "quote": "USD", "amount": 100}}]
    assert trained.endswith(ANSWER["content"] + "<|im_end|>")
    # weight 0 on the call: only the answer is trained.
    trained = tok.decode([t for t in rows[2]["labels"] if t != -100])
    assert trained == ANSWER["content"] + "<|im_end|>"
