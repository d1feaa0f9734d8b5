"""The synthesized conversation kinds (single, multi, no_call, tool_error, unanswerable), built
over a real (tiny) index, and how they are tokenized."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from cogcore.questions import answer_matches, make_question
from cogcore.recipe import ToolsMix
from cogcore.retrieval import SEARCH_TOOL, Embedder, SearchIndex, build_index, format_hits, run_search_tool
from cogcore.runtime import dispatch
from cogcore.tool_protocol import parse_tool_calls
from cogcore.train.chat_template import CHAT_TEMPLATE
from cogcore.train.tools_data import (
    FOLLOW_UP,
    KINDS,
    NOT_FOUND,
    plan_counts,
    synthesize,
    tokenize_conversations,
)

FILLER = "Safe deposit boxes are rented by the year and opened during branch hours by appointment. "
DOCS = [
    {
        "id": "fees",
        "source": "fees.md",
        "meta": {"title": "Account fees"},
        "text": "The standard account costs 5 USD per month and includes a debit card.",
    },
    {
        "id": "cards",
        "source": "cards.md",
        "meta": {"title": "Lost cards"},
        "text": "A replacement card arrives within 7 working days after you call the card line.",
    },
    {
        "id": "wires",
        "source": "wires.md",
        "meta": {"title": "Wire transfers"},
        "text": "International wires cost 25 USD and take two to four business days to arrive.",
    },
    {
        "id": "atm",
        "source": "atm.md",
        "meta": {"title": "Cash machines"},
        "text": "The daily cash machine withdrawal limit is 1,000 USD for every debit card holder.",
    },
    {
        "id": "loans",
        "source": "loans.md",
        "meta": {"title": "Personal loans"},
        "text": "Personal loans carry a fixed yearly rate of 6.5% for terms up to five years.",
    },
    # The fact sits past the 400 characters a passage shows: in the index, but not in the result.
    {
        "id": "boxes",
        "source": "boxes.md",
        "meta": {"title": "Safe deposit boxes"},
        "text": FILLER * 5 + "The safe deposit box fee is 80 USD a year at the head office.",
    },
]
LOUNGE = "Travel cards give a lounge pass that costs 45 USD per visit at the airport."  # not indexed
VALUES = {
    "fees": "5 USD",
    "cards": "7 working days",
    "wires": "25 USD",
    "atm": "1,000 USD",
    "loans": "6.5%",
    "boxes": "80 USD",
    "lounge": "45 USD",
}
FOUND = {"fees", "cards", "wires", "atm", "loans"}


def _fact(doc_id: str, text: str) -> dict:
    value = VALUES[doc_id]
    sentence = text.rsplit(". ", 2)[-1] if doc_id == "boxes" else text
    start = text.index(value)
    return {
        "id": f"f-{doc_id}",
        "doc_id": doc_id,
        "start": start,
        "end": start + len(value),
        "text": value,
        "kind": {"cards": "duration", "loans": "percent"}.get(doc_id, "money"),
        "context": sentence,
    }


@pytest.fixture(scope="module")
def index(make_tiny_embedder, tmp_path_factory):
    embedder = Embedder(make_tiny_embedder([d["text"] for d in DOCS] + [LOUNGE]))
    out = tmp_path_factory.mktemp("kinds-index")
    assert build_index(DOCS, out, embedder, chunk_chars=800, overlap=100).n_chunks == len(DOCS)
    return SearchIndex.load(out, embedder)


@pytest.fixture(scope="module")
def questions():
    titles = {d["id"]: d["meta"]["title"] for d in DOCS} | {"lounge": "Travel"}
    facts = [_fact(d["id"], d["text"]) for d in DOCS] + [_fact("lounge", LOUNGE)]
    qs = [make_question(f, titles[f["doc_id"]]) for f in facts]
    assert all(qs)
    return qs


COUNTS = {"single": 1, "multi": 1, "no_call": 2, "tool_error": 1, "unanswerable": 1}


@pytest.fixture(scope="module")
def made(index, questions):
    # k covers every chunk: whether a value is found depends on the documents, not on ranking.
    return synthesize(questions, index, COUNTS, seed=0, k=len(DOCS))


def _by_kind(conversations: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in conversations:
        out.setdefault(c["kind"], []).append(c)
    return out


def _args(call: dict) -> dict:
    return json.loads(call["function"]["arguments"])


def test_plan_counts_split_the_total_by_the_mix():
    default = plan_counts(64, ToolsMix().model_dump())
    assert default == {"single": 32, "multi": 10, "no_call": 10, "tool_error": 6, "unanswerable": 6}
    assert plan_counts(7, {"single": 1, "multi": 0, "no_call": 0, "tool_error": 0, "unanswerable": 0}) == {
        "single": 7,
        "multi": 0,
        "no_call": 0,
        "tool_error": 0,
        "unanswerable": 0,
    }
    for total in (1, 5, 13, 100):
        assert (
            sum(
                plan_counts(total, {"single": 3, "multi": 1, "no_call": 1, "tool_error": 1, "unanswerable": 1}).values()
            )
            == total
        )


def test_every_kind_is_made_as_asked_and_each_question_used_once(made):
    conversations, requested = made
    assert requested == {k: {"requested": COUNTS[k], "made": COUNTS[k]} for k in KINDS}
    assert {k: len(v) for k, v in _by_kind(conversations).items()} == COUNTS
    used = [f for c in conversations for f in c["fact_ids"]]
    assert len(used) == len(set(used)) == 7


def test_search_results_are_the_real_index_results(made, index):
    for conv in made[0]:
        calls = [c for m in conv["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        results = [m["content"] for m in conv["messages"] if m["role"] == "tool"]
        assert len(calls) == len(results)
        for call, result in zip(calls, results):
            if not result.startswith("error:"):  # the error results are checked in the tool_error test
                assert result == format_hits(index.search(_args(call)["query"], len(DOCS)))


def test_single_and_unanswerable(made):
    kinds = _by_kind(made[0])
    (single,) = kinds["single"]
    doc = single["fact_ids"][0][2:]
    assert doc in FOUND and single["messages"][-1]["content"] == f"{VALUES[doc]} (source: {doc})"
    (unanswerable,) = kinds["unanswerable"]
    result, answer = unanswerable["messages"][2]["content"], unanswerable["messages"][3]["content"]
    doc = unanswerable["fact_ids"][0][2:]
    assert doc in {"boxes", "lounge"} and answer == NOT_FOUND and not unanswerable["found"]
    assert not answer_matches(VALUES[doc], result.replace("1. [", "[").replace("2. [", "["))


def test_multi_asks_two_documents_in_one_turn_and_cites_both(made):
    (conv,) = _by_kind(made[0])["multi"]
    user, calls, r1, r2, answer = conv["messages"]
    d1, d2 = (f[2:] for f in conv["fact_ids"])
    assert d1 != d2 and {d1, d2} <= FOUND and conv["found"]
    assert [c["function"]["name"] for c in calls["tool_calls"]] == ["search", "search"]
    assert r1["role"] == r2["role"] == "tool"
    assert answer["content"] == f"1. {VALUES[d1]} (source: {d1})\n2. {VALUES[d2]} (source: {d2})"
    assert user["content"].startswith("Two questions.\n1. ")


def test_tool_error_gets_the_runtime_error_and_retries_once(made, index, questions):
    (conv,) = _by_kind(made[0])["tool_error"]
    user, bad, error, good, result, answer = conv["messages"]
    assert bad["weight"] == 0 and "weight" not in good
    tools = {"search": (SEARCH_TOOL, lambda a: run_search_tool(index, a, 400))}
    assert error["content"] == dispatch(tools, {"name": "search", "arguments": _args(bad["tool_calls"][0])})
    assert error["content"].startswith("error:")
    question = next(q for q in questions if q.fact_id == conv["fact_ids"][0])
    assert _args(good["tool_calls"][0]) == {"query": question.query}
    assert result["content"] == format_hits(index.search(_args(good["tool_calls"][0])["query"], len(DOCS)))
    doc = conv["fact_ids"][0][2:]
    assert answer["content"] == f"{VALUES[doc]} (source: {doc})"


@pytest.mark.parametrize(
    "variant, message",
    [(0, "non-empty string"), (1, "'query' is a required property"), (2, "is not of type 'integer'")],
)
def test_each_bad_call_is_one_the_tool_really_refuses(index, questions, variant, message):
    from cogcore.train.tools_data import tool_error

    tools = {"search": (SEARCH_TOOL, lambda a: run_search_tool(index, a, 400))}
    conv = tool_error(questions[0], index.search(questions[0].query, 2), tools, variant)
    assert message in conv["messages"][2]["content"]


def test_no_call_answers_from_the_conversation(made):
    convs = _by_kind(made[0])["no_call"]
    quoted = next(c for c in convs if len(c["messages"]) == 2)
    user, answer = quoted["messages"]
    value = VALUES[quoted["fact_ids"][0][2:]]
    assert value in user["content"] and answer["content"].startswith(value) and "tool_calls" not in answer
    follow = next(c for c in convs if len(c["messages"]) > 2)
    *earlier, question, last = follow["messages"]
    doc = follow["fact_ids"][0][2:]
    assert question == {"role": "user", "content": FOLLOW_UP} and "tool_calls" not in last
    assert last["content"].startswith(f"It is from {doc}") and f"[{doc} | " in earlier[2]["content"]


def test_short_pools_are_counted_not_faked(index, questions):
    conversations, requested = synthesize(
        questions, index, {"single": 9, "multi": 0, "no_call": 0, "tool_error": 0, "unanswerable": 9}, k=len(DOCS)
    )
    assert requested["single"] == {"requested": 9, "made": len(FOUND)}
    assert requested["unanswerable"] == {"requested": 9, "made": 2}
    assert len(conversations) == len(FOUND) + 2


def test_tokenized_tool_error_trains_the_retry_not_the_bad_call(make_tiny_llm, made):
    tok = AutoTokenizer.from_pretrained(make_tiny_llm([d["text"] for d in DOCS] + ["<tool_call> error"]))
    tok.chat_template = CHAT_TEMPLATE
    conversations = made[0]
    rows, too_long = tokenize_conversations(tok, conversations, seq_len=100_000)
    assert too_long == 0 and len(rows) == len(conversations)
    for conv, row in zip(conversations, rows):
        trained = tok.decode([t for t in row["labels"] if t != -100])
        turns = [m for m in conv["messages"] if m["role"] == "assistant"]
        for turn in turns:
            _, calls, _ = parse_tool_calls(trained)
            trained_queries = [c["arguments"] for c in calls]
            for call in turn.get("tool_calls", []):
                assert (_args(call) in trained_queries) == (turn.get("weight", 1) == 1)
        assert trained.endswith(turns[-1]["content"] + "<|im_end|>")
