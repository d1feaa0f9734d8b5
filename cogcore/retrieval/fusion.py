"""Reciprocal rank fusion: merge ranked lists from retrievers whose scores are not comparable.

A cosine similarity and a BM25 score live on different scales, so hybrid search fuses ranks, not
scores (Cormack, Clarke and Buettcher, SIGIR 2009): an item's fused score is

    sum over lists of  weight / (k_rrf + rank)      (rank from 1; a list it is absent from adds 0)

k_rrf = 60 is the paper's constant and what most search engines ship; it flattens the head of each
list, so an item ranked well by both retrievers beats one ranked first by only one of them.

    fused = reciprocal_rank_fusion([dense_ids, bm25_ids])   # [(id, score, (rank_a, rank_b)), ...]
"""

from __future__ import annotations

from collections.abc import Sequence

K_RRF = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    k_rrf: int = K_RRF,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float, tuple[int | None, ...]]]:
    """(item, fused score, its 1-based rank in each list or None), best first; ties go to the
    item with the better best rank, then the smaller id, so the order is deterministic."""
    if k_rrf < 0:
        raise ValueError(f"k_rrf must be >= 0, got {k_rrf}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    ranks: dict[int, list[int | None]] = {}
    for i, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, 1):
            slot = ranks.setdefault(int(item), [None] * len(rankings))
            if slot[i] is None:  # a repeated item keeps its best rank
                slot[i] = rank
    fused = [
        (item, sum(w / (k_rrf + r) for w, r in zip(weights, item_ranks) if r is not None), tuple(item_ranks))
        for item, item_ranks in ranks.items()
    ]
    fused.sort(key=lambda f: (-f[1], min(r for r in f[2] if r is not None), f[0]))
    return fused
