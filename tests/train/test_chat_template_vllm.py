"""The chat template round trip: what the template renders for an assistant turn is read back as
the same calls by our parser and by vLLM's hermes tool parser.

vLLM does not install on a CPU-only machine, so its extraction is copied below, verbatim in its
regex and steps, from vLLM 0.33.0, `vllm/tool_parsers/hermes_tool_parser.py`,
`Hermes2ProToolParser.extract_tool_calls` (non-streaming); only the pydantic result types are
replaced by dicts. The assistant turn is located by rendering (the generation prompt, then the
turn), as vLLM sees it: the model's output after the prompt, without the end-of-turn token.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import regex as re
from transformers import AutoTokenizer

from cogcore.retrieval import SEARCH_TOOL
from cogcore.tool_protocol import parse_tool_calls
from cogcore.train.chat_template import CHAT_TEMPLATE, assistant_spans

# --- vLLM 0.33.0 vllm/tool_parsers/hermes_tool_parser.py (Hermes2ProToolParser) ---------------
tool_call_start_token: str = "<tool_call>"
tool_call_regex = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def vllm_extract_tool_calls(model_output: str) -> dict:
    # sanity check; avoid unnecessary processing
    if tool_call_start_token not in model_output:
        return {"tools_called": False, "tool_calls": [], "content": model_output}
    try:
        function_call_tuples = tool_call_regex.findall(model_output)
        raw_function_calls = [json.loads(match[0] if match[0] else match[1]) for match in function_call_tuples]
        tool_calls = [
            {
                "type": "function",
                "function": {
                    "name": function_call["name"],
                    # function call args are JSON but as a string
                    "arguments": json.dumps(function_call["arguments"], ensure_ascii=False),
                },
            }
            for function_call in raw_function_calls
        ]
        content = model_output[: model_output.find(tool_call_start_token)]
        return {"tools_called": True, "tool_calls": tool_calls, "content": content if content else None}
    except Exception:
        return {"tools_called": False, "tool_calls": [], "content": model_output}


# -------------------------------------------------------------------------------------------------

RATE_TOOL = {
    "type": "function",
    "function": {
        "name": "exchange_rate",
        "description": "Today's exchange rate between two currencies.",
        "parameters": {
            "type": "object",
            "properties": {"pair": {"type": "string"}, "options": {"type": "object"}},
            "required": ["pair"],
        },
    },
}
UNICODE = {"query": "Überweisung ins Ausland: Gebühr in € — 手数料 ✓"}
NESTED = {
    "pair": "EUR/USD",
    "options": {"at": {"date": "2024-03-01", "hours": [9, 17]}, "round": None, "strict": True, "ratio": 0.25},
}
QUOTES = {"query": 'the "premium" account\'s fee \\ per month\nand {braces} [brackets]'}
TURNS = {
    "single": ("", [("search", UNICODE)]),
    "nested": ("", [("exchange_rate", NESTED)]),
    "quotes": ("", [("search", QUOTES)]),
    "parallel": ("", [("search", UNICODE), ("exchange_rate", NESTED), ("search", QUOTES)]),
    "content_then_call": ("Let me look that up.", [("search", {"query": "wire fee", "k": 2})]),
    "no_call": ('The fee is 5 USD (source: fees). Quotes "stay" and <tags> too.', []),
}


def _base_template(name: str) -> str:
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja"
    if not path.exists():
        pytest.skip(f"trl no longer ships {path.name}")
    return path.read_text()


@pytest.fixture(scope="module")
def tok(make_tiny_llm):
    folder = make_tiny_llm(
        ["<tool_call> </tool_call> <tool_response> </tool_response>"]
        + [json.dumps(a, ensure_ascii=False) for a in (UNICODE, NESTED, QUOTES)]
    )
    return AutoTokenizer.from_pretrained(folder)


def _conversation(content: str, calls: list[tuple[str, dict]], as_string: bool) -> list[dict]:
    message = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args},
            }
            for name, args in calls
        ]
    conversation = [{"role": "user", "content": "Fees and rates?"}, message]
    # A result and a final answer after the calls: the turn must read the same mid-conversation.
    conversation += [{"role": "tool", "name": name, "content": "ok"} for name, _ in calls]
    return conversation + ([{"role": "assistant", "content": "Done."}] if calls else [])


@pytest.mark.parametrize("template", ["cogcore", "qwen2_5"])
@pytest.mark.parametrize("as_string", [True, False], ids=["arguments-json-string", "arguments-mapping"])
@pytest.mark.parametrize("turn", list(TURNS))
def test_rendered_turn_parses_the_same_with_vllm_hermes_and_ours(tok, template, as_string, turn):
    content, calls = TURNS[turn]
    chat_template = CHAT_TEMPLATE if template == "cogcore" else _base_template(template)
    text, spans = assistant_spans(
        tok, _conversation(content, calls, as_string), [SEARCH_TOOL, RATE_TOOL], chat_template
    )
    start, end, _ = spans[0]
    output = text[start:end].removesuffix("<|im_end|>")  # vLLM stops at the end-of-turn token
    expected = [{"name": name, "arguments": args} for name, args in calls]

    ours_content, ours_calls, errors = parse_tool_calls(output)
    vllm = vllm_extract_tool_calls(output)
    vllm_calls = [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in vllm["tool_calls"]
    ]
    assert errors == []
    assert ours_calls == vllm_calls == expected
    assert vllm["tools_called"] == bool(calls)
    assert ours_content == (vllm["content"] or "").strip() == content


def test_a_call_vllm_cannot_read_is_an_error_for_us_too():
    # Cut off mid-arguments (max_new_tokens reached): vLLM reports no call; we report a malformed one.
    output = '<tool_call>\n{"name": "search", "arguments": {"query": "wire'
    assert vllm_extract_tool_calls(output) == {"tools_called": False, "tool_calls": [], "content": output}
    _, calls, errors = parse_tool_calls(output)
    assert calls == [] and len(errors) == 1 and "malformed" in errors[0]
