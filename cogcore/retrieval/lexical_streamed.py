"""The BM25 matrix built from a stream of texts in two passes, never holding the corpus's tokens.

bm25s's `BM25.index` takes the whole tokenized corpus at once (a list of token ids per document):
for millions of chunks that is several times the size of the text. The lucene BM25 weight of a
term in a document needs only corpus-wide figures (the term's document frequency, the number of
documents, their average length) and that document's own term counts, so:

    pass 1  tokenize each text: the vocabulary (in order of first use), each term's document
            frequency, the total number of tokens
    pass 2  tokenize each text again: its term weights, written straight into their places in the
            CSC matrix (each term's column is sized by its document frequency, and documents come
            in order, so every column is sorted by document, as bm25s sorts it)

The matrix, vocabulary and parameters are those bm25s builds from the same texts, value for value
and with the same arithmetic (tests/retrieval/test_lexical_streamed.py compares the saved files
byte for byte), and `LexicalIndex.save` writes them the same way. Held in memory: the vocabulary,
one count per term, and the matrix itself.

    lexical = build_lexical_streamed(lambda: (searchable_text(c) for c in iter_jsonl(path)), total=n)
    lexical.save(folder)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
from tqdm.auto import tqdm

from cogcore.retrieval.lexical import BM25_PARAMS, LexicalIndex, tokenize


def build_lexical_streamed(
    read_texts: Callable[[], Iterable[str]], total: int | None = None, progress: bool | None = None
) -> LexicalIndex:
    """A LexicalIndex over the texts that read_texts() yields (called twice; both times the same
    texts in the same order). total: how many, for the progress bars' ETA; progress: None shows
    the bars on a terminal only."""
    if BM25_PARAMS["method"] != "lucene":
        raise ValueError(f"the streamed BM25 build computes lucene weights, not {BM25_PARAMS['method']!r}")
    vocab, doc_freqs, n_docs, n_tokens = _count_terms(_bar(read_texts(), total, "bm25 terms", progress))
    if not n_docs:
        raise ValueError("no texts to index")
    if not vocab:  # bm25s needs one term; an index of empty texts then matches nothing
        vocab[""], doc_freqs = 0, [0]
    # What np.mean of the document lengths gives (the integer sum is exact in a float64).
    avg_len = np.float64(n_tokens) / n_docs
    idf = np.fromiter((_lucene_idf(df, n_docs) for df in doc_freqs), dtype=np.float32, count=len(doc_freqs))
    data, indices, indptr = _fill_matrix(
        _bar(read_texts(), total, "bm25 weights", progress),
        vocab,
        np.asarray(doc_freqs, np.int64),
        idf,
        avg_len,
        n_docs,
    )
    vocab.setdefault("", len(vocab))  # bm25s's empty token, last
    return _lexical_index(data, indices, indptr, vocab, n_docs)


def _count_terms(texts: Iterable[str]) -> tuple[dict[str, int], list[int], int, int]:
    """Pass 1: (vocabulary term -> id in order of first use, document frequency per id, documents,
    tokens)."""
    vocab: dict[str, int] = {}
    doc_freqs: list[int] = []
    n_docs = n_tokens = 0
    for text in texts:
        ids = [vocab.setdefault(t, len(vocab)) for t in tokenize(text)]
        doc_freqs.extend([0] * (len(vocab) - len(doc_freqs)))
        for term in set(ids):
            doc_freqs[term] += 1
        n_docs += 1
        n_tokens += len(ids)
    return vocab, doc_freqs, n_docs, n_tokens


def _lucene_idf(df: int, n_docs: int) -> float:
    """bm25s's lucene idf, in Python floats as bm25s computes it (0 for a term no document has)."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5)) if df else 0.0


def _fill_matrix(
    texts: Iterable[str],
    vocab: dict[str, int],
    doc_freqs: np.ndarray,
    idf: np.ndarray,
    avg_len: np.float64,
    n_docs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2: the CSC arrays (data float32, indices int32, indptr int64) of the BM25 weights."""
    k1, b = BM25_PARAMS["k1"], BM25_PARAMS["b"]
    indptr = np.zeros(len(doc_freqs) + 1, dtype=np.int64)
    np.cumsum(doc_freqs, out=indptr[1:])
    data = np.empty(indptr[-1], dtype=np.float32)
    indices = np.empty(indptr[-1], dtype=np.int32)
    heads = indptr[:-1].copy()  # where each column's next entry goes
    n = 0
    for doc, text in enumerate(texts):
        if doc == n_docs:
            raise ValueError(f"the texts changed between the two BM25 passes: more than {n_docs} the second time")
        tokens = tokenize(text)
        counts = Counter(vocab[t] if t in vocab else _unknown(t, doc) for t in tokens)
        terms = np.array(list(counts.keys()), dtype=np.int32)
        tf = np.array(list(counts.values()), dtype=np.float32)
        # bm25s's expression, operand for operand, so the float64 steps round as they do there.
        tfc = tf / (k1 * ((1 - b) + b * len(tokens) / avg_len) + tf)
        at = heads[terms]
        data[at] = idf[terms] * tfc
        indices[at] = doc
        heads[terms] += 1
        n = doc + 1
    if not np.array_equal(heads, indptr[1:]):
        raise ValueError(f"the texts changed between the two BM25 passes ({n} documents the second time)")
    return data, indices, indptr


def _unknown(token: str, doc: int) -> int:
    raise ValueError(f"the texts changed between the two BM25 passes: document {doc} has the new term {token!r}")


def _lexical_index(data, indices, indptr, vocab: dict[str, int], n_docs: int) -> LexicalIndex:
    """The arrays in the bm25s object that `LexicalIndex.save` writes, as `BM25.index` leaves it."""
    import bm25s

    bm25 = bm25s.BM25(**BM25_PARAMS, csc_backend="numpy")
    bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
    bm25.vocab_dict = vocab
    bm25.nonoccurrence_array = None  # lucene has none
    bm25.unique_token_ids_set = set(vocab.values())
    return LexicalIndex(bm25)


def _bar(texts: Iterable[str], total: int | None, desc: str, progress: bool | None):
    return tqdm(texts, total=total, desc=desc, unit="chunk", unit_scale=True, disable=_hidden(progress))


def _hidden(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides a bar where stderr is not a terminal."""
    return None if progress is None else not progress
