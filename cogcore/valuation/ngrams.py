"""Hashed word n-gram counts of documents: the features the importance and classifier scorers share.

As DSIR (Xie et al. 2023, "Data Selection for Language Models via Importance Resampling"): lowercased
words, unigrams and bigrams, each hashed into one of `buckets` slots. Hashing keeps memory fixed
whatever the vocabulary; with 10,000 buckets collisions blur rare n-grams, which the scorers can
afford (they compare distributions, not words). The hash is a stable one (blake2b), not Python's
salted `hash`, so a score is the same in every process and run.

    counts = ngram_counts(["The wire fee is 25 USD.", ...], buckets=10_000)   # scipy CSR, docs x buckets
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from hashlib import blake2b

import numpy as np
from scipy import sparse

DEFAULT_BUCKETS = 10_000
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)  # words and single punctuation marks, as WordPunct tokenizers split


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@lru_cache(maxsize=1 << 18)
def bucket(ngram: str, buckets: int) -> int:
    return int.from_bytes(blake2b(ngram.encode("utf-8"), digest_size=8).digest(), "little") % buckets


def ngrams(tokens: list[str]) -> Iterable[str]:
    yield from tokens
    for a, b in zip(tokens, tokens[1:]):
        yield f"{a} {b}"


def ngram_counts(texts: Iterable[str], buckets: int = DEFAULT_BUCKETS) -> sparse.csr_matrix:
    """Documents x buckets counts of hashed unigrams and bigrams (float32)."""
    indptr, indices, data = [0], [], []
    for text in texts:
        row: dict[int, int] = {}
        for gram in ngrams(words(text)):
            slot = bucket(gram, buckets)
            row[slot] = row.get(slot, 0) + 1
        indices.extend(row)
        data.extend(row.values())
        indptr.append(len(indices))
    return sparse.csr_matrix(
        (np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr)),
        shape=(len(indptr) - 1, buckets),
    )
