"""BM25 with MaxScore pruning returns exactly what scoring every matching document returns."""

import numpy as np
import pytest

from cogcore.retrieval import LexicalIndex
from cogcore.retrieval.lexical import STOPWORDS, tokenize


def zipf_corpus(n_docs: int, seed: int = 0) -> list[str]:
    """Texts whose word frequencies follow Zipf(1.1), like benchmarks/retrieval.py's: a few words
    in most documents, most words in a handful. Every 7th text repeats an earlier one, so that
    equal scores (ties) occur, also at the cut."""
    rng = np.random.default_rng(seed)
    vocab = [*sorted(STOPWORDS), *(f"w{r}" for r in range(2000))]
    texts = []
    for i in range(n_docs):
        if i % 7 == 6:
            texts.append(texts[int(rng.integers(0, i))])
            continue
        ranks = np.minimum(rng.zipf(1.1, size=int(rng.integers(20, 60))), len(vocab)) - 1
        texts.append(" ".join(vocab[r] for r in ranks))
    return texts


def queries_from(texts: list[str], n: int, seed: int = 1) -> list[str]:
    """Runs of consecutive words of random texts (common and rare words mixed, as in questions),
    plus single common words (nothing to prune: every document is a candidate)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.integers(0, len(texts), n):
        words = texts[i].split()
        at = int(rng.integers(0, max(1, len(words) - 6)))
        out.append(" ".join(words[at : at + int(rng.integers(1, 9))]))
    return out + ["w0", "w1 w2", "the w0"]


def previous_search(index: LexicalIndex, query: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cogcore's BM25 search before pruning: sum the weights of every posting of the query's
    terms (bincount, in query term order), rank all documents with a score by (score desc,
    position asc)."""
    terms = [index.vocab[t] for t in dict.fromkeys(tokenize(query)) if t in index.vocab]
    if not terms:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    spans = [(index._indptr[t], index._indptr[t + 1]) for t in terms]
    docs = np.concatenate([index._docs[a:b] for a, b in spans])
    weights = np.concatenate([index._data[a:b] for a, b in spans])
    totals = np.bincount(docs, weights=weights, minlength=len(index))
    candidates = np.flatnonzero(totals)
    order = np.lexsort((candidates, -totals[candidates]))[:n]
    return candidates[order], totals[candidates][order].astype(np.float32)


@pytest.fixture(scope="module")
def corpus():
    texts = zipf_corpus(3000)
    return LexicalIndex.build(texts), queries_from(texts, 300)


@pytest.mark.parametrize("n", [1, 5, 40])
def test_pruned_search_is_identical_to_the_previous_scorer(corpus, n):
    index, queries = corpus
    for query in queries:
        ids, scores = index.search(query, n)
        want_ids, want_scores = previous_search(index, query, n)
        assert ids.tolist() == want_ids.tolist(), query
        assert scores.tobytes() == want_scores.tobytes(), query  # bit for bit
        reference = index.search_exhaustive(query, n)
        assert ids.tolist() == reference[0].tolist() and scores.tobytes() == reference[1].tobytes()


def test_pruning_skips_most_documents_on_mixed_queries(corpus):
    """The point of pruning: few candidates are scored when the query has a rare word."""
    index, queries = corpus
    ratios = []
    for query in queries:
        terms = index._query_terms(query)
        if terms:
            matching = np.unique(np.concatenate([index._postings(t)[0] for t in terms]))
            ratios.append(len(index._candidates(terms, 5)) / len(matching))
    assert np.median(ratios) < 0.25, np.median(ratios)


def test_ties_at_the_cut_go_to_the_earlier_document():
    texts = ["alpha beta", "gamma", "alpha beta", "alpha beta", "alpha beta delta delta"]
    index = LexicalIndex.build(texts)
    ids, scores = index.search("alpha beta", n=2)
    assert ids.tolist() == [0, 2] and scores[0] == scores[1]
    assert index.search("alpha beta", n=3)[0].tolist() == [0, 2, 3]


def test_weight_bounds_are_each_terms_highest_weight(tmp_path):
    index = LexicalIndex.build(zipf_corpus(500, seed=3))
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path, mmap=True)
    for term in range(0, len(loaded.vocab), 97):
        docs, weights = loaded._postings(term)
        assert loaded._bounds[term] == weights.max() and np.all(np.diff(docs) > 0)
    assert loaded.search("w3 w40 w700", 10)[0].tolist() == index.search("w3 w40 w700", 10)[0].tolist()


@pytest.mark.parametrize("size, n", [(10, 3), (20_000, 1), (50_000, 40), (300_000, 20)])
def test_nth_largest_is_exact_on_large_arrays_with_ties(size, n):
    """Past 16k values the n-th largest is found through a sampled cut: still exact."""
    from cogcore.retrieval.lexical import _nth_largest

    rng = np.random.default_rng(size)
    for values in (
        rng.random(size),
        np.round(rng.random(size), 2),  # many ties
        np.sort(rng.random(size)),
        np.full(size, 0.5),
    ):
        assert _nth_largest(values, n) == np.sort(values)[-n]


def test_holding_identifiers_matches_set_membership():
    texts = ["form ab-12 and cd-34", "form ab-12 only", "cd-34 alone", "nothing here"] * 50
    index = LexicalIndex.build(texts)
    positions = np.arange(len(texts))[::-1]
    for query, holders in [
        ("ab-12", {0, 1}),
        ("ab-12 cd-34", {0}),
        ("cd-34 form", {0, 2}),
        ("form", set()),
        ("zz-99", set()),
    ]:
        held = index.holding_identifiers(query, positions)
        assert set(positions[held] % 4) == holders, query
    assert index.holding_identifiers("ab-12", np.array([])).tolist() == []
