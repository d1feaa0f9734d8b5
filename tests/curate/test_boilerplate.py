"""Boilerplate lines: hashed per document, counted across documents, removed where frequent."""

import pickle

import numpy as np

from cogcore.curate.boilerplate import BoilerplateRemover, LineCounter, line_hashes, line_key

FOOTER = "Copyright 2024 Example Corp. All rights reserved."
PAIR_LINE = "This sentence is shared by exactly two documents."


def doc(doc_id: str, text: str) -> dict:
    return {"id": doc_id, "text": text, "source": "s", "meta": {}}


def corpus() -> list[dict]:
    """40 documents: 30 end with the footer, documents 0 and 1 share one line, all else unique."""
    docs = []
    for i in range(40):
        body = [f"Document {i} explains topic number {i} in detail.", f"It has a second line, number {i}."]
        if i < 2:
            body.append(PAIR_LINE)
        if i < 30:
            body += ["", FOOTER]
        docs.append(doc(f"d{i}", "\n".join(body)))
    return docs


def count(docs: list[dict], **kwargs) -> LineCounter:
    counter = LineCounter(**kwargs)
    for d in docs:
        counter.add(line_hashes(d))
    return counter


def test_line_hashes_are_distinct_normalized_and_skip_structure():
    text = "\n".join(
        [
            FOOTER,
            FOOTER,
            "  copyright 2024   EXAMPLE corp. all rights reserved.  ",
            "short",
            "| --- | --- | --- |",
            "1234567890123",
            "",
            "Another real line here.",
        ]
    )
    hashes = line_hashes(doc("a", text))
    assert hashes.dtype == np.uint64 and list(hashes) == sorted(hashes)
    assert set(hashes.tolist()) == {line_key(FOOTER), line_key("Another real line here.")}
    assert line_key("short") is None and line_key("| --- | --- | --- |") is None
    assert line_key("1234567890123") is None
    assert np.array_equal(line_hashes(text), hashes)  # a bare string works too
    assert len(pickle.dumps(hashes)) < 300


def test_counter_counts_documents_not_occurrences():
    docs = corpus() + [doc("twice", f"{FOOTER}\n{FOOTER}")]
    counter = count(docs)
    keys, counts = counter.counts()
    by_key = dict(zip(keys.tolist(), counts.tolist()))
    assert counter.n_docs == 41
    assert by_key[line_key(FOOTER)] == 31 and by_key[line_key(PAIR_LINE)] == 2
    assert by_key[line_key("Document 7 explains topic number 7 in detail.")] == 1
    assert len(counter) == 40 * 2 + 2  # two unique lines per doc, the footer, the shared pair line


def test_frequent_needs_both_min_docs_and_min_fraction():
    counter = count(corpus())
    footer, pair = line_key(FOOTER), line_key(PAIR_LINE)
    assert set(counter.frequent(min_docs=5, min_fraction=0.5).tolist()) == {footer}
    assert set(counter.frequent(min_docs=2, min_fraction=0.0).tolist()) == {footer, pair}
    assert set(counter.frequent(min_docs=2, min_fraction=0.1).tolist()) == {footer}
    assert counter.frequent(min_docs=31, min_fraction=0.0).size == 0
    assert set(counter.frequent(min_docs=1, min_fraction=0.75).tolist()) == {footer}  # 30 of 40 exactly
    assert counter.frequent(min_docs=1, min_fraction=0.76).size == 0


def test_counts_do_not_depend_on_buffering_or_sharding():
    docs = corpus()
    whole = count(docs)
    tiny_buffer = count(docs, buffer_lines=3)
    shard_a, shard_b = count(docs[:13]), count(docs[13:])
    shard_a.merge(shard_b)
    for other in (tiny_buffer, shard_a):
        assert other.n_docs == whole.n_docs
        for mine, theirs in zip(whole.counts(), other.counts()):
            assert np.array_equal(mine, theirs)


def test_remover_deletes_the_footer_and_keeps_rare_lines():
    docs = corpus()
    remover = BoilerplateRemover(count(docs).frequent(min_docs=5, min_fraction=0.5))
    kept, dropped = remover.run(docs)
    assert dropped == [] and len(kept) == 40
    assert all(FOOTER not in d["text"] for d in kept)
    assert [d["meta"]["boilerplate_lines_removed"] for d in kept] == [1] * 30 + [0] * 10
    assert kept[0]["text"] == (
        "Document 0 explains topic number 0 in detail.\nIt has a second line, number 0.\n" + PAIR_LINE
    )
    assert PAIR_LINE in kept[1]["text"]
    assert kept[35]["text"] == corpus()[35]["text"]


def test_a_document_of_only_boilerplate_is_dropped():
    docs = corpus() + [doc("only", f"{FOOTER}\n\n{FOOTER.upper()}"), doc("empty", "")]
    remover = BoilerplateRemover(count(docs).frequent(min_docs=5, min_fraction=0.5))
    kept, dropped = remover.run(docs)
    assert [(d["id"], reason) for d, reason in dropped] == [("only", "only_boilerplate")]
    assert dropped[0][0]["meta"]["boilerplate_lines_removed"] == 2
    assert "empty" in [d["id"] for d in kept]  # empty on arrival: left to the length filter


def test_remover_with_no_boilerplate_changes_nothing():
    docs = corpus()
    kept, dropped = BoilerplateRemover(np.empty(0, dtype=np.uint64)).run(docs)
    assert dropped == [] and [d["text"] for d in kept] == [d["text"] for d in corpus()]
