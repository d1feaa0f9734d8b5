"""Tool-use conversations from facts and a real (tiny) search index, and their loss masks."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from cogcore.questions import answer_matches, make_question
from cogcore.retrieval import SEARCH_TOOL, Embedder, SearchIndex, build_index, format_hits
from cogcore.tool_protocol import parse_tool_calls
from cogcore.train.chat_template import CHAT_TEMPLATE
from cogcore.train.tools_data import NOT_FOUND, build_conversations, tokenize_conversations

FILLER = (
    "Safe deposit boxes are rented by the year and can be opened during branch hours with an "
    "appointment made in advance. "
)
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
    # One chunk of ~560 characters whose fact sits past the 400 characters a passage shows.
    {
        "id": "boxes",
        "source": "boxes.md",
        "meta": {"title": "Safe deposit boxes"},
        "text": FILLER * 4 + "The safe deposit box fee is 80 USD a year at the head office.",
    },
]
# The lounge document is not indexed: its question has no answer in the index.
LOUNGE = "Travel cards give a lounge pass that costs 45 USD per visit at the airport."


def _fact(doc_id: str, text: str, value: str, fact_id: str) -> dict:
    sentence = text.rsplit(". ", 1)[-1] if doc_id == "boxes" else text
    start = text.index(value)
    return {
        "id": fact_id,
        "doc_id": doc_id,
        "start": start,
        "end": start + len(value),
        "text": value,
        "kind": "money" if "USD" in value else "duration",
        "context": sentence,
    }


FACTS = [
    _fact("fees", DOCS[0]["text"], "5 USD", "f-fees"),
    _fact("cards", DOCS[1]["text"], "7 working days", "f-cards"),
    _fact("wires", DOCS[2]["text"], "25 USD", "f-wires"),
    _fact("boxes", DOCS[3]["text"], "80 USD", "f-boxes"),
    _fact("lounge", LOUNGE, "45 USD", "f-lounge"),
]
TITLES = {d["id"]: d["meta"]["title"] for d in DOCS} | {"lounge": "Travel"}


@pytest.fixture(scope="module")
def index(make_tiny_embedder, tmp_path_factory):
    texts = [d["text"] for d in DOCS] + [LOUNGE]
    embedder = Embedder(make_tiny_embedder(texts))
    out = tmp_path_factory.mktemp("tools-index")
    stats = build_index(DOCS, out, embedder, chunk_chars=800, overlap=100)
    assert stats.n_chunks == len(DOCS)
    return SearchIndex.load(out, embedder)


@pytest.fixture(scope="module")
def questions():
    qs = [make_question(f, TITLES[f["doc_id"]]) for f in FACTS]
    assert all(qs)
    return qs


@pytest.fixture(scope="module")
def tok(make_tiny_llm):
    texts = [d["text"] for d in DOCS] + [LOUNGE, NOT_FOUND, "<tool_call> <tool_response>"]
    tok = AutoTokenizer.from_pretrained(make_tiny_llm(texts))
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _shown_passages(tool_result: str) -> list[tuple[str, str]]:
    """(doc_id, passage text) for each numbered line of a search result."""
    out = []
    for line in tool_result.split("\n"):
        label, text = line.split("] ", 1)
        out.append((label.split("[", 1)[1].split(" | ")[0], text))
    return out


def test_conversation_shape(index, questions):
    conversations = build_conversations(questions, index, k=2)
    assert [c["fact_ids"] for c in conversations] == [[q.fact_id] for q in questions]
    for q, conv in zip(questions, conversations):
        user, call, tool, answer = conv["messages"]
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert user["content"] == q.question
        (tool_call,) = call["tool_calls"]
        assert tool_call["function"]["name"] == "search"
        assert isinstance(tool_call["function"]["arguments"], str)  # a dict would gain other calls' keys in datasets
        assert json.loads(tool_call["function"]["arguments"]) == {"query": q.query}
        assert tool["content"] == format_hits(index.search(q.query, k=2))  # what the real tool returns


def test_answer_cites_a_source_only_when_the_shown_result_holds_the_value(index, questions):
    # k covers every chunk, so whether the value is found depends on the documents, not on ranking.
    conversations = build_conversations(questions, index, k=len(DOCS))
    by_fact = {c["fact_ids"][0]: c for c in conversations}
    for q, conv in zip(questions, conversations):
        result, answer = conv["messages"][2]["content"], conv["messages"][3]["content"]
        holding = [doc for doc, text in _shown_passages(result) if answer_matches(q.answer, text)]
        if holding:
            assert conv["found"] and answer == f"{q.answer} (source: {holding[0]})"
        else:
            assert not conv["found"] and answer == NOT_FOUND
    assert all(by_fact[f]["found"] for f in ("f-fees", "f-cards", "f-wires"))
    assert not by_fact["f-lounge"]["found"]  # not in the index at all
    # In the index, but past what the model is shown of its passage: answering would teach guessing.
    assert "80 USD" in DOCS[3]["text"] and not by_fact["f-boxes"]["found"]


def test_tokenized_rows_train_only_assistant_tokens(tok, index, questions):
    conversations = build_conversations(questions, index, k=2)
    rows, too_long = tokenize_conversations(tok, conversations, seq_len=100_000)
    assert too_long == 0 and len(rows) == len(conversations)
    for conv, row in zip(conversations, rows):
        text = tok.apply_chat_template(conv["messages"], tools=[SEARCH_TOOL], tokenize=False)
        assert tok.decode(row["input_ids"]) == text
        trained = [t for t in row["labels"] if t != -100]
        assert trained == [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
        assert all(label in (-100, t) for t, label in zip(row["input_ids"], row["labels"]))
        call_turn, answer_turn = [p.split("<|im_end|>")[0] for p in text.split("<|im_start|>assistant\n")[1:]]
        assert tok.decode(trained) == call_turn + "<|im_end|>" + answer_turn + "<|im_end|>"
        query = json.loads(conv["messages"][1]["tool_calls"][0]["function"]["arguments"])["query"]
        assert parse_tool_calls(call_turn) == ("", [{"name": "search", "arguments": {"query": query}}], [])


def test_rows_over_seq_len_are_skipped_and_counted(tok, index, questions):
    conversations = build_conversations(questions, index, k=2)
    rows, _ = tokenize_conversations(tok, conversations, seq_len=100_000)
    lengths = sorted(len(r["input_ids"]) for r in rows)
    assert lengths[0] < lengths[-1]
    cut = lengths[len(lengths) // 2]
    kept, too_long = tokenize_conversations(tok, conversations, seq_len=cut)
    assert too_long == sum(n > cut for n in lengths) > 0
    assert len(kept) + too_long == len(conversations)
    assert all(len(r["input_ids"]) <= cut for r in kept)
    assert sorted(len(r["input_ids"]) for r in kept) == [n for n in lengths if n <= cut]
    # The limit is inclusive: a row of exactly seq_len tokens fits, one more does not.
    assert tokenize_conversations(tok, conversations, seq_len=lengths[0])[1] == len(lengths) - lengths.count(lengths[0])
    assert tokenize_conversations(tok, conversations, seq_len=lengths[0] - 1) == ([], len(lengths))
