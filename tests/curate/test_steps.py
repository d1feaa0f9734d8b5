"""Curation steps: normalize, length filter, exact dedup, duplicate ids; each returns (kept, dropped)."""

import unicodedata

from cogcore.curate.steps import DuplicateIdFilter, ExactDedup, LengthFilter, Normalize, normalize_text


def doc(doc_id: str, text: str) -> dict:
    return {"id": doc_id, "text": text, "source": "s", "meta": {}}


def test_normalize_nfc_newlines_and_spaces():
    decomposed = "Cafe\u0301 fees"  # e + combining acute
    assert normalize_text(decomposed) == "Caf\u00e9 fees"
    assert unicodedata.is_normalized("NFC", normalize_text(decomposed))
    assert normalize_text("a\r\nb\rc") == "a\nb\nc"
    assert normalize_text("  two   spaces\tand\u00a0nbsp  \n") == "two spaces and nbsp"
    assert normalize_text("p1\n\n\n\n\np2\n  \n  \n\np3") == "p1\n\np2\n\np3"
    assert normalize_text("line one   \nline two") == "line one\nline two"


def test_normalize_step_rewrites_text_and_drops_nothing():
    docs = [doc("a", " x  y "), doc("b", "Cafe\u0301")]
    kept, dropped = Normalize().run(docs)
    assert [d["text"] for d in kept] == ["x y", "Caf\u00e9"] and dropped == []


def test_length_filter_reasons():
    step = LengthFilter(min_chars=10)
    kept, dropped = step.run([doc("empty", ""), doc("blank", "   \n "), doc("short", "too short"),
                              doc("exact", "x" * 10), doc("long", "long enough text")])
    assert [d["id"] for d in kept] == ["exact", "long"]
    assert [(d["id"], reason) for d, reason in dropped] == [("empty", "empty"), ("blank", "empty"),
                                                            ("short", "too_short")]


def test_length_filter_zero_keeps_all_but_empty():
    kept, dropped = LengthFilter(min_chars=0).run([doc("a", "x"), doc("b", "")])
    assert [d["id"] for d in kept] == ["a"] and [r for _, r in dropped] == ["empty"]


def test_exact_dedup_treats_case_and_whitespace_variants_as_duplicates():
    step = ExactDedup()
    kept, dropped = step.run([doc("a", "Wire fees are $25."), doc("b", "wire  FEES are\n$25."),
                              doc("c", "Wire fees are $30.")])
    assert [d["id"] for d in kept] == ["a", "c"]
    assert [(d["id"], r, d["meta"]["duplicate_of"]) for d, r in dropped] == [("b", "exact_duplicate", "a")]
    assert "duplicate_of" not in kept[0]["meta"]


def test_exact_dedup_remembers_across_batches():
    step = ExactDedup()
    step.run([doc("a", "same text")])
    kept, dropped = step.run([doc("z", "SAME TEXT"), doc("y", "new text")])
    assert [d["id"] for d in kept] == ["y"]
    assert dropped[0][0]["meta"]["duplicate_of"] == "a"


def test_duplicate_ids_are_dropped_across_batches():
    step = DuplicateIdFilter()
    kept, dropped = step.run([doc("a", "one"), doc("b", "two"), doc("a", "three")])
    assert [d["text"] for d in kept] == ["one", "two"] and [(d["text"], r) for d, r in dropped] == [("three", "duplicate_id")]
    kept, dropped = step.run([doc("b", "four"), doc("c", "five")])
    assert [d["id"] for d in kept] == ["c"] and [r for _, r in dropped] == ["duplicate_id"]


def test_every_step_accounts_for_every_document():
    docs = [doc(str(i % 7), ("Text %d " % (i % 5)) * (i % 4)) for i in range(40)]
    for step in (Normalize(), LengthFilter(8), DuplicateIdFilter(), ExactDedup()):
        n = len(docs)
        docs, dropped = step.run(docs)
        assert n == len(docs) + len(dropped), step.name
        assert all(isinstance(r, str) and r == r.lower() and " " not in r for _, r in dropped)
