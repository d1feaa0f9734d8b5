"""The fact gate: faithful rewrites in every style pass; each kind of bad rewrite is rejected for its reason."""

import json

import pytest

from cogcore.curate.facts import FactDetector
from cogcore.rephrase.gate import REASONS, GateSettings, check_rewrite, tally

# Names as curation learns them from a corpus (cogcore.curate.names): the detector runs with them.
NAMES = ["Gold Rewards Card", "Silver Saver Account", "Bronze Saver Account"]
SOURCE = (
    "## Gold Rewards Card fees\n"
    "The Gold Rewards Card has an annual fee of $1,250.00, charged on March 3, 2024 and every year after. "
    "Refunds of disputed charges arrive in 3-5 business days. "
    "Cardholders earn 2.5% cash back on travel and may hold up to 4 cards. "
    "Each month, you receive 2 free foreign ATM withdrawals. "
    "Quote ticket #48213 when you call about the fee."
)
PROMPT = (
    "Rewrite the passage below as questions and answers. Keep every number, date, amount, identifier "
    "and name exactly as the passage states it, and add no fact it does not state.\n\n" + SOURCE
)


@pytest.fixture(scope="module")
def detector():
    return FactDetector(names=NAMES)


def gate(rewrite: str, detector, source: str = SOURCE, **kw):
    return check_rewrite(source, rewrite, detector, prompt_text=PROMPT, **kw)


# --- faithful rewrites in each style pass -----------------------------------------------------------

WIKIPEDIA = (
    "The Gold Rewards Card is a credit card with an annual fee of 1250 dollars. The fee was first charged "
    "on 2024-03-03 and recurs each year. Holders earn 2.5 percent cash back on travel and may hold up to 4 "
    "cards, and they receive 2 free foreign ATM withdrawals each month. When a charge is disputed, the refund "
    "arrives in 3 to 5 business days. Customers calling about the fee quote ticket 48213."
)
QA = (
    "Q1: What is the annual fee of the Gold Rewards Card?\n"
    "A1: $1,250.00, charged on March 3, 2024 and every year after.\n\n"
    "Question 2: How fast do refunds of disputed charges arrive?\n"
    "Answer 2: In 3-5 business days.\n\n"
    "**Q3.** How much cash back do cardholders earn, and how many cards may they hold?\n"
    "2.5% on travel; up to 4 cards.\n\n"
    "Step 4: How many free foreign ATM withdrawals come each month? 2 of them.\n\n"
    "Q5: What should you quote when you call about the fee? Ticket #48213."
)
KNOWLEDGE_LIST = (
    "Key facts: Gold Rewards Card\n"
    "1. Annual fee: $1,250.00 (first charged March 3, 2024)\n"
    "2. Refunds of disputed charges: 3-5 business days\n"
    "3. Cash back on travel: 2.5%\n"
    "4. Most cards per customer: 4\n"
    "5. Free foreign ATM withdrawals: 2 a month\n"
    "6. Ticket to quote: #48213"
)


@pytest.mark.parametrize("rewrite", [WIKIPEDIA, QA, KNOWLEDGE_LIST], ids=["wikipedia", "qa", "knowledge_list"])
def test_faithful_rewrite_in_each_style_passes(rewrite, detector):
    result = gate(rewrite, detector)
    assert result.accepted, result.to_json()
    assert result.reason is None and result.reasons == () and not (result.dropped or result.invented)


def test_equal_values_written_differently_pass(detector):
    source = "The fee is $1,250.00 from March 3, 2024; refunds take 3-5 business days at 25 basis points."
    rewrite = "From 2024-03-03 the fee is 1250 dollars; refunds take 3 to 5 business days at 0.25%."
    assert gate(rewrite, detector, source=source).accepted


def test_a_value_stated_twice_may_be_stated_once_and_once_twice(detector):
    source = "The Silver Saver Account charges $5 a month. The Bronze Saver Account also charges $5 a month."
    once = "The Silver Saver Account and the Bronze Saver Account each charge $5 a month."
    twice = "Q1: What does the Silver Saver Account charge?\nA1: $5 a month, and the Bronze Saver Account $5 too."
    assert gate(once, detector, source=source).accepted
    assert gate(twice, detector, source=source).accepted


# --- each failure kind is rejected for its reason -----------------------------------------------------


@pytest.mark.parametrize(
    "old, new",
    [
        ("$1,250.00", "$1,350.00"),  # value changed
        ("$1,250.00", "$1,520.00"),  # digits transposed
        ("3-5 business days", "3-5 calendar days"),  # unit altered
        ("3-5 business days", "3-5 weeks"),
        ("2.5%", "$2.5"),  # a percent become an amount
        ("March 3, 2024", "March 3, 2025"),
        ("48213", "48231"),  # an identifier's digits transposed
    ],
)
def test_a_changed_value_is_rejected(old, new, detector):
    result = gate(WIKIPEDIA.replace("1250 dollars", "$1,250.00").replace("2024-03-03", "March 3, 2024")
                  .replace("2.5 percent", "2.5%").replace("3 to 5", "3-5").replace("ticket 48213", "ticket #48213")
                  .replace(old, new), detector)  # fmt: skip
    assert not result.accepted and result.reason == "changed_value", result.to_json()
    assert [(a.text, b.text) for a, b in result.changed] == [(old, new)]


