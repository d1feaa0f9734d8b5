"""Fact detection: planted facts of every kind are found with the right kind, span, value and context."""

import json

import pytest

from cogcore.curate.facts import DEFAULT_KINDS, PATTERNS, FactDetector


def detect(text: str, **kw) -> list[dict]:
    facts = FactDetector(**kw).detect({"id": "doc", "text": text})
    for f in facts:  # every fact indexes the text exactly
        assert text[f["start"] : f["end"]] == f["text"] and f["id"] == f"doc:{f['start']}" and f["doc_id"] == "doc"
    return facts


@pytest.mark.parametrize(
    "sentence, fact, kind",
    [
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
        (
            "Rates are listed at https://bank.example.com/rates?tier=gold today.",
            "https://bank.example.com/rates?tier=gold",
            "url",
        ),
        ("A customer may hold 4 accounts.", "4", "number"),
    ],
)
def test_planted_fact_is_detected_with_its_kind(sentence, fact, kind):
    facts = detect(sentence)
    assert [(f["text"], f["kind"]) for f in facts] == [(fact, kind)]
    assert facts[0]["context"] == sentence


@pytest.mark.parametrize(
    "sentence",
    [
        "Please ask the branch manager for help with your account.",
        "Only one person may sign, and two must agree.",  # spelled-out numbers are not facts
        "",
    ],
)
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
        ("$1,250.00", "money"),
        ("2024-03-15", "date"),
        ("30 days", "duration"),
        ("5 GB", "quantity"),
        ("help@bank.example.com", "email"),
    ]
    # the same text with only bare numbers: the spans that money/date/duration claimed are now numbers
    numbers = [f["text"] for f in detect(text, kinds=["number"])]
    assert numbers == ["1,250.00", "2024", "03", "15", "30", "5"]
    assert [f["kind"] for f in detect("Pay by 2024-03-15.", kinds=["number", "date"])] == ["date"]


def test_only_chosen_kinds_are_detected_in_priority_order():
    detector = FactDetector(kinds=["number", "money"])
    assert detector.kinds == ["money", "number"]
    text = "Fee $5 for 7 days, rate 3%."
    assert [(f["text"], f["kind"]) for f in detector.detect({"id": "d", "text": text})] == [
        ("$5", "money"),
        ("7", "number"),
        ("3", "number"),
    ]


def test_context_is_the_enclosing_sentence():
    text = "Overview. The fee is $25 per wire! Is it 3 days? Yes.\nContact ACC-12345 for details.\nNo facts here."
    contexts = {f["text"]: f["context"] for f in detect(text)}
    assert contexts == {
        "$25": "The fee is $25 per wire!",
        "3 days": "Is it 3 days?",
        "ACC-12345": "Contact ACC-12345 for details.",
    }


def test_facts_are_sorted_by_position():
    text = "On 2024-01-02 pay $9; by 2024-02-03 pay $8."
    starts = [f["start"] for f in detect(text)]
    assert starts == sorted(starts) and len(starts) == 4


def test_unknown_kinds_raise_and_name_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown fact kinds \['phone'\]; allowed: url, email, money"):
        FactDetector(kinds=["money", "phone"])
    assert list(PATTERNS)[-1] == "number"  # the catch-all comes last, so specific kinds win


# --- kinds added with normalized values, names, and the recipe's own patterns and terms ---------


