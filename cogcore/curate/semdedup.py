"""Semantic deduplication in the manner of SemDeDup (Abbas et al., 2023): drop paraphrases.

Given L2-normalized document embeddings (the embedder is the caller's), k-means (faiss) splits the
corpus into clusters, and only pairs inside one cluster are compared, so memory and time grow with
the squared cluster sizes, not the squared corpus. Inside a cluster, documents are taken in input
order, and a document whose cosine similarity to some earlier one reaches `threshold` is a
duplicate of it: it is dropped in favour of that earlier document's representative, the first
document (in input order) of its chain. So, as with MinHash dedup, the kept document of each group
is its first, and the result does not depend on where k-means put a centroid. A pair that k-means
splits across two clusters is not compared: that is the approximation SemDeDup makes for speed.

    decisions = semantic_duplicate_decisions(ids, embeddings, threshold=0.95)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cogcore.curate.clusters import components, spherical_kmeans
from cogcore.curate.dedup import Decisions, groups_to_decisions

_ROWS = 1024  # rows of a cluster's similarity matrix computed at a time


@dataclass(frozen=True)
class SemanticDedupSettings:
    """Documents within cosine `threshold` of an earlier one in the same of `clusters` k-means clusters
    are duplicates."""

    threshold: float
    clusters: int


def semantic_duplicate_decisions(
    ids: list[str], embeddings: np.ndarray, threshold: float = 0.95, n_clusters: int | None = None, seed: int = 0
) -> Decisions:
    """Drop documents whose embedding is within cosine `threshold` of an earlier one's (same cluster).

    n_clusters: k-means clusters; None = round(sqrt(n)), a balance between the k-means cost and
    the within-cluster comparisons.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(ids):
        raise ValueError(f"embeddings must be (len(ids), dim); got {x.shape} for {len(ids)} ids")
    if len(x) and not np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3):
        raise ValueError("embeddings must be L2-normalized (cosine similarity is their dot product)")
    assign = spherical_kmeans(x, n_clusters or max(1, round(len(x) ** 0.5)), seed)
    parent = np.arange(len(x))
    order = np.argsort(assign, kind="stable")  # members of each cluster, in input order
    bounds = np.flatnonzero(np.diff(assign[order])) + 1
    for members in np.split(order, bounds):
        parent[members] = members[_earlier_duplicate(x[members], threshold)]
    labels = components(len(x), np.arange(len(x)), parent)
    return groups_to_decisions(ids, labels, "semantic_duplicate", "semantic")


def _earlier_duplicate(e: np.ndarray, threshold: float) -> np.ndarray:
    """For each row, the first earlier row with similarity >= threshold, or the row itself."""
    m = len(e)
    out = np.arange(m)
    for lo in range(0, m, _ROWS):
        hi = min(m, lo + _ROWS)
        sim = e[lo:hi] @ e[:hi].T  # only earlier rows (and the block itself) matter
        hit = sim >= threshold
        hit &= np.arange(hi)[None, :] < np.arange(lo, hi)[:, None]  # strictly earlier
        found = hit.any(axis=1)
        out[lo:hi][found] = hit[found].argmax(axis=1)
    return out
