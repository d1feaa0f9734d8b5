"""Global curation steps, decided once over the whole corpus after the parallel passes.

Exact duplicates (content hash), near duplicates (MinHash LSH), semantic duplicates (SemDeDup
over document embeddings) and rebalancing (embedding clusters capped in share), each over the
survivors of the one before. Each returns a step that the last pass applies with the usual
accounting. `plan` is a `CuratePlan` (pipeline.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from cogcore.curate.dedup import DecisionStep, exact_decisions

EMBED_CHARS = 1000  # what a 256-token embedder reads of a document anyway


def global_steps(p2: dict, plan, batches: Callable[[], Iterator[list[dict]]], work: Path) -> tuple[list, dict | None]:
    """Exact, near and semantic duplicates, then rebalancing, each over the survivors of the last."""
    ids = p2.get("ids", [])
    steps = []
    alive = list(range(len(ids)))
    if plan.exact_dedup:
        steps.append(DecisionStep("exact_dedup", exact_decisions(ids, _cat(p2["exact"], (0,)))))
        alive = [i for i in alive if ids[i] not in steps[-1].decisions.dropped]
    if plan.minhash is not None:
        from cogcore.curate.minhash import near_duplicate_decisions

        sigs = _cat(p2["minhash"], (0, 1))[alive]
        steps.append(DecisionStep("near_dedup", near_duplicate_decisions([ids[i] for i in alive], sigs, plan.minhash)))
        alive = [i for i in alive if ids[i] not in steps[-1].decisions.dropped]
    if plan.semantic is None and plan.rebalance is None:
        return steps, None
    vectors = _embeddings(work, batches, plan.embedder)
    if plan.semantic is not None:
        from cogcore.curate.semdedup import semantic_duplicate_decisions

        decisions = semantic_duplicate_decisions([ids[i] for i in alive], vectors[alive], plan.semantic["threshold"],
                                                 plan.semantic["clusters"], seed=plan.seed)
        steps.append(DecisionStep("semantic_dedup", decisions))
        alive = [i for i in alive if ids[i] not in decisions.dropped]
    report = None
    if plan.rebalance is not None:
        from cogcore.curate.rebalance import RebalanceStep, kmeans_labels, rebalance

        cfg = dict(plan.rebalance)
        labels = kmeans_labels(vectors[alive], cfg.pop("clusters"), plan.seed)
        decisions, upsample, report = rebalance([ids[i] for i in alive], labels, seed=plan.seed, **cfg)
        steps.append(RebalanceStep(decisions, upsample))
    return steps, report


def _embeddings(work: Path, batches: Callable[[], Iterator[list[dict]]], embedder_path: str | None) -> np.ndarray:
    """One vector per pass-2 document, in order; cached, so a resumed run does not embed again."""
    cache = work / "embeddings.npy"
    if cache.exists():
        return np.load(cache)
    if embedder_path is None:
        raise ValueError("semantic dedup and rebalancing need an embedder (index.embedder in the recipe)")
    from cogcore.retrieval import Embedder

    embedder = Embedder(embedder_path)
    texts = [d["text"][:EMBED_CHARS] for batch in batches() for d in batch]
    vectors = embedder.encode(texts, show_progress=True) if texts else np.zeros((0, embedder.dim), np.float32)
    tmp = work / "embeddings.tmp.npy"
    np.save(tmp, vectors)
    tmp.replace(cache)
    return vectors


def _cat(parts: list[np.ndarray], empty_shape: tuple) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype=np.uint64)