@pytest.mark.parametrize(
    "sentence, fact, kind, value",
    [
        ("The annual fee is $1,250.00 per account.", "$1,250.00", "money", {"amount": 1250.0, "currency": "USD"}),
        ("Wires cost USD 1,250 each.", "USD 1,250", "money", {"amount": 1250.0, "currency": "USD"}),
        ("The fund holds €3.5 million in bonds.", "€3.5 million", "money", {"amount": 3500000.0, "currency": "EUR"}),
        ("A stamp costs 50 cents here.", "50 cents", "money", {"amount": 0.5, "currency": "USD"}),
        ("Limits reach $10k a day.", "$10k", "money", {"amount": 10000.0, "currency": "USD"}),
        ("Transfers of 40 dollars are free.", "40 dollars", "money", {"amount": 40.0, "currency": "USD"}),
        ("Savings earn 2.5% a year.", "2.5%", "percent", 2.5),
        ("Rates rose by 25 basis points today.", "25 basis points", "percent", 0.25),
        ("The policy changed on 2024-03-15 for everyone.", "2024-03-15", "date", "2024-03-15"),
        ("The branch reopened on March 5, 2024 after repairs.", "March 5, 2024", "date", "2024-03-05"),
        ("Insurance starts on 1st of March 2024 for all.", "1st of March 2024", "date", "2024-03-01"),
        ("Rates change in March 2024 again.", "March 2024", "date", "2024-03"),
        ("The sale runs on Dec. 24 only.", "Dec. 24", "date", "--12-24"),
        ("Claims filed on 03/15/2024 are late.", "03/15/2024", "date", "2024-03-15"),
        ("Claims filed on 15/03/24 are late.", "15/03/24", "date", "2024-03-15"),  # day first where it must be
        ("The form says Feb 30, 2024 which is wrong.", "Feb 30, 2024", "date", None),
        ("The desk opens at 9 am daily.", "9 am", "time", "09:00"),
        ("Sweeps run at 11:00 PM.", "11:00 PM", "time", "23:00"),  # the sentence's period is not the time's
        ("Reports close at 5:30 p.m. EST sharp.", "5:30 p.m. EST", "time", "17:30"),
        ("Batches start at 14:30:15 each day.", "14:30:15", "time", "14:30:15"),
        ("Disputes must be filed within 30 days.", "30 days", "duration", {"n": 30, "unit": "day"}),
        (
            "Refunds arrive in 3-5 business days.",
            "3-5 business days",
            "duration",
            {"n": 3, "max": 5, "unit": "business_day"},
        ),
        ("A 30-day notice applies.", "30-day", "duration", {"n": 30, "unit": "day"}),
        ("Spend it within 1 month(s).", "1 month(s)", "duration", {"n": 1, "unit": "month"}),
        ("Pay within 2 billing cycles.", "2 billing cycles", "duration", {"n": 2, "unit": "billing_cycle"}),
        ("Each customer gets 5 GB of storage.", "5 GB", "quantity", {"n": 5, "unit": "GB"}),
        ("Quote ticket #48213 when you call.", "48213", "identifier", "48213"),
        ("Give your account number 1234-5678 to the agent.", "1234-5678", "identifier", "1234-5678"),
        ("Install version 2.3.1 first.", "2.3.1", "identifier", "2.3.1"),
        ("Order the part SKU-4412-BLK today.", "SKU-4412-BLK", "identifier", "SKU-4412-BLK"),
        ("Enter the code X7G2Q9 to confirm.", "X7G2Q9", "identifier", "X7G2Q9"),
        ("Call 555-0100 at any hour.", "555-0100", "identifier", "555-0100"),
        (
            "Write to Disputes.Team@Bank-Example.com for help.",
            "Disputes.Team@Bank-Example.com",
            "email",
            "disputes.team@bank-example.com",
        ),
        ("A customer may hold 4 accounts.", "4", "number", 4),
        ("The ratio is held at 2.75 today.", "2.75", "number", 2.75),
    ],
)
def test_facts_carry_normalized_values(sentence, fact, kind, value):
    facts = detect(sentence)
    assert [(f["text"], f["kind"], f["value"]) for f in facts] == [(fact, kind, value)]
    json.dumps(facts)  # facts.jsonl holds them as they are


