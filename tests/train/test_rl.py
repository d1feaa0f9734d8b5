"""GRPO on the search tool: the declared tool as the trainer sees it, the reward, the response template
reading a call back, and a real GRPO step on a tiny model and index."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from cogcore.curate.facts import FactDetector
from cogcore.eval.fact_sets import ValueMatcher
from cogcore.questions import make_questions
from cogcore.retrieval import SEARCH_TOOL, Embedder, SearchIndex, build_index
from cogcore.train.chat_template import CHAT_TEMPLATE
from cogcore.train.rl import HERMES_RESPONSE_TEMPLATE, RlSettings, answer_reward, final_text, search_tool, train_grpo

DOCS = [
    {"id": f"d{i}", "text": f"Plan {i} costs {i + 3} USD per month for every holder of the card.", "meta": {}}
    for i in range(6)
]


@pytest.fixture(scope="module")
def index(tmp_path_factory, make_tiny_embedder):
    folder = tmp_path_factory.mktemp("rl-index") / "index"
    build_index(DOCS, folder, Embedder(str(make_tiny_embedder([d["text"] for d in DOCS]))))
    return SearchIndex.load(folder)


def test_the_tool_is_listed_as_trained_and_dispatched_as_served(index):
    tool = search_tool(index)
    assert dict(tool) == SEARCH_TOOL and tool.__name__ == "search"
    assert "Plan 2 costs 5 USD" in tool(query="plan 2 cost")
    # Arguments a model wrote are checked, never run: a bad one comes back as the tool's error.
    assert tool(query="").startswith("error:") and tool(query="x", shell="rm -rf /").startswith("error:")


def test_reward_is_the_value_in_the_final_answer():
    reward = answer_reward(ValueMatcher(FactDetector()))
    called = [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "search", "arguments": {}}}]},
        {"role": "tool", "content": "Plan 2 costs 5 USD per month."},
        {"role": "assistant", "content": "It costs 5 dollars a month (source: d2)."},
    ]
    echoed = called[:2] + [{"role": "assistant", "content": "Plan 2 costs 6 USD."}]
    assert final_text(called).startswith("It costs")
    assert reward([called, echoed, "5 USD"], ["$5", "$5", "5 USD"]) == [1.0, 0.0, 1.0]


def test_the_response_template_reads_a_hermes_call_back(make_tiny_llm):
    tok = AutoTokenizer.from_pretrained(make_tiny_llm(["search plan cost"]))
    tok.chat_template = CHAT_TEMPLATE
    tok.response_template = HERMES_RESPONSE_TEMPLATE
    call = {"name": "search", "arguments": {"query": "plan 2 cost"}}
    # As the trainer asks: the prompt (ending where the assistant's turn opens), then what was generated.
    prompt = "<|im_start|>user\nWhat does plan 2 cost?<|im_end|>\n<|im_start|>assistant\n"
    parsed = tok.parse_response(f"<tool_call>\n{json.dumps(call)}\n</tool_call><|im_end|>\n", prefix=prompt)
    assert parsed["tool_calls"] == [{"type": "function", "function": call}]
    assert tok.parse_response("5 USD<|im_end|>", prefix=prompt)["content"] == "5 USD"


def test_a_grpo_step_runs_on_a_tiny_model_and_merges(index, make_tiny_llm, tmp_path):
    folder = make_tiny_llm([d["text"] for d in DOCS] + ["<tool_call> </tool_call> search query"])
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(folder)
    facts = [
        {"id": f"f{i}", "doc_id": d["id"], "kind": "money", "text": f"{i + 3} USD", "context": d["text"]}
        for i, d in enumerate(DOCS)
    ]
    questions = make_questions(facts, {d["id"]: f"Plan {i}" for i, d in enumerate(DOCS)}, 4, forms={"customer": 1})
    settings = RlSettings(
        steps=1,
        questions=4,
        group=2,
        batch_size=2,
        lr=1e-4,
        beta=0.0,
        temperature=1.0,
        max_completion_tokens=8,
        max_tool_calls=1,
        lora_r=4,
        seed=0,
    )
    merged, record = train_grpo(model, tok, index, questions, settings, tmp_path / "rl", ValueMatcher())
    assert record["steps"] == 1 and record["history"][0]["reward"] == 0.0  # a random model answers nothing
    assert type(merged).__name__ == "LlamaForCausalLM"  # the LoRA is merged: a plain model to save
