"""BM25: identifiers and numbers survive tokenization, and the index ranks, saves and loads."""

import json

import numpy as np
import pytest

from cogcore.retrieval import LexicalIndex, tokenize
from cogcore.retrieval.lexical import identifiers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("open_bank_account_4821", ["open_bank_account_4821", "open", "bank", "account", "4821"]),
        ("ACC-12345.", ["acc-12345", "acc", "12345"]),
        ("It costs $2.00", ["costs", "2.00", "2", "00"]),
        ("a rate of 2.5%", ["rate", "2.5", "2", "5"]),
        ("up to 10,000 USD", ["up", "10000", "10", "000", "usd"]),
        ("mail help@bank.example", ["mail", "help@bank.example", "help", "bank", "example"]),
        ("The Fee is NOT waived", ["fee", "waived"]),
        ("Gebühr für Überweisungen", ["gebühr", "für", "überweisungen"]),
        ("", []),
    ],
)
def test_tokenize_keeps_identifiers_and_numbers_whole(text, expected):
    assert tokenize(text) == expected


def test_whole_identifier_outranks_its_parts():
    texts = ["form ACC-12345 opens an account", "ACC form 12345 is not the same thing", "nothing relevant here"]
    index = LexicalIndex.build(texts)
    ids, scores = index.search("ACC-12345", n=5)
    assert list(ids) == [0, 1] and scores[0] > scores[1] > 0
    assert [list(ids) for ids, _ in index.search_many(["$2.00", "relevant"], n=5)] == [[], [2]]


def test_search_returns_at_most_n_best_first():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choice(words, size=20)) for _ in range(300)]
    index = LexicalIndex.build(texts)
    ids, scores = index.search("w1 w2 w3", n=7)
    assert len(ids) == 7 and len(set(ids.tolist())) == 7
    assert np.all(np.diff(scores) <= 0)
    # The same ranking as scoring every document with bm25s itself.
    full = index.bm25.get_scores(["w1", "w2", "w3"])
    np.testing.assert_allclose(scores, np.sort(full)[::-1][:7], rtol=1e-5)
    assert index.search("w1", n=0)[0].size == 0


def test_save_load_round_trip(tmp_path):
    texts = ["card 555-0100 blocks a card", "wire cut-off is 3 pm", "fees are 5 USD"]
    LexicalIndex.build(texts).save(tmp_path / "bm25")
    meta = json.loads((tmp_path / "bm25" / "cogcore.json").read_text())
    assert meta["tokenizer"] == "cogcore-lex-1" and meta["n_docs"] == 3
    for mmap in (False, True):
        loaded = LexicalIndex.load(tmp_path / "bm25", mmap=mmap)
        assert len(loaded) == 3 and list(loaded.search("555-0100", n=3)[0]) == [0]
    meta["tokenizer"] = "cogcore-lex-0"
    (tmp_path / "bm25" / "cogcore.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="rebuild"):
        LexicalIndex.load(tmp_path / "bm25")


def test_identifiers_are_codes_and_exact_values_not_plain_numbers():
    assert identifiers("fee for ACC-12345 in 2024, about $2.00 or 5 USD, form abc123 v2") == [
        "acc-12345",
        "2.00",
        "abc123",
    ]
    index = LexicalIndex.build(["form ACC-12345 and 2.00", "form ACC-12345", "2.00 only"])
    positions = np.array([2, 1, 0])
    assert index.holding_identifiers("ACC-12345 at 2.00", positions).tolist() == [False, False, True]
    assert index.holding_identifiers("acc-12345", positions).tolist() == [False, True, True]
    assert index.holding_identifiers("XY-999", positions).tolist() == [False] * 3
    assert index.holding_identifiers("plain words", positions).tolist() == [False] * 3
