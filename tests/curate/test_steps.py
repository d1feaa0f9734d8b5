"""Curation steps: normalize, length filter, exact dedup, duplicate ids; each returns (kept, dropped)."""

import unicodedata

import numpy as np

from cogcore.curate.dedup import DecisionStep, exact_decisions
from cogcore.curate.global_steps import global_steps
from cogcore.curate.passes import PassTotals, SecondPass, exact_key
from cogcore.curate.steps import DuplicateIdFilter, LengthFilter, Normalize, normalize_text


def doc(doc_id: str, text: str) -> dict:
    return {"id": doc_id, "text": text, "source": "s", "meta": {}}


def exact_dedup(docs: list[dict]) -> DecisionStep:
    """The pipeline's exact dedup of docs: a content hash each (pass 2), decided over all of them."""
    keys = np.array([exact_key(d["text"]) for d in docs], dtype=np.uint64)
    return DecisionStep("exact_dedup", exact_decisions([d["id"] for d in docs], keys))


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
    kept, dropped = step.run(
        [
            doc("empty", ""),
            doc("blank", "   \n "),
            doc("short", "too short"),
            doc("exact", "x" * 10),
            doc("long", "long enough text"),
        ]
    )
    assert [d["id"] for d in kept] == ["exact", "long"]
    assert [(d["id"], reason) for d, reason in dropped] == [
        ("empty", "empty"),
        ("blank", "empty"),
        ("short", "too_short"),
    ]


def test_length_filter_zero_keeps_all_but_empty():
    kept, dropped = LengthFilter(min_chars=0).run([doc("a", "x"), doc("b", "")])
    assert [d["id"] for d in kept] == ["a"] and [r for _, r in dropped] == ["empty"]


def test_exact_dedup_treats_case_and_whitespace_variants_as_duplicates():
    docs = [doc("a", "Wire fees are $25."), doc("b", "wire  FEES are\n$25."), doc("c", "Wire fees are $30.")]
    kept, dropped = exact_dedup(docs).run(docs)
    assert [d["id"] for d in kept] == ["a", "c"]
    assert [(d["id"], r, d["meta"]["duplicate_of"]) for d, r in dropped] == [("b", "exact_duplicate", "a")]
    assert "duplicate_of" not in kept[0]["meta"]


def test_exact_dedup_decides_over_every_batch_at_once(tmp_path, bare_plan):
    batches = [[doc("a", "same text")], [doc("z", "SAME TEXT"), doc("y", "new text")]]
    p2 = PassTotals()
    for batch in batches:
        p2.add(SecondPass([], minhash_config=None)(batch))
    (step,), _ = global_steps(p2, bare_plan(), lambda: iter(batches), tmp_path)
    assert step.name == "exact_dedup"
    kept, dropped = step.run(batches[1])
    assert [d["id"] for d in kept] == ["y"]
    assert dropped[0][0]["meta"]["duplicate_of"] == "a"


def test_duplicate_ids_are_dropped_across_batches():
    step = DuplicateIdFilter()
    kept, dropped = step.run([doc("a", "one"), doc("b", "two"), doc("a", "three")])
    assert [d["text"] for d in kept] == ["one", "two"]
    assert [(d["text"], r) for d, r in dropped] == [("three", "duplicate_id")]
    kept, dropped = step.run([doc("b", "four"), doc("c", "five")])
    assert [d["id"] for d in kept] == ["c"] and [r for _, r in dropped] == ["duplicate_id"]


def _accounted(step, docs: list[dict]) -> list[dict]:
    """What the step keeps, once every document it received is kept or dropped for a snake_case reason."""
    n = len(docs)
    kept, dropped = step.run(docs)
    assert n == len(kept) + len(dropped), step.name
    assert all(isinstance(r, str) and r == r.lower() and " " not in r for _, r in dropped)
    return kept


def test_every_step_accounts_for_every_document():
    docs = [doc(str(i % 7), f"Text {i % 5} " * (i % 4)) for i in range(40)]
    for step in (Normalize(), LengthFilter(8), DuplicateIdFilter()):
        docs = _accounted(step, docs)
    _accounted(exact_dedup(docs), docs)  # decided over the documents that reach it