def test_a_dropped_value_is_rejected_and_named(detector):
    result = gate(QA.replace(" Ticket #48213.", ""), detector)
    assert result.reason == "dropped_value" and [v.text for v in result.dropped] == ["48213"]  # "ticket #" labels it


def test_an_invented_value_is_rejected_and_named(detector):
    result = gate(WIKIPEDIA + " A late fee of $35 applies after 10 days.", detector)
    assert result.reason == "invented_value"
    assert sorted(v.text for v in result.invented) == ["$35", "10 days"]


def test_an_invented_name_is_rejected_even_one_the_detector_does_not_know(detector):
    made_up = gate(WIKIPEDIA + " The same terms apply to the Aurora Premier Card.", detector)
    assert made_up.reason == "invented_value" and [v.text for v in made_up.invented] == ["Aurora Premier Card"]
    swapped = gate(WIKIPEDIA.replace("Gold Rewards Card", "Silver Saver Account"), detector)
    assert swapped.reason == "changed_value"
    assert [(a.text, b.text) for a, b in swapped.changed] == [("Gold Rewards Card", "Silver Saver Account")]


def test_lengths_outside_the_bounds_are_rejected(detector):
    assert gate("Gold Rewards Card: $1,250.00.", detector).reason == "too_short"
    assert gate("\n\n".join([WIKIPEDIA] * 4), detector).reason == "too_long"
    assert gate("Gold Rewards Card: $1,250.00.", detector, settings=GateSettings(min_length_ratio=0)).reason == (
        "dropped_value"
    )


def test_repeating_the_prompt_is_rejected_but_copying_the_source_is_not(detector):
    echo = gate("Sure! Keep every number, date, amount, identifier and name exactly as written.\n" + QA, detector)
    assert (
        echo.reason == "repeats_prompt" and echo.repeated_prompt == "keep every number date amount identifier and name"
    )
    assert gate(SOURCE, detector).accepted  # the prompt holds the source: copying it is no fault


def test_empty_rewrite_is_rejected(detector):
    assert gate(" \n ", detector).reason == "empty"


# --- numbering: a Q&A or list may number as it likes, but numbering keeps no value -------------------


def test_numbering_is_not_an_invented_value(detector):
    source = "Customers may hold 4 accounts. Transfers cost $3."
    numbered = (
        "Question 1: How many accounts?\nAnswer 1: 4.\n\nStep 2: What does a transfer cost?\nA2: $3.\n\nQ7: Done."
    )
    assert gate(numbered, detector, source=source).accepted
    assert gate("1. Accounts per customer: 4\n2) Transfer fee: $3", detector, source=source).accepted


def test_numbering_does_not_keep_a_dropped_small_number(detector):
    result = gate(QA.replace("2 of them", "some"), detector)  # "Question 2:" is still there
    assert result.reason == "dropped_value" and [v.text for v in result.dropped] == ["2"]


def test_a_source_label_is_kept_by_the_same_label_only(detector):
    source = "## Step 5: Communicate the decision\nTell the customer the outcome and the next steps."
    rewrite = "Step 5: Communicate the decision. Tell the customer the outcome and next steps."
    assert gate(rewrite, detector, source=source).accepted
    assert gate(rewrite.replace("5", "2"), detector, source=source).reason == "dropped_value"


# --- what the detector alone would miss --------------------------------------------------------------


def test_a_value_swapped_for_another_stated_elsewhere_is_a_change(detector):
    source = "Monthly fee: $10.00.\nMinimum amount required to trigger a sweep transfer: $100.\nA sweep runs at $100."
    rewrite = source.replace("transfer: $100", "transfer: $10")
    result = gate(rewrite, detector, source=source)
    assert result.reason == "changed_value" and [(a.text, b.text) for a, b in result.changed] == [("$100", "$10")]


def test_table_rows_alike_but_for_their_values_pass_in_any_order(detector):
    source = "- Example: a withdrawal of $100 is charged $2.00.\n- Example: a withdrawal of $300 is charged $3.50."
    rewrite = "- Example: a withdrawal of $300 is charged $3.50.\n- Example: a withdrawal of $100 is charged $2.00."
    assert gate(rewrite, detector, source=source).accepted


def test_digits_outside_every_detected_fact_cannot_change_unseen(detector):
    source = "Flag attempts at 2-5x the average amount (P2P transfers included)."
    assert gate("Flag attempts at 2-5x the average amount (P2P transfers included).", detector, source=source).accepted
    result = gate("Flag attempts at 3-5x the average amount (P2P transfers included).", detector, source=source)
    assert not result.accepted and {v.text for v in result.invented} | {b.text for _, b in result.changed} == {"3"}


# --- results add up -----------------------------------------------------------------------------------


def test_tally_accounts_for_every_rewrite_and_results_are_json(detector):
    results = [gate(r, detector) for r in (WIKIPEDIA, QA, "", WIKIPEDIA + " It costs $9.")]
    counts = tally(results)
    assert counts["rewrites"] == 4 == counts["accepted"] + sum(counts[r] for r in REASONS)
    assert (counts["accepted"], counts["empty"], counts["invented_value"]) == (2, 1, 1)
    json.dumps([r.to_json() for r in results])


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"min_length_ratio": 2.0, "max_length_ratio": 1.0}, "min_length_ratio"),
        ({"prompt_span_words": 2}, "prompt_span_words"),
    ],
)
def test_bad_settings_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        GateSettings(**kw)
