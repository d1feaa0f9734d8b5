"""Groupings of documents: connected components over an edge list (near-duplicate sets), and
spherical k-means over embeddings (semantic dedup's buckets, rebalancing's clusters, ablations).

`components(n, u, v)` labels each of `n` nodes with the smallest node index in its component, so
a component's label is its first member in input order, which is the document dedup keeps. It is
union-find done in whole-array rounds (hook every root onto the smaller root across an edge, then
compress paths by pointer jumping); a few rounds suffice for the short chains that duplicate sets
form, and memory is O(n + edges) integers, with no Python loop over nodes or edges.
"""

from __future__ import annotations

import numpy as np


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1: the smallest node index in its connected component."""
    parent = np.arange(n, dtype=np.int64)
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    while len(u):
        ru, rv = parent[u], parent[v]
        lo, hi = np.minimum(ru, rv), np.maximum(ru, rv)
        apart = lo != hi
        if not apart.any():
            break
        # Every parent pointer points to a smaller (or equal) index, so hooking the larger root
        # under the smaller one never makes a cycle, and each component's root is its minimum.
        np.minimum.at(parent, hi[apart], lo[apart])
        parent = _compress(parent)
        u, v = u[apart], v[apart]  # edges already inside one component stay so
    return _compress(parent)


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def spherical_kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster index of each row of unit vectors `x` (faiss k-means, cosine); one cluster when k <= 1."""
    k = min(k, len(x))
    if k <= 1:
        return np.zeros(len(x), dtype=np.int64)
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)