@pytest.mark.parametrize(
    "sentence, names",
    [
        ("Ask Dr. Jane Smith about the loan.", ["Dr. Jane Smith"]),
        ("Mr. Smith called twice.", ["Mr. Smith"]),
        ("We bank with First National Bank of Omaha daily.", ["First National Bank of Omaha"]),
        ("The card comes from Acme Holdings Inc and nobody else.", ["Acme Holdings Inc"]),
        ("Choose the 'Blue Account' option.", ["Blue Account"]),
        ("Choose the “Green Saver” plan.", ["Green Saver"]),
        ("Apply for the Green Rewards Card today.", ["Green Rewards Card"]),
        ("The Gold Card is free.", ["Gold Card"]),  # a leading function word is not part of the name
        ("Green Rewards Card holders earn more.", ["Green Rewards Card"]),  # three words: a name even first
        ("Savings Accounts earn more.", []),  # two words opening a sentence may be sentence case
        ("Your Bank is here for you.", []),  # an organization needs a name before the suffix
        ("## Gold Card Perks\nNone today.", []),  # headings are Title Case by convention
        ("**Gold Card Perks** are listed below.", []),
        ("Please contact the branch for help.", []),
    ],
)
def test_names_from_rules(sentence, names):
    assert [f["text"] for f in detect(sentence, kinds=["name"]) if f["kind"] == "name"] == names


def test_names_are_on_by_default_and_off_when_left_out():
    text = "Apply for the Green Rewards Card today."
    assert "name" in DEFAULT_KINDS and [f["kind"] for f in detect(text)] == ["name"]
    assert detect(text, kinds=[k for k in PATTERNS if k != "name"]) == []


def test_recipe_patterns_and_terms_win_over_built_in_kinds():
    detector = FactDetector(
        patterns={"ticket": r"\bTCK-\d+\b", "branch": r"branch (?P<fact>[A-Z]{4})\b"},
        terms={"product": ["Blue Account", "Gold Card"], "name": ["Rho-Bank"]},
    )
    text = "Open a blue account at branch QJRV of Rho-Bank and quote TCK-1234 or ACC-99 with the GOLD CARD."
    facts = detector.detect({"id": "d", "text": text})
    assert [(f["text"], f["kind"], f["value"]) for f in facts] == [
        ("blue account", "product", "Blue Account"),  # terms match in any case; the value is the recipe's spelling
        ("QJRV", "branch", "QJRV"),  # a `fact` group marks the span inside the match
        ("Rho-Bank", "name", "Rho-Bank"),  # terms count whether or not the kind is chosen
        ("TCK-1234", "ticket", "TCK-1234"),  # the identifier rule would have claimed it
        ("ACC-99", "identifier", "ACC-99"),
        ("GOLD CARD", "product", "Gold Card"),
    ]
    # a term is a whole word or phrase, not part of one
    assert detector.detect({"id": "d", "text": "Goldcardholders and blue accounts."}) == []


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"patterns": {"ticket": "TCK-(\\d+"}}, r"facts\.patterns\.ticket: not a valid regular expression"),
        ({"patterns": {"Ticket ID": "x"}}, r"facts\.patterns: kind 'Ticket ID' must be lowercase"),
        ({"terms": {"": ["x"]}}, r"facts\.terms: kind '' must be lowercase"),
    ],
)
def test_bad_patterns_and_kinds_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        FactDetector(**kw)


def test_empty_matches_and_empty_terms_are_ignored():
    detector = FactDetector(kinds=[], patterns={"nothing": r"x*"}, terms={"product": ["", "  "]})
    assert detector.detect({"id": "d", "text": "abc"}) == []


def test_year_spans_and_age_ranges_stay_numbers():
    assert [(f["text"], f["kind"]) for f in detect("From 2020-2024 ages 18-25 applied.")] == [
        ("2020", "number"),
        ("2024", "number"),
        ("18", "number"),
        ("25", "number"),
    ]


def test_inline_enumerations_are_not_numbers():
    text = "Rules: 1) Customer must be verified, 2) hold at least 3 accounts, 3) wait 5 days."
    assert [f["text"] for f in detect(text)] == ["3", "5 days"]
