"""Target importance (DSIR, Xie et al. 2023): how much more likely a document is under the target's
n-gram distribution than under the raw corpus's.

Each side is a bag of hashed uni- and bigrams (cogcore.valuation.ngrams) with add-`smoothing`
counts; a document's log importance weight is sum_j c_j * (log p_target(j) - log p_raw(j)) over its
n-gram counts c. DSIR resamples with these weights (Gumbel top-k, see selection.py). Unnormalized,
the weight grows with length: a long target-like document outranks a short one, which is DSIR's
choice and right when the budget is documents of similar length; `per_ngram=True` divides by the
document's n-gram count, so that the score says how target-like the text is, whatever its length.

The `data-selection` package implements the same algorithm, but silently returns nothing for
documents under its default minimum length and crashed with two processes; this is the small part
written out.

    model = ImportanceModel.fit(target_texts, raw_texts)
    log_w = model.score(raw_texts)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cogcore.valuation.ngrams import DEFAULT_BUCKETS, ngram_counts


@dataclass(frozen=True)
class ImportanceModel:
    log_ratio: np.ndarray  # per bucket: log p_target - log p_raw
    buckets: int

    @classmethod
    def fit(
        cls, target: Sequence[str], raw: Sequence[str], buckets: int = DEFAULT_BUCKETS, smoothing: float = 1.0
    ) -> ImportanceModel:
        if not target or not raw:
            raise ValueError("target importance needs target and raw texts (one side is empty)")
        p = _distribution(ngram_counts(target, buckets), smoothing)
        q = _distribution(ngram_counts(raw, buckets), smoothing)
        return cls(np.log(p) - np.log(q), buckets)

    def score(self, texts: Sequence[str], per_ngram: bool = False) -> np.ndarray:
        counts = ngram_counts(texts, self.buckets)
        scores = np.asarray(counts @ self.log_ratio, dtype=np.float64).ravel()
        if per_ngram:
            scores /= np.maximum(np.asarray(counts.sum(axis=1)).ravel(), 1.0)
        return scores


def _distribution(counts, smoothing: float) -> np.ndarray:
    totals = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel() + smoothing
    return totals / totals.sum()
