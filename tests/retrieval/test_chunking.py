"""Chunk spans point back into the document, respect sizes and boundaries, and keep sections."""

import random

import pytest

from cogcore.retrieval.chunking import chunk_document, find_headings, searchable_text, split_spans

DOC = {
    "id": "guide",
    "source": "guide.md",
    "meta": {"title": "Guide"},
    "text": (
        "Preface line before any heading.\n\n"
        "# Fees\n\nThe monthly fee is 5 USD. "
        + " ".join(f"Rule {i} sets a charge of {i * 3} USD for item {i}." for i in range(20))
        + "\n\n```python\n# a comment, not a heading\nfee = 5\n```\n\n"
        "## Contact ##\n\nWrite to help@bank.example or call 555-0100.\n"
    ),
}


def test_offsets_round_trip_and_ids():
    chunks = chunk_document(DOC, chunk_chars=200, overlap=40)
    assert len(chunks) > 5
    for i, chunk in enumerate(chunks):
        assert DOC["text"][chunk["start"] : chunk["end"]] == chunk["text"]
        assert chunk["chunk_id"] == f"guide#{i}"
        assert (chunk["doc_id"], chunk["source"], chunk["title"]) == ("guide", "guide.md", "Guide")
        assert len(chunk["text"]) <= 200
    assert chunks == chunk_document(DOC, chunk_chars=200, overlap=40)  # deterministic


def test_sections_follow_headings_and_skip_code():
    chunks = chunk_document(DOC, chunk_chars=200, overlap=40)
    assert chunks[0]["section"] == ""
    assert chunks[0]["text"] == "Preface line before any heading."
    fee_chunks = [c for c in chunks if c["section"] == "Fees"]
    assert fee_chunks[0]["text"].startswith("# Fees")
    assert any("# a comment" in c["text"] for c in fee_chunks)
    assert chunks[-1]["section"] == "Contact"
    assert chunks[-1]["text"].startswith("## Contact ##")
    assert [text for _, text in find_headings(DOC["text"])] == ["Fees", "Contact"]


def test_chunks_overlap_and_break_at_sentences():
    chunks = chunk_document(DOC, chunk_chars=200, overlap=40)
    body = [c for c in chunks if c["section"] == "Fees"][1:-1]
    for prev, cur in zip(body, body[1:]):
        assert cur["start"] < prev["end"]  # overlapping
        assert prev["text"].endswith(".")  # ended at a sentence boundary


def test_spans_cover_all_text_on_random_input():
    rng = random.Random(0)
    pieces = ["word", "long" * 30, "end.", "\n\n", "\n", "# Head\n", "  ", "x"]
    for _ in range(200):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 150)))
        chunk_chars = rng.choice([16, 50, 120])
        spans = split_spans(text, chunk_chars, rng.randint(0, chunk_chars // 2 - 1))
        covered = set()
        for start, end in spans:
            assert 0 <= start < end <= len(text) and end - start <= chunk_chars
            assert not text[start].isspace() and not text[end - 1].isspace()
            covered.update(range(start, end))
        assert all(i in covered or c.isspace() for i, c in enumerate(text))
        assert [s for s, _ in spans] == sorted({s for s, _ in spans})


def test_rejects_bad_sizes_and_empty_text():
    with pytest.raises(ValueError, match="overlap"):
        split_spans("some text", chunk_chars=100, overlap=60)
    assert chunk_document({"id": "e", "text": "  \n ", "source": "e"}, 100, 10) == []


def test_searchable_text_puts_title_and_section_on_top():
    chunks = chunk_document(DOC, chunk_chars=200, overlap=40)
    assert searchable_text(chunks[0]) == "Guide\nPreface line before any heading."
    opening = next(c for c in chunks if c["section"] == "Fees")  # opens with "# Fees"
    assert searchable_text(opening) == f"Guide\n{opening['text']}"
    inner = [c for c in chunks if c["section"] == "Fees"][2]
    assert searchable_text(inner) == f"Guide / Fees\n{inner['text']}"
    assert searchable_text(inner, header=False) == inner["text"]
    untitled = {**inner, "title": "", "section": ""}
    assert searchable_text(untitled) == inner["text"]
