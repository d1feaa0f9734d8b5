"""A quality classifier: target text against raw text, on hashed word and bigram features.

DCLM (Li et al. 2024, "DataComp-LM") ranks documents by a fastText classifier's probability that
they look like a high-quality reference set (bigram features; the reference OH-2.5 + ELI5, the
negatives raw web text), and keeps the top share; it beat perplexity and hand-built filters. A
fastText classifier is a linear model over averaged n-gram embeddings; here the same idea without
the embedding bottleneck: logistic regression over the document's hashed uni- and bigram counts
(log-scaled, each row normalized to unit length, as averaging does), classes weighted to balance,
L2-regularized, fitted with L-BFGS. (The `fasttext` wheels either need a C++ build or fail under
numpy 2, and this model is small enough to write out.)

    clf = QualityClassifier.fit(target_texts, raw_texts)
    p_target = clf.score(texts)          # probability that each text is target-like
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse

from cogcore.valuation.ngrams import DEFAULT_BUCKETS, ngram_counts


@dataclass(frozen=True)
class QualityClassifier:
    weights: np.ndarray
    bias: float
    buckets: int

    @classmethod
    def fit(
        cls,
        target: Sequence[str],
        raw: Sequence[str],
        buckets: int = DEFAULT_BUCKETS,
        l2: float = 1e-3,
        max_iter: int = 200,
    ) -> QualityClassifier:
        if not target or not raw:
            raise ValueError("the quality classifier needs target and raw texts (one side is empty)")
        x = sparse.vstack([features(target, buckets), features(raw, buckets)]).tocsr()
        y = np.concatenate([np.ones(len(target)), np.zeros(len(raw))])
        sample = np.where(y == 1, len(y) / (2 * len(target)), len(y) / (2 * len(raw)))  # balanced classes
        w0 = np.zeros(buckets + 1)
        result = optimize.minimize(
            _loss, w0, args=(x, y, sample, l2), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
        )
        return cls(result.x[:-1], float(result.x[-1]), buckets)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return _sigmoid(features(texts, self.buckets) @ self.weights + self.bias)


def features(texts: Sequence[str], buckets: int) -> sparse.csr_matrix:
    x = ngram_counts(texts, buckets)
    x.data = np.log1p(x.data)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for large |z|


def _loss(w: np.ndarray, x, y: np.ndarray, sample: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Weighted mean logistic loss + l2/2 * |weights|^2, and its gradient."""
    z = x @ w[:-1] + w[-1]
    p = _sigmoid(z)
    loss = np.sum(sample * (np.logaddexp(0.0, z) - y * z)) / len(y) + 0.5 * l2 * w[:-1] @ w[:-1]
    residual = sample * (p - y) / len(y)
    grad = np.concatenate([x.T @ residual + l2 * w[:-1], [residual.sum()]])
    return float(loss), grad
