"""Fact detection: planted facts of every kind are found with the right kind, span and context."""

import pytest

from cogcore.curate.facts import PATTERNS, FactDetector


def detect(text: str, **kw) -> list[dict]:
    facts = FactDetector(**kw).detect({"id": "doc", "text": text})
    for f in facts:  # every fact indexes the text exactly
        assert text[f["start"]:f["end"]] == f["text"] and f["id"] == f"doc:{f['start']}" and f["doc_id"] == "doc"
    return facts


@pytest.mark.parametrize("sentence, fact, kind", [
    ("The annual fee is $1,250.00 per account.", "$1,250.00", "money"),
    ("Incoming wires cost 40 USD each.", "40 USD", "money"),
    ("Savings earn 2.5% a year.", "2.5%", "percent"),
    ("The policy changed on 2024-03-15 for everyone.", "2024-03-15", "date"),
    ("The branch reopened on March 5, 2024 after repairs.", "March 5, 2024", "date"),
    ("Disputes must be filed within 30 days.", "30 days", "duration"),
    ("Refunds arrive in 14 business days.", "14 business days", "duration"),
    ("Each customer gets 5 GB of statement storage.", "5 GB", "quantity"),
    ("Quote reference ACC-12345 when you call.", "ACC-12345", "identifier"),
    ("The agent calls open_bank_account_4821 to start.", "open_bank_account_4821", "identifier"),
    ("Update the app to v2.3.1 first.", "v2.3.1", "identifier"),
    ("Write to disputes.team@bank-example.com for help.", "disputes.team@bank-example.com", "email"),
    ("Rates are listed at https://bank.example.com/rates?tier=gold today.", "https://bank.example.com/rates?tier=gold", "url"),
    ("A customer may hold 4 accounts.", "4", "number"),
])
def test_planted_fact_is_detected_with_its_kind(sentence, fact, kind):
    facts = detect(sentence)
    assert [(f["text"], f["kind"]) for f in facts] == [(fact, kind)]
    assert facts[0]["context"] == sentence


@pytest.mark.parametrize("sentence", [
    "Please ask the branch manager for help with your account.",
    "Only one person may sign, and 1 is the minimum.",  # bare numbers below 2 carry nothing to learn
    "",
])
def test_sentence_without_facts_gives_none(sentence):
    assert detect(sentence) == []


def test_list_markers_are_not_facts_but_numbers_mid_line_are():
    text = "Steps:\n1. Open the app.\n3. Tap Accounts.\n  12) Confirm.\nRepeat step 3. Then wait."
    facts = detect(text)
    assert [(f["start"], f["text"]) for f in facts] == [(text.index("step 3") + 5, "3")]


def test_url_does_not_swallow_trailing_punctuation():
    assert [f["text"] for f in detect("See https://bank.example.com/fees.")] == ["https://bank.example.com/fees"]


def test_overlaps_go_to_the_earlier_kind():
    text = "Pay $1,250.00 by 2024-03-15 within 30 days, 5 GB max, at help@bank.example.com."
    assert [(f["text"], f["kind"]) for f in detect(text)] == [
        ("$1,250.00", "money"), ("2024-03-15", "date"), ("30 days", "duration"), ("5 GB", "quantity"),
        ("help@bank.example.com", "email")]
    # the same text with only bare numbers: the spans that money/date/duration claimed are now numbers
    numbers = [f["text"] for f in detect(text, kinds=["number"])]
    assert numbers == ["1,250.00", "2024", "03", "15", "30", "5"]
    assert [f["kind"] for f in detect("Pay by 2024-03-15.", kinds=["number", "date"])] == ["date"]


def test_only_chosen_kinds_are_detected_in_priority_order():
    detector = FactDetector(kinds=["number", "money"])
    assert detector.kinds == ["money", "number"]
    text = "Fee $5 for 7 days, rate 3%."
    assert [(f["text"], f["kind"]) for f in detector.detect({"id": "d", "text": text})] == [
        ("$5", "money"), ("7", "number"), ("3", "number")]


def test_context_is_the_enclosing_sentence():
    text = ("Overview. The fee is $25 per wire! Is it 3 days? Yes.\n"
            "Contact ACC-12345 for details.\nNo facts here.")
    contexts = {f["text"]: f["context"] for f in detect(text)}
    assert contexts == {"$25": "The fee is $25 per wire!", "3 days": "Is it 3 days?",
                        "ACC-12345": "Contact ACC-12345 for details."}


def test_facts_are_sorted_by_position():
    text = "On 2024-01-02 pay $9; by 2024-02-03 pay $8."
    starts = [f["start"] for f in detect(text)]
    assert starts == sorted(starts) and len(starts) == 4


def test_unknown_kinds_raise_and_name_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown fact kinds \['phone'\]; allowed: url, email, money"):
        FactDetector(kinds=["money", "phone"])
    assert list(PATTERNS)[-1] == "number"  # the catch-all comes last, so specific kinds win
