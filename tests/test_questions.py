"""Cloze questions made from facts, and matching an expected value inside a generated answer."""

from __future__ import annotations

import pytest

from cogcore.questions import BLANK, QUERY_WORDS, answer_matches, make_question, make_questions, normalize_answer


def _fact(text: str, context: str, kind: str = "money", doc_id: str = "fees", fact_id: str = "f1") -> dict:
    return {
        "id": fact_id,
        "doc_id": doc_id,
        "text": text,
        "kind": kind,
        "context": context,
        "start": 0,
        "end": len(text),
    }


def test_question_blanks_the_fact_and_query_leaves_it_out():
    fact = _fact("$12.50", "Premium accounts cost $12.50 per month and include travel insurance.")
    q = make_question(fact, "Account fees")
    assert q.question == (
        "In 'Account fees': Premium accounts cost ___ per month and include travel "
        "insurance. What goes in the blank (___)?"
    )
    assert q.query == "Account fees Premium accounts cost per month and include travel insurance"
    assert "12" not in q.question and "12" not in q.query
    assert (q.answer, q.fact_id, q.doc_id, q.kind, q.context) == ("$12.50", "f1", "fees", "money", fact["context"])


def test_word_valued_fact_is_kept_out_of_question_and_query():
    fact = _fact(
        "ACME-42",
        "Wire transfers abroad are routed through the ACME-42 clearing code at the head office.",
        kind="identifier",
    )
    q = make_question(fact, "")
    assert not q.question.startswith("In '") and q.question.count(BLANK) == 2  # the blank and the prompt's
    assert "ACME" not in q.question and "ACME" not in q.query


def test_repeated_value_is_blanked_everywhere():
    # A value that appears twice in its sentence must not leak through its second mention.
    fact = _fact("ZX-9", "Card ZX-9 replaces the old card, and ZX-9 works at every branch counter.", kind="identifier")
    q = make_question(fact, "Cards")
    assert "ZX-9" not in q.question and "ZX" not in q.query


def test_value_in_the_title_does_not_leak():
    fact = _fact("ZX-9", "The card replaces the old card and works at every branch counter: ZX-9.", kind="identifier")
    q = make_question(fact, "Card ZX-9")
    assert q.question.startswith("In 'Card ___': ") and "ZX" not in q.question and "ZX" not in q.query


def test_markup_is_stripped_from_the_sentence():
    fact = _fact("19.9%", "> - **An arranged overdraft charges 19.9% a year on the balance.** |", kind="percent")
    q = make_question(fact, "")
    assert q.question.startswith("An arranged overdraft charges ___ a year on the balance.")
    assert q.query == "An arranged overdraft charges year on the balance"


def test_query_is_capped():
    words = " ".join(f"w{''.join(chr(97 + (i + j) % 26) for j in range(3))}" for i in range(30))
    fact = _fact("5 USD", f"The fee is 5 USD for {words}.")
    q = make_question(fact, "Fees")
    assert len(q.query.split()) == QUERY_WORDS


@pytest.mark.parametrize(
    "fact",
    [
        _fact("5 USD", "Costs 5 USD."),  # too short
        _fact("5 USD", "It is 5 USD, or 5 USD, or 5 USD." + " x" * 200),  # too long
        _fact("5 USD", "The fee is 10 USD per month for all standard accounts."),  # the value is not in it
        _fact("Alice", "Accounts are opened by Alice at the head office on weekdays.", kind="person"),  # not askable
        _fact("", "The fee is 10 USD per month for all standard accounts."),  # an empty value
        _fact("12 USD", "Fee table: 12 USD | 5 | 7 | 9 | 3 | 1 | 8 | 4"),  # fewer than 4 words around it
    ],
)
def test_thin_or_unaskable_contexts_are_rejected(fact):
    assert make_question(fact, "") is None


