"""Three fact sets: a changed copy alters exactly the sampled values and nothing else, and an index
rebuilt over it returns the new value; answers are scored by normalized value; each wrong answer
gets the first failure on its way (no call, malformed call, retrieval miss, echo, wrong extraction,
stale)."""

from __future__ import annotations

import random
import re

import pytest

from cogcore.curate.facts import FactDetector
from cogcore.eval.fact_sets import Item, ValueMatcher, alter_value, change_facts, classify, summarize_rows
from cogcore.retrieval import Embedder, SearchIndex, build_index
from cogcore.runtime import Transcript

DOCS = [
    {
        "id": f"d{i}",
        "source": "kb",
        "meta": {"title": f"Plan {i}"},
        "text": f"Plan {i}: the wire fee is ${10 + i}.00 "
        f"and a transfer takes {i + 2} days. Call us any time; the fee of ${10 + i}.00 is charged once.",
    }
    for i in range(6)
]
MATCH = ValueMatcher(FactDetector())


def _item(doc: dict, value: str, occurrence: int = 0) -> Item:
    start = -1
    for _ in range(occurrence + 1):
        start = doc["text"].index(value, start + 1)
    return Item("train", f"What is the fee of plan {doc['id']}?", value, doc["id"], start, "money")


def test_a_changed_copy_alters_exactly_the_sampled_values_and_nothing_else():
    items = [_item(DOCS[0], "$10.00"), _item(DOCS[2], "4 days"), _item(DOCS[2], "$12.00")]
    change = change_facts(DOCS, items, seed=0)
    # one change per document: the second item of d2 is skipped, offsets stay true
    assert [i.doc_id for i in change.items] == ["d0", "d2"] and change.skipped == 1 and change.copies == 0
    for before, after in zip(DOCS, change.docs):
        changed = next((i for i in change.items if i.doc_id == before["id"]), None)
        if changed is None:
            assert after == before
            continue
        s = changed.start
        assert after["text"][:s] == before["text"][:s]  # everything before the span is the same
        assert after["text"][s + len(changed.answer) :] == before["text"][s + len(changed.stale) :]  # and after it
        assert after["text"][s : s + len(changed.answer)] == changed.answer != changed.stale
    # the value's other mention in d0 is left as it was: only the sampled span changes
    assert change.docs[0]["text"].count("$10.00") == 1


def test_an_index_rebuilt_over_the_changed_copy_returns_the_new_value(tmp_path, make_tiny_embedder):
    change = change_facts(DOCS, [_item(DOCS[3], "$13.00")], seed=1)
    (item,) = change.items
    embedder = Embedder(make_tiny_embedder(d["text"] for d in DOCS + change.docs), batch_size=8)
    build_index(change.docs, tmp_path / "changed", embedder, chunk_chars=200, overlap=20)
    hits = SearchIndex.load(tmp_path / "changed", embedder).search(f"wire fee {item.answer}", k=3)
    assert any(item.answer in h.text and h.doc_id == "d3" for h in hits)
    assert not any(item.answer in d["text"] for d in DOCS)  # a value no original document holds


def test_new_values_keep_the_form_of_the_old_ones():
    rng = random.Random(0)
    for old in ("$1,250.00", "30 days", "2.5%", "3-5 business days", "7", "$0"):
        new = alter_value(old, rng)
        assert new is not None and new != old
        assert ("," in new) == ("," in old) and new.count(".") == old.count(".")
    assert alter_value("Silver Account", rng) is None


@pytest.mark.parametrize(
    ("expected", "answer", "right"),
    [
        ("$1,250", "It costs 1250 USD.", True),
        ("$25", "The fee is 25 dollars a month.", True),
        ("3-5 business days", "It takes 3 to 5 business days.", True),
        ("2.5%", "You earn 2.5 percent.", True),
        ("$25", "The fee is $250.", False),
        ("30 days", "about 3 days", False),
        ("7", "within 17 days", False),
    ],
)
def test_answers_are_scored_by_their_normalized_value(expected, answer, right):
    assert MATCH(expected, answer) is right


def _transcript(answer: str, calls=(), errors=()) -> Transcript:
    return Transcript("q", [], answer=answer, calls=list(calls), errors=list(errors))


def test_each_wrong_answer_gets_the_first_failure_on_its_way():
    item = Item("changed", "fee?", "$35", "d0", 0, "money", stale="$25")
    hit = {"name": "search", "arguments": {}, "result": "1. [d0 | Plan] the fee is $35."}
    miss = {"name": "search", "arguments": {}, "result": "1. [d4 | Plan] the fee is $14."}
    cases = {
        "correct": _transcript("It is $35.", [hit]),
        "stale": _transcript("It is $25.", [hit]),
        "stale_from_search": _transcript("It is $25.", [{**miss, "result": "1. [d9 | Plan] the fee is $25."}]),
        "no_call": _transcript("I think $40."),
        "malformed_call": _transcript("hmm", errors=["not JSON"]),
        "retrieval_miss": _transcript("It is $14.", [miss]),
        "echo": _transcript("<tool_response>the fee is $35.</tool_response>", [hit]),
        "wrong_extraction": _transcript("It is $36.", [hit]),
    }
    for outcome, t in cases.items():
        assert classify(item, t, with_tools=True, value_matches=MATCH) == outcome, outcome
    assert classify(item, _transcript("maybe $40"), with_tools=False, value_matches=MATCH) == "wrong"
    rows = [{"outcome": o, "stale": "$25"} for o in ("correct", "stale", "stale_from_search", "no_call")]
    assert summarize_rows(rows) == {
        "n": 4,
        "accuracy": 0.25,
        "errors": {"no_call": 1, "stale": 1, "stale_from_search": 1},
        "stale_rate": 0.5,
        "stale_from_memory_rate": 0.25,
    }


def test_a_statement_repeated_on_other_pages_changes_on_all_of_them():
    shared = "Wires abroad cost $25.00 on this plan."
    docs = [
        {"id": "a", "text": f"Gold plan. {shared} Cards cost $5."},
        {"id": "b", "text": f"Silver plan. {shared} Summary: wires $25.00."},
        {"id": "c", "text": "Bronze plan. Wires abroad cost $30.00 here."},
    ]
    item = Item("train", "wire fee?", "$25.00", "a", docs[0]["text"].index("$25.00"), "money")
    change = change_facts(docs, [item], seed=0)
    (changed,) = change.items
    assert change.copies == 1 and changed.answer in change.docs[1]["text"].split("Summary")[0]
    assert change.docs[2] == docs[2] and change.docs[0]["text"].endswith("Cards cost $5.")
    assert "Summary: wires $25.00." in change.docs[1]["text"]  # another sentence: not the same statement


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ('{"question": "fee?", "answer": ""}', "line 2: needs non-empty text fields question, answer, doc_id"),
        ('["a list"]', "line 2: needs non-empty text fields"),
        ('{"question": "q", "answer": "$5", "doc_id": "d0", "answer_start": -3}', "line 2: answer_start"),
        ("x" * 30_000, "line 2: longer than 20,000 characters"),
    ],
)
def test_a_bad_questions_file_line_is_one_error_naming_the_line(tmp_path, line, message):
    from cogcore.stages.fact_sets import question_rows

    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "fee?", "answer": "$5", "doc_id": "d0"}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"eval\.fact_sets\.questions_file: .*" + re.escape(message)):
        list(question_rows(path))
