"""The shipped chat template (ChatML + hermes tool calls) and the parser that reads calls back."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from cogcore.retrieval import SEARCH_TOOL
from cogcore.tool_protocol import parse_tool_calls
from cogcore.train.chat_template import CHAT_TEMPLATE, DEFAULT_SYSTEM

ARGS = {"query": "monthly fee for the standard account", "k": 2}


@pytest.fixture(scope="module")
def tok(make_tiny_llm):
    folder = make_tiny_llm(
        [
            "What is the monthly fee? The standard account costs 5 USD per month.",
            "<tool_call> </tool_call> <tool_response> </tool_response> <tools> </tools>",
        ]
    )
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _conversation(arguments) -> list[dict]:
    return [
        {"role": "user", "content": "What is the monthly fee?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": arguments}}],
        },
        {"role": "tool", "name": "search", "content": "1. [fees | Account fees] The standard account costs 5 USD."},
        {"role": "assistant", "content": "5 USD a month (source: fees)"},
    ]


def _assistant_parts(text: str) -> list[str]:
    parts = text.split("<|im_start|>assistant\n")[1:]
    return [p.split("<|im_end|>")[0] for p in parts]


@pytest.mark.parametrize("arguments", [json.dumps(ARGS), ARGS], ids=["json-string", "dict"])
def test_tool_call_renders_hermes_and_parses_back(tok, arguments):
    text = tok.apply_chat_template(_conversation(arguments), tools=[SEARCH_TOOL], tokenize=False)
    call, answer = _assistant_parts(text)
    assert call == '<tool_call>\n{"name": "search", "arguments": ' + json.dumps(ARGS) + "}\n</tool_call>"
    content, calls, errors = parse_tool_calls(call + "<|im_end|>")
    assert (content, calls, errors) == ("", [{"name": "search", "arguments": ARGS}], [])
    assert parse_tool_calls(answer) == ("5 USD a month (source: fees)", [], [])
    # The tool result goes back in a user turn, inside <tool_response>.
    assert (
        "<|im_start|>user\n<tool_response>\n1. [fees | Account fees] The standard account costs 5 USD."
        "\n</tool_response><|im_end|>\n"
    ) in text


def test_tools_are_listed_in_the_system_turn(tok):
    text = tok.apply_chat_template(_conversation(ARGS), tools=[SEARCH_TOOL], tokenize=False)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\n" + DEFAULT_SYSTEM)
    listed = system.split("<tools>\n")[1].split("\n</tools>")[0]
    assert [json.loads(line) for line in listed.split("\n")] == [SEARCH_TOOL]
    no_tools = tok.apply_chat_template(_conversation(ARGS), tokenize=False)
    assert no_tools.startswith("<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n") and "<tools>" not in no_tools
    own = tok.apply_chat_template([{"role": "system", "content": "Be brief."}] + _conversation(ARGS), tokenize=False)
    assert own.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and DEFAULT_SYSTEM not in own


def test_assistant_mask_covers_exactly_the_assistant_turns(tok):
    conversation = _conversation(json.dumps(ARGS))
    enc = tok.apply_chat_template(
        conversation, tools=[SEARCH_TOOL], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    text = tok.apply_chat_template(conversation, tools=[SEARCH_TOOL], tokenize=False)
    assert tok.decode(ids) == text
    # The masked tokens are two contiguous runs: each assistant turn with its <|im_end|>, nothing else.
    runs, current = [], []
    for token, m in zip(ids, mask):
        if m:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    assert current == []
    assert [tok.decode(run) for run in runs] == [part + "<|im_end|>" for part in _assistant_parts(text)]
    # The tokens just before each run are the assistant header, which the model is given, not taught.
    starts = [n for n in range(1, len(mask)) if mask[n] and not mask[n - 1]]
    assert all(tok.decode(ids[:n]).endswith("<|im_start|>assistant\n") for n in starts)


def test_generation_prompt_ends_with_assistant_header(tok):
    text = tok.apply_chat_template(
        _conversation(ARGS)[:3], tools=[SEARCH_TOOL], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("</tool_response><|im_end|>\n<|im_start|>assistant\n")
    plain = tok.apply_chat_template(_conversation(ARGS)[:1], tokenize=False)
    assert plain.endswith("What is the monthly fee?<|im_end|>\n")


def test_consecutive_tool_results_share_one_user_turn(tok):
    conversation = [
        {"role": "user", "content": "Fees and limits?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"type": "function", "function": {"name": "search", "arguments": {"query": "fees"}}},
                {"type": "function", "function": {"name": "search", "arguments": {"query": "limits"}}},
            ],
        },
        {"role": "tool", "name": "search", "content": "A"},
        {"role": "tool", "name": "search", "content": "B"},
    ]
    text = tok.apply_chat_template(conversation, tokenize=False)
    assert text.endswith(
        "<|im_start|>user\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n</tool_response><|im_end|>\n"
    )
    (call,) = _assistant_parts(text)
    content, calls, errors = parse_tool_calls(call)
    assert content == "Let me look." and errors == []
    assert calls == [
        {"name": "search", "arguments": {"query": "fees"}},
        {"name": "search", "arguments": {"query": "limits"}},
    ]


@pytest.mark.parametrize(
    "text, reason",
    [
        ('<tool_call>\n{"name": "search", "arguments": {"query": "fee"}\n</tool_call>', "not JSON"),
        ('<tool_call>\n{"arguments": {"query": "fee"}}\n</tool_call>', "needs a name"),
        ('<tool_call>\n{"name": 7, "arguments": {}}\n</tool_call>', "needs a name"),
        ('<tool_call>\n["search", {"query": "fee"}]\n</tool_call>', "needs a name"),
        ('<tool_call>\n{"name": "search", "arguments": ["fee"]}\n</tool_call>', "must be an object"),
        ('<tool_call>\n{"name": "search", "arguments": "fee"}\n</tool_call>', "arguments are not JSON"),
        ('<tool_call>\n{"name": "search", "arguments": "[1]"}\n</tool_call>', "must be an object"),
        ('<tool_call>\n{"name": "search", "arguments": {"query": "fe', "not JSON"),
    ],
)
def test_malformed_calls_are_errors_never_calls(text, reason):
    content, calls, errors = parse_tool_calls("Checking. " + text)
    assert calls == [] and len(errors) == 1 and reason in errors[0]
    assert content == "Checking."


def test_parse_accepts_string_arguments_multiple_calls_and_missing_arguments():
    text = (
        '<tool_call>\n{"name": "search", "arguments": "{\\"query\\": \\"fee\\"}"}\n</tool_call>\n'
        '<tool_call>{"name": "search", "arguments": {"query": "limit", "k": 5}}</tool_call>'
        '<tool_call>\n{"name": "clock"}\n</tool_call><|im_end|>'
    )
    content, calls, errors = parse_tool_calls(text)
    assert errors == [] and content == ""
    assert calls == [
        {"name": "search", "arguments": {"query": "fee"}},
        {"name": "search", "arguments": {"query": "limit", "k": 5}},
        {"name": "clock", "arguments": {}},
    ]


def test_unterminated_call_at_end_is_still_read():
    # Generation stopped at EOS right after the JSON, before the closing tag.
    text = 'Looking.\n<tool_call>\n{"name": "search", "arguments": {"query": "fee"}}\n'
    content, calls, errors = parse_tool_calls(text)
    assert (content, calls, errors) == ("Looking.", [{"name": "search", "arguments": {"query": "fee"}}], [])
    # One valid and one malformed call: the valid one is kept, the other reported.
    content, calls, errors = parse_tool_calls(
        '<tool_call>{"name": "search", "arguments": {"query": "a"}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": {'
    )
    assert calls == [{"name": "search", "arguments": {"query": "a"}}] and len(errors) == 1


def test_text_without_calls_is_content():
    assert parse_tool_calls("The fee is 5 USD.<|im_end|>") == ("The fee is 5 USD.", [], [])
    assert parse_tool_calls("") == ("", [], [])