def test_make_questions_is_reproducible_and_one_per_doc():
    facts = [
        _fact(
            f"{n} USD",
            f"The fee for product number {n} is {n} USD every single month.",
            doc_id=f"d{n % 3}",
            fact_id=f"f{n}",
        )
        for n in range(10, 22)
    ]
    titles = {"d0": "Zero", "d1": "One", "d2": "Two"}
    a = make_questions(facts, titles, limit=10, seed=1)
    assert a == make_questions(list(reversed(facts)), titles, limit=10, seed=1)
    assert sorted(q.doc_id for q in a) == ["d0", "d1", "d2"]
    many = make_questions(facts, titles, limit=5, seed=1, one_per_doc=False)
    assert len(many) == 5 and len({q.question for q in many}) == 5


def test_customer_form_asks_with_the_question_word_of_the_kind():
    label = make_question(
        _fact("$25.00", "- Monthly paper statement fee: $25.00"), "Light Green Account: Fees", "customer"
    )
    assert label.question == "How much is the monthly paper statement fee for the Light Green Account?"
    stay = _fact("30 days", "Customers have 30 days to fund the account.", kind="duration")
    q = make_question(stay, "Gold Plus Saver Account: Opening", "customer")
    assert "Customers have how long to fund the account" in q.question
    assert "Gold Plus Saver Account" in q.question and "30" not in q.question
    # The query is the same in both forms: the sentence's words under the title.
    assert q.query == make_question(stay, "Gold Plus Saver Account: Opening").query
    count = make_question(
        _fact("15 withdrawals", "You get 15 withdrawals free every month.", kind="quantity"), "", "customer"
    )
    assert count.question == "You get how many withdrawals free every month?"


def test_customer_form_names_the_product_once():
    fact = _fact("$5", "The Gold Account charges $5 for paper statements.")
    assert make_question(fact, "Gold Account: Fees", "customer").question == (
        "The Gold Account charges how much for paper statements?"
    )


def test_question_forms_are_drawn_by_share_and_checked():
    facts = [_fact(f"${n}", f"The fee for item {n} is ${n} each month here.", fact_id=f"f{n}") for n in range(40)]
    mixed = make_questions(facts, {}, limit=40, one_per_doc=False, forms={"cloze": 1, "customer": 1})
    cloze = sum(q.question.endswith(f"({BLANK})?") for q in mixed)
    assert 10 < cloze < 30
    assert mixed == make_questions(facts, {}, limit=40, one_per_doc=False, forms={"cloze": 1, "customer": 1})
    with pytest.raises(ValueError, match="question forms"):
        make_questions(facts, {}, limit=4, forms={"verbatim": 1})
    with pytest.raises(ValueError, match="question form must be one of"):
        make_question(facts[0], "", "verbatim")


@pytest.mark.parametrize(
    "expected, generated, match",
    [
        ("$5", "The fee is $15 a month.", False),
        ("5", "It costs 15 USD or 50 USD or 5.5 USD.", False),
        ("$5", "The fee is 5 USD a month.", True),
        ("1,000", "The limit is $1000.", True),
        ("$1000", "The limit is 1,000 USD.", True),
        ("1,000", "The limit is 11,000 USD.", False),
        ("19.9%", "An arranged overdraft charges 19.9% a year.", True),
        ("19.9%", "An arranged overdraft charges 119.9% a year.", False),
        ("5 USD", "It is 5  usd.", True),
        ("5", "It is 5.", True),
        ("5", "Version 2.5 applies.", False),
        ("2.5", "It is 2.5.", True),
        ("March 1, 2024", "Since march 1, 2024 the rule applies", True),
        ("12", "", False),
    ],
)
def test_answer_matches_whole_values(expected, generated, match):
    assert answer_matches(expected, generated) is match


def test_normalize_answer():
    assert normalize_answer("  $1,250,000.  ") == "1250000"
    assert normalize_answer("€5 Per Month") == "5 per month"
