"""The tool loop: generated text parsed as data, dispatched only to declared tools, batched generation.

The tiny model is random, so the parsing and dispatch logic is driven with handcrafted generations;
one real `answer_many` call shows that batched generation runs end to end.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.retrieval import SEARCH_TOOL
from cogcore.runtime import ToolRuntime, Transcript
from cogcore.train.chat_template import CHAT_TEMPLATE

QUESTIONS = [
    "What is the monthly fee for the standard account?",
    "How long does a wire take?",
    "When does the branch open on Saturdays?",
]


@pytest.fixture(scope="module")
def model_and_tok(make_tiny_llm):
    folder = make_tiny_llm(QUESTIONS + ["The standard account costs 5 USD per month.", "<tool_call> </tool_call>"])
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    return AutoModelForCausalLM.from_pretrained(folder), tok


class Recorder:
    """A search tool that records what it was called with."""

    def __init__(self, result: str = "1. [fees | Account fees] The standard account costs 5 USD."):
        self.calls: list[dict] = []
        self.result = result

    def __call__(self, args: dict) -> str:
        self.calls.append(args)
        return self.result


def _runtime(model_and_tok, **tools) -> ToolRuntime:
    model, tok = model_and_tok
    return ToolRuntime(model, tok, tools={name: (SEARCH_TOOL, fn) for name, fn in tools.items()}, max_new_tokens=8)


def _transcript() -> Transcript:
    return Transcript(QUESTIONS[0], [{"role": "user", "content": QUESTIONS[0]}])


def test_valid_call_runs_the_declared_tool_with_parsed_arguments(model_and_tok):
    search = Recorder()
    rt, t = _runtime(model_and_tok, search=search), _transcript()
    goes_on = rt._step(
        t,
        'Let me check.\n<tool_call>\n{"name": "search", "arguments": {"query": "fee", "k": 2}}\n</tool_call>',
        last=False,
    )
    assert goes_on and search.calls == [{"query": "fee", "k": 2}]
    assert t.calls == [{"name": "search", "arguments": {"query": "fee", "k": 2}, "result": search.result}]
    assert t.errors == [] and t.answer == ""
    _, assistant, tool = t.messages
    assert assistant["content"] == "Let me check."
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"query": "fee", "k": 2}
    assert tool == {"role": "tool", "name": "search", "content": search.result}


def test_undeclared_tool_is_an_error_result_and_nothing_runs(model_and_tok):
    search = Recorder()
    rt, t = _runtime(model_and_tok, search=search), _transcript()
    assert rt._step(t, '<tool_call>{"name": "shell", "arguments": {"cmd": "rm -rf /"}}</tool_call>', last=False)
    assert search.calls == []
    (call,) = t.calls
    assert call["name"] == "shell" and call["result"].startswith("error: unknown tool 'shell'; available: search")
    assert t.messages[-1] == {"role": "tool", "name": "shell", "content": call["result"]}
    assert rt.dispatch({"name": "__init__", "arguments": {}}).startswith("error: unknown tool")


def test_malformed_call_is_reported_and_nothing_runs(model_and_tok):
    search = Recorder()
    rt, t = _runtime(model_and_tok, search=search), _transcript()
    assert rt._step(t, '<tool_call>{"name": "search", "arguments": {"query": </tool_call>', last=False)
    assert search.calls == [] and t.calls == []
    (error,) = t.errors
    assert "malformed tool call" in error
    assert t.messages[-1] == {"role": "tool", "name": "error", "content": f"error: {error}"}
    assert t.messages[-2]["tool_calls"] == []


def test_failing_tool_returns_an_error_string(model_and_tok):
    def broken(args):
        raise RuntimeError("index is offline")

    rt = _runtime(model_and_tok, search=broken)
    result = rt.dispatch({"name": "search", "arguments": {"query": "fee"}})
    assert result == "error: tool 'search' failed: RuntimeError: index is offline"


def test_plain_text_or_last_round_ends_the_conversation(model_and_tok):
    search = Recorder()
    rt, t = _runtime(model_and_tok, search=search), _transcript()
    assert not rt._step(t, "The fee is 5 USD.", last=False)
    assert t.answer == "The fee is 5 USD." and t.messages[-1] == {"role": "assistant", "content": "The fee is 5 USD."}
    t = _transcript()
    assert not rt._step(t, 'Checking <tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>', last=True)
    assert search.calls == [] and t.answer == "Checking"


def test_loop_feeds_tool_results_back(model_and_tok, monkeypatch):
    search = Recorder()
    rt = _runtime(model_and_tok, search=search)
    scripted = [
        ['<tool_call>{"name": "search", "arguments": {"query": "fee"}}</tool_call>', "I do not know."],
        ["The fee is 5 USD (source: fees)."],
    ]
    seen = []

    def fake_generate(conversations, first=True):
        seen.append([list(c) for c in conversations])
        return scripted[len(seen) - 1]

    monkeypatch.setattr(rt, "_generate", fake_generate)
    first, second = rt.answer_many(QUESTIONS[:2])
    assert len(seen) == 2 and len(seen[1]) == 1  # only the conversation that called a tool goes on
    assert seen[1][0][-1] == {"role": "tool", "name": "search", "content": search.result}
    assert search.calls == [{"query": "fee"}]
    assert first.answer == "The fee is 5 USD (source: fees)." and len(first.calls) == 1
    assert second.answer == "I do not know." and second.calls == []


def test_answer_many_generates_in_batches(model_and_tok):
    model, tok = model_and_tok
    rt = ToolRuntime(model, tok, tools={"search": (SEARCH_TOOL, Recorder())}, max_new_tokens=8, batch_size=2)
    side = tok.padding_side
    transcripts = rt.answer_many(QUESTIONS)
    assert tok.padding_side == side  # left padding is only for the duration of generation
    assert [t.question for t in transcripts] == QUESTIONS
    for t in transcripts:
        assert t.messages[0] == {"role": "user", "content": t.question}
        assert t.messages[1]["role"] == "assistant" and isinstance(t.answer, str) and t.seconds > 0


def test_left_padding_changes_no_generation(model_and_tok):
    model, tok = model_and_tok
    # A random model at its init scale repeats one token whatever the prompt; larger weights make
    # its output depend on the prompt, so that a padding mistake would show.
    sharp = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in sharp.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.5)
    tiny_schema = {"type": "function", "function": {"name": "search"}}  # a short prompt keeps this fast
    rt = ToolRuntime(sharp, tok, tools={"search": (tiny_schema, Recorder())}, max_new_tokens=6, batch_size=3)
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS]
    assert len({len(tok.apply_chat_template(p, tokenize=False)) for p in prompts}) == len(prompts)
    batched = rt._generate(prompts)
    assert len(set(batched)) == len(batched)  # the outputs differ, so the comparison means something
    assert batched == [rt._generate([p])[0] for p in prompts]


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ({"q": "fee"}, "'query' is a required property"),
        ({"query": "fee", "k": "two"}, "'two' is not of type 'integer' (at k)"),
        ({"query": "fee", "k": 99}, "99 is greater than the maximum of 10 (at k)"),
        ({"query": "fee", "shell": "ls"}, "Additional properties are not allowed ('shell' was unexpected)"),
    ],
)
def test_arguments_outside_the_schema_are_refused_before_the_tool_runs(model_and_tok, arguments, problem):
    search = Recorder()
    rt, t = _runtime(model_and_tok, search=search), _transcript()
    call = json.dumps({"name": "search", "arguments": arguments})
    assert rt._step(t, f"<tool_call>{call}</tool_call>", last=False)
    assert search.calls == []
    assert t.messages[-1] == {
        "role": "tool",
        "name": "search",
        "content": f"error: invalid arguments for 'search': {problem}",
    }


def test_refusals_go_back_to_the_model_and_the_loop_goes_on(model_and_tok, monkeypatch):
    search = Recorder()
    rt = _runtime(model_and_tok, search=search)
    scripted = [
        [
            '<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}</tool_call>'
            '<tool_call>{"name": "search", "arguments": {"query": </tool_call>'
        ],
        ['<tool_call>{"name": "search", "arguments": {"query": "fee"}}</tool_call>'],
        ["The fee is 5 USD (source: fees)."],
    ]
    seen = []

    def scripted_generate(conversations, first=True):
        seen.append([list(c) for c in conversations])
        return scripted[len(seen) - 1]

    monkeypatch.setattr(rt, "_generate", scripted_generate)
    (t,) = rt.answer_many(QUESTIONS[:1])
    # Round 2 saw both refusals as tool results; only the declared, well-formed call of round 2 ran.
    refusals = [m["content"] for m in seen[1][0] if m["role"] == "tool"]
    assert len(refusals) == 2 and all(r.startswith("error: ") for r in refusals)
    assert any("unknown tool 'shell'" in r for r in refusals) and any("malformed tool call" in r for r in refusals)
    assert search.calls == [{"query": "fee"}]
    assert t.answer == "The fee is 5 USD (source: fees)." and len(t.errors) == 1


def _short_query_tool() -> dict:
    """The search tool with queries of at most 12 characters: a schema a random model must close."""
    tool = copy.deepcopy(SEARCH_TOOL)
    tool["function"]["parameters"]["properties"]["query"]["maxLength"] = 12
    return tool


def test_constrained_decoding_makes_a_random_model_call_its_tool_with_valid_arguments(model_and_tok):
    search = Recorder()
    model, tok = model_and_tok
    tools = {"search": (_short_query_tool(), search)}
    free = ToolRuntime(model, tok, tools=tools, max_new_tokens=60, max_rounds=1)
    assert not any(t.calls for t in free.answer_many(QUESTIONS))  # random weights: no call, only garbage
    required = ToolRuntime(model, tok, tools=tools, max_new_tokens=60, max_rounds=2, constrain="required")
    transcripts = required.answer_many(QUESTIONS)
    for t in transcripts:
        # every first turn is a call that parses and fits the schema: it reached the tool, no error
        assert t.calls and t.calls[0]["name"] == "search" and not t.errors, t.messages
        assert isinstance(t.calls[0]["arguments"]["query"], str) and len(t.calls[0]["arguments"]["query"]) <= 12
    assert len(search.calls) >= len(QUESTIONS)


def test_valid_constraint_leaves_text_free_but_any_started_call_well_formed(model_and_tok):
    model, tok = model_and_tok
    tools = {"search": (_short_query_tool(), Recorder())}
    runtime = ToolRuntime(model, tok, tools=tools, max_new_tokens=60, max_rounds=2, constrain="valid")
    for t in runtime.answer_many(QUESTIONS):
        assert not t.errors  # a call, if one was started, parsed and fit the schema
    with pytest.raises(ValueError, match="constrain 'always': allowed: none, valid, required"):
        ToolRuntime(model, tok, tools={}, constrain="always")


def test_unbounded_strings_get_a_bound_in_the_grammar_only():
    from cogcore.runtime import bounded_strings

    bounded = bounded_strings(SEARCH_TOOL, 100)
    assert bounded["function"]["parameters"]["properties"]["query"]["maxLength"] == 100
    assert "maxLength" not in SEARCH_TOOL["function"]["parameters"]["properties"]["query"]  # the original is kept
    assert (
        bounded["function"]["parameters"]["properties"]["k"] == SEARCH_TOOL["function"]["parameters"]["properties"]["k"]
    )
