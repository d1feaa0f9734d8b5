"""The recipe's own tools: declared in the recipe (validated at load), imported by name for the
runtime, their arguments checked against their schema before anything runs."""

from __future__ import annotations

import json
import textwrap

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.recipe import RecipeError, ToolSpec, validate
from cogcore.retrieval import SEARCH_TOOL
from cogcore.runtime import ToolRuntime, Transcript, dispatch, python_tools, run_tools, sources
from cogcore.train.chat_template import CHAT_TEMPLATE

RATE = {
    "name": "exchange_rate",
    "description": "Today's rate between two currencies.",
    "parameters": {
        "type": "object",
        "properties": {"base": {"type": "string", "enum": ["EUR", "USD"]}, "quote": {"type": "string"}},
        "required": ["base", "quote"],
        "additionalProperties": False,
    },
    "python": "bank_tools_for_test:exchange_rate",
}
MODULE = """
CALLS = []
IMPORTED = True


def exchange_rate(args):
    CALLS.append(args)
    return f"1 {args['base']} = 1.08 {args['quote']}"


def broken(args):
    raise TimeoutError("the rate service did not answer")


NOT_A_FUNCTION = 42
"""


@pytest.fixture()
def module(tmp_path, monkeypatch):
    (tmp_path / "bank_tools_for_test.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    import sys

    sys.modules.pop("bank_tools_for_test", None)


def _recipe(tools: list[dict]) -> dict:
    return {
        "name": "t",
        "sources": [{"name": "a", "path": "x"}],
        "base_model": {"path": "m"},
        "index": {"embedder": "e"},
        "tools": tools,
    }


@pytest.mark.parametrize(
    "tool, problem",
    [
        ({**RATE, "name": "search"}, "tools.0.name: Value error, 'search' is the built-in search tool"),
        ({**RATE, "name": "rate me"}, "tools.0.name: Value error, use letters"),
        ({**RATE, "parameters": {"type": "array"}}, "tools.0.parameters: Value error, must be an object schema"),
        (
            {**RATE, "parameters": {"type": "object", "properties": {"base": {"type": "text"}}}},
            "tools.0.parameters: Value error, not a valid JSON schema (at properties/base/type)",
        ),
        ({**RATE, "python": "bank_tools.exchange_rate"}, "tools.0.python: Value error, use 'module:function'"),
        ({**RATE, "pyhton": "x:y"}, "tools.0.pyhton: unknown field"),
        ({k: v for k, v in RATE.items() if k != "description"}, "tools.0.description: required field is missing"),
    ],
)
def test_bad_tool_declarations_name_the_field(tool, problem):
    with pytest.raises(RecipeError) as e:
        validate(_recipe([tool]))
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_tool_names_are_unique_and_the_schema_is_the_openai_function_format():
    with pytest.raises(RecipeError, match="'exchange_rate'.* declared more than once"):
        validate(_recipe([RATE, RATE]))
    recipe = validate(_recipe([RATE]))
    assert recipe.tools[0].schema() == {
        "type": "function",
        "function": {k: RATE[k] for k in ("name", "description", "parameters")},
    }
    assert validate(_recipe([])).tools == []


def test_python_tools_import_only_the_named_function(module):
    tools = python_tools([RATE, {**RATE, "name": "no_impl", "python": None}])
    schema, fn = tools["exchange_rate"]
    assert schema == ToolSpec(**RATE).schema() and fn({"base": "EUR", "quote": "USD"}) == "1 EUR = 1.08 USD"
    assert tools["no_impl"][1] is None
    for python, message in (
        ("bank_tools_for_test:nope", "cannot load"),
        ("no_such_module_xyz:f", "cannot load"),
        ("bank_tools_for_test:NOT_A_FUNCTION", "is not a function"),
    ):
        with pytest.raises(ValueError, match=message):
            python_tools([{**RATE, "python": python}])


def test_arguments_are_checked_before_anything_runs(module):
    import bank_tools_for_test

    tools = python_tools(
        [
            RATE,
            {**RATE, "name": "no_impl", "python": None},
            {**RATE, "name": "flaky", "python": "bank_tools_for_test:broken"},
        ]
    )
    for args, problem in (
        ({"base": "JPY", "quote": "USD"}, "'JPY' is not one of ['EUR', 'USD'] (at base)"),
        ({"base": "EUR"}, "'quote' is a required property"),
        ({"base": "EUR", "quote": "USD", "cmd": "rm"}, "Additional properties are not allowed"),
    ):
        result = dispatch(tools, {"name": "exchange_rate", "arguments": args})
        assert result.startswith("error: invalid arguments for 'exchange_rate': ") and problem in result
    assert bank_tools_for_test.CALLS == []
    good = {"name": "exchange_rate", "arguments": {"base": "EUR", "quote": "GBP"}}
    assert dispatch(tools, good) == "1 EUR = 1.08 GBP"
    assert bank_tools_for_test.CALLS == [{"base": "EUR", "quote": "GBP"}]
    assert "has no implementation here" in dispatch(tools, {**good, "name": "no_impl"})
    assert (
        dispatch(tools, {"name": "flaky", "arguments": {"base": "EUR", "quote": "X"}})
        == "error: tool 'flaky' failed: TimeoutError: the rate service did not answer"
    )


def test_run_tools_reads_what_the_training_stage_wrote(module, tmp_path):
    run = tmp_path / "run"
    (run / "train" / "tools").mkdir(parents=True)

    class Index:
        def search(self, query, k):
            return []

    assert list(run_tools(run, Index())) == ["search"]  # a run made before the recipe had tools
    (run / "train" / "tools" / "tools.json").write_text(json.dumps([RATE]))
    tools = run_tools(run, Index())
    assert list(tools) == ["search", "exchange_rate"] and tools["search"][0] == SEARCH_TOOL
    assert dispatch(tools, {"name": "search", "arguments": {"query": "fee"}}) == "no results"


@pytest.fixture(scope="module")
def model_and_tok(make_tiny_llm):
    folder = make_tiny_llm(["How many dollars is 100 euros?", "<tool_call> </tool_call>"])
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    return AutoModelForCausalLM.from_pretrained(folder), tok


def test_the_runtime_lists_recipe_tools_and_runs_them(model_and_tok, module):
    model, tok = model_and_tok
    tools = {
        "search": (SEARCH_TOOL, lambda a: "1. [fx | Rates] The euro is worth 1.08 dollars."),
        **python_tools([RATE]),
    }
    rt = ToolRuntime(model, tok, tools, max_new_tokens=4)
    t = Transcript("q", [{"role": "user", "content": "How many dollars is 100 euros?"}])
    assert rt._step(
        t,
        '<tool_call>{"name": "exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": {"query": "euro"}}</tool_call>',
        last=False,
    )
    assert [c["result"] for c in t.calls] == ["1 EUR = 1.08 USD", "1. [fx | Rates] The euro is worth 1.08 dollars."]
    assert sources(t) == ["fx"]
    prompt = tok.apply_chat_template(t.messages, tools=[s for s, _ in tools.values()], tokenize=False)
    assert '"name": "exchange_rate"' in prompt.split("\n</tools>")[0]


def test_prompts_render_calls_as_in_training_with_a_base_template(model_and_tok, module):
    from pathlib import Path

    import trl

    from cogcore.train.chat_template import assistant_spans

    qwen = Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja"
    if not qwen.exists():
        pytest.skip("trl no longer ships qwen2_5.jinja")
    model, tok = model_and_tok
    tok = copy_with_template(tok, qwen.read_text())
    tools = python_tools([RATE])
    rt = ToolRuntime(model, tok, tools, max_new_tokens=4)
    t = Transcript("q", [{"role": "user", "content": "Rate?"}])
    rt._step(
        t, '<tool_call>{"name": "exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}</tool_call>', last=False
    )
    assert isinstance(t.messages[1]["tool_calls"][0]["function"]["arguments"], str)  # stored as JSON text
    (prompt,) = rt.prompts([t.messages])
    # The training rendering of the same conversation is a prefix of what the runtime prompts with.
    trained, _ = assistant_spans(tok, t.messages, [ToolSpec(**RATE).schema()])
    assert prompt.startswith(trained)
    assert '{"name": "exchange_rate", "arguments": {"base": "EUR", "quote": "USD"}}' in prompt


def copy_with_template(tok, template: str):
    import copy

    tok = copy.deepcopy(tok)
    tok.chat_template = template
    return tok
