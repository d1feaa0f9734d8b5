"""The two-pass streamed BM25 build equals bm25s's own index: the same saved files byte for byte, the
same ranking and scores."""

import random

import numpy as np
import pytest

from cogcore.retrieval.lexical import LexicalIndex
from cogcore.retrieval.lexical_streamed import build_lexical_streamed

WORDS = [f"w{i}" for i in range(400)] + ["ACC-12345", "2.00", "10,000", "the", "open_bank_account_4821", "Fee"]


def corpus(n: int, seed: int = 0) -> list[str]:
    """Zipf-like texts of 0 to 120 words: common words in most texts, rare ones in a few, some
    empty or all stopwords."""
    rng = random.Random(seed)
    weights = [1 / (r + 1) for r in range(len(WORDS))]
    texts = [" ".join(rng.choices(WORDS, weights, k=rng.randint(0, 120))) for _ in range(n)]
    return texts + ["", "the and of", "ACC-12345 costs 2.00 on 10,000"]


def test_saved_files_equal_bm25s_byte_for_byte(tmp_path):
    texts = corpus(600)
    LexicalIndex.build(texts).save(tmp_path / "bm25s")
    build_lexical_streamed(lambda: iter(texts), total=len(texts)).save(tmp_path / "streamed")
    names = sorted(p.name for p in (tmp_path / "bm25s").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "streamed").iterdir())
    assert "data.csc.index.npy" in names and "vocab.index.json" in names
    for name in names:
        assert (tmp_path / "bm25s" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes(), name


def test_search_after_load_ranks_and_scores_the_same(tmp_path):
    texts = corpus(400, seed=1)
    LexicalIndex.build(texts).save(tmp_path / "bm25s")
    build_lexical_streamed(lambda: iter(texts)).save(tmp_path / "streamed")
    reference, streamed = LexicalIndex.load(tmp_path / "bm25s"), LexicalIndex.load(tmp_path / "streamed")
    assert len(streamed) == len(texts) and streamed.vocab == reference.vocab
    rng = random.Random(2)
    queries = [" ".join(rng.sample(WORDS, k)) for k in (1, 2, 3, 5, 8) for _ in range(20)]
    queries += ["ACC-12345 fee", "10000", "zebra", ""]
    for query in queries:
        ids, scores = streamed.search(query, 10)
        ref_ids, ref_scores = reference.search(query, 10)
        assert np.array_equal(ids, ref_ids) and np.array_equal(scores, ref_scores), query


def test_texts_that_change_between_the_passes_are_refused():
    passes = iter([["fee card", "loan"], ["fee card", "loan", "wire"]])
    with pytest.raises(ValueError, match="changed between the two BM25 passes"):
        build_lexical_streamed(lambda: next(passes))
    passes = iter([["fee card", "loan"], ["fee card", "branch"]])
    with pytest.raises(ValueError, match="changed between the two BM25 passes"):
        build_lexical_streamed(lambda: next(passes))
    with pytest.raises(ValueError, match="no texts"):
        build_lexical_streamed(lambda: iter([]))
