"""The base model's own chat template: kept when it lists tools and writes hermes calls, else ours;
assistant masks found by rendering prefixes, for any template.

The model templates are real ones: the copies TRL ships (`trl/chat_templates/*.jinja`) and
SmolLM2-135M-Instruct's, the demo model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from cogcore.retrieval import SEARCH_TOOL
from cogcore.train.chat_template import (
    CHAT_TEMPLATE,
    PROBE_CONVERSATION,
    PROBE_TOOL,
    TemplateError,
    assistant_spans,
    choose_chat_template,
    template_problem,
    tokenize_with_mask,
)

# SmolLM2-135M-Instruct's chat template, verbatim: plain ChatML, no tools.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _trl_template(name: str) -> str:
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja"
    if not path.exists():
        pytest.skip(f"trl no longer ships {path.name}")
    return path.read_text()


@pytest.fixture(scope="module")
def folder(make_tiny_llm):
    return make_tiny_llm(["<tool_call> </tool_call> <tool_response> probe value 4217", "Fees and limits?"])


def _tok(folder, template: str | None):
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = template
    return tok


def test_a_hermes_tool_template_is_kept(folder):
    qwen = _trl_template("qwen2_5")
    template, record = choose_chat_template(_tok(folder, qwen))
    assert template == qwen and record["template"] == "base"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("smollm2", "does not list the tools"),
        ("llama3_1", "hermes <tool_call>"),  # lists tools, but calls are bare {"name", "parameters"} JSON
        ("qwen3", "cannot be located"),  # earlier turns lose their <think> block once a turn follows
        (None, "no chat template"),
    ],
)
def test_other_templates_give_way_to_ours_with_the_reason(folder, name, problem):
    own = {"smollm2": SMOLLM2, None: None}[name] if name in ("smollm2", None) else _trl_template(name)
    template, record = choose_chat_template(_tok(folder, own))
    assert template == CHAT_TEMPLATE and record["template"] == "cogcore"
    assert problem in record["reason"]


def test_ours_passes_its_own_probe(folder):
    tok = _tok(folder, CHAT_TEMPLATE)
    assert template_problem(tok, CHAT_TEMPLATE) is None
    assert choose_chat_template(tok) == (
        CHAT_TEMPLATE,
        {"template": "cogcore", "reason": "the base tokenizer already carries it"},
    )


def test_prefix_mask_equals_the_generation_marker_mask_for_ours(folder):
    tok = _tok(folder, CHAT_TEMPLATE)
    conversation = [
        {"role": "user", "content": "Fees and limits?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"type": "function", "function": {"name": "search", "arguments": json.dumps({"query": "fees"})}},
                {"type": "function", "function": {"name": "search", "arguments": {"query": "limits", "k": 2}}},
            ],
        },
        {"role": "tool", "name": "search", "content": "A"},
        {"role": "tool", "name": "search", "content": "B"},
        {"role": "assistant", "content": "Fees A, limits B."},
    ]
    ids, mask = tokenize_with_mask(tok, conversation, [SEARCH_TOOL])
    # The generation-marker mask renders the arguments as given; ours as mappings: same JSON here.
    enc = tok.apply_chat_template(
        conversation, tools=[SEARCH_TOOL], return_dict=True, return_assistant_tokens_mask=True
    )
    assert ids == list(enc["input_ids"]) and mask == list(enc["assistant_masks"])
    assert 0 < sum(mask) < len(mask)


def test_prefix_mask_on_a_base_template_covers_exactly_the_assistant_turns(folder):
    tok = _tok(folder, _trl_template("qwen2_5"))
    ids, mask = tokenize_with_mask(tok, PROBE_CONVERSATION, [PROBE_TOOL])
    text = tok.apply_chat_template(PROBE_CONVERSATION, tools=[PROBE_TOOL], tokenize=False)
    assert tok.decode(ids) == text
    runs, current = [], []
    for token, m in zip(ids + [None], mask + [0]):
        if m:
            current.append(token)
        elif current:
            runs.append(tok.decode(current))
            current = []
    args = json.dumps(PROBE_CONVERSATION[1]["tool_calls"][0]["function"]["arguments"], ensure_ascii=False)
    assert runs == [
        '<tool_call>\n{"name": "probe_lookup", "arguments": ' + args + "}\n</tool_call><|im_end|>",
        "The probe value is 4217.<|im_end|>",
    ]


def test_weight_zero_turns_carry_no_loss(folder):
    tok = _tok(folder, CHAT_TEMPLATE)
    conversation = [dict(m) for m in PROBE_CONVERSATION]
    _, full = tokenize_with_mask(tok, conversation, [PROBE_TOOL])
    conversation[1]["weight"] = 0
    ids, mask = tokenize_with_mask(tok, conversation, [PROBE_TOOL])
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == "The probe value is 4217.<|im_end|>"
    assert sum(mask) < sum(full)
    # The key is for training only: the rendered text is the same with or without it.
    assert tok.decode(ids) == tok.apply_chat_template(PROBE_CONVERSATION, tools=[PROBE_TOOL], tokenize=False)


def test_a_template_that_rewrites_earlier_turns_is_refused(folder):
    tok = _tok(folder, _trl_template("qwen3"))
    with pytest.raises(TemplateError, match="assistant turn 1"):
        assistant_spans(tok, PROBE_CONVERSATION, [PROBE_TOOL])
